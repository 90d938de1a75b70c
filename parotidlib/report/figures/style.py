"""The look every figure shares: display names, class colours and font sizes.

One home for what the figure modules (:mod:`~parotidlib.report.figures.evaluation`,
:mod:`~parotidlib.report.figures.external`, :mod:`~parotidlib.report.figures.inputs`,
:mod:`~parotidlib.report.figures.saliency`) and the report's tables agree on, so that a class
has the same name and colour everywhere. The palette is seaborn's colour-blind-safe
"colorblind" (Waskom 2021; after Wong, Nat Methods 2011; 8:441).

A class scheme (``classes`` param, :class:`parotidlib.study.ClassScheme`) may name classes
beyond the paper's four. Their display name is made from the name (``"acinic_cell"`` ->
"Acinic cell"); their colour is deterministic: the paper's classes and ``benign`` keep theirs,
any other name takes one of the palette's spare colours chosen from its CRC-32, so that a
class keeps its colour across figures and runs. :func:`class_colours` gives the classes of
one scheme distinct colours (the spare colours in turn from each name's own, then evenly
spaced hues), and agrees with :data:`CLASS_COLOURS` for every class that needed no other.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import seaborn as sns

from parotidlib.constants import CLASSES

__all__ = ["CLASS_COLOURS", "FIGURE_RC", "PRETTY_NAMES", "class_colour", "class_colours",
           "pretty_name"]


class _Derived(dict):
    """A dict whose missing keys are derived from the key (and not stored)."""

    def __init__(self, fixed: dict[str, str], derive: Callable[[str], str]) -> None:
        super().__init__(fixed)
        self._derive = derive

    def __missing__(self, key: str) -> str:
        return self._derive(key)

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The fixed or derived value (``default`` only for a key that is not text)."""
        return self[key] if key in self or isinstance(key, str) else default


def _pretty(name: str) -> str:
    return name.replace("_", " ").capitalize()


#: Display names of classes, histologies and groups; any other name reads as its words
#: (``PRETTY_NAMES["acinic_cell"] == "Acinic cell"``).
PRETTY_NAMES: dict[str, str] = _Derived({
    "free": "Free (no tumour)",
    "pleomorphic_adenoma": "Pleomorphic adenoma",
    "warthin": "Warthin tumour",
    "malignant": "Malignant",
    "benign": "Benign",
    "micro": "Micro-average",
    "macro": "Macro-average",
}, _pretty)

#: Font sizes readable at a journal column width (a ``matplotlib.rc_context`` mapping).
FIGURE_RC: dict[str, int] = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
                             "legend.fontsize": 9, "xtick.labelsize": 10, "ytick.labelsize": 10}

_PALETTE: list[str] = sns.color_palette("colorblind", 10).as_hex()
#: The fixed colours: the paper's four classes, then ``benign`` (a two-class scheme's).
_FIXED: dict[str, str] = dict(zip((*CLASSES, "benign"), _PALETTE, strict=False))
#: The palette's colours no fixed class takes, for the classes of other schemes.
_SPARE: tuple[str, ...] = tuple(_PALETTE[len(_FIXED):])


def _spare_index(name: str) -> int:
    return zlib.crc32(name.encode()) % len(_SPARE)


def class_colour(name: str) -> str:
    """The colour of a class: fixed for the paper's classes and ``benign``, otherwise the
    spare palette colour the name's CRC-32 picks (deterministic, the same in every run)."""
    return _FIXED.get(name) or _SPARE[_spare_index(name)]


#: One colour per class (colour-blind-safe palette), fixed so figures agree; any other class
#: name gets :func:`class_colour`'s.
CLASS_COLOURS: dict[str, str] = _Derived(dict(_FIXED), class_colour)


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """Distinct colours for the classes of one scheme, in their order.

    The fixed classes keep theirs; each other class, in the order given, takes its own
    :func:`class_colour` unless a class before it took that colour, then the next spare one
    (cyclically); beyond the spare colours, evenly spaced hues (``husl``).
    """
    out: dict[str, str] = {c: _FIXED[c] for c in classes if c in _FIXED}
    others = [c for c in dict.fromkeys(classes) if c not in _FIXED]
    free = list(_SPARE)
    extra = iter(sns.husl_palette(max(len(others) - len(free), 1), l=0.6).as_hex())
    for name in others:
        if not free:
            out[name] = next(extra)
            continue
        start = _spare_index(name)
        pick = next(_SPARE[(start + k) % len(_SPARE)] for k in range(len(_SPARE))
                    if _SPARE[(start + k) % len(_SPARE)] in free)
        free.remove(pick)
        out[name] = pick
    return {c: out[c] for c in dict.fromkeys(classes)}


def pretty_name(name: str) -> str:
    """Display name of a class or group (``"pleomorphic_adenoma"`` -> "Pleomorphic adenoma")."""
    return PRETTY_NAMES[name]
