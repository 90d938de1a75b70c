"""Reading and validating a cohort (docs/cohort-format.md).

A cohort is a folder with ``manifest.csv`` (one row per patient, paths relative to the
manifest's folder) and, per patient, the study's MR series (:class:`parotidlib.study.Study`;
by default T1, CE-T1, T2) with one label map per series on that series' grid (0 background,
1 right parotid gland, 2 left parotid gland, 3 tumour), or with ``labels_from`` one label
map of that series.

Validation runs in two stages so that a large cohort is checked cheaply first:

* :func:`read_manifest` checks the table (columns, unique ids, allowed values: a histology
  the class scheme covers, :class:`parotidlib.study.ClassScheme`) and every NIfTI *header*
  (file exists and is readable, 3-D, finite affine, label map on its series' grid); with
  ``check_data=True`` (the default) it also runs :func:`validate_cohort`.
* :func:`validate_cohort` / :func:`check_patient_data` read the voxels: NaN/inf in images,
  label values outside {0, 1, 2, 3}, no tumour, a missing gland label.

Every problem names the patient, the column (series) and the file; all problems are collected
and raised together in one :class:`CohortError`. Patients whose histology the class scheme
excludes are left out before any check (:attr:`Cohort.excluded`). Nothing in the cohort
folder is written.
Problems are defined in :mod:`.problems`, one patient's volumes and their checks in
:mod:`.volumes`; this module holds the cohort as a whole.
"""


from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.constants import SIDES
from parotidlib.data.manifest import ManifestReadError, read_manifest_table
from parotidlib.data.problems import CohortError, Problem
from parotidlib.data.volumes import (
    PatientVolumes,
    check_patient_data,
    check_patient_headers,
    load_patient,
)
from parotidlib.progress import tqdm  # a widget in a notebook, plain text in a run
from parotidlib.study import DEFAULT_STUDY, PAPER_CLASSES, QUANTITATIVE, ClassScheme, Study

__all__ = ["Cohort", "CohortError", "PatientVolumes", "Problem", "check_patient_data",
           "check_patient_headers", "load_patient", "read_manifest", "scan_manifest",
           "skip_patients", "validate_cohort"]

logger = logging.getLogger(__name__)

#: Allowed values of the manifest's ``sex`` column.
SEXES: tuple[str, ...] = ("M", "F")


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
    study : Study
        The series read and their label maps (the image and label columns above).
    scheme : ClassScheme
        How histologies map to classes; the histologies allowed are those it maps or excludes.
    excluded : pandas.DataFrame or None
        The manifest rows of the patients whose histology the scheme excludes (left out
        unchecked); None when there were none.
    """

    manifest: pd.DataFrame
    root: Path
    manifest_path: Path
    skipped: list[Problem] = field(default_factory=list)
    study: Study = DEFAULT_STUDY
    scheme: ClassScheme = PAPER_CLASSES
    excluded: pd.DataFrame | None = None

    @property
    def patient_ids(self) -> list[str]:
        """Patient ids in manifest order."""
        return list(self.manifest["patient_id"])

    @property
    def excluded_counts(self) -> dict[str, int]:
        """Patients left out per excluded histology, every one of the scheme's ``exclude``
        (0 when the cohort has none), in the scheme's order."""
        hist = self.excluded["histology"] if self.excluded is not None else pd.Series([])
        return {h: int((hist == h).sum()) for h in self.scheme.exclude}

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


# --------------------------------------------------------------------------- manifest table


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return read_manifest_table(path)
    except ManifestReadError as exc:
        raise CohortError([Problem(None, None, str(path), str(exc))], path) from None


def _missing_columns(table: pd.DataFrame, study: Study) -> str:
    """The message naming the required columns ``table`` lacks and the series that need them
    (the manifest is the problem's file), "" when it has them all."""
    required = study.required_columns
    missing = [c for c in required if c not in table.columns]
    if not missing:
        return ""
    why = ""
    if any(c in study.file_columns or c in study.scale_columns for c in missing):
        label_maps = ("each series' label map (<series>_labels)" if not study.labels_from
                      else f"the label map of labels_from {study.labels_from!r}")
        why = (f" (the series param is {list(study.series)}: one image column per series, "
               f"{label_maps}"
               + (", the scale of each quantitative series" if study.scale_columns else "")
               + ")")
    return f"missing column(s) {missing}{why}; required: {list(required)}"


def _check_scales(row: pd.Series, manifest: Path, study: Study) -> list[Problem]:
    """Each quantitative series' scale (a finite number > 0) in one patient's row."""
    problems = []
    for series in study.series:
        if series not in QUANTITATIVE:
            continue
        quantity = QUANTITATIVE[series]
        col = quantity.scale_column
        scale = pd.to_numeric(pd.Series([row[col]]), errors="coerce").iloc[0]
        if not (np.isfinite(scale) and scale > 0):
            problems.append(Problem(
                row["patient_id"], col, str(manifest),
                f"{col} must be a number > 0 ({series} in {quantity.unit} = stored value x "
                f"{col}), got {row[col]!r}"))
    return problems


def _histology_problem(pid: str, histology: str, manifest: Path, scheme: ClassScheme
                       ) -> Problem:
    """A histology the class scheme does not cover, naming the scheme, its classes and what
    it covers."""
    mapped = list(scheme.histologies)
    shown = mapped if len(mapped) <= 8 else [*mapped[:8], "..."]
    return Problem(pid, "histology", str(manifest),
                   f"unknown histology {histology!r}: not covered by the class scheme "
                   f"{scheme.name!r} (classes {list(scheme.classes)}; histologies {shown}"
                   + (f", excluded {list(scheme.exclude)}" if scheme.exclude else "")
                   + "): map it to a class in the classes param, or list it under exclude")


def _check_table(table: pd.DataFrame, manifest: Path, unknown_histology: bool = False,
                 study: Study = DEFAULT_STUDY, scheme: ClassScheme = PAPER_CLASSES
                 ) -> tuple[list[Problem], list[Problem]]:
    """Return (fatal problems of the whole table, per-patient problems); with
    ``unknown_histology`` an empty histology cell is allowed (a patient without diagnosis).
    A histology must be one the class scheme maps or excludes."""
    fatal: list[Problem] = []
    missing = _missing_columns(table, study)
    if missing:
        fatal.append(Problem(None, None, str(manifest), missing))
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
    allowed = {"tumor_side": SIDES, "sex": SEXES}
    covered = {*scheme.histologies, *scheme.exclude}
    for _, row in table.iterrows():
        pid = row["patient_id"]
        if row["histology"] not in covered and not (unknown_histology
                                                    and row["histology"] == ""):
            problems.append(_histology_problem(pid, row["histology"], manifest, scheme))
        for col, values in allowed.items():
            if row[col] not in values:
                problems.append(Problem(pid, col, str(manifest),
                                        f"unknown {col} {row[col]!r}; allowed: {list(values)}"))
        age = pd.to_numeric(pd.Series([row["age"]]), errors="coerce").iloc[0]
        if not (np.isfinite(age) and age >= 0):
            problems.append(Problem(pid, "age", str(manifest),
                                    f"age must be a number of years >= 0, got {row['age']!r}"))
        problems += _check_scales(row, manifest, study)
    return fatal, problems


def _resolve_paths(table: pd.DataFrame, root: Path, study: Study) -> pd.DataFrame:
    table = table.copy()
    for col in study.file_columns:
        table[col] = [str((root / p).resolve()) if p != "" else "" for p in table[col]]
    return table


def validate_cohort(cohort: Cohort, progress: bool = True) -> list[Problem]:
    """Read every patient's voxels and return all data problems (see check_patient_data)."""
    problems: list[Problem] = []
    for _, row in tqdm(cohort.manifest.iterrows(), total=len(cohort), desc="validate",
                       disable=None if progress else True):
        try:
            volumes = load_patient(row, study=cohort.study)
        except CohortError as exc:
            problems += exc.problems
            continue
        problems += check_patient_data(volumes)
    return problems


# --------------------------------------------------------------------------- entry point


def scan_manifest(path: str | Path, check_data: bool = True, unknown_histology: bool = False,
                  study: Study = DEFAULT_STUDY, scheme: ClassScheme = PAPER_CLASSES
                  ) -> tuple[Cohort, list[Problem]]:
    """Read a manifest and collect its problems without raising for patients' problems.

    ``unknown_histology`` allows empty histology cells: patients without a diagnosis, whom a
    trained model is applied to (``curate_cohort(external=True)``); training needs them all.
    ``study`` says which series are read (their columns are required, other series' ignored).
    ``scheme`` says which histologies are allowed (those it maps or excludes; any other is a
    problem of the patient naming the scheme); patients of an excluded histology are left
    out unchecked, into ``Cohort.excluded``.

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
        Problems of the table itself (unreadable, missing columns, no rows, empty ids). A
        missing column is named with the manifest and, for a series' column, the series.
    """
    manifest = Path(path).resolve()
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    root = manifest.parent
    table = _read_table(manifest)
    fatal, problems = _check_table(table, manifest, unknown_histology, study, scheme)
    if fatal:
        raise CohortError(fatal, manifest)
    out = table["histology"].isin(scheme.exclude)
    excluded = table[out].reset_index(drop=True) if out.any() else None
    left_out = set(table.loc[out, "patient_id"])
    problems = [p for p in problems if p.patient_id not in left_out]
    table = _resolve_paths(table[~out].reset_index(drop=True), root, study)
    for _, row in table.iterrows():
        problems += check_patient_headers(row, study)
    if check_data:
        bad_header = {p.patient_id for p in problems}
        unchecked = table[~table["patient_id"].isin(bad_header)]
        problems += validate_cohort(Cohort(unchecked, root, manifest, study=study,
                                           scheme=scheme))
    bad = {p.patient_id for p in problems}
    good = table[~table["patient_id"].isin(bad)].reset_index(drop=True)
    return Cohort(good, root, manifest, study=study, scheme=scheme, excluded=excluded), problems


def skip_patients(cohort: Cohort, problems: list[Problem]) -> Cohort:
    """Warn about each patient with problems and record them in ``cohort.skipped``."""
    for pid in sorted({p.patient_id for p in problems}, key=str):
        reasons = "; ".join(p.message for p in problems if p.patient_id == pid)
        msg = f"skipping patient {pid}: {reasons}"
        logger.warning(msg)
        warnings.warn(msg, stacklevel=3)
    keep = ~cohort.manifest["patient_id"].isin({p.patient_id for p in problems})
    return Cohort(cohort.manifest[keep].reset_index(drop=True), cohort.root,
                  cohort.manifest_path, [*cohort.skipped, *problems], cohort.study,
                  cohort.scheme, cohort.excluded)


def read_manifest(path: str | Path, skip_invalid: bool = False,
                  check_data: bool = True, unknown_histology: bool = False,
                  study: Study = DEFAULT_STUDY, scheme: ClassScheme = PAPER_CLASSES) -> Cohort:
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
    unknown_histology : bool
        Allow patients without histology (empty cells): a cohort a trained model is applied
        to (:func:`scan_manifest`).
    study : Study
        The series read and their label maps (default: the paper's; a run's is
        ``CurationConfig.study``).
    scheme : ClassScheme
        The histologies allowed and excluded (default: the paper's classes; a run's is
        ``CurationConfig.class_scheme``).

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
    cohort, problems = scan_manifest(path, check_data=check_data,
                                     unknown_histology=unknown_histology, study=study,
                                     scheme=scheme)
    if problems and not skip_invalid:
        raise CohortError(problems, cohort.manifest_path)
    if problems:
        cohort = skip_patients(cohort, problems)
    return cohort
