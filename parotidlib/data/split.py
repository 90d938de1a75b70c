"""Patient-level train/test splits (Xia et al. 2021, "Dataset and MR Image Preprocessing").

The paper divides its 233 patients at random into training and test sets "at a ratio of 9:1"
(212 and 21 patients). Splitting by patient, never by slice, keeps every slice of a patient -
its lesion slices and its free (contralateral gland) slices - on one side, so that no test
patient is seen in training. Splits are stratified and seeded: by the class of each patient's
histology under the study's class scheme (:class:`parotidlib.study.ClassScheme`; under the
paper's scheme the classes are the three histologies), or by histology without one.

Note on sizes: the number of test patients is ``round(n * test_fraction)``; 0.1 x 233 gives 23.
The paper's 212/21 is ``test_fraction`` 21/233 = 0.09.

Grouped folds (``group_by``): the folds are the distinct values of a manifest column, e.g.
the scanner, so that each fold holds out one scanner or centre and the model is trained on
the others: the internal-external cross-validation of Steyerberg & Harrell (2016), which
TRIPOD+AI (Collins et al. 2024, item 12) recommends for a multicentre cohort.
:func:`group_table` lists the groups and refuses a grouping that cannot be validated.

References
----------
Steyerberg EW, Harrell FE Jr. Prediction models need appropriate internal, internal-external,
    and external validation. J Clin Epidemiol 2016; 69:245-247.
Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting
    clinical prediction models that use regression or machine learning methods. BMJ 2024;
    385:e078378.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from parotidlib.config import check_int
from parotidlib.data.tables import histology_order
from parotidlib.study import ClassScheme

SPLITS: tuple[str, ...] = ("train", "test")
#: Fewest patients a held-out group may have (:func:`group_table`).
MIN_GROUP_PATIENTS = 5
#: How many patient ids an error message shows at most.
_SHOWN_IDS = 3
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


def _ids(ids: list[str]) -> str:
    """Up to three patient ids for a message, "..." after them when there are more."""
    return ", ".join(ids[:_SHOWN_IDS]) + (", ..." if len(ids) > _SHOWN_IDS else "")


def patient_strata(patients_df: pd.DataFrame, scheme: ClassScheme | None = None
                   ) -> pd.Series:
    """Each row's stratum: the class of its histology under ``scheme``, or the histology
    itself without one (the paper's scheme gives the same strata: its classes are its three
    histologies).

    Raises
    ------
    ValueError
        A histology the scheme gives no class (excluded, or not mapped): names it, how many
        patients and up to three of their pseudonymous ids, the scheme and its classes.
    """
    hist = patients_df["histology"]
    if scheme is None:
        return hist.rename("stratum")
    classes = dict(scheme.mapping)
    bad = sorted(set(hist[~hist.isin(list(classes))].astype(str)))
    if bad:
        ids = sorted(set(patients_df.loc[hist.astype(str) == bad[0], "patient_id"].astype(str)))
        raise ValueError(f"histology {bad[0]!r} of {len(ids)} patient(s) (e.g. {_ids(ids)}) "
                         f"has no class in the class scheme {scheme.name!r} (classes "
                         f"{list(scheme.classes)}" + (f"; {bad[1:]} neither" if bad[1:] else "")
                         + ")")
    return hist.map(classes).rename("stratum")


def _text(value: object) -> str:
    """A group value as text, the same from the manifest and from slices.csv (1.5, "1.5")."""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{float(value):g}"
    return str(value).strip()


def patient_groups(patients_df: pd.DataFrame, column: str) -> pd.Series:
    """Each patient's value of ``column`` as text, indexed by patient_id (sorted).

    Parameters
    ----------
    patients_df : pandas.DataFrame
        Columns ``patient_id`` and ``column``; one row per patient or several (slices).
    column : str
        The grouping column (any manifest column, e.g. ``scanner``).

    Raises
    ------
    ValueError
        ``column`` is missing (the columns are listed); a patient has no value in it (how
        many, and up to three pseudonymous patient ids, as the kit's other split errors name
        them); a patient has several values.
    """
    if not isinstance(column, str) or not column:
        raise ValueError(f"group_by must name a manifest column, got {column!r}")
    if column not in patients_df.columns:
        raise ValueError(f"cannot group the folds by {column!r}: no such column; the columns "
                         f"are {list(patients_df.columns)}")
    rows = patients_df[["patient_id", column]]
    text = rows[column].map(lambda v: "" if pd.isna(v) else _text(v))
    missing = sorted(set(rows.loc[text == "", "patient_id"].astype(str)))
    if missing:
        raise ValueError(f"cannot group the folds by {column!r}: {len(missing)} patient(s) "
                         f"have no value in it (e.g. {_ids(missing)}); fill the column or "
                         f"leave them out of the manifest")
    values = text.groupby(rows["patient_id"], sort=True).unique()
    several = values[values.map(len) > 1]
    if len(several):
        raise ValueError(f"cannot group the folds by {column!r}: {len(several)} patient(s) "
                         f"have several values in it, e.g. {several.index[0]!r}: "
                         f"{sorted(several.iloc[0])}")
    out = values.map(lambda v: v[0]).rename("group")
    out.index.name = "patient_id"
    return out


def group_table(patients_df: pd.DataFrame, column: str,
                min_patients: int = MIN_GROUP_PATIENTS, scheme: ClassScheme | None = None
                ) -> pd.DataFrame:
    """The folds of a grouped cross-validation: one per distinct value of ``column``.

    Each group is held out once and predicted by a model trained on the other groups
    (internal-external cross-validation, Steyerberg & Harrell 2016; TRIPOD+AI 2024).

    Parameters
    ----------
    patients_df : pandas.DataFrame
        Columns ``patient_id``, ``histology`` and ``column`` (the manifest, or one row per
        slice).
    column : str
        The grouping column, e.g. ``scanner``.
    min_patients : int
        Fewest patients a group may have (>= 1).
    scheme : ClassScheme, optional
        The study's class scheme: patients of a histology it excludes are left out, and the
        groups are counted and checked per lesion class. None: per histology.

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by its value as text: ``fold`` (0, 1, ...), ``group``,
        ``patients`` and one count of patients per stratum present in the cohort: the
        scheme's lesion classes in class order, or the histologies (the paper's three
        first, :func:`parotidlib.data.tables.histology_order`). Under the paper's scheme
        both are pleomorphic_adenoma, warthin, malignant.

    Raises
    ------
    ValueError
        As :func:`patient_groups` and :func:`patient_strata`; fewer than 2 groups; a group
        with fewer than ``min_patients`` patients or without a patient of some class
        present in the cohort (its held-out results would lack that class): the message
        names the group and its counts.
    """
    check_int("min_patients", min_patients, 1)
    if scheme is not None:
        patients_df = patients_df[~patients_df["histology"].isin(scheme.exclude)]
    groups = patient_groups(patients_df, column)
    table = _patient_table(patients_df)
    strata = patient_strata(table, scheme).set_axis(table["patient_id"])
    present = set(strata)
    order = ([c for c in scheme.classes if c in present] if scheme is not None
             else [h for h in histology_order(present) if h in present])
    counts = pd.crosstab(groups, strata.reindex(groups.index)).reindex(
        columns=order, fill_value=0)
    table = counts.reset_index()
    table.insert(1, "patients", counts.sum(axis=1).to_numpy())
    table.insert(0, "fold", np.arange(len(table)))
    if len(table) < 2:
        raise ValueError(f"cannot group the folds by {column!r}: it has one value "
                         f"({table['group'].tolist()}), and leave-one-out needs at least 2")
    for _, row in table.iterrows():
        has = ", ".join(f"{h} {int(row[h])}" for h in order)
        if row["patients"] < min_patients:
            raise ValueError(f"cannot group the folds by {column!r}: group {row['group']!r} "
                             f"has {int(row['patients'])} patient(s) ({has}), fewer than "
                             f"{min_patients}")
        lacking = [h for h in order if row[h] == 0]
        if lacking:
            kind = "class" if scheme is not None else "histology"
            raise ValueError(f"cannot group the folds by {column!r}: group {row['group']!r} "
                             f"has no {' or '.join(lacking)} patient ({has}); every held-out "
                             f"group needs every {kind} of the cohort")
    table.columns.name = None
    return table


def split_patients(patients_df: pd.DataFrame, test_fraction: float = 0.1, seed: int = 0,
                   cv_folds: int = 0, fold: int = 0, group_by: str = "",
                   scheme: ClassScheme | None = None) -> pd.Series:
    """Assign every patient to "train" or "test", stratified by class (or histology).

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
    group_by : str
        "" (default): the folds above. A column of ``patients_df`` (e.g. ``scanner``): the
        folds are its distinct values, sorted as text (:func:`patient_groups`), and fold
        ``fold`` holds out the patients of the ``fold``-th value (leave-one-group-out);
        ``cv_folds`` must be the number of values. ``seed`` plays no part.
    scheme : ClassScheme, optional
        The study's class scheme: the strata are the classes of the patients' histologies
        (:func:`patient_strata`). None: the histologies. The paper's scheme gives the same
        split as None (its classes are its histologies).

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
    if group_by:
        groups = patient_groups(patients_df, group_by)
        values = sorted(groups.unique())
        if cv_folds != len(values):
            raise ValueError(f"cv_folds must be the number of {group_by!r} values "
                             f"({len(values)}) when the folds are grouped by it, got "
                             f"{cv_folds}")
        test_ids = set(groups.index[groups == values[fold]])
    elif cv_folds:
        if cv_folds > n:
            raise ValueError(f"cv_folds must be <= the number of patients ({n}), got {cv_folds}")
        rows = patients_df.sort_values("patient_id", kind="stable")
        folds = StratifiedGroupKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # sklearn warns when a class has fewer members than folds; the split is still valid
            warnings.simplefilter("ignore", UserWarning)
            _, test_rows = list(folds.split(rows, patient_strata(rows, scheme),
                                            rows["patient_id"]))[fold]
        test_ids = set(rows["patient_id"].iloc[test_rows])
    else:
        n_test = min(max(1, int(round(n * test_fraction))), n - 1)
        stratify = patient_strata(table, scheme)
        counts = stratify.value_counts()
        n_classes = len(counts)
        if counts.min() < 2 or n_test < n_classes or n - n_test < n_classes:
            by = "histology" if scheme is None else f"class ({scheme.name!r} scheme)"
            warnings.warn(f"cannot stratify {n} patients ({counts.to_dict()}) into {n - n_test} "
                          f"train / {n_test} test by {by}; splitting without "
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
