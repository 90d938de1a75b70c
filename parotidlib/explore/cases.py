"""One cohort as a radiologist looks at it: a patient table and each patient's series, loaded on
demand, shown at one physical position.

:class:`CohortData` reads a cohort manifest (the built-in synthetic cohort, a NIfTI cohort, an
``import-dicom`` output) without loading any image: the patient table
(:meth:`CohortData.table`) comes from the manifest, with the tumour volume read from a label
map only when asked (:meth:`CohortData.tumour_volume_ml`, cached), and the import report's
refused or skipped patients listed beside it (:meth:`CohortData.not_imported`). A patient's
volumes are read by :meth:`CohortData.case` and kept for the last few patients only
(:data:`CACHE_PATIENTS`).

:func:`render_case` draws T1, CE-T1 and T2 side by side, each on its own grid, at the same
world position along the body axis (RAS+ z, through each series' affine; DICOM patient z is
the same axis), in the radiological convention (the patient's right on the image's left,
anterior up), with the right gland, left gland and tumour contours in fixed colours
(:data:`LABEL_COLOURS`), dashed where the label map was carried over from another series
rather than drawn on it. Nothing here writes into the cohort.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from parotidlib.constants import (
    LABEL_LEFT_GLAND,
    LABEL_RIGHT_GLAND,
    LABEL_TUMOR,
    SERIES,
)
from parotidlib.data.manifest import read_manifest_table

#: How many patients' volumes are kept in memory (the one shown and the last few).
CACHE_PATIENTS = 4
#: Contour colours, fixed across patients and series (colour-blind safe, Okabe-Ito).
LABEL_COLOURS: dict[int, str] = {LABEL_RIGHT_GLAND: "#0072B2", LABEL_LEFT_GLAND: "#009E73",
                                 LABEL_TUMOR: "#D55E00"}
LABEL_NAMES: dict[int, str] = {LABEL_RIGHT_GLAND: "right gland", LABEL_LEFT_GLAND: "left gland",
                               LABEL_TUMOR: "tumour"}
SERIES_TITLES = {"t1": "T1", "ce_t1": "CE-T1", "t2": "T2"}
#: Manifest columns shown in the patient table, when the manifest has them.
TABLE_COLUMNS = ("patient_id", "histology", "tumor_side", "scanner", "age", "sex")


@dataclass
class SeriesView:
    """One series of one patient on its own grid, reoriented to the closest RAS+ axes.

    Attributes
    ----------
    name : str
        ``t1``, ``ce_t1`` or ``t2``.
    image : numpy.ndarray
        float32 volume in the closest RAS+ axes (:func:`nibabel.as_closest_canonical`): index
        i grows towards the patient's right, j anterior, k superior.
    labels : numpy.ndarray or None
        uint8 label map on the same grid, None when the manifest names none.
    affine : numpy.ndarray
        The canonical voxel-to-RAS+ affine.
    labels_source : str
        "drawn", "carried over from t1" (import-dicom), or "" when not recorded.
    info : dict
        What is shown beside the image: TR/TE, scanner, pixel size and slice thickness.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray | None
    affine: np.ndarray
    labels_source: str = ""
    info: dict[str, str] = field(default_factory=dict)
    _window: tuple[float, float] | None = field(default=None, repr=False)

    @property
    def window(self) -> tuple[float, float]:
        """The default display window (:func:`auto_window`, computed once)."""
        if self._window is None:
            self._window = auto_window(self.image)
        return self._window

    @property
    def carried_over(self) -> bool:
        """Whether the label map was carried over from another series (not drawn on it)."""
        return self.labels_source.startswith("carried")

    def z_range_mm(self) -> tuple[float, float]:
        """World z (mm) of the first and last slice centres."""
        z = [float((self.affine @ [0, 0, k, 1])[2]) for k in (0, self.image.shape[2] - 1)]
        return min(z), max(z)

    def slice_at(self, z_mm: float) -> int | None:
        """The slice whose centre (at the grid's in-plane centre) lies nearest to world z
        ``z_mm``; None when ``z_mm`` lies more than half a slice outside the series."""
        ni, nj, nk = self.image.shape[:3]
        centres = self.affine @ np.stack([np.full(nk, (ni - 1) / 2), np.full(nk, (nj - 1) / 2),
                                          np.arange(nk), np.ones(nk)])
        distance = np.abs(centres[2] - z_mm)
        k = int(np.argmin(distance))
        spacing = abs(float(self.affine[2, 2])) or 1.0
        return k if distance[k] <= 0.5 * spacing + 1e-6 else None

    def plane(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The image and label slice ``k`` as rows x columns in the radiological convention
        (patient's right on the image's left, anterior up)."""
        image = self.image[:, :, k].T[::-1, ::-1]
        labels = None if self.labels is None else self.labels[:, :, k].T[::-1, ::-1]
        return image, labels


@dataclass
class Case:
    """One patient's series, loaded."""

    patient_id: str
    series: dict[str, SeriesView]
    row: dict[str, Any]

    def z_range_mm(self) -> tuple[float, float]:
        """The world z range (mm) that any of the series covers."""
        ranges = [s.z_range_mm() for s in self.series.values()]
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def tumour_z_mm(self) -> float:
        """World z of the tumour's centre (of the first series with a tumour label), or the
        middle of the range when no series has one."""
        for s in self.series.values():
            if s.labels is not None and (s.labels == LABEL_TUMOR).any():
                k = np.nonzero((s.labels == LABEL_TUMOR).any(axis=(0, 1)))[0]
                ni, nj = s.image.shape[:2]
                return float((s.affine @ [(ni - 1) / 2, (nj - 1) / 2, k.mean(), 1])[2])
        low, high = self.z_range_mm()
        return 0.5 * (low + high)


def _fmt(value: Any, unit: str = "") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "?"
    return "?" if not np.isfinite(number) else f"{number:g}{unit}"


def _series_info(name: str, row: Mapping[str, Any], affine: np.ndarray) -> dict[str, str]:
    """TR/TE, scanner, pixel size and slice thickness: manifest columns where the import or the
    synthetic cohort recorded them, the affine otherwise. (Descriptions are free text and the
    import keeps none; the series' role is its name.)"""
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    prefix = "" if name == "t1" else f"{name}_"
    pixel = row.get(f"{prefix}pixel_size_mm") if name != "ce_t1" else None
    thickness = row.get(f"{prefix}slice_thickness_mm") if name != "ce_t1" else None
    return {"TR/TE": f"{_fmt(row.get(f'{name}_tr_ms'))}/{_fmt(row.get(f'{name}_te_ms'))} ms",
            "scanner": str(row.get("scanner", "") or "?"),
            "pixel": (_fmt(pixel, " mm") if pixel not in (None, "") else
                      f"{zooms[0]:.2f} x {zooms[1]:.2f} mm"),
            "slice": (_fmt(thickness, " mm") if thickness not in (None, "") else
                      f"{zooms[2]:.2f} mm")}


class CohortData:
    """A cohort manifest, read lazily (see the module docstring).

    Parameters
    ----------
    manifest : path
        The cohort's ``manifest.csv``.

    Raises
    ------
    FileNotFoundError
        The manifest does not exist (the message names it).
    """

    def __init__(self, manifest: str | Path) -> None:
        self.manifest = Path(manifest).resolve()
        if not self.manifest.is_file():
            raise FileNotFoundError(f"cohort manifest not found: {self.manifest}")
        self.root = self.manifest.parent
        self.rows = read_manifest_table(self.manifest)
        self.rows["patient_id"] = self.rows["patient_id"].astype(str)
        self._cases: OrderedDict[str, Case] = OrderedDict()
        self._volumes: dict[str, float | None] = {}

    @property
    def patient_ids(self) -> list[str]:
        """Patient ids in manifest order."""
        return list(self.rows["patient_id"])

    def row(self, patient_id: str) -> dict[str, Any]:
        """The manifest row of one patient (KeyError naming it)."""
        match = self.rows[self.rows["patient_id"] == str(patient_id)]
        if match.empty:
            raise KeyError(f"patient {patient_id!r} is not in {self.manifest}")
        return match.iloc[0].to_dict()

    def _path(self, value: Any) -> Path | None:
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value):
            return None
        path = Path(str(value))
        return path if path.is_absolute() else self.root / path

    def labels_sources(self, patient_id: str) -> dict[str, str]:
        """Series -> "drawn" / "carried over from ..." where the manifest records it."""
        row = self.row(patient_id)
        return {s: str(row.get(f"{s}_labels_source", "") or "") for s in SERIES}

    def tumour_volume_ml(self, patient_id: str) -> float | None:
        """Tumour volume (ml) from the first label map with a tumour label (read once)."""
        if patient_id not in self._volumes:
            volume = None
            row = self.row(patient_id)
            for series in SERIES:
                path = self._path(row.get(f"{series}_labels"))
                if path is None or not path.is_file():
                    continue
                image = nib.load(str(path))
                count = int(np.count_nonzero(np.asarray(image.dataobj) == LABEL_TUMOR))
                if count:
                    voxel = float(abs(np.linalg.det(image.affine[:3, :3])))
                    volume = round(count * voxel / 1000.0, 3)
                    break
            self._volumes[patient_id] = volume
        return self._volumes[patient_id]

    def table(self, volumes: bool = False) -> pd.DataFrame:
        """The patient table: manifest columns, labels drawn or carried over, and the tumour
        volume (ml) where ``volumes`` is true or it has been read already."""
        columns = [c for c in TABLE_COLUMNS if c in self.rows.columns]
        table = self.rows[columns].copy()
        table["labels"] = [
            ", ".join(sorted({v for v in self.labels_sources(p).values() if v})) or "drawn"
            for p in table["patient_id"]]
        table["tumour_ml"] = [self.tumour_volume_ml(p) if volumes else self._volumes.get(p)
                              for p in table["patient_id"]]
        return table.reset_index(drop=True)

    def not_imported(self) -> pd.DataFrame:
        """Patients an ``import-dicom`` refused and files it skipped, from the cohort's
        ``import_report.csv`` (an empty table for other cohorts)."""
        report = self.root / "import_report.csv"
        if not report.is_file():
            return pd.DataFrame(columns=["patient_id", "status", "problems"])
        table = pd.read_csv(report, dtype=str, keep_default_na=False)
        keep = ~table["status"].str.startswith(("imported", "reimported"))
        return table.loc[keep, ["patient_id", "status", "problems"]].reset_index(drop=True)

    def case(self, patient_id: str) -> Case:
        """The patient's three series and label maps, read now or from the cache of the last
        :data:`CACHE_PATIENTS` patients.

        Raises
        ------
        FileNotFoundError
            A file the manifest names is missing (the message names the patient, column and
            file, and that ``import-dicom`` or the synthetic generator writes it).
        """
        patient_id = str(patient_id)
        if patient_id in self._cases:
            self._cases.move_to_end(patient_id)
            return self._cases[patient_id]
        row = self.row(patient_id)
        sources = self.labels_sources(patient_id)
        views = {}
        for series in SERIES:
            path = self._path(row.get(series))
            if path is None:
                continue
            if not path.is_file():
                raise FileNotFoundError(
                    f"patient {patient_id}, column {series}: file {path} not found (the "
                    f"manifest {self.manifest} names it; import-dicom or the synthetic "
                    f"generator writes it)")
            image = nib.as_closest_canonical(nib.load(str(path)))
            labels = None
            label_path = self._path(row.get(f"{series}_labels"))
            if label_path is not None and label_path.is_file():
                label_image = nib.as_closest_canonical(nib.load(str(label_path)))
                labels = np.asarray(label_image.dataobj).astype(np.uint8)
            views[series] = SeriesView(series, np.asarray(image.dataobj, dtype=np.float32),
                                       labels, image.affine, sources.get(series, ""),
                                       _series_info(series, row, image.affine))
        case = Case(patient_id, views, row)
        self._cases[patient_id] = case
        while len(self._cases) > CACHE_PATIENTS:
            self._cases.popitem(last=False)
        return case


def auto_window(image: np.ndarray) -> tuple[float, float]:
    """Window (level - width/2, level + width/2) from the 1st and 99.5th percentile of the
    nonzero voxels: a starting point the viewer's window/level sliders then move."""
    values = image[image > 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.5])
    return float(low), float(max(high, low + 1e-6))


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def boundary(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it: the contour as drawn."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def panel_rgb(view: SeriesView, k: int, window: tuple[float, float] | None = None,
              show_labels: bool = True) -> np.ndarray:
    """Slice ``k`` of one series as an RGB image (rows x columns x 3, uint8), radiological
    convention, grey values windowed to ``window`` (default :func:`auto_window`), and the
    contour pixels of each label in its :data:`LABEL_COLOURS` colour, every other pair of
    pixels left out (dashed) where the label map was carried over."""
    image, labels = view.plane(k)
    low, high = window or view.window
    grey = np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    if show_labels and labels is not None:
        rows, cols = np.indices(labels.shape)
        dashes = ((rows + cols) % 4 < 2) if view.carried_over else np.ones(labels.shape, bool)
        for value, colour in LABEL_COLOURS.items():
            edge = boundary(labels == value) & dashes
            rgb[edge] = _hex_rgb(colour)
    return rgb


def png(rgb: np.ndarray, size: int = 256) -> bytes:
    """PNG of an RGB array, scaled by an integer factor (nearest neighbour) towards ``size``
    pixels on its longer side, so that voxels stay sharp."""
    from PIL import Image

    factor = max(1, int(size // max(rgb.shape[:2])))
    picture = Image.fromarray(rgb).resize((rgb.shape[1] * factor, rgb.shape[0] * factor),
                                          Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def render_case(case: Case, z_mm: float, windows: Mapping[str, tuple[float, float]] | None = None,
                show_labels: bool = True, series: Sequence[str] = SERIES
                ) -> dict[str, tuple[int | None, np.ndarray | None]]:
    """Each series at world z ``z_mm`` (see the module docstring): series -> (slice index or
    None when ``z_mm`` lies outside it, RGB panel from :func:`panel_rgb` or None).

    Parameters
    ----------
    case : Case
    z_mm : float
        World position along the body axis (RAS+ z, mm).
    windows : mapping, optional
        Series -> (low, high) display window; default :func:`auto_window` per series.
    show_labels : bool
        Draw the contours of the label maps.
    series : sequence of str
        Which series, in order.
    """
    out: dict[str, tuple[int | None, np.ndarray | None]] = {}
    for name in series:
        view = case.series.get(name)
        if view is None:
            continue
        k = view.slice_at(z_mm)
        out[name] = (k, None if k is None else panel_rgb(view, k, (windows or {}).get(name),
                                                          show_labels))
    return out
