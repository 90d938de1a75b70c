"""The import rules file: defaults, a user's file merged over them, and its checks."""

import pytest

from parotidlib.dicom.roinames import classify_roi
from parotidlib.dicom.rules import (
    RulesError,
    fold,
    load_rules,
    normalise_description,
    normalise_roi_name,
)


def test_normalisation_folds_accents_case_and_separators():
    assert normalise_roi_name("Parotid__R ") == "parotid r"
    assert normalise_roi_name("Lt. Parotid") == "lt parotid"
    assert normalise_roi_name("Parótida-derecha") == "parotida derecha"
    assert normalise_roi_name("GTV+5mm") == "gtv+5mm"  # operators kept for the rules
    assert normalise_description("T1 w/o KM (après)") == "t1 w o km apres"
    assert fold("ÜBER") == "uber"


def test_a_rules_file_replaces_sections_and_is_checked(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rois:\n  3: ['tu']\n")
    rules = load_rules(path)
    assert classify_roi("TU", rules).label == 3 and classify_roi("GTV", rules).label is None
    assert classify_roi("Parotid_R", rules).label is None  # the rois section was replaced
    path.write_text("series:\n  t2:\n    description: ['weird']\n    echo: longest\n")
    rules = load_rules(path)
    assert rules.series["t1"].description and rules.series["t2"].echo == "longest"
    for text, message in (("colour: red\n", "unknown section"),
                          ("rois:\n  7: ['x']\n", "not a label code"),
                          ("series:\n  t1:\n    tr_ms: [900, 100]\n", "tr_ms"),
                          ("series:\n  t1:\n    echo: middle\n", "echo must be one of"),
                          ("series:\n  t1:\n    echo: te_range\n    te_ms: null\n",
                           "te_ms is not given"),
                          ("series:\n  t1:\n    colour: 1\n", "unknown key"),
                          ("structure_sets: union\n", "structure_sets must be one of"),
                          ("pin:\n  '1':\n    gland: x\n", "unknown key"),
                          ("rois:\n  1: ['(']\n", "invalid regular expression")):
        path.write_text(text)
        with pytest.raises(RulesError, match=message):
            load_rules(path)


def test_pins_accept_roles_and_structures(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("pin:\n  '123':\n    t1: '1.2.3'\n    tumour: GTV_final\n")
    assert load_rules(path).pin == {"123": {"t1": "1.2.3", "tumour": "GTV_final"}}
