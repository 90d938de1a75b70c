"""Stack one DICOM image series into a NIfTI volume with the RAS+ affine its geometry implies.

A series is either classic single-frame files (one file per slice) or one multi-frame
(Enhanced MR, PS3.3 A.36.2, or Legacy Converted Enhanced MR) object whose frames are the
slices. The checks come first (:func:`check_geometry`), all of them, and every problem names
the patient, the series (description and SeriesInstanceUID) and the file (and frame). A
problem that many files share is reported once per series and kind, with a count ("3 of 40
files ...") and the first file:

* every file is a single-frame image with ImagePositionPatient and ImageOrientationPatient,
  or the series is one multi-frame object whose frames carry them in their functional groups
  (PS3.3 C.7.6.16); several multi-frame files, or multi-frame mixed with single-frame files,
  are refused, and so is a multi-frame object with several stacks (StackID);
* one ImageOrientationPatient (within 1e-4), one FrameOfReferenceUID, one Rows/Columns and
  PixelSpacing;
* at least two slices; positions unique along the slice normal and on a line along the normal
  (no gantry tilt / shear). Files (or frames) at one position with different echoes are
  "several echoes (TE a, b ms) in one series", which an ``echo_time_ms`` selection (a rules
  ``echo:`` setting) resolves; other duplicates name both files;
* even spacing: every gap within max(0.01 mm, 1 %) of the nominal spacing; a missing slice is
  reported with the gap and the positions of the slices missing. Nothing is interpolated.

Classic series are read by SimpleITK's ImageSeriesReader (GDCM) with the files in the checked
order; it applies each file's RescaleSlope/RescaleIntercept. Multi-frame objects are read by
highdicom (``highdicom.imread(path).get_volume()``), which applies each frame's Pixel Value
Transformation (PS3.3 C.7.6.16.2.9: the per-frame RescaleSlope/RescaleIntercept Philips
writes); real-world value maps, VOI windows and presentation LUTs are not applied, as for
classic files. Either reader's geometry (origin, spacing, direction) is cross-checked against
the affine computed here from the headers (per frame, from the functional groups). What
GDCM prints on the C-level stderr while reading ("Unsupported JPEG data precision 12", once
per slice) is captured and logged once per distinct line, with its count.

Index convention: data index ``(i, j, k)`` = (column, row, slice) of the DICOM. With ``F`` =
ImageOrientationPatient (first triplet: the row direction, i.e. the direction of increasing
column index), ``dr, dc`` = PixelSpacing (row spacing first, as DICOM defines it) and ``n`` =
row x column direction:

    A_LPS = [[F_row * dc, F_col * dr, n * dz, P0], [0, 0, 0, 1]]
    A_RAS = diag(-1, -1, 1, 1) @ A_LPS
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from parotidlib.data.problems import Problem
from parotidlib.dicom.diffusion import B_TOLERANCE, split_directional
from parotidlib.dicom.headers import (
    NON_IMAGE_MODALITIES,
    RTSTRUCT_SOP_CLASS,
    SEG_SOP_CLASS,
    DicomFile,
    Series,
    frame_headers,
    read_header,
    slice_normal,
)

log = logging.getLogger(__name__)

ORIENTATION_TOL = 1e-4
"""Largest difference between two files' ImageOrientationPatient components."""
SPACING_ABS_TOL_MM = 0.01
SPACING_REL_TOL = 0.01
"""A gap may differ from the nominal slice spacing by max(0.01 mm, 1 % of the spacing)."""
CROSS_CHECK_TOL_MM = 1e-3
"""SimpleITK's (highdicom's) geometry must match the headers' affine this closely (over the
whole grid)."""
ECHO_TOL_MS = 0.01
"""Two echo times closer than this are one echo."""

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
    """The checked geometry of a series: files (or, for a multi-frame object, the frames, see
    :func:`parotidlib.dicom.headers.frame_headers`) in slice order and the index -> LPS
    affine."""

    files: tuple[DicomFile, ...]
    lps: np.ndarray
    spacing_mm: float
    shape: tuple[int, int, int]  # (columns, rows, slices) = NIfTI data shape

    @property
    def multiframe(self) -> bool:
        """Whether the slices are frames of one multi-frame object."""
        return bool(self.files) and self.files[0].frame is not None


def _problem(series: Series, path, message: str) -> Problem:
    return Problem(series.patient_id or None, None, None if path is None else str(path),
                   f"{series.label}: {message}")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _noun(units: Sequence[DicomFile]) -> str:
    """"files", or "frames of <path>" for the frames of one multi-frame object."""
    if units and units[0].frame is not None:
        return f"frames of {units[0].path}"
    return "files"


def _grouped(series: Series, units: Sequence[DicomFile], bad: Sequence[DicomFile],
             what: str) -> Problem:
    """One problem for all ``bad`` units: "N of M files <what> (first: <file>)"."""
    first = bad[0]
    return _problem(series, first.path,
                    f"{len(bad)} of {len(units)} {_noun(units)} {what} (first: {first.where})")


@functools.lru_cache(maxsize=8)
def _frame_headers(f: DicomFile, stamp: tuple[int, int] | None
                   ) -> tuple[tuple[DicomFile, ...] | None, str | None]:
    """``(frame headers, None)`` of a multi-frame file, or ``(None, why not)``; cached per
    file record and ``stamp`` (mtime, size), so that the roles, the b-value and echo choices
    and the reader, which all ask, parse the functional groups once and a changed file
    again."""
    ds, message = read_header(f.path)
    if ds is None:
        return None, message
    try:
        return frame_headers(f, ds), None
    except Exception as exc:  # a functional group too malformed to take apart
        return None, (f"cannot read the functional groups of the multi-frame object: "
                      f"{type(exc).__name__}: {exc}")


def _multiframe_units(series: Series) -> tuple[list[DicomFile] | None, list[Problem]]:
    """The frames of the series' one multi-frame file, or (None, []) for a classic series.

    A series of several multi-frame files, multi-frame mixed with single-frame files, an
    unreadable header or several stacks (StackID of the Frame Content Macro, PS3.3
    C.7.6.16.2.2) is a problem."""
    files = series.files
    multi = [f for f in files if f.number_of_frames > 1]
    if not multi:
        return None, []
    if len(files) > 1:
        single = len(files) - len(multi)
        mix = (f"{len(multi)} multi-frame and {single} single-frame files" if single
               else f"{len(multi)} multi-frame files")
        return None, [_problem(
            series, multi[0].path,
            f"{mix} in one series (first multi-frame: {multi[0].path}); a volume is read "
            f"from one multi-frame object or from single-frame files, one per slice, not "
            f"from a mixture or several objects")]
    f = multi[0]
    try:
        stat = os.stat(f.path)
        headers, message = _frame_headers(f, (stat.st_mtime_ns, stat.st_size))
    except OSError:
        headers, message = _frame_headers.__wrapped__(f, None)
    if headers is None:
        return None, [_problem(series, f.path, message or "cannot read the header")]
    frames = list(headers)
    stacks = sorted({fr.stack_id for fr in frames if fr.stack_id})
    if len(stacks) > 1:
        counts = Counter(fr.stack_id for fr in frames)
        listed = ", ".join(f"{sid!r} ({counts[sid]} frames)" for sid in stacks[:6])
        return None, [_problem(
            series, f.path,
            f"{len(stacks)} stacks (StackID {listed}) in one multi-frame object of "
            f"{len(frames)} frames; one volume is one stack (export the stacks as separate "
            f"series)")]
    return frames, []


def frames_of(series: Series) -> list[DicomFile] | None:
    """The frame headers of the series' one multi-frame object (each with its b-value, echo
    time and geometry; :func:`parotidlib.dicom.headers.frame_headers`), None for a classic
    series or one whose frames cannot be read."""
    frames, _ = _multiframe_units(series)
    return frames


def _echo_key(f: DicomFile) -> float | None:
    """The echo time rounded to ECHO_TOL_MS (0.01 ms), None when not given."""
    return None if f.echo_time_ms is None else round(f.echo_time_ms, 2)


def echo_times_ms(series: Series) -> list[float]:
    """The distinct echo times (ms) of the series' files, or of its multi-frame object's
    frames (EffectiveEchoTime, PS3.3 C.8.13.5.4), ascending; [] when none is given."""
    units, _ = _multiframe_units(series)
    units = list(series.files) if units is None else units
    keys = {_echo_key(f) for f in units} - {None}
    return sorted(float(k) for k in keys)  # type: ignore[arg-type]


def _tes(units: Sequence[DicomFile]) -> str:
    keys = sorted({_echo_key(f) for f in units} - {None})  # type: ignore[type-var]
    if keys:
        return "TE " + ", ".join(_fmt(float(k)) for k in keys) + " ms"  # type: ignore[arg-type]
    numbers = sorted({f.echo_number for f in units} - {None})  # type: ignore[type-var]
    return "echo numbers " + ", ".join(str(n) for n in numbers)


def _check_files(series: Series, units: Sequence[DicomFile]) -> list[Problem]:
    """Per-file (per-frame) and consistency checks that do not need positions sorted; each
    kind of problem once per series, with a count and the first file."""
    problems: list[Problem] = []
    files = list(units)
    for name, attr in (("ImagePositionPatient", "image_position"),
                       ("ImageOrientationPatient", "image_orientation"),
                       ("PixelSpacing", "pixel_spacing_mm"), ("Rows", "rows"),
                       ("Columns", "columns")):
        bad = [f for f in files if getattr(f, attr) is None]
        if bad:
            problems.append(_grouped(series, files, bad, f"miss (or have an invalid) {name}"))
    skew = []
    for f in files:
        if f.image_orientation is None:
            continue
        o = np.asarray(f.image_orientation)
        r, c = o[:3], o[3:]
        if (abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3
                or abs(np.dot(r, c)) > 1e-3):
            skew.append(f)
    if skew:
        problems.append(_grouped(
            series, files, skew, f"have an ImageOrientationPatient that is not two "
            f"orthonormal vectors (e.g. {tuple(skew[0].image_orientation or ())})"))
    bad_ps = [f for f in files if f.pixel_spacing_mm is not None and min(f.pixel_spacing_mm) <= 0]
    if bad_ps:
        problems.append(_grouped(series, files, bad_ps, f"have a PixelSpacing that is not "
                                                         f"positive (e.g. "
                                                         f"{bad_ps[0].pixel_spacing_mm})"))
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
                f"have {uid or '(empty)'!r}, e.g. {odd[0].where}"))
    o_ref = np.asarray(ref.image_orientation)
    dev = np.abs(o_all - o_ref).max(axis=1)
    odd = [f for f, d in zip(files, dev, strict=True) if d > ORIENTATION_TOL]
    if odd:
        problems.append(_grouped(
            series, files, odd,
            f"have an ImageOrientationPatient differing from "
            f"{tuple(ref.image_orientation or ())} of {ref.where} (by up to "
            f"{dev.max():.2g} > {ORIENTATION_TOL}, e.g. {tuple(odd[0].image_orientation or ())})"
            f"; one series must have one orientation"))
    odd = [f for f in files if (f.rows, f.columns) != (ref.rows, ref.columns)]
    if odd:
        problems.append(_grouped(
            series, files, odd, f"have Rows x Columns differing from {ref.rows} x "
            f"{ref.columns} of {ref.where} (e.g. {odd[0].rows} x {odd[0].columns})"))
    odd = [f for f in files if np.max(np.abs(np.subtract(f.pixel_spacing_mm,
                                                          ref.pixel_spacing_mm))) > 1e-4]
    if odd:
        problems.append(_grouped(
            series, files, odd, f"have a PixelSpacing differing from "
            f"{ref.pixel_spacing_mm} of {ref.where} (e.g. {odd[0].pixel_spacing_mm})"))
    return problems


def _units(series: Series, echo_time_ms: float | None
           ) -> tuple[list[DicomFile] | None, list[Problem]]:
    """The slices to stack: the series' files, or its multi-frame object's frames, of the
    echo ``echo_time_ms`` when given; of a multi-frame DWI, the frames of the series'
    ``frames_b_value`` when set (its trace frames where directional ones are beside them)."""
    files = list(series.files)
    if not files:
        return None, [_problem(series, None, "the series has no files")]
    if series.modality in NON_IMAGE_MODALITIES:
        return None, [_problem(series, files[0].path,
                               f"modality {series.modality} is not an image series")]
    not_image = [f for f in files if f.sop_class_uid in (RTSTRUCT_SOP_CLASS, SEG_SOP_CLASS)]
    if not_image:
        return None, [_grouped(series, files, not_image,
                               "are not images (RTSTRUCT / SEG objects)")]
    frames, problems = _multiframe_units(series)
    if problems:
        return None, problems
    units = list(series.files) if frames is None else frames
    if echo_time_ms is not None:
        kept = [f for f in units if f.echo_time_ms is not None
                and abs(f.echo_time_ms - echo_time_ms) <= ECHO_TOL_MS]
        if not kept:
            return None, [_problem(series, units[0].path if units else None,
                                   f"no {'frame' if frames else 'file'} has TE "
                                   f"{_fmt(echo_time_ms)} ms (the series has "
                                   f"{_tes(units) if units else 'no files'})")]
        units = kept
    b = getattr(series, "frames_b_value", None)
    if b is not None and frames is not None:
        kept = [f for f in units if f.b_value is not None and abs(f.b_value - b) <= B_TOLERANCE]
        if not kept:
            found = sorted({round(f.b_value) for f in units if f.b_value is not None})
            return None, [_problem(series, units[0].path,
                                   f"no frame has b = {_fmt(b)} s/mm² (the object has "
                                   f"{', '.join(str(v) for v in found) or 'none'})")]
        trace, directional = split_directional(kept)
        units = trace if trace and directional else kept
    return units, []


def _echo_id(f: DicomFile) -> tuple[str, float | int | None]:
    """What tells echoes apart: the echo time, else EchoNumbers."""
    key = _echo_key(f)
    return ("te", key) if key is not None else ("number", f.echo_number)


def _echo_problem(series: Series, units: Sequence[DicomFile],
                  clusters: Sequence[Sequence[DicomFile]]) -> Problem | None:
    """"several echoes (TE a, b ms) in one series: ..." when the units have more than one
    echo and some position holds several of them; for the frames of a multi-frame object,
    whenever their echo times differ."""
    if len({_echo_id(f) for f in units}) < 2:
        return None
    multi = [c for c in clusters if len(c) > 1]
    mixed = [c for c in multi if len({_echo_id(f) for f in c}) > 1]
    if not mixed and units[0].frame is None:
        return None
    sizes = sorted({len(c) for c in multi})
    if not multi:
        held = f"the {len(units)} {_noun(units)} lie at distinct positions"
    elif len(sizes) == 1:
        held = f"{len(multi)} positions hold {sizes[0]} echoes each"
    else:
        held = f"{len(multi)} positions hold {sizes[0]} to {sizes[-1]} echoes each"
    first = (mixed or multi or [units])[0][0]
    return _problem(series, first.path,
                    f"several echoes ({_tes(units)}) in one series: {held}; a rules `echo:` "
                    f"setting picks one")


def check_geometry(series: Series, echo_time_ms: float | None = None
                   ) -> tuple[Geometry | None, list[Problem]]:
    """The checked geometry of ``series``, or None and every problem found.

    Parameters
    ----------
    series : Series
        Classic single-frame files, or one multi-frame object (its frames are the slices).
    echo_time_ms : float, optional
        Stack only the files (frames) of this echo time (within 0.01 ms): the choice a rules
        ``echo:`` setting makes for a series with several echoes.

    Returns
    -------
    (Geometry or None, list of Problem)
        Each problem names patient, series and file (and frame); a kind of problem shared by
        many files is one problem with a count.
    """
    units, problems = _units(series, echo_time_ms)
    if units is None:
        return None, problems
    problems = _check_files(series, units)
    if problems:
        return None, problems
    files = list(units)
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

    gaps = np.diff(along)
    duplicate = gaps <= SPACING_ABS_TOL_MM
    clusters: list[list[DicomFile]] = [[files[0]]]
    for f, dup in zip(files[1:], duplicate, strict=True):
        if dup:
            clusters[-1].append(f)
        else:
            clusters.append([f])
    echo = _echo_problem(series, files, clusters)
    if echo is not None:
        return None, [echo]

    # Positions must lie on one line along the normal (no gantry tilt / shear).
    in_plane = positions - np.outer(along, normal)
    shift = np.linalg.norm(in_plane - in_plane[0], axis=1)
    tol_plane = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * min(dr, dc))
    shifted = [f for f, s in zip(files, shift, strict=True) if s > tol_plane]
    if shifted:
        problems.append(_grouped(
            series, files, shifted,
            f"have an ImagePositionPatient shifted in the image plane (by up to "
            f"{_fmt(shift.max())} mm) from {files[0].where} (gantry tilt or sheared stack); "
            f"not supported"))

    dups = np.flatnonzero(duplicate)
    if len(dups):
        a, b = files[dups[0]], files[dups[0] + 1]
        more = (f"; {len(dups)} duplicate positions in all, "
                f"{len({round(float(along[i]), 2) for i in dups})} distinct"
                if len(dups) > 1 else "")
        problems.append(_problem(
            series, b.path,
            f"duplicate slice position {_fmt(along[dups[0] + 1])} mm along the normal: "
            f"{a.where} and {b.where} (instance {a.instance_number} and "
            f"{b.instance_number}, echo {a.echo_number} and {b.echo_number}){more}; several "
            f"echoes, phases or repeated files in one series are not stacked"))
    real_gaps = gaps[~duplicate]
    if len(real_gaps):
        # The nominal spacing is the one most gaps share (ties: the smallest), so one moved
        # slice makes two odd gaps, not all the others.
        tols = np.maximum(SPACING_ABS_TOL_MM, SPACING_REL_TOL * real_gaps)
        close = np.abs(real_gaps[:, None] - real_gaps[None, :]) <= tols[:, None]
        support = close.sum(axis=1)
        best = np.flatnonzero(support == support.max())
        pick = best[np.argmin(real_gaps[best])]
        nominal = float(np.median(real_gaps[close[pick]]))
        tol = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * nominal)
        missing_msgs: list[tuple[DicomFile, str]] = []
        uneven_msgs: list[tuple[DicomFile, str]] = []
        for idx in np.flatnonzero(~duplicate):
            g = gaps[idx]
            if abs(g - nominal) <= tol:
                continue
            a, b = files[idx], files[idx + 1]
            m = round(g / nominal)
            if m >= 2 and abs(g - m * nominal) <= tol * m:
                missing = ", ".join(_fmt(along[idx] + q * nominal) for q in range(1, m))
                missing_msgs.append((b, (
                    f"gap of {_fmt(g)} mm between {a.where} (at {_fmt(along[idx])} mm along "
                    f"the normal) and {b.where} (at {_fmt(along[idx + 1])} mm), where the "
                    f"spacing is {_fmt(nominal)} mm; {m - 1} slice(s) missing at {missing} mm "
                    f"along the normal {tuple(np.round(normal, 4))}")))
            else:
                uneven_msgs.append((b, (
                    f"gap of {_fmt(g)} mm between {a.where} and {b.where}, where the spacing "
                    f"is {_fmt(nominal)} mm (tolerance {_fmt(tol)} mm)")))
        for kind, msgs in (("missing slice(s)", missing_msgs),
                           ("uneven slice spacing", uneven_msgs)):
            if not msgs:
                continue
            shown = "; ".join(m for _, m in msgs[:3])
            rest = f"; and {len(msgs) - 3} more such gap(s)" if len(msgs) > 3 else ""
            count = f" in {len(msgs)} of {len(gaps)} gaps" if len(msgs) > 1 else ""
            problems.append(_problem(series, msgs[0][0].path, f"{kind}{count}: {shown}{rest}"))
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


def geometry(series: Series, echo_time_ms: float | None = None) -> Geometry:
    """:func:`check_geometry`, raising :class:`SeriesError` on any problem."""
    geo, problems = check_geometry(series, echo_time_ms)
    if geo is None:
        raise SeriesError(problems)
    return geo


def lps_affine(series: Series, echo_time_ms: float | None = None) -> np.ndarray:
    """4x4 affine from data index (column, row, slice) to DICOM patient coordinates (LPS, mm).

    Slices are ordered by increasing position along row x column; raises SeriesError if the
    series fails the checks."""
    return geometry(series, echo_time_ms).lps.copy()


def ras_affine(series: Series, echo_time_ms: float | None = None) -> np.ndarray:
    """4x4 affine from data index (column, row, slice) to RAS+ mm (the NIfTI affine)."""
    return LPS_TO_RAS @ lps_affine(series, echo_time_ms)


# ------------------------------------------------------------------ C-level stderr of readers


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def stderr_to_log(what: str, logger: logging.Logger | None = None) -> Iterator[None]:
    """Capture file descriptor 2 (what C libraries such as GDCM print) while the block runs,
    and log each distinct line once, with its count, as a warning of ``logger``.

    GDCM writes e.g. "Unsupported JPEG data precision 12" once per slice straight to fd 2,
    below Python's ``sys.stderr``; a 300-slice series would print it 300 times. fd 2 is one
    per process: where another thread captures it already, or it cannot be duplicated (no
    stderr), the block runs uncaptured.

    Parameters
    ----------
    what : str
        Names what was being read (patient and series), prefixed to each logged line.
    logger : logging.Logger, optional
        Defaults to this module's logger.
    """
    logger = logger or log
    if not _STDERR_LOCK.acquire(blocking=False):
        yield
        return
    try:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            try:
                os.dup2(tmp.fileno(), 2)
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                counts = Counter(line.strip() for line in text.splitlines() if line.strip())
                for line, n in counts.items():
                    logger.warning("%s: the reader printed %r %d time(s)", what, line, n)
    finally:
        _STDERR_LOCK.release()


# ------------------------------------------------------------------------------ reading


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


def _what(series: Series) -> str:
    return f"patient {series.patient_id}, {series.label}"


def _read_classic(series: Series, geo: Geometry) -> np.ndarray:
    """The voxels [column, row, slice] of a classic series, read by SimpleITK (GDCM), its
    geometry cross-checked against ``geo``."""
    import SimpleITK as sitk

    names = [str(f.path) for f in geo.files]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    reader.SetOutputPixelType(sitk.sitkFloat64)  # rescale per file, no truncation
    try:
        with stderr_to_log(_what(series)):
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
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))


_HD_PIXELS = dict(apply_real_world_transform=False, apply_modality_transform=None,
                  apply_voi_transform=False, apply_presentation_lut=False,
                  apply_palette_color_lut=False, apply_icc_profile=False, dtype=np.float64)
"""highdicom's pixel options: the Modality LUT / rescale (per frame when given per frame),
nothing else; what SimpleITK gives for classic files."""


def _to_our_axes(array: np.ndarray, affine: np.ndarray, lps: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """highdicom's [slice, row, column] array and affine as [column, row, slice], each axis
    flipped where highdicom runs it against ``lps`` (it may order slices either way)."""
    data = np.transpose(array, (2, 1, 0))
    aff = np.array(affine, dtype=float)[:, [2, 1, 0, 3]]
    for axis in range(3):
        if float(np.dot(aff[:3, axis], lps[:3, axis])) < 0:
            data = np.flip(data, axis=axis)
            aff[:3, 3] += aff[:3, axis] * (data.shape[axis] - 1)
            aff[:3, axis] *= -1
    return data, aff


def _read_multiframe(series: Series, geo: Geometry) -> np.ndarray:
    """The voxels [column, row, slice] of a multi-frame object, read by highdicom, its
    geometry cross-checked against ``geo`` (from the frames' functional groups).

    All frames: ``highdicom.imread(path).get_volume()``; a subset (one echo of several):
    ``get_frames`` in the checked slice order, cross-checked against highdicom's
    ``get_volume_geometry``. Either way highdicom applies each frame's Pixel Value
    Transformation (RescaleSlope / RescaleIntercept, PS3.3 C.7.6.16.2.9)."""
    import highdicom as hd

    path = geo.files[0].path
    n_frames = series.files[0].number_of_frames
    try:
        with stderr_to_log(_what(series)):
            image = hd.imread(str(path))
            if len(geo.files) == n_frames:
                volume = image.get_volume(**_HD_PIXELS)
                array, affine = volume.array, volume.affine
            else:
                # Frames in the checked slice order (index 0 = lowest along the normal);
                # highdicom's geometry of the whole object (duplicates allowed) re-based on
                # the same first slice.
                array = np.asarray(image.get_frames([f.frame for f in geo.files],
                                                    **_HD_PIXELS))
                vg = image.get_volume_geometry(allow_duplicate_positions=True)
                if vg is None:
                    raise RuntimeError("highdicom finds no volume geometry")
                affine = np.array(vg.affine, dtype=float)
                if float(np.dot(affine[:3, 0], geo.lps[:3, 2])) < 0:
                    affine[:3, 3] += affine[:3, 0] * (vg.spatial_shape[0] - 1)
                    affine[:3, 0] *= -1
    except Exception as exc:  # highdicom raises many kinds on objects it cannot use
        raise SeriesError([_problem(
            series, path, f"highdicom cannot read the multi-frame object: "
                          f"{type(exc).__name__}: {exc}")]) from exc
    if array.ndim != 3:
        raise SeriesError([_problem(series, path, f"highdicom read an array of shape "
                                                  f"{array.shape}, not one volume")])
    data, aff = _to_our_axes(array, affine, geo.lps)
    if data.shape != geo.shape:
        raise SeriesError([_problem(series, path,
                                    f"highdicom read a grid of {data.shape}, the functional "
                                    f"groups say {geo.shape} (columns, rows, slices)")])
    corners = _grid_corners(geo.shape)
    diff = np.abs(aff @ corners - geo.lps @ corners).max()
    if diff > CROSS_CHECK_TOL_MM:
        raise SeriesError([_problem(
            series, path,
            f"highdicom's geometry differs from the functional groups' by {diff:.3g} mm at "
            f"the grid corners")])
    return data


def read_volume(series: Series, dtype=None, echo_time_ms: float | None = None
                ) -> nib.Nifti1Image:
    """The series as a NIfTI image in RAS+ (data index = column, row, slice).

    Parameters
    ----------
    series : Series
        Classic single-frame files (read by SimpleITK) or one multi-frame Enhanced / Legacy
        Converted Enhanced object (read by highdicom).
    dtype : numpy dtype, optional
        The stored data type; by default the smallest of int16, uint16, int32 that holds the
        rescaled values, float32 when they are not integers.
    echo_time_ms : float, optional
        Stack only this echo of a series with several (see :func:`check_geometry`).

    Returns
    -------
    nibabel.Nifti1Image
        sform and qform code 1 (scanner), units mm, ``descrip`` empty.

    Raises
    ------
    SeriesError
        Every problem, each naming patient, series and file, when the series fails the
        checks, or the reader cannot read it or disagrees with the headers' geometry.
    """
    geo = geometry(series, echo_time_ms)
    data = _read_multiframe(series, geo) if geo.multiframe else _read_classic(series, geo)
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
