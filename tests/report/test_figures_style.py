"""Class names and colours of the figures (report/figures/style.py)."""

import seaborn as sns

from parotidlib.constants import CLASSES
from parotidlib.report.figures.style import (
    CLASS_COLOURS,
    PRETTY_NAMES,
    class_colour,
    class_colours,
    pretty_name,
)


def test_the_paper_classes_keep_their_colours_and_names():
    assert [CLASS_COLOURS[c] for c in CLASSES] == sns.color_palette("colorblind", 4).as_hex()
    assert pretty_name("warthin") == "Warthin tumour" and pretty_name("free") == "Free (no tumour)"


def test_any_class_name_has_a_deterministic_colour_and_a_name():
    assert CLASS_COLOURS["acinic_cell"] == class_colour("acinic_cell") == CLASS_COLOURS.get(
        "acinic_cell")
    assert CLASS_COLOURS["acinic_cell"] not in [CLASS_COLOURS[c] for c in (*CLASSES, "benign")]
    assert "acinic_cell" not in CLASS_COLOURS  # derived, not stored
    assert PRETTY_NAMES["acinic_cell"] == pretty_name("acinic_cell") == "Acinic cell"


def test_the_classes_of_one_scheme_get_distinct_colours():
    classes = ["free", "benign", "malignant", *(f"class_{i}" for i in range(9))]
    colours = class_colours(classes)
    assert list(colours) == classes and len(set(colours.values())) == len(classes)
    assert colours["benign"] == CLASS_COLOURS["benign"] and colours["free"] == CLASS_COLOURS["free"]
    assert class_colours(["free", "class_3"])["class_3"] == class_colour("class_3")
    assert class_colours(classes) == colours  # deterministic
