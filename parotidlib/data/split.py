"""Patient-level train/test splits (Xia et al. 2021, "Dataset and MR Image Preprocessing").

The paper divides its 233 patients at random into training and test sets "at a ratio of 9:1"
(212 and 21 patients). Splitting by patient, never by slice, keeps every slice of a patient -
its lesion slices and its free (contralateral gland) slices - on one side, so that no test
patient is seen in training. Splits are stratified by histology and seeded.

Note on sizes: the number of test patients is ``round(n * test_fraction)``; 0.1 x 233 gives 23.
The paper's 212/21 is ``test_fraction`` 21/233 = 0.09.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from parotidlib.config import check_int

SPLITS: tuple[str, ...] = ("train", "test")
#: The split of every patient of a cohort curated for a trained model (external validation,
#: new patients): no patient of it is trained on (``curate_cohort(external=True)``).
EXTERNAL = "external"


class LeakageError(ValueError):
    """A patient appears in more than one split."""


def _patient_table(patients_df: pd.DataFrame) -> pd.DataFrame:
    for col in ("patient_id", "histology"):
        if col not in patients_df.columns:
            raise ValueError(f"patients_df must have a {col!r} column, got columns "
                             f"{list(patients_df.columns)}")
    per_patient = patients_df.groupby("patient_id", sort=True)["histology"].nunique()
    mixed = per_patient[per_patient > 1]
    if len(mixed):
        raise ValueError(f"patients_df gives several histologies for patient(s) "
                         f"{list(mixed.index)}")
    table = patients_df.drop_duplicates("patient_id")[["patient_id", "histology"]]
    return table.sort_values("patient_id").reset_index(drop=True)


def split_patients(patients_df: pd.DataFrame, test_fraction: float = 0.1, seed: int = 0,
                   cv_folds: int = 0, fold: int = 0) -> pd.Series:
    """Assign every patient to "train" or "test", stratified by histology.

    Parameters
    ----------
    patients_df : pandas.DataFrame
        Columns ``patient_id`` and ``histology``; one row per patient or several (e.g. the
        slices table: rows are grouped by patient).
    test_fraction : float
        Fraction of patients in the test set, in (0, 1); used when ``cv_folds`` is 0.
        ``round(n * test_fraction)`` patients (at least 1) are drawn, stratified by histology
        (:func:`sklearn.model_selection.train_test_split`).
    seed : int
        Random state of the split.
    cv_folds : int
        0: the single random split. k >= 2: k folds grouped by patient and stratified by
        histology (:class:`sklearn.model_selection.StratifiedGroupKFold`, shuffled with
        ``seed``); fold ``fold`` is the test set.
    fold : int
        Test fold, 0 <= fold < cv_folds (0 when cv_folds is 0).

    Returns
    -------
    pandas.Series
        Indexed by patient_id (sorted), values "train"/"test", name "split".

    Examples
    --------
    >>> df = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(233)],
    ...                    "histology": ["warthin"] * 63 + ["malignant"] * 80
    ...                    + ["pleomorphic_adenoma"] * 90})
    >>> split_patients(df, test_fraction=21 / 233).value_counts().to_dict()
    {'train': 212, 'test': 21}
    """
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    check_int("cv_folds", cv_folds, 0)
    if cv_folds == 1:
        raise ValueError(f"cv_folds must be 0 (single split) or an integer >= 2, got {cv_folds!r}")
    upper = max(cv_folds, 1)
    check_int(f"fold (cv_folds={cv_folds})", fold, 0, upper - 1)
    table = _patient_table(patients_df)
    ids = table["patient_id"].to_numpy()
    n = len(ids)
    if n < 2:
        raise ValueError(f"patients_df must hold at least 2 patients to split, got {n}")
    if cv_folds:
        if cv_folds > n:
            raise ValueError(f"cv_folds must be <= the number of patients ({n}), got {cv_folds}")
        rows = patients_df.sort_values("patient_id", kind="stable")
        folds = StratifiedGroupKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # sklearn warns when a class has fewer members than folds; the split is still valid
            warnings.simplefilter("ignore", UserWarning)
            _, test_rows = list(folds.split(rows, rows["histology"], rows["patient_id"]))[fold]
        test_ids = set(rows["patient_id"].iloc[test_rows])
    else:
        n_test = min(max(1, int(round(n * test_fraction))), n - 1)
        counts = table["histology"].value_counts()
        n_classes = len(counts)
        stratify = table["histology"]
        if counts.min() < 2 or n_test < n_classes or n - n_test < n_classes:
            warnings.warn(f"cannot stratify {n} patients ({counts.to_dict()}) into {n - n_test} "
                          f"train / {n_test} test by histology; splitting without "
                          f"stratification", stacklevel=2)
            stratify = None
        _, test = train_test_split(ids, test_size=n_test, random_state=seed, stratify=stratify)
        test_ids = set(test)
    split = pd.Series(np.where(np.isin(ids, list(test_ids)), "test", "train"), index=ids,
                      name="split")
    split.index.name = "patient_id"
    return split


def check_no_leakage(slices_df: pd.DataFrame) -> None:
    """Raise LeakageError if any patient has slices in more than one split.

    Parameters
    ----------
    slices_df : pandas.DataFrame
        Columns ``patient_id`` and ``split``.
    """
    for col in ("patient_id", "split"):
        if col not in slices_df.columns:
            raise ValueError(f"slices_df must have a {col!r} column, got {list(slices_df.columns)}")
    splits = slices_df.groupby("patient_id")["split"].agg(lambda s: sorted(set(s)))
    leaked = splits[splits.map(len) > 1]
    if len(leaked):
        listing = "; ".join(f"{pid}: {', '.join(s)}" for pid, s in leaked.items())
        raise LeakageError(f"{len(leaked)} patient(s) appear in more than one split "
                           f"(train/test leakage): {listing}")


def split_validation_patients(
    labels: np.ndarray, patient_ids: np.ndarray, val_fraction: float, seed: int = 0
) -> np.ndarray:
    """Draw whole validation patients from the training patients, stratified by histology.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Slice classes (CLASSES order). A patient's stratum is its most frequent tumour class
        (labels > 0), or 0 when all its slices are tumour-free.
    patient_ids : ndarray, shape (N,)
    val_fraction : float
        Share of patients to hold out, in [0, 1); rounded up (scikit-learn's rule).
    seed : int

    Returns
    -------
    ndarray
        Sorted validation patient ids (empty for ``val_fraction == 0``).

    Notes
    -----
    ``sklearn.model_selection.train_test_split`` on the patient list, ``stratify`` = patient
    class. If a class has too few patients to stratify (fewer than 2, or fewer validation
    patients than classes), a warning is issued and the split is random over patients.
    """
    labels, patient_ids = np.asarray(labels), np.asarray(patient_ids)
    patients, inverse = np.unique(patient_ids, return_inverse=True)
    if val_fraction == 0:
        return patients[:0]
    if len(patients) < 2:
        raise ValueError(
            f"val_fraction={val_fraction} needs at least 2 training patients, got {len(patients)}"
        )
    strata = np.zeros(len(patients), dtype=np.int64)
    for p in range(len(patients)):
        tumour = labels[(inverse == p) & (labels > 0)]
        if tumour.size:
            strata[p] = np.bincount(tumour).argmax()
    try:
        _, val = train_test_split(patients, test_size=val_fraction, random_state=seed,
                                  stratify=strata)
    except ValueError as err:
        warnings.warn(f"val_fraction: validation split not stratified ({err})", stacklevel=2)
        _, val = train_test_split(patients, test_size=val_fraction, random_state=seed)
    return np.sort(val)
