"""RTSTRUCT ROIs rasterised onto the grid of the series they were drawn on; DICOM SEG read in.

The grid is given as the NIfTI affine (voxel index ``(i, j, k)`` to RAS+ world mm) and the
shape of the series' volume (:mod:`parotidlib.dicom.volume`). DICOM patient coordinates are
LPS: ``x_RAS = -x_LPS``, ``y_RAS = -y_LPS``, ``z_RAS = z_LPS``.

RTSTRUCT (DICOM PS3.3 C.8.8.6, ROI Contour Module; C.8.8.5, Structure Set Module)
-----------------------------------------------------------------------------
* Each ``CLOSED_PLANAR`` contour's points (``ContourData``, LPS mm) are mapped to continuous
  voxel indices through ``inv(affine_ras)``. **Geometry decides the slice**: the contour must
  lie in one image plane ``k = k0`` (an integer in ``[0, shape[2])``) of the series, every
  point within ``tolerance_mm`` of that plane. ``ContourImageSequence`` is not used (it is
  optional and often missing or wrong).
* A contour that is tilted against the image planes, lies between two planes, or lies outside
  the series' slices is **refused**, never dropped: a :class:`~parotidlib.data.problems.Problem`
  names the ROI, the contour's slice position (mm along the slice normal) and its distance from
  the nearest image plane. All problems are collected and raised together as one
  :class:`ContourError` at the end.
* The default tolerance is ``max(0.1 * plane spacing, 0.1 mm)``: ``ContourData`` is written as
  decimal strings of at most 16 characters, and planning systems round coordinates, so exact
  equality cannot be asked for; a tenth of the spacing is far from the half spacing at which a
  contour would be ambiguous between two planes.
* Each polygon is filled in the ``(i, j)`` plane by **pixel centre**
  (:func:`skimage.draw.polygon2mask`): a voxel is inside when its centre is inside the polygon;
  centres exactly on the boundary count as inside. Several contours of one ROI on one slice
  are combined by **even-odd (XOR)**, so a contour inside another is a hole and a contour
  inside that hole is an island (DICOM leaves the nesting to the reader; XOR is what the
  standard's ``CLOSEDPLANAR_XOR`` type, treated the same way here, spells out).
* ``POINT``, ``OPEN_PLANAR`` and ``OPEN_NONPLANAR`` contours enclose no area. They are not
  rasterised and not an error (markers and reference points are common in clinical
  structure sets), but a :class:`ContourWarning` names each ROI that has them; an ROI with
  only such contours is left out of the result.
* Partly outside the in-plane field of view a polygon is clipped to the grid (pixel centres
  outside the grid do not exist); an ROI whose mask ends up empty although it has closed
  contours gives a :class:`ContourWarning`. An ROI with no contours at all gives an all-False
  mask.

DICOM SEG (DICOM PS3.3 C.8.20)
------------------------------
:func:`read_seg` reads a SEG with :func:`highdicom.seg.segread` and places every frame on the
target grid, *provided* each frame coincides with an image plane of the target series
(same frame of reference, pixel centres on voxel centres within tolerance, rows and columns
along the grid's axes). Resampling arbitrary SEG geometry onto a grid is out of scope: a SEG
that does not coincide is refused with a problem.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from skimage.draw import polygon2mask

from parotidlib.data.problems import Problem

__all__ = [
    "ContourError",
    "ContourWarning",
    "default_tolerance_mm",
    "rasterise_rtstruct",
    "read_seg",
    "roi_names",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
"""x_RAS = -x_LPS, y_RAS = -y_LPS, z equal (the matrix is its own inverse)."""

MIN_TOLERANCE_MM = 0.1
TOLERANCE_FRACTION = 0.1
AREA_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR")


class ContourError(ValueError):
    """Contours that cannot be placed on the series' grid.

    Attributes
    ----------
    problems : list of Problem
        Every problem found (``column`` is the ROI name or SEG segment label, ``path`` the
        RTSTRUCT or SEG file when known), not just the first.
    masks : dict of str to numpy.ndarray
        The ROIs that were rasterised without a problem, so a caller that needs only some ROIs
        can still use them; the caller decides (by default: skip the patient).
    """

    def __init__(
        self,
        problems: Iterable[Problem],
        masks: Mapping[str, np.ndarray] | None = None,
        source: str | Path | None = None,
    ):
        self.problems: list[Problem] = list(problems)
        self.masks: dict[str, np.ndarray] = dict(masks or {})
        head = f"contours of {source} refused" if source is not None else "contours refused"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}: {len(self.problems)} problem(s)\n{lines}")


class ContourWarning(UserWarning):
    """Something usable but worth knowing: contours without area, an ROI that came out empty."""


# --------------------------------------------------------------------------- geometry


def _check_grid(affine_ras: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, tuple]:
    affine = np.asarray(affine_ras, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine_ras must be a finite 4 x 4 matrix, got {affine!r}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f"affine_ras is singular: {affine!r}")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes, got {shape}")
    return affine, shape


def _plane_geometry(affine: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Inverse affine, distance between image planes (mm) and the unit slice normal (RAS)."""
    inverse = np.linalg.inv(affine)
    gradient_k = inverse[2, :3]  # k(x) = gradient_k . x + c: planes k = const
    norm = float(np.linalg.norm(gradient_k))
    return inverse, 1.0 / norm, gradient_k / norm


def default_tolerance_mm(affine_ras: np.ndarray) -> float:
    """``max(0.1 * distance between image planes, 0.1 mm)`` of the grid ``affine_ras``."""
    _, spacing, _ = _plane_geometry(np.asarray(affine_ras, dtype=float))
    return max(TOLERANCE_FRACTION * spacing, MIN_TOLERANCE_MM)


def _lps_to_index(points_lps: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """(n, 3) LPS mm -> (n, 3) continuous voxel index (i, j, k)."""
    ras = points_lps @ LPS_TO_RAS.T
    return ras @ inverse[:3, :3].T + inverse[:3, 3]


# --------------------------------------------------------------------------- RTSTRUCT


def _read(rtstruct: str | Path | pydicom.Dataset) -> tuple[pydicom.Dataset, str | None]:
    if isinstance(rtstruct, pydicom.Dataset):
        name = getattr(rtstruct, "filename", None)
        return rtstruct, str(Path(name).resolve()) if isinstance(name, str) and name else None
    path = Path(rtstruct)
    # force: structure sets without file meta (old exports, pydicom's own rtstruct.dcm)
    return pydicom.dcmread(path, force=True), str(path.resolve())


def _roi_table(ds: pydicom.Dataset) -> list[tuple[int | None, str, str | None]]:
    """(ROINumber, ROIName, ReferencedFrameOfReferenceUID) of each StructureSetROISequence item."""
    rows = []
    for index, item in enumerate(ds.get("StructureSetROISequence", [])):
        number = item.get("ROINumber")
        name = str(item.get("ROIName", "") or "").strip() or f"ROI #{number if number else index}"
        frame = item.get("ReferencedFrameOfReferenceUID")
        rows.append((int(number) if number is not None else None, name, frame and str(frame)))
    return rows


def roi_names(rtstruct: str | Path | pydicom.Dataset) -> list[str]:
    """The ROI names of an RTSTRUCT, in StructureSetROISequence order (DICOM PS3.3 C.8.8.5).

    Parameters
    ----------
    rtstruct : str, Path or pydicom.Dataset
        The RTSTRUCT file or dataset.

    Returns
    -------
    list of str
        ``ROIName`` stripped of spaces; an unnamed ROI is called ``"ROI #<ROINumber>"``.
    """
    ds, _ = _read(rtstruct)
    return [name for _, name, _ in _roi_table(ds)]


def _structure_set_frames(ds: pydicom.Dataset) -> set[str]:
    return {
        str(item.FrameOfReferenceUID)
        for item in ds.get("ReferencedFrameOfReferenceSequence", [])
        if item.get("FrameOfReferenceUID")
    }


def rasterise_rtstruct(
    rtstruct: str | Path | pydicom.Dataset,
    affine_ras: np.ndarray,
    shape: tuple[int, int, int],
    frame_of_reference_uid: str | None = None,
    tolerance_mm: float | None = None,
    patient_id: str | None = None,
) -> dict[str, np.ndarray]:
    """Rasterise every ROI of an RTSTRUCT onto one series' voxel grid.

    Follows the ROI Contour Module (DICOM PS3.3 C.8.8.6): each ``ROIContourSequence`` item is
    matched to its ``StructureSetROISequence`` item (C.8.8.5) by ``ReferencedROINumber``;
    each ``CLOSED_PLANAR`` contour is mapped LPS -> RAS -> continuous voxel index, must lie in
    one image plane of the grid (geometry decides; ``ContourImageSequence`` is ignored), is
    filled by pixel centre, and contours of one ROI on one slice are combined by XOR.

    Parameters
    ----------
    rtstruct : str, Path or pydicom.Dataset
        The RTSTRUCT file or dataset.
    affine_ras : numpy.ndarray
        4 x 4 NIfTI affine of the series: voxel centre ``(i, j, k)`` to RAS+ world mm.
    shape : tuple of int
        The series' volume shape ``(ni, nj, nk)``.
    frame_of_reference_uid : str, optional
        The series' ``FrameOfReferenceUID``. When given, an ROI whose
        ``ReferencedFrameOfReferenceUID`` (or, lacking it, the structure set's
        ``ReferencedFrameOfReferenceSequence``) differs, or names none, is a problem.
    tolerance_mm : float, optional
        How far (mm) a contour point may lie from its image plane. Default
        ``max(0.1 * distance between planes, 0.1 mm)`` (:func:`default_tolerance_mm`).
    patient_id : str, optional
        Put into every problem, for the caller's report.

    Returns
    -------
    dict of str to numpy.ndarray
        ROI name -> bool array of ``shape``. ROIs with only ``POINT``/open contours are left
        out (with a :class:`ContourWarning`).

    Raises
    ------
    ContourError
        After looking at every contour, when any was refused: tilted, between planes or outside
        the slices (naming the ROI, slice position and distance), malformed, of another frame
        of reference, or of an ROI name that occurs twice. ``.masks`` holds the ROIs without a
        problem.
    """
    affine, shape = _check_grid(affine_ras, shape)
    inverse, spacing, normal = _plane_geometry(affine)
    tolerance = default_tolerance_mm(affine) if tolerance_mm is None else float(tolerance_mm)
    if not tolerance > 0:
        raise ValueError(f"tolerance_mm must be > 0, got {tolerance_mm!r}")
    ds, path = _read(rtstruct)
    problems: list[Problem] = []

    def problem(roi: str | None, message: str) -> None:
        problems.append(Problem(patient_id, roi, path, message))

    table = _roi_table(ds)
    if not table:
        problem(None, "no StructureSetROISequence: not an RTSTRUCT, or one without ROIs")
        raise ContourError(problems, source=path)
    set_frames = _structure_set_frames(ds)

    by_number: dict[int, str] = {}
    seen: dict[str, int] = {}
    bad_rois: set[str] = set()
    for number, name, frame in table:
        seen[name] = seen.get(name, 0) + 1
        if number is not None:
            by_number[number] = name
        if frame_of_reference_uid is not None:
            frames = {frame} if frame else set_frames
            series_frame = str(frame_of_reference_uid) or "none (the series has no " \
                "FrameOfReferenceUID)"
            if not frames:
                problem(name, f"ROI {name!r} names no frame of reference; the series' is "
                              f"{series_frame}")
                bad_rois.add(name)
            elif frames != {str(frame_of_reference_uid)}:
                problem(name, f"ROI {name!r} is in frame of reference {', '.join(sorted(frames))},"
                              f" the series in {series_frame}")
                bad_rois.add(name)
    for name, count in seen.items():
        if count > 1:
            problem(name, f"ROI name {name!r} occurs {count} times in StructureSetROISequence")
            bad_rois.add(name)

    masks: dict[str, np.ndarray] = {name: np.zeros(shape, dtype=bool) for _, name, _ in table}
    closed_count = dict.fromkeys(masks, 0)
    other_types: dict[str, set[str]] = {}
    for roi_item in ds.get("ROIContourSequence", []):
        number = roi_item.get("ReferencedROINumber")
        if number is None or int(number) not in by_number:
            problem(None, f"ROIContourSequence item refers to ROI number {number}, which "
                          "StructureSetROISequence does not define")
            continue
        name = by_number[int(number)]
        # slice -> XOR of that slice's contours, built per slice so holes stay holes
        for c_index, contour in enumerate(roi_item.get("ContourSequence", []), start=1):
            kind = str(contour.get("ContourGeometricType", "")).strip().upper()
            label = f"ROI {name!r} contour {c_index}"
            if kind not in AREA_TYPES:
                other_types.setdefault(name, set()).add(kind or "<no ContourGeometricType>")
                continue
            closed_count[name] += 1
            data = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=float)
            declared = contour.get("NumberOfContourPoints")
            if data.size % 3 or data.size < 9:
                problem(name, f"{label}: ContourData has {data.size} values; a closed planar "
                              "contour needs at least 3 points of 3 coordinates")
                bad_rois.add(name)
                continue
            points = data.reshape(-1, 3)
            if declared is not None and int(declared) != len(points):
                problem(name, f"{label}: NumberOfContourPoints is {declared} but ContourData "
                              f"holds {len(points)} points")
                bad_rois.add(name)
                continue
            if not np.all(np.isfinite(points)):
                problem(name, f"{label}: ContourData holds non-finite values")
                bad_rois.add(name)
                continue
            index = _lps_to_index(points, inverse)
            k = index[:, 2]
            k0 = int(np.round(k.mean()))
            along = (points @ LPS_TO_RAS.T) @ normal  # mm along the slice normal (RAS)
            position = float(along.mean())
            distance = float(np.max(np.abs(k - k0))) * spacing
            spread = float(np.ptp(k)) * spacing
            if distance > tolerance:
                if spread > tolerance:
                    what = (f"is tilted against the image planes: its points span {spread:.3f} mm"
                            f" along the slice normal (from {along.min():.3f} to "
                            f"{along.max():.3f} mm)")
                else:
                    what = "lies between image planes"
                problem(name, f"{label} {what}; slice position {position:.3f} mm, "
                              f"{distance:.3f} mm from the nearest image plane k={k0} "
                              f"(plane spacing {spacing:.3f} mm, tolerance {tolerance:.3f} mm)")
                bad_rois.add(name)
                continue
            if not 0 <= k0 < shape[2]:
                problem(name, f"{label} lies at slice position {position:.3f} mm (k={k0}), "
                              f"outside the series' {shape[2]} slices (k = 0..{shape[2] - 1})")
                bad_rois.add(name)
                continue
            filled = polygon2mask(shape[:2], index[:, :2])
            masks[name][:, :, k0] ^= filled

    for name, kinds in other_types.items():
        left_out = " (the ROI has no closed contour and is left out)" if not closed_count[name] \
            else ""
        warnings.warn(f"ROI {name!r}: {', '.join(sorted(kinds))} contours enclose no area and are"
                      f" not rasterised{left_out}", ContourWarning, stacklevel=2)
        if not closed_count[name]:
            masks.pop(name, None)
    for name, mask in masks.items():
        if name not in bad_rois and closed_count[name] and not mask.any():
            warnings.warn(f"ROI {name!r}: {closed_count[name]} closed contour(s) cover no voxel "
                          "centre of the grid", ContourWarning, stacklevel=2)
    if problems:
        good = {name: mask for name, mask in masks.items() if name not in bad_rois}
        raise ContourError(problems, masks=good, source=path)
    return masks


# --------------------------------------------------------------------------- DICOM SEG


def _frame_geometry(seg, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ImagePositionPatient, ImageOrientationPatient, PixelSpacing) of one SEG frame."""

    def find(name: str, group: str):
        for groups in (seg.PerFrameFunctionalGroupsSequence[frame],
                       seg.get("SharedFunctionalGroupsSequence", [None])[0]):
            if groups is not None and group in groups:
                value = getattr(groups[group].value[0], name, None)
                if value is not None:
                    return np.asarray([float(v) for v in value])
        raise ValueError(f"frame {frame + 1} has no {name} (in {group})")

    return (find("ImagePositionPatient", "PlanePositionSequence"),
            find("ImageOrientationPatient", "PlaneOrientationSequence"),
            find("PixelSpacing", "PixelMeasuresSequence"))


def read_seg(
    seg: str | Path,
    affine_ras: np.ndarray,
    shape: tuple[int, int, int],
    patient_id: str | None = None,
    frame_of_reference_uid: str | None = None,
    tolerance_mm: float | None = None,
) -> dict[str, np.ndarray]:
    """Read a DICOM SEG (PS3.3 C.8.20) with highdicom onto a series' grid.

    Each frame must coincide with an image plane of the grid: its pixel centres on voxel
    centres within ``tolerance_mm``, its rows and columns along the grid's ``i``/``j`` axes
    (either order, either sign). Resampling arbitrary SEG geometry is out of scope; a SEG
    that does not coincide is refused.

    Parameters
    ----------
    seg : str or Path
        The SEG file.
    affine_ras, shape
        The target grid, as for :func:`rasterise_rtstruct`.
    patient_id : str, optional
        Put into every problem.
    frame_of_reference_uid : str, optional
        The series' ``FrameOfReferenceUID``; when given, the SEG's must equal it.
    tolerance_mm : float, optional
        Default :func:`default_tolerance_mm`.

    Returns
    -------
    dict of str to numpy.ndarray
        Segment label (``SegmentLabel``) -> bool array of ``shape``. ``FRACTIONAL`` segments
        are thresholded at half their maximum value; ``LABELMAP`` pixels are segment numbers.

    Raises
    ------
    ContourError
        With every problem found (``column`` the segment label, or None for the whole SEG).
    """
    import highdicom as hd

    affine, shape = _check_grid(affine_ras, shape)
    inverse, _, _ = _plane_geometry(affine)
    tolerance = default_tolerance_mm(affine) if tolerance_mm is None else float(tolerance_mm)
    path = str(Path(seg).resolve())
    problems: list[Problem] = []

    def problem(label: str | None, message: str) -> None:
        problems.append(Problem(patient_id, label, path, message))

    ds = hd.seg.segread(seg)
    if frame_of_reference_uid is not None and \
            str(ds.get("FrameOfReferenceUID", "")) != str(frame_of_reference_uid):
        problem(None, f"SEG is in frame of reference {ds.get('FrameOfReferenceUID')}, the series"
                      f" in {frame_of_reference_uid}")
        raise ContourError(problems, source=path)

    labels: dict[int, str] = {}
    for number in ds.segment_numbers:
        description = ds.get_segment_description(number)
        labels[int(number)] = str(description.segment_label)
    masks = {label: np.zeros(shape, dtype=bool) for label in labels.values()}
    if len(masks) != len(labels):
        problem(None, f"segment labels are not unique: {sorted(labels.values())}")
        raise ContourError(problems, source=path)

    seg_type = str(ds.SegmentationType).upper()
    pixels = np.asarray(ds.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if seg_type == "FRACTIONAL":
        present = pixels >= 0.5 * float(ds.MaximumFractionalValue)
    else:
        present = pixels
    rows, cols = pixels.shape[1:]
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    for frame in range(pixels.shape[0]):
        groups = ds.PerFrameFunctionalGroupsSequence[frame]
        if seg_type == "LABELMAP":
            frame_masks = {labels[n]: pixels[frame] == n for n in labels}
        else:
            shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
            identification = groups.get("SegmentIdentificationSequence") or \
                shared.get("SegmentIdentificationSequence")
            if not identification:
                problem(None, f"SEG frame {frame + 1} names no segment "
                              "(SegmentIdentificationSequence)")
                continue
            number = int(identification[0].ReferencedSegmentNumber)
            if number not in labels:
                problem(None, f"SEG frame {frame + 1} refers to segment {number}, which "
                              "SegmentSequence does not define")
                continue
            frame_masks = {labels[number]: present[frame].astype(bool)}
        try:
            position, orientation, pixel_spacing = _frame_geometry(ds, frame)
        except ValueError as exc:
            problem(None, str(exc))
            continue
        row_dir, col_dir = orientation[:3], orientation[3:]
        # DICOM: pixel (r, c) at IPP + r * PixelSpacing[0] * col_dir + c * PixelSpacing[1] * row_dir
        points = (position + r[..., None] * pixel_spacing[0] * col_dir
                  + c[..., None] * pixel_spacing[1] * row_dir).reshape(-1, 3)
        index = _lps_to_index(points, inverse)
        nearest = np.round(index)
        off_mm = np.linalg.norm(
            (index - nearest) @ affine[:3, :3].T, axis=1).max()
        planes = np.unique(nearest[:, 2])
        if off_mm > tolerance or len(planes) != 1:
            position_ras = LPS_TO_RAS @ position
            for label in frame_masks:
                problem(label, f"SEG frame {frame + 1} of segment {label!r} (first pixel at RAS "
                        f"{np.round(position_ras, 3).tolist()} mm) does not coincide with an "
                        f"image plane of the series: pixel centres up to {off_mm:.3f} mm from "
                        f"voxel centres (tolerance {tolerance:.3f} mm); resampling SEG geometry "
                        "is not supported")
            continue
        nearest = nearest.astype(int)
        inside = np.all((nearest >= 0) & (nearest < np.asarray(shape)), axis=1)
        for label, frame_mask in frame_masks.items():
            flat = frame_mask.reshape(-1)
            if np.any(flat & ~inside):
                problem(label, f"SEG frame {frame + 1}: segment {label!r} has pixels outside the "
                               f"series' grid of shape {shape}")
                continue
            chosen = nearest[flat & inside]
            masks[label][chosen[:, 0], chosen[:, 1], chosen[:, 2]] = True
    if problems:
        bad = {p.column for p in problems}
        good = {} if None in bad else {
            label: mask for label, mask in masks.items() if label not in bad}
        raise ContourError(problems, masks=good, source=path)
    return masks
