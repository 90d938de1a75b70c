"""One cohort as a radiologist looks at it: a patient table and each patient's series, loaded on
demand, shown at one physical position.

:class:`CohortData` reads a cohort manifest (the built-in synthetic cohort, a NIfTI cohort, an
``import-dicom`` output) as the study defines it (:class:`parotidlib.study.Study`: the
``series`` and ``labels_from`` params; :class:`parotidlib.study.ClassScheme`: the ``classes``
param) without loading any image: the patient table (:meth:`CohortData.table`) comes from
the manifest, each histology with its class in the scheme (or marked excluded, or without a
class), with the tumour volume read from a label map only when asked
(:meth:`CohortData.tumour_volume_ml`, cached), and the import report's refused or skipped
patients listed beside it (:meth:`CohortData.not_imported`). A patient's volumes are read by
:meth:`CohortData.case` and kept for the last few patients only (:data:`CACHE_PATIENTS`).

:func:`render_case` draws the study's series (the paper's T1, CE-T1 and T2 by default) side by
side, each on its own grid, at the same world position along the body axis (RAS+ z, through
each series' affine; DICOM patient z is the same axis), in the radiological convention (the
patient's right on the image's left, anterior up), with the right gland, left gland and
tumour contours in fixed colours (:data:`LABEL_COLOURS`), dashed where the label map was
carried over from another series rather than drawn on it (``import-dicom``'s record, or
``labels_from``: that series' label map carried onto each grid through the affines, nearest
voxel). A quantitative series (:data:`parotidlib.study.QUANTITATIVE`: the ADC) is windowed in
physical units (0 to 3.0 x 10^-3 mm²/s through its ``adc_scale_mm2_s``) and captioned with
them. Nothing here writes into the cohort.
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
    REFERENCE_SERIES,
)
from parotidlib.data.manifest import read_manifest_table
from parotidlib.study import (
    DEFAULT_STUDY,
    PAPER_CLASSES,
    QUANTITATIVE,
    ClassScheme,
    Quantity,
    Study,
)

#: How many patients' volumes are kept in memory (the one shown and the last few).
CACHE_PATIENTS = 4
#: Contour colours, fixed across patients and series (colour-blind safe, Okabe-Ito).
LABEL_COLOURS: dict[int, str] = {LABEL_RIGHT_GLAND: "#0072B2", LABEL_LEFT_GLAND: "#009E73",
                                 LABEL_TUMOR: "#D55E00"}
LABEL_NAMES: dict[int, str] = {LABEL_RIGHT_GLAND: "right gland", LABEL_LEFT_GLAND: "left gland",
                               LABEL_TUMOR: "tumour"}
#: Manifest columns shown in the patient table, when the manifest has them.
TABLE_COLUMNS = ("patient_id", "histology", "tumor_side", "scanner", "age", "sex")
#: The class column's word for a histology the class scheme excludes (its patients are left
#: out of the study at curation, and counted).
EXCLUDED = "excluded"
#: The class column's words for a histology the scheme neither maps nor excludes (curation
#: refuses its patients, naming the scheme).
NO_CLASS = "no class in the scheme"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def series_title(name: str) -> str:
    """A panel's title for a series: its name in capitals, hyphenated (``t1`` -> "T1",
    ``ce_t1`` -> "CE-T1", ``adc`` -> "ADC")."""
    return name.upper().replace("_", "-")


def class_label(histology: Any, scheme: ClassScheme = PAPER_CLASSES) -> str:
    """What the patient table says of a histology under ``scheme``: its class, :data:`EXCLUDED`,
    :data:`NO_CLASS`, or "" for an empty cell."""
    if not isinstance(histology, str) or not histology:
        return ""
    if histology in scheme.histologies:
        return scheme.class_of(histology)
    return EXCLUDED if histology in scheme.exclude else NO_CLASS


def quantity_caption(name: str, quantity: Quantity, window: tuple[float, float]) -> str:
    """The caption of a quantitative series' grey scale, in place of a colour bar: the
    physical values at black and white, in a power of ten that is a multiple of three
    (``"ADC ×10⁻³ mm²/s: black 0.00, white 3.00"``)."""
    top = max(abs(window[0]), abs(window[1]), abs(quantity.window[1])) or 1.0
    exponent = 3 * int(np.floor(np.log10(top) / 3))
    factor = 10.0 ** exponent
    power = f" ×10{str(exponent).translate(_SUPERSCRIPT)}" if exponent else ""
    return (f"{series_title(name)}{power} {quantity.unit}: black {window[0] / factor:.2f}, "
            f"white {window[1] / factor:.2f}")


@dataclass
class SeriesView:
    """One series of one patient on its own grid, reoriented to the closest RAS+ axes.

    Attributes
    ----------
    name : str
        The series (a manifest column: ``t1``, ``ce_t1``, ``t2``, ``adc``, ...).
    image : numpy.ndarray
        float32 volume in the closest RAS+ axes (:func:`nibabel.as_closest_canonical`): index
        i grows towards the patient's right, j anterior, k superior.
    labels : numpy.ndarray or None
        uint8 label map on the same grid, None when the manifest names none.
    affine : numpy.ndarray
        The canonical voxel-to-RAS+ affine.
    labels_source : str
        "drawn", "carried over from t1" (import-dicom's record or ``labels_from``), or ""
        when not recorded.
    info : dict
        What is shown beside the image: the protocol facts the manifest has (TR/TE, flip
        angle, b-value), scanner, pixel size and slice thickness.
    quantity : Quantity or None
        How a quantitative series' stored values are physical (:data:`QUANTITATIVE`).
    scale : float or None
        The physical value of one stored unit (the manifest's scale column), None when
        unknown.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray | None
    affine: np.ndarray
    labels_source: str = ""
    info: dict[str, str] = field(default_factory=dict)
    quantity: Quantity | None = None
    scale: float | None = None
    _window: tuple[float, float] | None = field(default=None, repr=False)

    @property
    def physical(self) -> bool:
        """Whether the series is shown in physical units (quantitative, with a scale)."""
        return self.quantity is not None and self.scale is not None

    @property
    def window(self) -> tuple[float, float]:
        """The default display window in stored values: a quantitative series' physical
        window (:attr:`Quantity.window`) through its scale, else :func:`auto_window`
        (computed once)."""
        if self._window is None:
            self._window = (
                (self.quantity.window[0] / self.scale, self.quantity.window[1] / self.scale)
                if self.physical else auto_window(self.image))
        return self._window

    def caption(self, window: tuple[float, float]) -> str:
        """The grey scale of ``window`` (stored values) in physical units
        (:func:`quantity_caption`), "" for a series without them."""
        if not self.physical:
            return ""
        return quantity_caption(self.name, self.quantity,
                                (window[0] * self.scale, window[1] * self.scale))

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


def _given(row: Mapping[str, Any], column: str) -> bool:
    """Whether the manifest row has a number in ``column``."""
    return _fmt(row.get(column)) != "?"


def _series_info(name: str, row: Mapping[str, Any], affine: np.ndarray) -> dict[str, str]:
    """The protocol facts the manifest records for the series (``<series>_tr_ms`` and
    ``_te_ms``, ``_flip_deg``, ``_b_value_s_mm2``, where the import or the synthetic cohort
    wrote them; omitted otherwise), the scanner, and the pixel size and slice thickness
    (manifest columns, T1's unprefixed, else the affine). Descriptions are free text and the
    import keeps none; the series' role is its name."""
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    info = {}
    if _given(row, f"{name}_tr_ms") or _given(row, f"{name}_te_ms"):
        info["TR/TE"] = f"{_fmt(row.get(f'{name}_tr_ms'))}/{_fmt(row.get(f'{name}_te_ms'))} ms"
    if _given(row, f"{name}_flip_deg"):
        info["flip"] = _fmt(row.get(f"{name}_flip_deg"), "°")
    if _given(row, f"{name}_b_value_s_mm2"):
        info["b"] = _fmt(row.get(f"{name}_b_value_s_mm2"), " s/mm²")
    prefix = "" if name == REFERENCE_SERIES else f"{name}_"
    pixel, thickness = f"{prefix}pixel_size_mm", f"{prefix}slice_thickness_mm"
    info["scanner"] = str(row.get("scanner", "") or "?")
    info["pixel"] = (_fmt(row.get(pixel), " mm") if _given(row, pixel) else
                     f"{zooms[0]:.2f} x {zooms[1]:.2f} mm")
    info["slice"] = (_fmt(row.get(thickness), " mm") if _given(row, thickness) else
                     f"{zooms[2]:.2f} mm")
    return info


def _scale(name: str, row: Mapping[str, Any]) -> float | None:
    """The physical value of one stored unit of a quantitative series (its manifest scale
    column), None when the series is not quantitative or the row gives no positive number."""
    quantity = QUANTITATIVE.get(name)
    if quantity is None or not _given(row, quantity.scale_column):
        return None
    value = float(row[quantity.scale_column])
    return value if value > 0 else None


class CohortData:
    """A cohort manifest, read lazily (see the module docstring).

    Parameters
    ----------
    manifest : path
        The cohort's ``manifest.csv``.
    study : Study
        The cohort's series and the source of their label maps (default the paper's).
    scheme : ClassScheme
        The class scheme the table's class column follows (default the paper's).

    Raises
    ------
    FileNotFoundError
        The manifest does not exist (the message names it).
    """

    def __init__(self, manifest: str | Path, study: Study = DEFAULT_STUDY,
                 scheme: ClassScheme = PAPER_CLASSES) -> None:
        self.manifest = Path(manifest).resolve()
        if not self.manifest.is_file():
            raise FileNotFoundError(f"cohort manifest not found: {self.manifest}")
        self.study, self.scheme = study, scheme
        self.root = self.manifest.parent
        self.rows = read_manifest_table(self.manifest)
        self.rows["patient_id"] = self.rows["patient_id"].astype(str)
        self._cases: OrderedDict[str, Case] = OrderedDict()
        self._volumes: dict[str, float | None] = {}

    @property
    def series(self) -> tuple[str, ...]:
        """The study's series, in order."""
        return self.study.series

    def missing_columns(self) -> list[str]:
        """The study's file and scale columns the manifest lacks (named by the explorer)."""
        return [c for c in (*self.study.file_columns, *self.study.scale_columns)
                if c not in self.rows.columns]

    def histologies(self) -> list[str]:
        """Every histology of the cohort: the scheme's mapped ones in its order, then the
        others (excluded, or without a class) alphabetically."""
        present = set(self.rows["histology"].dropna().astype(str)) - {""} \
            if "histology" in self.rows else set()
        mapped = [h for h in self.scheme.histologies if h in present]
        return [*mapped, *sorted(present - set(mapped))]

    def shows_classes(self) -> bool:
        """Whether the table needs a class column: some histology of the cohort is not its
        own class (another scheme than the paper's, or a histology it leaves out)."""
        return any(class_label(h, self.scheme) != h for h in self.histologies())

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
        """Series -> "drawn" / "carried over from ..." where the manifest records it; with
        ``labels_from``, every other series' labels are carried over from that series."""
        row = self.row(patient_id)
        source = self.study.labels_from
        return {s: (f"carried over from {source}" if source and s != source else
                    str(row.get(f"{s}_labels_source", "") or "")) for s in self.series}

    def _file(self, row: Mapping[str, Any], column: str) -> Path | None:
        """The file a row names in ``column``; None when it names none.

        Raises
        ------
        FileNotFoundError
            The file does not exist (the message names the patient, column and file, and
            that ``import-dicom`` or the synthetic generator writes it).
        """
        path = self._path(row.get(column))
        if path is not None and not path.is_file():
            raise FileNotFoundError(
                f"patient {row['patient_id']}, column {column}: file {path} not found (the "
                f"manifest {self.manifest} names it; import-dicom or the synthetic "
                f"generator writes it)")
        return path

    def _labels(self, row: Mapping[str, Any], series: str,
                image: nib.Nifti1Image) -> np.ndarray | None:
        """The label map of ``series`` on its (canonical) grid: its own, or ``labels_from``'s
        carried over through the affines (nearest voxel, 0 outside); None without one."""
        source = self.study.labels_of(series)
        path = self._file(row, f"{source}_labels")
        if path is None:
            return None
        labels = nib.as_closest_canonical(nib.load(str(path)))
        if source != series:
            from nibabel.processing import resample_from_to

            labels = resample_from_to(labels, (image.shape[:3], image.affine), order=0,
                                      mode="constant", cval=0)
        return np.asarray(labels.dataobj).astype(np.uint8)

    def tumour_volume_ml(self, patient_id: str) -> float | None:
        """Tumour volume (ml) from the first label map with a tumour label (read once)."""
        if patient_id not in self._volumes:
            volume = None
            row = self.row(patient_id)
            for column in self.study.label_columns:
                path = self._path(row.get(column))
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
        """The patient table: manifest columns, the class of each histology where the scheme
        makes one (:meth:`shows_classes`; :func:`class_label`), labels drawn or carried over,
        and the tumour volume (ml) where ``volumes`` is true or it has been read already."""
        columns = [c for c in TABLE_COLUMNS if c in self.rows.columns]
        table = self.rows[columns].copy()
        if self.shows_classes():
            table.insert(columns.index("histology") + 1, "class",
                         [class_label(h, self.scheme) for h in table["histology"]])
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
        """The patient's series and label maps (the study's; with ``labels_from`` that
        series' label map carried onto every other series' grid through the affines, nearest
        voxel), read now or from the cache of the last :data:`CACHE_PATIENTS` patients.

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
        for series in self.series:
            path = self._file(row, series)
            if path is None:
                continue
            image = nib.as_closest_canonical(nib.load(str(path)))
            views[series] = SeriesView(series, np.asarray(image.dataobj, dtype=np.float32),
                                       self._labels(row, series, image), image.affine,
                                       sources.get(series, ""),
                                       _series_info(series, row, image.affine),
                                       QUANTITATIVE.get(series), _scale(series, row))
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
                show_labels: bool = True, series: Sequence[str] | None = None
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
    series : sequence of str, optional
        Which series, in order; default the case's.
    """
    out: dict[str, tuple[int | None, np.ndarray | None]] = {}
    for name in case.series if series is None else series:
        view = case.series.get(name)
        if view is None:
            continue
        k = view.slice_at(z_mm)
        out[name] = (k, None if k is None else panel_rgb(view, k, (windows or {}).get(name),
                                                          show_labels))
    return out
