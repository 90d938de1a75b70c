"""Stack one DICOM image series into a NIfTI volume with the RAS+ affine its geometry implies.

The checks come first (:func:`check_geometry`), all of them, and every problem names the
patient, the series (description and SeriesInstanceUID) and the file:

* every file is a single-frame image with ImagePositionPatient and ImageOrientationPatient;
  multi-frame (enhanced) objects are refused;
* one ImageOrientationPatient (within 1e-4), one FrameOfReferenceUID, one Rows/Columns and
  PixelSpacing;
* at least two slices; positions unique along the slice normal (a duplicate names both
  files) and on a line along the normal (no gantry tilt / shear);
* even spacing: every gap within max(0.01 mm, 1 %) of the nominal spacing; a missing slice is
  reported with the gap and the positions of the slices missing. Nothing is interpolated.

The voxels are read by SimpleITK's ImageSeriesReader (GDCM) with the files in the checked
order; it applies each file's RescaleSlope/RescaleIntercept. Its geometry (origin, spacing,
direction) is cross-checked against the affine computed here from the headers.

Index convention: data index ``(i, j, k)`` = (column, row, slice) of the DICOM. With ``F`` =
ImageOrientationPatient (first triplet: the row direction, i.e. the direction of increasing
column index), ``dr, dc`` = PixelSpacing (row spacing first, as DICOM defines it) and ``n`` =
row x column direction:

    A_LPS = [[F_row * dc, F_col * dr, n * dz, P0], [0, 0, 0, 1]]
    A_RAS = diag(-1, -1, 1, 1) @ A_LPS
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from parotidlib.data.problems import Problem
from parotidlib.dicom.headers import (
    NON_IMAGE_MODALITIES,
    RTSTRUCT_SOP_CLASS,
    SEG_SOP_CLASS,
    DicomFile,
    Series,
    slice_normal,
)

ORIENTATION_TOL = 1e-4
"""Largest difference between two files' ImageOrientationPatient components."""
SPACING_ABS_TOL_MM = 0.01
SPACING_REL_TOL = 0.01
"""A gap may differ from the nominal slice spacing by max(0.01 mm, 1 % of the spacing)."""
CROSS_CHECK_TOL_MM = 1e-3
"""SimpleITK's geometry must match the headers' affine this closely (over the whole grid)."""

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SeriesError(ValueError):
    """A series that cannot be stacked into a volume; ``problems`` lists all that was found."""

    def __init__(self, problems: list[Problem]):
        self.problems: list[Problem] = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"series cannot be read as a volume: {len(self.problems)} "
                         f"problem(s)\n{lines}")


@dataclass(frozen=True)
class Geometry:
    """The checked geometry of a series: files in slice order and the index -> LPS affine."""

    files: tuple[DicomFile, ...]
    lps: np.ndarray
    spacing_mm: float
    shape: tuple[int, int, int]  # (columns, rows, slices) = NIfTI data shape


def _problem(series: Series, path, message: str) -> Problem:
    return Problem(series.patient_id or None, None, None if path is None else str(path),
                   f"{series.label}: {message}")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _check_files(series: Series) -> list[Problem]:
    """Per-file and consistency checks that do not need positions sorted."""
    problems: list[Problem] = []
    files = series.files
    if not files:
        return [_problem(series, None, "the series has no files")]
    if series.modality in NON_IMAGE_MODALITIES:
        return [_problem(series, files[0].path,
                         f"modality {series.modality} is not an image series")]
    for f in files:
        if f.sop_class_uid in (RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS):
            problems.append(_problem(series, f.path, "not an image (RTSTRUCT / SEG object)"))
        elif f.number_of_frames > 1:
            problems.append(_problem(
                series, f.path,
                f"multi-frame (enhanced) object with {f.number_of_frames} frames; only "
                f"single-frame series are supported (convert to classic single-frame "
                f"files first, e.g. with dcm2niix, or export classic MR images)"))
        else:
            missing = [name for name, value in (
                ("ImagePositionPatient", f.image_position),
                ("ImageOrientationPatient", f.image_orientation),
                ("PixelSpacing", f.pixel_spacing_mm), ("Rows", f.rows),
                ("Columns", f.columns)) if value is None]
            if missing:
                problems.append(_problem(series, f.path,
                                         f"missing or invalid {', '.join(missing)}"))
            elif f.image_orientation is not None:
                o = np.asarray(f.image_orientation)
                r, c = o[:3], o[3:]
                if (abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3
                        or abs(np.dot(r, c)) > 1e-3):
                    problems.append(_problem(
                        series, f.path,
                        f"ImageOrientationPatient {tuple(o)} is not two orthonormal vectors"))
            if f.pixel_spacing_mm is not None and min(f.pixel_spacing_mm) <= 0:
                problems.append(_problem(series, f.path,
                                         f"PixelSpacing {f.pixel_spacing_mm} is not positive"))
    if problems:
        return problems
    if len(files) < 2:
        return [_problem(series, files[0].path,
                         "a single slice; a volume needs at least two slices")]
    # The reference is the orientation most files share, so the odd file is the one named.
    o_all = np.array([f.image_orientation for f in files], dtype=float)
    same = np.abs(o_all[:, None, :] - o_all[None, :, :]).max(axis=2) <= ORIENTATION_TOL
    ref = files[int(np.argmax(same.sum(axis=1)))]
    for_uids = sorted({f.frame_of_reference_uid for f in files})
    if len(for_uids) > 1:
        for uid in for_uids:
            odd = [f for f in files if f.frame_of_reference_uid == uid]
            problems.append(_problem(
                series, odd[0].path,
                f"{len(for_uids)} FrameOfReferenceUIDs in one series; {len(odd)} file(s) "
                f"have {uid or '(empty)'!r}, e.g. this one"))
    o_ref = np.asarray(ref.image_orientation)
    for f in files:
        d = np.max(np.abs(np.asarray(f.image_orientation) - o_ref))
        if d > ORIENTATION_TOL:
            problems.append(_problem(
                series, f.path,
                f"ImageOrientationPatient {tuple(f.image_orientation)} differs from "
                f"{tuple(ref.image_orientation)} of {ref.path} (by {d:.2g} > "
                f"{ORIENTATION_TOL}); one series must have one orientation"))
    for f in files:
        if (f.rows, f.columns) != (ref.rows, ref.columns):
            problems.append(_problem(
                series, f.path, f"Rows x Columns {f.rows} x {f.columns} differs from "
                f"{ref.rows} x {ref.columns} of {ref.path}"))
        if np.max(np.abs(np.subtract(f.pixel_spacing_mm, ref.pixel_spacing_mm))) > 1e-4:
            problems.append(_problem(
                series, f.path, f"PixelSpacing {f.pixel_spacing_mm} differs from "
                f"{ref.pixel_spacing_mm} of {ref.path}"))
    return problems


def check_geometry(series: Series) -> tuple[Geometry | None, list[Problem]]:
    """The checked geometry of ``series``, or None and every problem found."""
    problems = _check_files(series)
    if problems:
        return None, problems
    files = list(series.files)
    ref = files[0]
    o = np.asarray(ref.image_orientation, dtype=float)
    row_dir, col_dir = o[:3] / np.linalg.norm(o[:3]), o[3:] / np.linalg.norm(o[3:])
    normal = slice_normal(o)
    dr, dc = (float(v) for v in ref.pixel_spacing_mm)  # row spacing first

    positions = np.array([f.image_position for f in files], dtype=float)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    files = [files[i] for i in order]
    positions, along = positions[order], along[order]

    # Positions must lie on one line along the normal (no gantry tilt / shear).
    in_plane = positions - np.outer(along, normal)
    shift = np.linalg.norm(in_plane - in_plane[0], axis=1)
    tol_plane = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * min(dr, dc))
    for f, s in zip(files, shift, strict=True):
        if s > tol_plane:
            problems.append(_problem(
                series, f.path,
                f"ImagePositionPatient {f.image_position} is shifted {_fmt(s)} mm in the "
                f"image plane from {files[0].path} (gantry tilt or sheared stack); not "
                f"supported"))

    gaps = np.diff(along)
    duplicate = gaps <= SPACING_ABS_TOL_MM
    for idx in np.flatnonzero(duplicate):
        a, b = files[idx], files[idx + 1]
        problems.append(_problem(
            series, b.path,
            f"duplicate slice position {_fmt(along[idx + 1])} mm along the normal: {a.path} "
            f"and {b.path} (instance {a.instance_number} and {b.instance_number}, echo "
            f"{a.echo_number} and {b.echo_number}); several echoes, phases or repeated "
            f"files in one series are not stacked"))
    real_gaps = gaps[~duplicate]
    if len(real_gaps):
        smallest = real_gaps.min()
        tol_s = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * smallest)
        nominal = float(np.median(real_gaps[real_gaps <= smallest + tol_s]))
        tol = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * nominal)
        for idx in np.flatnonzero(~duplicate):
            g = gaps[idx]
            if abs(g - nominal) <= tol:
                continue
            a, b = files[idx], files[idx + 1]
            m = round(g / nominal)
            if m >= 2 and abs(g - m * nominal) <= tol * m:
                missing = ", ".join(_fmt(along[idx] + q * nominal) for q in range(1, m))
                problems.append(_problem(
                    series, b.path,
                    f"missing slice(s): gap of {_fmt(g)} mm between {a.path} (at "
                    f"{_fmt(along[idx])} mm along the normal) and {b.path} (at "
                    f"{_fmt(along[idx + 1])} mm), where the spacing is {_fmt(nominal)} mm; "
                    f"{m - 1} slice(s) missing at {missing} mm along the normal "
                    f"{tuple(np.round(normal, 4))}"))
            else:
                problems.append(_problem(
                    series, b.path,
                    f"uneven slice spacing: gap of {_fmt(g)} mm between {a.path} and "
                    f"{b.path}, where the spacing is {_fmt(nominal)} mm (tolerance "
                    f"{_fmt(tol)} mm)"))
    if problems:
        return None, problems

    n = len(files)
    dz = float((along[-1] - along[0]) / (n - 1))
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc  # i: column index, moves along the row direction
    lps[:3, 1] = col_dir * dr  # j: row index, moves along the column direction
    lps[:3, 2] = normal * dz
    lps[:3, 3] = positions[0]
    shape = (int(ref.columns), int(ref.rows), n)
    return Geometry(files=tuple(files), lps=lps, spacing_mm=dz, shape=shape), []


def geometry(series: Series) -> Geometry:
    """:func:`check_geometry`, raising :class:`SeriesError` on any problem."""
    geo, problems = check_geometry(series)
    if geo is None:
        raise SeriesError(problems)
    return geo


def lps_affine(series: Series) -> np.ndarray:
    """4x4 affine from data index (column, row, slice) to DICOM patient coordinates (LPS, mm).

    Slices are ordered by increasing position along row x column; raises SeriesError if the
    series fails the checks."""
    return geometry(series).lps.copy()


def ras_affine(series: Series) -> np.ndarray:
    """4x4 affine from data index (column, row, slice) to RAS+ mm (the NIfTI affine)."""
    return LPS_TO_RAS @ lps_affine(series)


def _sitk_affine_lps(image) -> np.ndarray:
    """SimpleITK's index (x=column, y=row, z=slice) -> LPS affine."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    out = np.eye(4)
    out[:3, :3] = direction @ np.diag(image.GetSpacing())
    out[:3, 3] = image.GetOrigin()
    return out


def _grid_corners(shape) -> np.ndarray:
    c = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                  for k in (0, shape[2] - 1)])
    return c.T


def _store_dtype(data: np.ndarray) -> np.dtype:
    if not np.all(np.isfinite(data)):
        return np.dtype(np.float32)
    if not np.all(data == np.round(data)):
        return np.dtype(np.float32)
    lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    for dt in (np.int16, np.uint16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.float32)


def read_volume(series: Series, dtype=None) -> nib.Nifti1Image:
    """The series as a NIfTI image in RAS+ (data index = column, row, slice).

    Raises :class:`SeriesError` (every problem, each naming patient, series and file) when the
    series fails the checks or SimpleITK cannot read it or disagrees with the headers'
    geometry. ``dtype``: the stored data type; by default the smallest of int16, uint16,
    int32 that holds the rescaled values, float32 when they are not integers.
    """
    import SimpleITK as sitk

    geo = geometry(series)
    names = [str(f.path) for f in geo.files]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    reader.SetOutputPixelType(sitk.sitkFloat64)  # rescale per file, no truncation
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise SeriesError([_problem(series, names[0],
                                    f"SimpleITK cannot read the pixel data: {exc}")]) from exc
    size = tuple(image.GetSize())
    if size != geo.shape:
        raise SeriesError([_problem(series, names[0],
                                    f"SimpleITK read a grid of {size}, the headers say "
                                    f"{geo.shape} (columns, rows, slices)")])
    corners = _grid_corners(geo.shape)
    diff = np.abs(_sitk_affine_lps(image) @ corners - geo.lps @ corners).max()
    if diff > CROSS_CHECK_TOL_MM:
        raise SeriesError([_problem(
            series, names[0],
            f"SimpleITK's geometry differs from the headers' by {diff:.3g} mm at the grid "
            f"corners (origin {image.GetOrigin()}, spacing {image.GetSpacing()})")])
    # GetArrayFromImage: [slice, row, column]; the NIfTI data is [column, row, slice].
    data = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
    out_dtype = np.dtype(dtype) if dtype is not None else _store_dtype(data)
    data = np.ascontiguousarray(data.astype(out_dtype))
    affine = LPS_TO_RAS @ geo.lps
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b""
    img.header["aux_file"] = b""
    img.header.set_data_dtype(out_dtype)
    return img
