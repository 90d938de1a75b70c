"""The look every figure shares: display names, class colours and font sizes.

One home for what the figure modules (:mod:`~parotidlib.report.figures.evaluation`,
:mod:`~parotidlib.report.figures.external`, :mod:`~parotidlib.report.figures.inputs`,
:mod:`~parotidlib.report.figures.saliency`) and the report's tables agree on, so that a class
has the same name and colour everywhere. The palette is seaborn's colour-blind-safe
"colorblind" (Waskom 2021; after Wong, Nat Methods 2011; 8:441).
"""

from __future__ import annotations

import seaborn as sns

from parotidlib.constants import CLASSES

__all__ = ["CLASS_COLOURS", "FIGURE_RC", "PRETTY_NAMES", "pretty_name"]

#: Display names of classes, histologies and groups.
PRETTY_NAMES: dict[str, str] = {
    "free": "Free (no tumour)",
    "pleomorphic_adenoma": "Pleomorphic adenoma",
    "warthin": "Warthin tumour",
    "malignant": "Malignant",
    "benign": "Benign",
    "micro": "Micro-average",
    "macro": "Macro-average",
}

#: Font sizes readable at a journal column width (a ``matplotlib.rc_context`` mapping).
FIGURE_RC: dict[str, int] = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
                             "legend.fontsize": 9, "xtick.labelsize": 10, "ytick.labelsize": 10}
#: One colour per class (colour-blind-safe palette), fixed so figures agree.
CLASS_COLOURS: dict[str, str] = dict(zip(CLASSES, sns.color_palette(
    "colorblind", len(CLASSES)).as_hex(), strict=True))


def pretty_name(name: str) -> str:
    """Display name of a class or group (``"pleomorphic_adenoma"`` -> "Pleomorphic adenoma")."""
    return PRETTY_NAMES.get(name, name.replace("_", " ").capitalize())
