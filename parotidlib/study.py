"""The study definition: which MR series a cohort has, where their label maps come from, and
which manifest columns that asks for (docs/cohort-format.md); and how histologies map to the
network's classes (:class:`ClassScheme`, the ``classes`` param).

Two params say it, validated with the curation settings (:class:`parotidlib.config.CurationConfig`):

* ``series``: the cohort's MR series, by their manifest column names (default
  :data:`parotidlib.constants.SERIES`, the paper's ``[t1, ce_t1, t2]``). ``t1`` is always one
  of them: it is the reference grid every other series is resampled onto, and the gland
  channel is cropped from it (Xia et al. 2021, Figure 3). The ``channels`` param is a subset
  of the series plus ``gland``, in that order.
* ``labels_from``: empty, every series has its own label map (column ``<series>_labels``, on
  that series' grid); or a series name, whose label map then gives every series' regions of
  interest, carried over onto the T1 grid through the affines at curation (as
  ``import-dicom`` carries contours over for a series drawn on none), and only its
  ``<labels_from>_labels`` column is required.

A quantitative series (:data:`QUANTITATIVE`: the ADC map) is stored in scaled integers; its
manifest row names the scale (``adc_scale_mm2_s``: ADC in mm²/s = stored value x scale, as
``synth --diffusion`` and ``import-dicom`` write it) and curation windows it in physical
units rather than per patient (:mod:`parotidlib.data.preprocess`). Torch-free; the checks of
the two params are :func:`parotidlib.checks.check_series` and
:func:`parotidlib.checks.check_labels_from`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parotidlib.checks import ParamsError, check_labels_from, check_series
from parotidlib.constants import (
    CLINICAL_COLUMNS,
    FREE_CLASS,
    GLAND_CHANNEL,
    KNOWN_HISTOLOGIES,
    REFERENCE_SERIES,
    SERIES,
)

__all__ = ["DEFAULT_STUDY", "PAPER_CLASSES", "QUANTITATIVE", "REFERENCE_SERIES", "SCHEMES",
           "ClassScheme", "Quantity", "Study", "class_scheme"]


@dataclass(frozen=True)
class Quantity:
    """How a quantitative series' stored values become physical ones, and their window.

    Attributes
    ----------
    scale_column : str
        Manifest column holding, per patient, the physical value of one stored unit.
    unit : str
        The physical unit (named in messages and docs).
    window : tuple of float
        Physical values mapped to 0 and 1 by the ``percentile`` normalisation (clipped).
    """

    scale_column: str
    unit: str
    window: tuple[float, float]


#: Quantitative series by name. The ADC window: 0 to 3.0e-3 mm²/s, free water's diffusion
#: coefficient at body temperature (Le Bihan et al. 1988, Radiology 168:497; above it only
#: cerebrospinal fluid and flowing blood's pseudo-diffusion, which clip to 1).
QUANTITATIVE: dict[str, Quantity] = {
    "adc": Quantity(scale_column="adc_scale_mm2_s", unit="mm²/s", window=(0.0, 3.0e-3)),
}


@dataclass(frozen=True)
class Study:
    """A cohort's series and the source of their label maps (checked on construction).

    Attributes
    ----------
    series : tuple of str
        The MR series, by manifest column name; ``t1`` among them.
    labels_from : str
        "" (each series has its own label map) or the series whose label map every series
        uses.
    """

    series: tuple[str, ...] = SERIES
    labels_from: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "series", check_series("series", self.series))
        check_labels_from(self.labels_from, self.series)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels a model may take, in their canonical order: the series, then gland."""
        return (*self.series, GLAND_CHANNEL)

    @property
    def label_series(self) -> tuple[str, ...]:
        """The series whose label maps the manifest holds (and curation reads)."""
        return (self.labels_from,) if self.labels_from else self.series

    @property
    def image_columns(self) -> tuple[str, ...]:
        """The manifest's image columns, one per series."""
        return self.series

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The manifest's label-map columns (``<series>_labels``) of :attr:`label_series`."""
        return tuple(f"{s}_labels" for s in self.label_series)

    @property
    def scale_columns(self) -> tuple[str, ...]:
        """The manifest's scale columns of the quantitative series among :attr:`series`."""
        return tuple(QUANTITATIVE[s].scale_column for s in self.series if s in QUANTITATIVE)

    @property
    def file_columns(self) -> tuple[str, ...]:
        """Image columns, then label-map columns: every file the study reads per patient."""
        return (*self.image_columns, *self.label_columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Every column the manifest must have: clinical, files, then scales."""
        return (*CLINICAL_COLUMNS, *self.file_columns, *self.scale_columns)

    def labels_of(self, series: str) -> str:
        """The series whose label map gives ``series``' regions of interest."""
        return self.labels_from or series

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Study:
        """The study of recorded curation settings (``dataset.json``'s ``config``, a bundle's
        ``curation``); the paper's for a record made before the study definition."""
        return cls(tuple(config.get("series") or SERIES), str(config.get("labels_from") or ""))


#: The paper's study: T1, CE-T1 and T2, each with its own label map.
DEFAULT_STUDY = Study()


# --------------------------------------------------------------------------- class schemes

_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The keys of a ``classes`` mapping that are not histologies.
_LIST_KEYS: tuple[str, ...] = ("exclude", "malignant_classes", "benign_classes")


@dataclass(frozen=True)
class ClassScheme:
    """How the cohort's histologies map to the network's slice classes.

    The classes are ``free`` (the tumour-free contralateral gland, Xia et al. 2021) first,
    then the benign classes in the order they first appear in the mapping, then the malignant
    ones: model-output order. A class is malignant when its histologies are
    (:data:`parotidlib.constants.KNOWN_HISTOLOGIES`, after the WHO classification 2017) or
    when the scheme says so for histologies the kit does not know.

    Attributes
    ----------
    name : str
        ``"paper"``, ``"benign_malignant"`` or ``"custom"`` (a mapping).
    mapping : tuple of (str, str)
        (histology, class) pairs, in the order given.
    exclude : tuple of str
        Histologies left out of the study (their patients are listed with counts).
    malignant : tuple of str
        The malignant classes.
    """

    name: str
    mapping: tuple[tuple[str, str], ...]
    exclude: tuple[str, ...] = ()
    malignant: tuple[str, ...] = ()

    @property
    def classes(self) -> tuple[str, ...]:
        """Slice classes in model-output order: free, the benign, the malignant classes."""
        order = list(dict.fromkeys(c for _, c in self.mapping))
        return (FREE_CLASS, *(c for c in order if c not in self.malignant),
                *(c for c in order if c in self.malignant))

    @property
    def benign(self) -> tuple[str, ...]:
        """The benign lesion classes, in class order."""
        return tuple(c for c in self.classes[1:] if c not in self.malignant)

    @property
    def histologies(self) -> tuple[str, ...]:
        """The histologies the scheme gives a class (not the excluded ones)."""
        return tuple(h for h, _ in self.mapping)

    def class_of(self, histology: str) -> str:
        """The class of a histology (ValueError naming the scheme when it has none)."""
        for h, c in self.mapping:
            if h == histology:
                return c
        raise ValueError(f"histology {histology!r} has no class in the class scheme "
                         f"{self.name!r}" + (" (it is excluded)" if histology in self.exclude
                                             else ""))

    def record(self) -> dict[str, Any]:
        """The scheme as JSON (``dataset.json``'s ``class_scheme``; :meth:`from_record`)."""
        return {"name": self.name, "classes": list(self.classes), "benign": list(self.benign),
                "malignant": list(self.malignant), "histology_class": dict(self.mapping),
                "exclude": list(self.exclude)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ClassScheme:
        """The scheme :meth:`record` wrote."""
        return cls(str(record["name"]), tuple(dict(record["histology_class"]).items()),
                   tuple(record.get("exclude", ())), tuple(record.get("malignant", ())))


#: The paper's four classes (Xia et al. 2021, Figure 7): free, pleomorphic adenoma, Warthin,
#: malignant.
PAPER_CLASSES = ClassScheme("paper", (("pleomorphic_adenoma", "pleomorphic_adenoma"),
                                      ("warthin", "warthin"), ("malignant", "malignant")),
                            malignant=("malignant",))
#: The named schemes of the ``classes`` param. ``benign_malignant``: every histology the kit
#: knows as benign or malignant, in two lesion classes.
SCHEMES: dict[str, ClassScheme] = {
    "paper": PAPER_CLASSES,
    "benign_malignant": ClassScheme(
        "benign_malignant",
        tuple((h, "malignant" if bad else "benign") for h, bad in KNOWN_HISTOLOGIES.items()),
        malignant=("malignant",)),
}


def _names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ParamsError(f"classes: {key} must be a list of names, got {value!r}")
    return tuple(value)


def class_scheme(value: Any) -> ClassScheme:
    """The ``classes`` param as a :class:`ClassScheme`.

    Parameters
    ----------
    value : str or mapping
        A named scheme (:data:`SCHEMES`: ``paper``, the default; ``benign_malignant``), or a
        mapping from each histology to a class name, with the optional keys ``exclude`` (a
        list of histologies left out), and ``malignant_classes`` / ``benign_classes`` (lists
        of classes), which say the behaviour of classes whose histologies the kit does not know
        (:data:`parotidlib.constants.KNOWN_HISTOLOGIES`).

    Raises
    ------
    ParamsError
        An unknown scheme name; a histology or class name that is not lower-case letters,
        digits and underscores; the class ``free`` (the tumour-free gland's); a histology
        both mapped and excluded; a class holding benign and malignant histologies; a class
        of unknown histologies whose behaviour is not said, or said against the WHO's; no
        lesion class.
    """
    if isinstance(value, ClassScheme):
        return value
    if isinstance(value, str):
        if value not in SCHEMES:
            raise ParamsError(f"classes must be one of {list(SCHEMES)} or a mapping of "
                              f"histology -> class, got {value!r}")
        return SCHEMES[value]
    if not isinstance(value, Mapping):
        raise ParamsError(f"classes must be one of {list(SCHEMES)} or a mapping of histology "
                          f"-> class, got {value!r}")
    extra = {k: _names(k, value[k]) for k in _LIST_KEYS if k in value}
    mapping = {k: v for k, v in value.items() if k not in extra}
    for histology, cls in mapping.items():
        if not (isinstance(histology, str) and _NAME.fullmatch(histology)
                and isinstance(cls, str) and _NAME.fullmatch(cls)):
            raise ParamsError(f"classes: {histology!r}: {cls!r} must map a histology to a class "
                              f"name, both lower-case letters, digits and underscores")
        if cls == FREE_CLASS:
            raise ParamsError(f"classes: {histology!r} cannot map to {FREE_CLASS!r}, the class "
                              f"of the tumour-free gland")
    if not mapping:
        raise ParamsError(f"classes must map at least one histology to a class, got "
                          f"{dict(value)!r}")
    exclude = extra.get("exclude", ())
    both = sorted(set(exclude) & set(mapping))
    if both:
        raise ParamsError(f"classes: {both} are both mapped and excluded")
    said_bad = set(extra.get("malignant_classes", ()))
    said_good = set(extra.get("benign_classes", ()))
    unknown = sorted((said_bad | said_good) - set(mapping.values()))
    if unknown or said_bad & said_good:
        raise ParamsError(f"classes: malignant_classes and benign_classes must name the "
                          f"mapping's classes, each once; got malignant_classes="
                          f"{sorted(said_bad)}, benign_classes={sorted(said_good)} for classes "
                          f"{sorted(set(mapping.values()))}")
    malignant = []
    for cls in dict.fromkeys(mapping.values()):
        members = [h for h, c in mapping.items() if c == cls]
        known = {KNOWN_HISTOLOGIES[h] for h in members if h in KNOWN_HISTOLOGIES}
        if len(known) == 2:
            raise ParamsError(f"classes: class {cls!r} holds benign and malignant histologies "
                              f"({members}); split it")
        said = True if cls in said_bad else False if cls in said_good else None
        if said is not None and known and said not in known:
            raise ParamsError(f"classes: class {cls!r} is listed as "
                              f"{'malignant' if said else 'benign'}, but its histologies "
                              f"{members} are not (WHO 2017)")
        behaviour = said if said is not None else (known.pop() if known else None)
        if behaviour is None:
            raise ParamsError(f"classes: the kit does not know whether {members} (class "
                              f"{cls!r}) is benign or malignant; list {cls!r} under "
                              f"'malignant_classes:' or 'benign_classes:' in classes")
        if behaviour:
            malignant.append(cls)
    return ClassScheme("custom", tuple(mapping.items()), exclude, tuple(malignant))
