"""Reading and validating a cohort (DESIGN.md, "Cohort format").

A cohort is a folder with ``manifest.csv`` (one row per patient, paths relative to the
manifest's folder) and, per patient, three MR series (T1, CE-T1, T2) with one label map per
series on that series' grid (0 background, 1 right parotid gland, 2 left parotid gland,
3 tumour).

Validation runs in two stages so that a large cohort is checked cheaply first:

* :func:`read_manifest` checks the table (columns, unique ids, allowed values) and every
  NIfTI *header* (file exists and is readable, 3-D, finite affine, label map on its series'
  grid); with ``check_data=True`` (the default) it also runs :func:`validate_cohort`.
* :func:`validate_cohort` / :func:`check_patient_data` read the voxels: NaN/inf in images,
  label values outside {0, 1, 2, 3}, no tumour, a missing gland label.

Every problem names the patient, the column (series) and the file; all problems are collected
and raised together in one :class:`CohortError`. Nothing in the cohort folder is written.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm  # plain text bars: ipywidgets is not a dependency

from parotidlib.constants import (
    GLAND_LABEL,
    HISTOLOGIES,
    IMAGE_COLUMNS,
    LABEL_COLUMNS,
    LABEL_TUMOR,
    MANIFEST_COLUMNS,
    SERIES,
    SIDES,
)

logger = logging.getLogger(__name__)

#: Allowed values of the manifest's ``sex`` column.
SEXES: tuple[str, ...] = ("M", "F")
#: Tolerance (mm) when comparing a label map's affine with its series' affine.
AFFINE_ATOL_MM = 1e-3
#: Columns read as text (ids like "007" must not become numbers).
_TEXT_COLUMNS = ("patient_id", "histology", "tumor_side", "sex", "scanner",
                 *IMAGE_COLUMNS, *LABEL_COLUMNS)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cohort.

    Attributes
    ----------
    patient_id : str or None
        None for problems of the whole manifest (e.g. a missing column).
    column : str or None
        Manifest column (a series name for image problems, e.g. ``"t2_labels"``).
    path : str or None
        The file concerned (absolute), or the manifest.
    message : str
        What is wrong and what is allowed.
    """

    patient_id: str | None
    column: str | None
    path: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.patient_id is not None:
            where.append(f"patient {self.patient_id}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.path is not None:
            where.append(f"file {self.path}")
        return f"{', '.join(where) or 'cohort'}: {self.message}"


class CohortError(ValueError):
    """A cohort that cannot be used; ``problems`` lists everything found, not just the first."""

    def __init__(self, problems: Iterable[Problem], source: str | Path | None = None):
        self.problems: list[Problem] = list(problems)
        head = f"invalid cohort {source}" if source is not None else "invalid cohort"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}: {len(self.problems)} problem(s)\n{lines}")


@dataclass
class Cohort:
    """A validated manifest.

    Attributes
    ----------
    manifest : pandas.DataFrame
        One row per usable patient, sorted as in the file; the image and label columns hold
        absolute resolved paths (str). Optional columns are carried through.
    root : Path
        The manifest's folder (what relative paths were resolved against).
    manifest_path : Path
        The manifest file (absolute).
    skipped : list of Problem
        Problems of patients left out with ``skip_invalid=True`` (one entry per problem).
    """

    manifest: pd.DataFrame
    root: Path
    manifest_path: Path
    skipped: list[Problem] = field(default_factory=list)

    @property
    def patient_ids(self) -> list[str]:
        """Patient ids in manifest order."""
        return list(self.manifest["patient_id"])

    @property
    def skipped_ids(self) -> list[str]:
        """Ids of skipped patients, sorted, each once."""
        return sorted({p.patient_id for p in self.skipped if p.patient_id is not None})

    def row(self, patient_id: str) -> pd.Series:
        """The manifest row of ``patient_id`` (KeyError naming it if absent)."""
        match = self.manifest.index[self.manifest["patient_id"] == patient_id]
        if len(match) != 1:
            raise KeyError(f"patient_id {patient_id!r} is not in the cohort {self.manifest_path}")
        return self.manifest.loc[match[0]]

    def __len__(self) -> int:
        return len(self.manifest)


@dataclass
class PatientVolumes:
    """The three series of one patient and their label maps, as nibabel images.

    ``images`` and ``labels`` map a series name (``t1``, ``ce_t1``, ``t2``) to a
    ``nibabel.Nifti1Image``; ``info`` is the manifest row (dict) with the clinical columns.
    """

    patient_id: str
    histology: str
    tumor_side: str
    images: dict[str, nib.Nifti1Image]
    labels: dict[str, nib.Nifti1Image]
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- manifest table


def _read_table(path: Path) -> pd.DataFrame:
    try:
        # Text columns stay text ("007" is an id, not 7); empty cells become "".
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CohortError([Problem(None, None, str(path), f"cannot read manifest: {exc}")],
                          path) from None
    for col in table.columns:
        if col in _TEXT_COLUMNS:
            table[col] = table[col].astype(object).str.strip()
            continue
        # Optional columns (TR/TE, field strength, ...) and age: numbers where they all parse.
        numeric = pd.to_numeric(table[col].replace("", np.nan), errors="coerce")
        if numeric.notna().sum() == (table[col] != "").sum():
            table[col] = numeric
    return table


def _check_table(table: pd.DataFrame, manifest: Path) -> tuple[list[Problem], list[Problem]]:
    """Return (fatal problems of the whole table, per-patient problems)."""
    fatal: list[Problem] = []
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        fatal.append(Problem(None, None, str(manifest),
                             f"missing column(s) {missing}; required: {list(MANIFEST_COLUMNS)}"))
        return fatal, []
    if len(table) == 0:
        fatal.append(Problem(None, None, str(manifest), "the manifest has no patient rows"))
        return fatal, []
    problems: list[Problem] = []
    for pid in table["patient_id"]:
        if pid == "":
            fatal.append(Problem(None, "patient_id", str(manifest), "empty patient_id"))
    counts = table["patient_id"].value_counts()
    for pid, n in counts[counts > 1].items():
        if pid != "":
            problems.append(Problem(pid, "patient_id", str(manifest),
                                    f"duplicate patient_id ({n} rows)"))
    allowed = {"histology": HISTOLOGIES, "tumor_side": SIDES, "sex": SEXES}
    for _, row in table.iterrows():
        pid = row["patient_id"]
        for col, values in allowed.items():
            if row[col] not in values:
                problems.append(Problem(pid, col, str(manifest),
                                        f"unknown {col} {row[col]!r}; allowed: {list(values)}"))
        age = pd.to_numeric(pd.Series([row["age"]]), errors="coerce").iloc[0]
        if not (np.isfinite(age) and age >= 0):
            problems.append(Problem(pid, "age", str(manifest),
                                    f"age must be a number of years >= 0, got {row['age']!r}"))
    return fatal, problems


def _resolve_paths(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    table = table.copy()
    for col in (*IMAGE_COLUMNS, *LABEL_COLUMNS):
        table[col] = [str((root / p).resolve()) if p != "" else "" for p in table[col]]
    return table


# --------------------------------------------------------------------------- headers


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


def check_patient_headers(row: Mapping) -> list[Problem]:
    """Check one manifest row's six files without reading voxel data.

    Parameters
    ----------
    row : mapping
        A manifest row with absolute paths (``Cohort.manifest`` row).

    Returns
    -------
    list of Problem
        File missing or unreadable, not 3-D, invalid affine, or a label map whose grid
        (shape, affine within ``AFFINE_ATOL_MM``) differs from its series' grid.
    """
    pid = row["patient_id"]
    problems: list[Problem] = []
    for series in SERIES:
        img, problem = _load_header(pid, series, row[series])
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


# --------------------------------------------------------------------------- loading and data


def load_patient(source: Cohort | Mapping | pd.Series, patient_id: str | None = None,
                 load_data: bool = True) -> PatientVolumes:
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

    Returns
    -------
    PatientVolumes

    Raises
    ------
    CohortError
        A file is missing or unreadable (names patient, column and file).
    """
    if isinstance(source, Cohort):
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
    for series in SERIES:
        for col, store in ((series, images), (f"{series}_labels", labels)):
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

    Returns
    -------
    list of Problem
    """
    pid = volumes.patient_id
    problems: list[Problem] = []
    for series in SERIES:
        img = volumes.images[series]
        path = img.get_filename() or volumes.info.get(series)
        data = np.asanyarray(img.dataobj)
        # integer data are always finite; float data are checked voxel by voxel
        n_bad = 0 if not np.issubdtype(data.dtype, np.inexact) else \
            int(data.size - np.count_nonzero(np.isfinite(data)))
        if n_bad:
            problems.append(Problem(pid, series, path, f"{n_bad} NaN/inf voxel(s)"))
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
        counts = np.bincount(values.astype(np.uint8, copy=False).ravel(), minlength=4)
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
    return problems


def validate_cohort(cohort: Cohort, progress: bool = True) -> list[Problem]:
    """Read every patient's voxels and return all data problems (see check_patient_data)."""
    problems: list[Problem] = []
    for _, row in tqdm(cohort.manifest.iterrows(), total=len(cohort), desc="validate",
                       disable=None if progress else True):
        try:
            volumes = load_patient(row)
        except CohortError as exc:
            problems += exc.problems
            continue
        problems += check_patient_data(volumes)
    return problems


# --------------------------------------------------------------------------- entry point


def scan_manifest(path: str | Path, check_data: bool = True) -> tuple[Cohort, list[Problem]]:
    """Read a manifest and collect its problems without raising for patients' problems.

    Returns
    -------
    cohort : Cohort
        The patients without problems (``skipped`` is empty).
    problems : list of Problem
        Every problem of the other patients.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CohortError
        Problems of the table itself (unreadable, missing columns, no rows, empty ids).
    """
    manifest = Path(path).resolve()
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    root = manifest.parent
    table = _read_table(manifest)
    fatal, problems = _check_table(table, manifest)
    if fatal:
        raise CohortError(fatal, manifest)
    table = _resolve_paths(table, root)
    for _, row in table.iterrows():
        problems += check_patient_headers(row)
    if check_data:
        bad_header = {p.patient_id for p in problems}
        unchecked = table[~table["patient_id"].isin(bad_header)]
        problems += validate_cohort(Cohort(unchecked, root, manifest))
    bad = {p.patient_id for p in problems}
    good = table[~table["patient_id"].isin(bad)].reset_index(drop=True)
    return Cohort(good, root, manifest), problems


def skip_patients(cohort: Cohort, problems: list[Problem]) -> Cohort:
    """Warn about each patient with problems and record them in ``cohort.skipped``."""
    for pid in sorted({p.patient_id for p in problems}, key=str):
        reasons = "; ".join(p.message for p in problems if p.patient_id == pid)
        msg = f"skipping patient {pid}: {reasons}"
        logger.warning(msg)
        warnings.warn(msg, stacklevel=3)
    keep = ~cohort.manifest["patient_id"].isin({p.patient_id for p in problems})
    return Cohort(cohort.manifest[keep].reset_index(drop=True), cohort.root,
                  cohort.manifest_path, [*cohort.skipped, *problems])


def read_manifest(path: str | Path, skip_invalid: bool = False,
                  check_data: bool = True) -> Cohort:
    """Read and validate a cohort's ``manifest.csv``.

    Parameters
    ----------
    path : path
        The manifest file; relative paths inside resolve against its folder.
    skip_invalid : bool
        False: any problem raises. True: patients with problems are left out (listed in
        ``Cohort.skipped`` and logged with a warning); problems of the table itself (missing
        columns, no rows, empty ids) still raise.
    check_data : bool
        Also read the voxels (:func:`validate_cohort`); False checks headers only (fast;
        curation checks the data of each patient as it loads them).

    Returns
    -------
    Cohort

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CohortError
        With every problem found (patient, column, file, message).

    Examples
    --------
    >>> cohort = read_manifest("data/synthetic/manifest.csv")  # doctest: +SKIP
    >>> volumes = load_patient(cohort, cohort.patient_ids[0])  # doctest: +SKIP
    """
    cohort, problems = scan_manifest(path, check_data=check_data)
    if problems and not skip_invalid:
        raise CohortError(problems, cohort.manifest_path)
    if problems:
        cohort = skip_patients(cohort, problems)
    return cohort
