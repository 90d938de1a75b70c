"""From one patient's volumes to the paper's four-channel slice images (Xia et al. 2021, Figure 3).

The channels are those of ``config.channels``: any of the study's series
(``config.series``, :mod:`parotidlib.study`; the paper's T1, CE-T1 and T2 by default) and
the gland channel, in that order.

Steps, per patient:

1. Reference grid: the T1 series in closest-canonical (RAS) voxel order
   (:func:`nibabel.as_closest_canonical`); ``slice_index`` is the axial index k on it.
2. Intensities: by default each series is scaled by its own robust window, the
   ``percentile_low`` and ``percentile_high`` percentiles of its voxels > 0 (the body; air is
   0 or low noise), computed on the whole native series *before* cropping, then clipped to
   [0, 1]. Because the scaling is affine it is applied after (linear) resampling, to the crop
   only. ``normalisation="minmax"`` instead scales each crop by its own min and max (over the
   ROI when ``mask_background``, else over the crop's in-image pixels). A quantitative
   series (:data:`parotidlib.study.QUANTITATIVE`: the ADC map) keeps its physical meaning
   under ``percentile``: its stored values times the patient's scale (``adc_scale_mm2_s``)
   are windowed by the fixed physical window (ADC 0 to 3.0e-3 mm²/s, free water), the same
   for every patient and scanner, since absolute ADC is what tells the histologies apart
   (e.g. Habermann et al. 2009, AJNR 30:591); a per-patient percentile window would
   rescale each patient's map by its own body. ``minmax`` is scale-free and treats it like
   the others.
3. Alignment: every other series (CE-T1, T2, ...: ``config.series``) and its label map are
   resampled onto the T1 grid through the affines (:mod:`parotidlib.data.align`); voxels
   outside a series' field of view (an EPI's is smaller than T1's) are 0, which every
   window maps to 0 like the background. With ``labels_from`` one series' label map, so
   aligned, gives every series' ROIs.
4. Lesion slices: axial T1 slices whose tumour area is >= ``min_tumor_area_mm2``; one sample
   per (slice, side). Channels t1, ce_t1, t2: each series' tumour crop on that slice (the
   box of the tumour on *that series'* aligned label map); channel gland: the T1 crop of the
   ipsilateral gland (gland label of the tumour's side plus that side's tumour voxels).
   With ``tumor_side`` "both", every 3-D connected tumour component is given the side of the
   gland it lies next to (its centroid's world x against the midline between the two gland
   centroids: the rule of :mod:`parotidlib.data.laterality`, by which validation has
   already checked that the tumour lies where the manifest says).
5. Free (tumour-free) slices: slices of the contralateral gland of a one-sided tumour whose
   gland area is >= ``min_tumor_area_mm2``; every channel is a gland crop (t1, ce_t1, t2 from
   their own series, gland = T1).
6. Crops (:mod:`parotidlib.data.crop`): ROI box plus ``crop_margin_mm``, square in mm, zeros outside
   the image; with ``mask_background`` every pixel outside the ROI mask (tumour, or gland) is
   zeroed - the paper crops the *segmented* tumour. Crops are put in radiological display
   orientation, resized to ``image_size`` (bilinear) and stored as uint8 (value x 255).

Degenerate input warns (naming patient, series and slice): a series whose label map has no
ROI on a slice where T1 has one (the T1 box and mask are used for it), an ROI touching the
image edge (zero padded), no free slice, and gland labels whose world positions contradict
RAS+ (label 1 right gland at +x). A tumour on another side than the manifest says is not
checked here: it is a validation problem of the patient
(:func:`parotidlib.data.volumes.check_patient_data`), found before this runs.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.affines import apply_affine
from scipy import ndimage

from parotidlib.config import CurationConfig
from parotidlib.constants import (
    FREE_CLASS,
    GLAND_CHANNEL,
    GLAND_LABEL,
    LABEL_LEFT_GLAND,
    LABEL_RIGHT_GLAND,
    LABEL_TUMOR,
    REFERENCE_SERIES,
)
from parotidlib.data.align import AlignmentError, align_labels, check_overlap, resample_box
from parotidlib.data.crop import (
    extract_box,
    inside_mask,
    resize_square,
    square_box,
    to_display,
    to_uint8,
    touches_edge,
)
from parotidlib.data.volumes import PatientVolumes
from parotidlib.study import QUANTITATIVE, ClassScheme

__all__ = ["AlignmentError", "PatientSlices", "intensity_window", "preprocess_patient"]

_OTHER_SIDE = {"left": "right", "right": "left"}
#: Columns of PatientSlices.slices.
SLICE_COLUMNS = ("patient_id", "slice_index", "z_mm", "label", "label_index", "side",
                 "tumor_area_mm2")


@dataclass
class PatientSlices:
    """The samples of one patient.

    Attributes
    ----------
    patient_id : str
    images : ndarray of uint8, shape (N, C, S, S)
        Channels in ``config.channels`` order, S = ``config.image_size``.
    slices : pandas.DataFrame
        One row per sample: patient_id, slice_index (T1 grid k, RAS order), z_mm (world z of
        the slice centre), label (the class of the patient's histology under
        ``config.class_scheme`` on lesion slices, ``free`` on the contralateral gland's),
        label_index (its index in the scheme's classes), side (of the ROI: the tumour's side,
        or the contralateral gland's side for "free"), tumor_area_mm2 (ROI area on T1, mm^2).
    no_free_slices : bool
        True when the patient has a one-sided tumour but gave no free slice.
    """

    patient_id: str
    images: np.ndarray
    slices: pd.DataFrame
    no_free_slices: bool


@dataclass(frozen=True)
class _Sample:
    kind: str  # "lesion" or "free"
    side: str
    k: int


def intensity_window(data: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """Robust intensity window of a series: percentiles of its body (> 0) voxels.

    Parameters
    ----------
    data : ndarray
        The native series.
    low, high : float
        Percentiles in [0, 100], low < high.

    Returns
    -------
    (lo, hi) : tuple of float
        lo < hi unless the body is constant (then the caller warns).
    """
    body = data[data > 0]
    if body.size == 0:
        body = data.ravel()
    lo, hi = np.percentile(body, [low, high])
    return float(lo), float(hi)


def _window(native: np.ndarray, series: str, volumes: PatientVolumes,
            config: CurationConfig) -> tuple[float, float]:
    """The ``percentile`` normalisation's window of a series, in its stored values: the
    body's percentiles, or for a quantitative series its physical window divided by the
    patient's scale (the manifest's scale column, checked > 0 by validation)."""
    if series not in QUANTITATIVE:
        return intensity_window(native, config.percentile_low, config.percentile_high)
    quantity = QUANTITATIVE[series]
    scale = float(volumes.info[quantity.scale_column])
    return quantity.window[0] / scale, quantity.window[1] / scale


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    """Voxel-index centroid of a boolean 3-D mask (None if empty).

    :func:`scipy.ndimage.center_of_mass` of the mask. Its numerator is a float sum of
    integers (index times 0/1), exact below 2**53, so it is bit for bit the integer moment
    divided by the voxel count, as the hand-written version computed it.
    """
    if not mask.any():  # center_of_mass would return nan (0/0) with a RuntimeWarning
        return None
    return np.asarray(ndimage.center_of_mass(mask), dtype=float)


def _centroids_x(labels: np.ndarray, affine: np.ndarray) -> dict[int, float | None]:
    """World x (mm) of the centroid of the gland labels 1 and 2 (None where absent)."""
    out: dict[int, float | None] = {}
    for value in (LABEL_RIGHT_GLAND, LABEL_LEFT_GLAND):
        centre = _centroid(labels == value)
        out[value] = None if centre is None else float(apply_affine(affine, centre)[0])
    return out


def _laterality(centres: dict[int, float | None], affine: np.ndarray, shape: tuple[int, ...],
                pid: str) -> tuple[float, float]:
    """Midline world x and the sign of the patient's right: (x_mid, +1 or -1)."""
    x_right, x_left = centres[LABEL_RIGHT_GLAND], centres[LABEL_LEFT_GLAND]
    if x_right is None or x_left is None:
        centre = (np.asarray(shape[:3]) - 1) / 2.0
        return float(apply_affine(affine, centre)[0]), 1.0  # RAS+: the right is at +x
    if x_right < x_left:
        warnings.warn(f"patient {pid}: the right gland (label 1) lies at smaller world x than "
                      f"the left gland (label 2), but RAS+ puts the patient's right at +x; "
                      f"check the label maps and the affine (sides follow the labels)",
                      stacklevel=3)
    return (x_right + x_left) / 2.0, float(np.sign(x_right - x_left) or 1.0)


def _tumour_by_side(labels: np.ndarray, affine: np.ndarray, tumor_side: str,
                    lat: tuple[float, float]) -> dict[str, np.ndarray]:
    """Split a tumour mask into {side: 3-D mask}; one side unless ``tumor_side`` is both."""
    tumour = labels == LABEL_TUMOR
    if tumor_side != "both":
        return {tumor_side: tumour}
    components, n = ndimage.label(tumour, structure=np.ones((3, 3, 3), bool))
    x_mid, right_sign = lat
    out = {"left": np.zeros_like(tumour), "right": np.zeros_like(tumour)}
    if n == 0:
        return out
    centres = ndimage.center_of_mass(tumour, components, range(1, n + 1))
    for index, centre in enumerate(centres, start=1):
        x = apply_affine(affine, centre)[0]
        side = "right" if (x - x_mid) * right_sign >= 0 else "left"
        out[side] |= components == index
    return out


class _SeriesRois:
    """ROI masks of one series on the T1 grid (tumour per side, glands)."""

    def __init__(self, labels: np.ndarray, affine: np.ndarray, tumor_side: str,
                 lat: tuple[float, float]):
        self.labels = labels
        self.tumour = _tumour_by_side(labels, affine, tumor_side, lat)

    def mask(self, sample: _Sample, k: int, with_gland: bool = False) -> np.ndarray:
        if sample.kind == "free":
            return self.labels[:, :, k] == GLAND_LABEL[sample.side]
        tumour = self.tumour[sample.side][:, :, k]
        if with_gland:
            return tumour | (self.labels[:, :, k] == GLAND_LABEL[sample.side])
        return tumour


def _enumerate_samples(t1_rois: _SeriesRois, tumor_side: str, pixel_area: float,
                       min_area: float, pid: str) -> tuple[list[_Sample], bool]:
    samples = []
    for side in sorted(t1_rois.tumour):
        area = t1_rois.tumour[side].sum(axis=(0, 1)) * pixel_area
        samples += [_Sample("lesion", side, int(k)) for k in np.flatnonzero(
            (area >= min_area) & (area > 0))]
    no_free = False
    if tumor_side != "both":
        other = _OTHER_SIDE[tumor_side]
        area = (t1_rois.labels == GLAND_LABEL[other]).sum(axis=(0, 1)) * pixel_area
        free = np.flatnonzero((area >= min_area) & (area > 0))
        samples += [_Sample("free", other, int(k)) for k in free]
        if free.size == 0:
            no_free = True
            warnings.warn(f"patient {pid}: no slice of the contralateral ({other}) gland with "
                          f"area >= {min_area} mm^2; the patient gives no free slices",
                          stacklevel=3)
    samples.sort(key=lambda s: (s.kind != "lesion", s.k, s.side))
    return samples, no_free


def _scale(crop: np.ndarray, mask: np.ndarray, inside: np.ndarray, window: tuple[float, float]
           | None, mask_background: bool, where: str) -> np.ndarray:
    """Intensities to [0, 1]: the series window, or the crop's own min-max (window None)."""
    if window is None:
        ref = crop[mask] if mask_background else crop[inside]
        window = (float(ref.min()), float(ref.max())) if ref.size else (0.0, 0.0)
    lo, hi = window
    if hi <= lo:
        warnings.warn(f"{where}: constant intensities ({lo:g}); the channel is all zero",
                      stacklevel=4)
        return np.zeros_like(crop, dtype=np.float32)
    return np.clip((crop - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


class _Notes:
    """Degenerate slices of one patient, warned about once per series (not once per slice)."""

    def __init__(self, pid: str):
        self.pid = pid
        self.fallback: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        self.edge: dict[str, set[int]] = defaultdict(set)

    def warn(self) -> None:
        for (series, kind, side), ks in sorted(self.fallback.items()):
            roi = "tumour" if kind == "lesion" else "gland"
            warnings.warn(f"patient {self.pid}, series {series}, slice(s) "
                          f"{', '.join(map(str, sorted(ks)))}: no {roi} ({side}) on this "
                          f"series' aligned label map where T1 has one; used the T1 box and mask",
                          stacklevel=3)
        for channel, ks in sorted(self.edge.items()):
            warnings.warn(f"patient {self.pid}, channel {channel}, slice(s) "
                          f"{', '.join(map(str, sorted(ks)))}: the ROI touches the image edge; "
                          f"the crop is zero padded", stacklevel=3)


def _crop(series_data: np.ndarray | nib.Nifti1Image, mask: np.ndarray, k: int,
          ref_affine: np.ndarray, spacing: tuple[float, float],
          window: tuple[float, float] | None, config: CurationConfig, where: str) -> np.ndarray:
    """The square crop of one series around ``mask`` on T1 slice k, scaled to [0, 1].

    ``series_data`` is the T1 array itself (cropped directly) or another series' image
    (resampled onto the crop box of the T1 grid).
    """
    box = square_box(mask, spacing, config.crop_margin_mm)
    inside = inside_mask(mask.shape, box)
    if isinstance(series_data, np.ndarray):
        crop = extract_box(series_data[:, :, k], box)
    else:
        crop = resample_box(series_data, ref_affine, (box.i0, box.j0, k), (*box.shape, 1),
                            order=1)[:, :, 0]
    roi = extract_box(mask, box)
    crop = _scale(crop, roi, inside, window, config.mask_background, where)
    # zero outside the T1 image (every series alike) and, if asked, outside the ROI
    return np.where(roi if config.mask_background else inside, crop, 0.0)


def _lesion_class(histology: str, scheme: ClassScheme, pid: str) -> str:
    """The class of a patient's lesion slices; "" for a patient without histology (a new
    patient, curated for a trained model: label_index -1)."""
    if not histology:
        return ""
    try:
        return scheme.class_of(histology)
    except ValueError as exc:
        raise ValueError(f"patient {pid}: {exc}; its classes are {list(scheme.classes)}"
                         ) from None


def preprocess_patient(volumes: PatientVolumes, config: CurationConfig | None = None
                       ) -> PatientSlices:
    """Build the four-channel slice samples of one patient (Xia et al. 2021, Figure 3).

    Parameters
    ----------
    volumes : PatientVolumes
        The patient's series and label maps (validated by
        :func:`parotidlib.data.cohort.check_patient_data`).
    config : CurationConfig, optional
        Curation parameters (defaults: 224 px, all four channels, 5 mm margin, masked
        background, 20 mm^2 minimum area, percentile 0.5-99.5 normalisation).

    Returns
    -------
    PatientSlices
        Lesion samples first (by slice, then side), then free samples (by slice).

    Raises
    ------
    AlignmentError
        A series' field of view (or its labelled region) does not overlap the T1 grid.
    ValueError
        The patient's histology has no class in ``config.class_scheme`` (naming the patient
        and the scheme; validation refuses such a patient first).
    """
    if config is None:
        config = CurationConfig()
    pid = volumes.patient_id
    size, channels, study = config.image_size, config.channels, config.study
    scheme = config.class_scheme
    lesion = _lesion_class(volumes.histology, scheme, pid)
    t1_img = nib.as_closest_canonical(volumes.images[REFERENCE_SERIES])
    ref_shape, ref_affine = t1_img.shape, t1_img.affine
    aligned: dict[str, np.ndarray] = {}  # label maps on the T1 grid, by source series

    def labels_on_t1(source: str) -> np.ndarray:
        if source not in aligned:
            aligned[source] = (
                np.asanyarray(nib.as_closest_canonical(volumes.labels[source]).dataobj)
                .astype(np.uint8) if source == REFERENCE_SERIES else
                align_labels(volumes.labels[source], ref_shape, ref_affine, pid, source))
        return aligned[source]

    t1_source = study.labels_of(REFERENCE_SERIES)
    if t1_source != REFERENCE_SERIES:
        check_overlap(volumes.images[t1_source], ref_shape, ref_affine, pid, t1_source)
    t1_lab = labels_on_t1(t1_source)
    spacing = tuple(np.linalg.norm(ref_affine[:3, :2], axis=0))
    pixel_area = float(np.linalg.norm(np.cross(ref_affine[:3, 0], ref_affine[:3, 1])))
    centres = _centroids_x(t1_lab, ref_affine)
    lat = _laterality(centres, ref_affine, ref_shape, pid)
    rois = {REFERENCE_SERIES: _SeriesRois(t1_lab, ref_affine, volumes.tumor_side, lat)}
    samples, no_free = _enumerate_samples(rois[REFERENCE_SERIES], volumes.tumor_side,
                                          pixel_area, config.min_tumor_area_mm2, pid)

    needed = [s for s in study.series if s in channels
              or (s == REFERENCE_SERIES and GLAND_CHANNEL in channels)]
    data: dict[str, np.ndarray | nib.Nifti1Image] = {}
    windows: dict[str, tuple[float, float] | None] = {}
    for series in needed:
        # percentiles on the stored data type (int16 partitions twice as fast as float32)
        native = np.asanyarray(volumes.images[series].dataobj)
        windows[series] = (_window(native, series, volumes, config)
                           if config.normalisation == "percentile" else None)
        if series == REFERENCE_SERIES:
            data[series] = np.asarray(t1_img.dataobj, dtype=np.float32)
        else:
            data[series] = nib.Nifti1Image(native.astype(np.float32, copy=False),
                                           volumes.images[series].affine)
            check_overlap(volumes.images[series], ref_shape, ref_affine, pid, series)
            source = study.labels_of(series)
            rois[series] = (rois[REFERENCE_SERIES] if source == t1_source else
                            _SeriesRois(labels_on_t1(source), ref_affine, volumes.tumor_side,
                                        lat))

    images = np.zeros((len(samples), len(channels), size, size), dtype=np.uint8)
    notes = _Notes(pid)
    rows = []
    for n, sample in enumerate(samples):
        k = sample.k
        t1_mask = rois[REFERENCE_SERIES].mask(sample, k)
        for c, channel in enumerate(channels):
            series = REFERENCE_SERIES if channel == GLAND_CHANNEL else channel
            if channel == GLAND_CHANNEL:
                mask = rois[REFERENCE_SERIES].mask(sample, k, with_gland=True)
            else:
                mask = rois[series].mask(sample, k)
                if not mask.any():
                    notes.fallback[(series, sample.kind, sample.side)].add(k)
                    mask = t1_mask
            if touches_edge(mask):
                notes.edge[channel].add(k)
            crop = _crop(data[series], mask, k, ref_affine, spacing, windows[series], config,
                         f"patient {pid}, series {series}, slice {k}")
            images[n, c] = to_uint8(resize_square(to_display(crop), size))
        label = lesion if sample.kind == "lesion" else FREE_CLASS
        z_mm = apply_affine(ref_affine, [(ref_shape[0] - 1) / 2, (ref_shape[1] - 1) / 2, k])[2]
        rows.append({"patient_id": pid, "slice_index": k, "z_mm": round(float(z_mm), 4),
                     "label": label,
                     "label_index": scheme.classes.index(label) if label else -1,
                     "side": sample.side,
                     "tumor_area_mm2": round(float(t1_mask.sum()) * pixel_area, 4)})
    notes.warn()
    slices = pd.DataFrame(rows, columns=list(SLICE_COLUMNS))
    return PatientSlices(pid, images, slices, no_free)
