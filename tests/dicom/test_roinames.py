"""ROI names to labels: AAPM TG-263 names and the usual other spellings matched whole, derived
structures never taken, a bilateral gland ROI split at the midline. A table of real-world ROI
names, each with its expected outcome; no case may come out wrong."""

import numpy as np
import pytest

from parotidlib.dicom.roinames import BILATERAL, classify_roi, split_bilateral
from parotidlib.dicom.rules import load_rules

RULES = load_rules()
R, L, T, BOTH = 1, 2, 3, BILATERAL
DERIVED, NONE = "derived", "no rule matches"

CASES = [
    # TG-263 (Mayo et al. 2018, Table 3)
    ("Parotid_R", R), ("Parotid_L", L), ("Parotids", BOTH), ("GTV", T), ("GTVp", T),
    # the usual other spellings
    ("R Parotid", R), ("L Parotid", L), ("Parotid Rt", R), ("Parotid Lt", L),
    ("Rt_Parotid", R), ("Lt. Parotid", L), ("PAROTID RIGHT", R), ("PAROTID LEFT", L),
    ("ParotidR", R), ("ParotidL", L), ("Parotid-R", R), ("Parotid-Lt", L), ("RT-Parotid", R),
    ("Parotid_Dx", R), ("Parotid_Sx", L), ("Parotis re", R), ("Parotis li", L),
    ("Rechte Parotis", R), ("Parotide D", R), ("Parotide G", L), ("Parótida derecha", R),
    ("Parótida izquierda", L), ("Glandula parotis dextra", R), ("Parotid gland right", R),
    ("Tumour", T), ("Tumor", T), ("Lesion", T), ("mass", T), ("GTV_parotid", T),
    ("GTV primary", T), ("Tumor_R", T), ("Parotid tumour", T),
    ("Parotids_Bilat", BOTH), ("Bilat Parotids", BOTH), ("Parotid_R+L", BOTH),
    ("Parotid glands", BOTH),
    # derived structures: never a gland or the tumour
    ("GTV+5mm", DERIVED), ("GTVp+5mm", DERIVED), ("GTV_5mm", DERIVED), ("GTV_exp", DERIVED),
    ("Parotid_L-GTV", DERIVED), ("Parotid_R~GTV", DERIVED), ("Parotid_R_minus_GTV", DERIVED),
    ("PTV_GTV", DERIVED), ("PTV60", DERIVED), ("CTV_High", DERIVED), ("Parotid_L_PRV", DERIVED),
    ("GTVn", DERIVED), ("GTV_LN", DERIVED), ("GTV node", DERIVED), ("Tumor Bed Block", DERIVED),
    ("zParotid_R", DERIVED), ("optGTV", DERIVED), ("Parotid_R_avoid", DERIVED),
    ("Ring_GTV", DERIVED), ("GTV+Parotid_R", DERIVED),
    # other structures and names that say too little
    ("Mandible", NONE), ("Brainstem", NONE), ("SpinalCord", NONE), ("Parotid", NONE),
    ("GTV1", NONE), ("Submandibular_R", NONE),
]


def test_the_table_is_large():
    assert len(CASES) >= 40 and sum(e == DERIVED for _, e in CASES) >= 15


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_roi_name_table(name, expected):
    verdict = classify_roi(name, RULES)
    if expected in (DERIVED, NONE):
        assert verdict.label is None and verdict.reason.startswith(expected), verdict
    else:
        assert verdict.label == expected and verdict.reason == "", verdict


@pytest.mark.parametrize("kind", ["PTV", "CTV", "AVOIDANCE", "CONTROL"])
def test_the_interpreted_type_makes_a_structure_derived(kind):
    assert classify_roi("GTV", RULES, kind).reason == f"derived: RTROIInterpretedType {kind}"
    assert classify_roi("GTV", RULES, "GTV").label == 3
    assert classify_roi("Parotid_R", RULES, "ORGAN").label == 1


def test_a_bilateral_roi_is_split_at_the_midline():
    mask = np.zeros((40, 10, 5), bool)
    mask[2:8, 2:8, 1:4] = True      # small x
    mask[30:38, 2:8, 1:4] = True    # large x: the right gland in RAS+
    mask[9, 5, 2] = True            # a fragment near the small-x gland
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    right, left = split_bilateral(mask, affine)
    assert right[30:38, 2:8, 1:4].all()
    assert left[2:8, 2:8, 1:4].all() and left[9, 5, 2]
    assert not (right & left).any() and ((right | left) == mask).all()
    flipped = np.diag([-2.0, 2.0, 3.0, 1.0])  # x grows the other way: the sides swap
    right2, _ = split_bilateral(mask, flipped)
    assert right2[2:8, 2:8, 1:4].all()


def test_a_bilateral_roi_that_is_one_blob_is_refused():
    mask = np.zeros((40, 10, 5), bool)
    mask[2:38, 2:8, 1:4] = True
    with pytest.raises(ValueError, match="1 component"):
        split_bilateral(mask, np.eye(4))
    close = np.zeros((40, 10, 5), bool)
    close[2:4, 2:8, 1:4] = close[6:8, 2:8, 1:4] = True
    with pytest.raises(ValueError, match="mm apart"):
        split_bilateral(close, np.eye(4))
