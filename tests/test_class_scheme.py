"""The ``classes`` param: named schemes, mappings, and what is refused (parotidlib.study)."""

from __future__ import annotations

import pytest

from parotidlib.config import CurationConfig, ParamsError
from parotidlib.constants import CLASSES, KNOWN_HISTOLOGIES
from parotidlib.study import PAPER_CLASSES, ClassScheme, class_scheme

CUSTOM = {"pleomorphic_adenoma": "pleomorphic_adenoma", "warthin": "warthin",
          "basal_cell_adenoma": "other_benign", "mucoepidermoid_carcinoma": "malignant",
          "malignant": "malignant", "exclude": ["lymphoma"]}


def test_the_paper_scheme_is_todays_classes():
    scheme = CurationConfig().class_scheme
    assert scheme is PAPER_CLASSES and scheme.classes == CLASSES
    assert scheme.malignant == ("malignant",) and scheme.benign == CLASSES[1:3]
    assert [scheme.class_of(h) for h in ("pleomorphic_adenoma", "warthin", "malignant")] == \
        list(CLASSES[1:])


def test_benign_malignant_covers_every_known_histology():
    scheme = class_scheme("benign_malignant")
    assert scheme.classes == ("free", "benign", "malignant")
    for histology, bad in KNOWN_HISTOLOGIES.items():
        assert scheme.class_of(histology) == ("malignant" if bad else "benign")


def test_a_mapping_orders_free_then_benign_then_malignant_and_round_trips():
    scheme = class_scheme({**CUSTOM, "mucoepidermoid_carcinoma": "carcinoma"})
    assert scheme.name == "custom"
    assert scheme.classes == ("free", "pleomorphic_adenoma", "warthin", "other_benign",
                              "carcinoma", "malignant")
    assert scheme.exclude == ("lymphoma",)
    assert ClassScheme.from_record(scheme.record()) == scheme
    with pytest.raises(ValueError, match="'lymphoma' has no class .* \\(it is excluded\\)"):
        scheme.class_of("lymphoma")
    assert CurationConfig(classes=CUSTOM).class_scheme.classes[-1] == "malignant"


def test_unknown_histologies_need_their_behaviour_said():
    with pytest.raises(ParamsError, match="does not know whether \\['myxoma'\\].*"
                                          "'malignant_classes:' or 'benign_classes:'"):
        class_scheme({"myxoma": "other", "warthin": "warthin"})
    scheme = class_scheme({"myxoma": "other", "warthin": "warthin",
                           "benign_classes": ["other"]})
    assert scheme.benign == ("other", "warthin") and scheme.malignant == ()
    scheme = class_scheme({"odd_carcinoma": "odd", "warthin": "warthin",
                           "malignant_classes": "odd"})
    assert scheme.malignant == ("odd",) and scheme.classes == ("free", "warthin", "odd")


@pytest.mark.parametrize(("value", "message"), [
    ("who", "classes must be one of \\['paper', 'benign_malignant'\\]"),
    (3, "classes must be one of"),
    ({}, "at least one histology"),
    ({"warthin": "free"}, "cannot map to 'free'"),
    ({"Warthin": "warthin"}, "lower-case"),
    ({"warthin": "Benign Class"}, "lower-case"),
    ({"warthin": "benign", "exclude": ["warthin"]}, "both mapped and excluded"),
    ({"warthin": "lesion", "malignant": "lesion"}, "holds benign and malignant"),
    ({"warthin": "w", "malignant_classes": ["w"]}, "listed as malignant, but"),
    ({"malignant": "m", "benign_classes": ["m"]}, "listed as benign, but"),
    ({"warthin": "w", "malignant_classes": ["x"]}, "must name the mapping's classes"),
    ({"warthin": "w", "exclude": [3]}, "exclude must be a list of names"),
])
def test_refusals_name_the_problem(value, message):
    with pytest.raises(ParamsError, match=message):
        class_scheme(value)
    with pytest.raises(ParamsError, match=message):
        CurationConfig(classes=value)
