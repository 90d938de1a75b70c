"""The study definition's series: which MR series a cohort has, where their label maps come
from, and which manifest columns that asks for (docs/cohort-format.md).

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

from dataclasses import dataclass

from parotidlib.checks import check_labels_from, check_series
from parotidlib.constants import CLINICAL_COLUMNS, GLAND_CHANNEL, REFERENCE_SERIES, SERIES

__all__ = ["DEFAULT_STUDY", "QUANTITATIVE", "REFERENCE_SERIES", "Quantity", "Study"]


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


#: The paper's study: T1, CE-T1 and T2, each with its own label map.
DEFAULT_STUDY = Study()
