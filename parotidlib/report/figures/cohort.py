"""Figure 2 of Xia et al. 2021: one patient's slice of every series with the ROI contours.

The paper's Figure 2 shows "all parotid gland and tumor ROIs from a single patient's
lesion": (A) T1-weighted, (B) CE-T1-weighted, (C) T2-weighted, the parotid gland in blue
and the tumour in green. Here one panel per series of the study (:class:`parotidlib.study.Study`;
the paper's three by default): the slice is the one with the largest tumour area on T1's
label map (or the one nearest a given world z); every other series shows its slice nearest in
world z, since each series has its own grid. With ``labels_from`` every series' contours come
from that series' label map, carried over through the affines (nearest voxel). Images are read
with nibabel, put in RAS order (:func:`nibabel.as_closest_canonical`) and shown in
radiological convention (patient's right on the viewer's left, anterior up).
"""

from __future__ import annotations

import os
import string
import warnings
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from nibabel.affines import apply_affine

from parotidlib.constants import LABEL_TUMOR, REFERENCE_SERIES
from parotidlib.data.manifest import read_manifest_table
from parotidlib.study import DEFAULT_STUDY, Study

__all__ = ["plot_patient_series", "series_title"]

_TITLES = {"t1": "T1-weighted", "ce_t1": "CE-T1-weighted", "t2": "T2-weighted",
           "adc": "ADC map", "dwi": "DW"}


def series_title(series: str) -> str:
    """A panel's name for a series: ``t1`` -> "T1-weighted", ``adc`` -> "ADC map", another
    name in capitals with hyphens (``flair`` -> "FLAIR", ``ce_t2`` -> "CE-T2")."""
    return _TITLES.get(series) or series.upper().replace("_", "-")


def _row(source: str | os.PathLike | Mapping | pd.Series, patient_id: str | None,
         base_dir: str | os.PathLike | None) -> tuple[dict, Path]:
    """The manifest row of the patient and the folder its relative paths start from."""
    if isinstance(source, (str, os.PathLike)):
        manifest = Path(source)
        if not manifest.is_file():
            raise FileNotFoundError(f"manifest {str(manifest)!r} does not exist")
        if patient_id is None:
            raise ValueError("patient_id is required when source is a manifest path")
        table = read_manifest_table(manifest)
        match = table[table["patient_id"] == str(patient_id)]
        if match.empty:
            ids = table["patient_id"].tolist()
            raise ValueError(f"patient_id {patient_id!r} is not in {str(manifest)!r}; it has "
                             f"{len(ids)} patients, e.g. {ids[:5]}")
        return match.iloc[0].to_dict(), manifest.parent
    if isinstance(source, (Mapping, pd.Series)):
        row = dict(source)
        return row, Path(base_dir) if base_dir is not None else Path.cwd()
    raise ValueError(f"source must be a manifest path or a manifest row (mapping), got "
                     f"{type(source).__name__}")


def _load(row: dict, column: str, root: Path) -> nib.Nifti1Image:
    if column not in row or not isinstance(row[column], str) or not row[column]:
        raise ValueError(f"patient {row.get('patient_id')!r}: manifest column {column!r} is "
                         f"missing or empty")
    path = Path(row[column])
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise FileNotFoundError(f"patient {row.get('patient_id')!r}, column {column!r}: "
                                f"file {str(path)!r} does not exist")
    return nib.as_closest_canonical(nib.load(path))


def _slice_z(img: nib.Nifti1Image) -> np.ndarray:
    """World z (mm) of every axial slice centre of a RAS-ordered image."""
    ni, nj, nk = img.shape[:3]
    ijk = np.column_stack([np.full(nk, (ni - 1) / 2), np.full(nk, (nj - 1) / 2),
                           np.arange(nk)])
    return apply_affine(img.affine, ijk)[:, 2]


def _labels_on(img: nib.Nifti1Image, labels: nib.Nifti1Image, k: int) -> np.ndarray:
    """Slice ``k`` of ``labels`` on ``img``'s grid: the label map's own slice when it shares
    the grid, else its nearest voxel to each pixel's centre (0 outside the label map)."""
    if labels.shape[:3] == img.shape[:3] and np.allclose(labels.affine, img.affine):
        return np.asarray(labels.dataobj[:, :, k])
    ni, nj = img.shape[:2]
    ii, jj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    ijk = np.column_stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)])
    world = apply_affine(img.affine, ijk)
    src = np.rint(apply_affine(np.linalg.inv(labels.affine), world)).astype(np.int64)
    inside = np.all((src >= 0) & (src < np.asarray(labels.shape[:3])), axis=1)
    data = np.asarray(labels.dataobj)
    out = np.zeros(ii.size, dtype=data.dtype)
    out[inside] = data[src[inside, 0], src[inside, 1], src[inside, 2]]
    return out.reshape(ni, nj)


def _display(plane: np.ndarray) -> np.ndarray:
    """(i, j) plane of a RAS-ordered image -> rows anterior to posterior, columns R to L."""
    return plane.T[::-1, ::-1]


def plot_patient_series(source: str | os.PathLike | Mapping | pd.Series,
                        patient_id: str | None = None, *, slice_z_mm: float | None = None,
                        base_dir: str | os.PathLike | None = None,
                        figsize: tuple[float, float] | None = None,
                        study: Study = DEFAULT_STUDY) -> Figure:
    """Draw one patient's slice of every series with gland and tumour contours (Figure 2).

    Parameters
    ----------
    source : path or mapping
        A cohort's ``manifest.csv`` (then give ``patient_id``), or one manifest row (a dict or
        pandas Series with the study's series columns and label-map columns).
    patient_id : str, optional
        The patient, when ``source`` is a manifest path.
    slice_z_mm : float, optional
        World z (mm) of the slice to show; default: the slice of T1's label map (or
        ``labels_from``'s) with the largest tumour area. Each series shows its slice nearest
        in world z.
    base_dir : path, optional
        Folder that relative paths of a manifest *row* start from (default: the current
        folder); a manifest path uses its own folder.
    figsize : (float, float), optional
        Inches; default 11/3 wide per series (the paper's three: 11 x 4).
    study : Study
        The series drawn, in order, and where their label maps come from (the paper's T1,
        CE-T1 and T2 by default; a run's: its curation's ``series`` and ``labels_from``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per series titled A, B, C, ...; the parotid glands (labels 1, 2 with the
        tumour inside) contoured in blue, the tumour (label 3) in green.

    Raises
    ------
    ValueError
        Unknown patient, or a manifest column missing.
    FileNotFoundError
        The manifest or a NIfTI file does not exist.

    Examples
    --------
    >>> fig = plot_patient_series("data/synthetic/manifest.csv", "SYN0001")  # doctest: +SKIP
    >>> fig.savefig("figures/figure2.png", dpi=150)  # doctest: +SKIP
    """
    row, root = _row(source, patient_id, base_dir)
    pid = row.get("patient_id", patient_id)
    images = {s: _load(row, s, root) for s in study.series}
    labels = {s: _load(row, f"{s}_labels", root) for s in study.label_series}
    reference = labels[study.labels_of(REFERENCE_SERIES)]
    ref_labels = np.asarray(reference.dataobj)
    if slice_z_mm is None:
        area = (ref_labels == LABEL_TUMOR).sum(axis=(0, 1))
        if not area.any():
            warnings.warn(f"patient {pid!r}: no tumour on the T1 label map; showing the slice "
                          f"with the largest gland area", stacklevel=2)
            area = (ref_labels > 0).sum(axis=(0, 1))
        slice_z_mm = float(_slice_z(reference)[int(np.argmax(area))])

    n = len(study.series)
    fig = Figure(figsize=figsize or (11.0 * n / 3, 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, panel, series in zip(axes, string.ascii_uppercase, study.series, strict=False):
        img, lab = images[series], labels[study.labels_of(series)]
        z = _slice_z(img)
        k = int(np.argmin(np.abs(z - slice_z_mm)))
        plane = _display(np.asarray(img.dataobj[:, :, k], dtype=np.float32))
        lab_plane = _display(_labels_on(img, lab, k))
        body = plane[plane > 0]
        lo, hi = np.percentile(body, [0.5, 99.5]) if body.size else (0.0, 1.0)
        pixel = np.linalg.norm(img.affine[:3, :2], axis=0)
        ax.imshow(plane, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6),
                  aspect=float(pixel[1] / pixel[0]), interpolation="nearest")
        if (lab_plane > 0).any():
            ax.contour((lab_plane > 0).astype(float), levels=[0.5], colors="tab:blue",
                       linewidths=1.0)
        if (lab_plane == LABEL_TUMOR).any():
            ax.contour((lab_plane == LABEL_TUMOR).astype(float), levels=[0.5],
                       colors="tab:green", linewidths=1.0)
        ax.set_title(f"({panel}) {series_title(series)}, z = {z[k]:.1f} mm", fontsize=10,
                     loc="left")
        ax.set_axis_off()
    fig.suptitle(f"Patient {pid}: parotid gland (blue) and tumour (green) ROIs", fontsize=11)
    return fig
