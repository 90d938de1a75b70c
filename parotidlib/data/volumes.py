"""One patient's MR series and label maps: reading the NIfTI headers and voxels, and checking
them (label maps on their series' grid, finite images, label values, a tumour and the glands,
and a tumour on the side the manifest says: :mod:`parotidlib.data.laterality`).

Every problem names the patient, the column (series) and the file; nothing is written.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from parotidlib.constants import GLAND_LABEL, LABEL_TUMOR, SIDES
from parotidlib.data.laterality import side_conflict
from parotidlib.data.problems import CohortError, Problem
from parotidlib.study import DEFAULT_STUDY, Study

#: Tolerance (mm) when comparing a label map's affine with its series' affine.
AFFINE_ATOL_MM = 1e-3


@dataclass
class PatientVolumes:
    """The series of one patient and their label maps, as nibabel images.

    ``images`` maps each series of the study (``t1``, ``ce_t1``, ``t2`` by default) to a
    ``nibabel.Nifti1Image``; ``labels`` does so for the series with a label map of their own
    (:attr:`parotidlib.study.Study.label_series`: all of them, or ``labels_from`` alone);
    ``info`` is the manifest row (dict) with the clinical columns.
    """

    patient_id: str
    histology: str
    tumor_side: str
    images: dict[str, nib.Nifti1Image]
    labels: dict[str, nib.Nifti1Image]
    info: dict = field(default_factory=dict)


def _load_header(pid: str, col: str, path: str) -> tuple[nib.Nifti1Image | None, Problem | None]:
    """nib.load (header only: data stay on disk) with errors turned into a Problem."""
    if path == "":
        return None, Problem(pid, col, None, "no file given")
    if not Path(path).is_file():
        return None, Problem(pid, col, path, "file not found")
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises many types for a corrupt file
        return None, Problem(pid, col, path, f"unreadable NIfTI ({type(exc).__name__}: {exc})")
    if len(img.shape) != 3:
        return None, Problem(pid, col, path, f"expected a 3-D volume, got shape {img.shape}")
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)) or \
            abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        return None, Problem(pid, col, path, f"invalid (non-finite or singular) affine {affine}")
    return img, None


def check_patient_headers(row: Mapping, study: Study = DEFAULT_STUDY) -> list[Problem]:
    """Check one manifest row's files (images and label maps) without reading voxel data.

    Parameters
    ----------
    row : mapping
        A manifest row with absolute paths (``Cohort.manifest`` row).
    study : Study
        The series read, and which of them have a label map.

    Returns
    -------
    list of Problem
        File missing or unreadable, not 3-D, invalid affine, or a label map whose grid
        (shape, affine within ``AFFINE_ATOL_MM``) differs from its series' grid.
    """
    pid = row["patient_id"]
    problems: list[Problem] = []
    for series in study.series:
        img, problem = _load_header(pid, series, row[series])
        if series not in study.label_series:
            problems += [problem] if problem is not None else []
            continue
        lab, lab_problem = _load_header(pid, f"{series}_labels", row[f"{series}_labels"])
        problems += [p for p in (problem, lab_problem) if p is not None]
        if img is None or lab is None:
            continue
        if lab.shape != img.shape or not np.allclose(lab.affine, img.affine, rtol=0,
                                                     atol=AFFINE_ATOL_MM):
            problems.append(Problem(
                pid, f"{series}_labels", row[f"{series}_labels"],
                f"label map grid (shape {lab.shape}) differs from its series {series} "
                f"({row[series]}, shape {img.shape}); affines:\n{lab.affine}\nvs\n{img.affine}"))
    return problems


def load_patient(source: Any, patient_id: str | None = None,
                 load_data: bool = True, study: Study = DEFAULT_STUDY) -> PatientVolumes:
    """Load one patient's series and label maps.

    Parameters
    ----------
    source : Cohort or mapping
        A :class:`Cohort` (then give ``patient_id``) or a manifest row with absolute paths.
    patient_id : str, optional
        Required with a Cohort.
    load_data : bool
        Read the voxels now (images then hold in-memory arrays, so later steps do not
        re-read the files); False keeps nibabel's lazy proxies.
    study : Study
        The series loaded, and which of them have a label map.

    Returns
    -------
    PatientVolumes

    Raises
    ------
    CohortError
        A file is missing or unreadable (names patient, column and file).
    """
    if not isinstance(source, Mapping | pd.Series):  # a Cohort (parotidlib.data.cohort)
        if patient_id is None:
            raise ValueError("patient_id is required when source is a Cohort")
        row = source.row(patient_id).to_dict()
    else:
        row = dict(source)
        if patient_id is not None and patient_id != row.get("patient_id"):
            raise ValueError(f"patient_id {patient_id!r} does not match the row's "
                             f"{row.get('patient_id')!r}")
    pid = str(row["patient_id"])
    images: dict[str, nib.Nifti1Image] = {}
    labels: dict[str, nib.Nifti1Image] = {}
    problems: list[Problem] = []
    for series in study.series:
        own = ((f"{series}_labels", labels),) if series in study.label_series else ()
        for col, store in ((series, images), *own):
            img, problem = _load_header(pid, col, str(row[col]))
            if problem is not None:
                problems.append(problem)
                continue
            if load_data:
                try:
                    data = np.asanyarray(img.dataobj)
                except Exception as exc:  # truncated/corrupt data block
                    problems.append(Problem(pid, col, str(row[col]),
                                            f"cannot read voxel data ({type(exc).__name__}: "
                                            f"{exc})"))
                    continue
                img = nib.Nifti1Image(data, img.affine, img.header)
            store[series] = img
    if problems:
        raise CohortError(problems)
    return PatientVolumes(pid, str(row["histology"]), str(row["tumor_side"]), images, labels,
                          info=row)


def check_patient_data(volumes: PatientVolumes) -> list[Problem]:
    """Check the voxels of one patient.

    Images: every voxel finite. Label maps: integer values in {0, 1, 2, 3}, at least one
    tumour voxel (3) and the gland label of the tumour's side (1 right, 2 left; both for
    ``tumor_side`` "both") present. A missing contralateral gland is not an error: it warns,
    and the patient then gives no free slices (curation lists it in dataset.json).

    The tumour must also lie where the manifest says (:func:`.laterality.side_conflict`, on
    each label map): for ``left`` or ``right`` no part of it on the other side of the
    midline, for ``both`` a part on each side. A conflict is a problem of column
    ``tumor_side`` naming the label map's file, what the manifest says and where the
    tumour lies (one problem for the patient when all its label maps conflict, as with a
    wrong manifest entry); curation would otherwise label the tumour-bearing gland's slices
    "free".

    Returns
    -------
    list of Problem
    """
    pid = volumes.patient_id
    problems: list[Problem] = []
    conflicts: dict[str, tuple[str | None, str]] = {}  # label map -> (file, side conflict)
    for series, img in volumes.images.items():
        path = img.get_filename() or volumes.info.get(series)
        data = np.asanyarray(img.dataobj)
        # integer data are always finite; float data are checked voxel by voxel
        n_bad = 0 if not np.issubdtype(data.dtype, np.inexact) else \
            int(data.size - np.count_nonzero(np.isfinite(data)))
        if n_bad:
            problems.append(Problem(pid, series, path, f"{n_bad} NaN/inf voxel(s)"))
        if series not in volumes.labels:  # labels_from: another series' label map
            continue
        col = f"{series}_labels"
        lab = volumes.labels[series]
        path = lab.get_filename() or volumes.info.get(col)
        values = np.asanyarray(lab.dataobj)
        if values.dtype == bool:
            values = values.astype(np.uint8)
        if np.issubdtype(values.dtype, np.integer):
            # cheap range test first; the voxel-wise mask only to report bad values
            ok = values.size and values.min() >= 0 and values.max() <= LABEL_TUMOR
            valid = None if ok else (values >= 0) & (values <= LABEL_TUMOR)
        else:
            valid = np.isfinite(values) & (values >= 0) & (values <= LABEL_TUMOR) & \
                (values == np.floor(values))
        if valid is not None and not valid.all():
            bad = np.unique(values[~valid])[:10]
            problems.append(Problem(pid, col, path,
                                    f"label values {bad.tolist()} not in {{0, 1, 2, 3}}"))
            continue
        values = values.astype(np.uint8, copy=False)
        counts = np.bincount(values.ravel(), minlength=4)
        n_before = len(problems)
        if counts[LABEL_TUMOR] == 0:
            problems.append(Problem(pid, col, path, "no tumour voxel (label 3)"))
        tumour_sides = {"left", "right"} if volumes.tumor_side == "both" else {volumes.tumor_side}
        for side, value in GLAND_LABEL.items():
            if counts[value]:
                continue
            if side in tumour_sides:  # the gland channel and the tumour's side need it
                problems.append(Problem(pid, col, path,
                                        f"no {side} parotid gland voxel (label {value})"))
            else:  # contralateral gland absent (e.g. resected): usable, without free slices
                warnings.warn(f"patient {pid}, {col} ({path}): no {side} (contralateral) parotid "
                              f"gland voxel (label {value}); this patient gives no free slices",
                              stacklevel=2)
        if len(problems) == n_before and volumes.tumor_side in SIDES:
            conflict = side_conflict(volumes.tumor_side, values, lab.affine)
            if conflict is not None:
                conflicts[col] = (path, conflict)
    cols = [f"{s}_labels" for s in volumes.labels]
    return problems + _side_problems(pid, conflicts, cols)


def _side_problems(pid: str, conflicts: dict[str, tuple[str | None, str]],
                   cols: list[str]) -> list[Problem]:
    """One problem per label map that contradicts ``tumor_side``; one in all when all of
    the label maps ``cols`` (two or more) do."""
    if len(cols) > 1 and list(conflicts) == cols:  # the usual case (a wrong manifest): once
        path, message = conflicts[cols[0]]
        others = (f"{', '.join(cols[1:-1])} and {cols[-1]} contradict" if len(cols) > 2
                  else f"{cols[1]} contradicts")
        return [Problem(pid, "tumor_side", path,
                        f"{message} (label map {cols[0]}; {others} the manifest too)")]
    return [Problem(pid, "tumor_side", path, f"{message} (label map {col})")
            for col, (path, message) in conflicts.items()]
