"""Patient diagnosis from slice predictions: the paper's Figure 5 rule (torch-free).

Xia et al. 2021, "Automatic Patient Diagnosis": (1) a patient with more than two slices
predicted malignant is diagnosed malignant, otherwise benign; (2) a benign patient is a
pleomorphic adenoma if it has more slices predicted pleomorphic adenoma than Warthin, and
vice versa. Slices predicted ``free`` count for neither. The paper does not say what happens
on a tie; the tie-break used here is documented in :func:`diagnose_patient`.

The predictions table (``predictions.csv``, one row per slice) has the columns
``patient_id, true_label, predicted_label`` and the four ``prob_<class>`` columns of
:data:`PROBABILITY_COLUMNS` (optionally ``histology`` and ``split``); labels are class names
of :data:`parotidlib.constants.CLASSES` or their indices 0-3.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.config import check_int
from parotidlib.constants import CLASSES, HISTOLOGIES

logger = logging.getLogger(__name__)

__all__ = [
    "PROBABILITY_COLUMNS",
    "PREDICTION_COLUMNS",
    "TIE_PRIOR",
    "as_class_names",
    "check_predictions",
    "diagnose_patient",
    "diagnose_patients",
]

#: Per-class probability columns of the predictions table, in CLASSES order.
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"prob_{c}" for c in CLASSES)
#: Columns every predictions table must have.
PREDICTION_COLUMNS: tuple[str, ...] = ("patient_id", "true_label", "predicted_label")
#: Benign type chosen on a PA/Warthin tie that probabilities cannot break: pleomorphic
#: adenoma is the more frequent benign type in the paper's cohort (90 vs 63 patients, Table 1).
TIE_PRIOR = "pleomorphic_adenoma"
#: Tolerance on the per-slice sum of probabilities (softmax outputs written as float32/CSV).
PROBABILITY_SUM_TOL = 1e-3

_PA, _WARTHIN, _MALIGNANT = (CLASSES.index(c) for c in ("pleomorphic_adenoma", "warthin",
                                                          "malignant"))


def as_class_names(labels: Any, name: str = "labels") -> np.ndarray:
    """Class names for labels given as names or indices into CLASSES.

    Parameters
    ----------
    labels : array-like, shape (N,)
        Class names (``"free"``, ...) or integer indices 0-3 (numpy/pandas integers too).
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of str, shape (N,)

    Raises
    ------
    ValueError
        On an unknown name, an index outside 0-3, or anything else (NaN, floats, ...).
    """
    values = list(np.asarray(labels, dtype=object).ravel())
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            if v not in CLASSES:
                raise ValueError(f"{name}[{i}] must be one of {list(CLASSES)}, got {v!r}")
            out.append(v)
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_):
            if not 0 <= int(v) < len(CLASSES):
                raise ValueError(
                    f"{name}[{i}] must be a class index in 0..{len(CLASSES) - 1}, got {v!r}"
                )
            out.append(CLASSES[int(v)])
        else:
            raise ValueError(
                f"{name}[{i}] must be a class name in {list(CLASSES)} or an index, got {v!r}"
            )
    return np.asarray(out, dtype=object)


def _check_probabilities(probabilities: Any, n: int, where: str) -> np.ndarray:
    probs = np.asarray(probabilities, dtype=float)
    if probs.shape != (n, len(CLASSES)):
        raise ValueError(
            f"slice_probabilities must have shape ({n}, {len(CLASSES)}) (slices x classes in "
            f"CLASSES order){where}, got {probs.shape}"
        )
    if not np.all(np.isfinite(probs)) or np.any(probs < -PROBABILITY_SUM_TOL):
        raise ValueError(f"slice_probabilities must be finite and >= 0{where}")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROBABILITY_SUM_TOL)
    if bad.size:
        raise ValueError(
            f"slice_probabilities rows must sum to 1 (tolerance {PROBABILITY_SUM_TOL}){where}; "
            f"row {bad[0]} sums to {sums[bad[0]]:.6g}"
        )
    return probs


def diagnose_patient(
    slice_labels: Sequence[str | int] | np.ndarray,
    slice_probabilities: np.ndarray | None = None,
    malignant_threshold: int = 2,
    patient_id: str | None = None,
) -> str:
    """Diagnose one patient from its slices' predicted classes (paper's Figure 5).

    Rule: more than ``malignant_threshold`` slices predicted malignant gives
    ``"malignant"``; otherwise the patient is benign and its type is the benign class with
    more predicted slices. Slices predicted ``free`` count for neither.

    Tie-break (equal pleomorphic adenoma and Warthin counts, 0 vs 0 included; the paper is
    silent): with ``slice_probabilities`` the benign type with the larger probability summed
    over all the patient's slices wins; without them, or if those sums are equal too,
    :data:`TIE_PRIOR` (``"pleomorphic_adenoma"``) is returned, the more frequent benign type
    in the paper's cohort (90 vs 63 patients, Table 1), i.e. the prior's choice.

    Parameters
    ----------
    slice_labels : sequence of str or int, shape (N,)
        Predicted class of each slice, as CLASSES names or indices 0-3. N >= 1.
    slice_probabilities : array-like, shape (N, 4), optional
        Predicted class probabilities of each slice, columns in CLASSES order, rows summing
        to 1 (tolerance 1e-3). Used only to break ties.
    malignant_threshold : int
        Number of malignant slices a patient may have and still be benign (paper: 2).
    patient_id : str, optional
        Named in warnings and error messages.

    Returns
    -------
    str
        ``"pleomorphic_adenoma"``, ``"warthin"`` or ``"malignant"``.

    Raises
    ------
    ValueError
        On an unknown class name or index, no slices, probabilities of the wrong shape or
        not summing to 1, or a negative or non-integer ``malignant_threshold``.

    Warns
    -----
    UserWarning
        If no slice was predicted as a lesion (all ``free``): the rule still returns a
        benign type, by the tie-break.

    Examples
    --------
    >>> diagnose_patient(["malignant"] * 3 + ["warthin"] * 5)
    'malignant'
    >>> diagnose_patient(["malignant"] * 2 + ["warthin"] * 5 + ["pleomorphic_adenoma"])
    'warthin'
    """
    where = f" (patient {patient_id})" if patient_id is not None else ""
    check_int("malignant_threshold", malignant_threshold, 0)
    names = as_class_names(slice_labels, "slice_labels")
    if names.size == 0:
        raise ValueError(f"slice_labels must hold at least one slice{where}, got none")
    probs = None
    if slice_probabilities is not None:
        probs = _check_probabilities(slice_probabilities, names.size, where)

    counts = {c: int(np.sum(names == c)) for c in CLASSES}
    if counts["free"] == names.size:
        warnings.warn(
            f"no lesion slice was predicted{where} ({names.size} slices, all free); "
            "diagnosing by the benign tie-break",
            stacklevel=2,
        )
    if counts["malignant"] > malignant_threshold:
        return "malignant"
    if counts["pleomorphic_adenoma"] != counts["warthin"]:
        return ("pleomorphic_adenoma" if counts["pleomorphic_adenoma"] > counts["warthin"]
                else "warthin")
    if probs is not None:
        pa, wt = probs[:, _PA].sum(), probs[:, _WARTHIN].sum()
        if pa != wt:
            return "pleomorphic_adenoma" if pa > wt else "warthin"
    logger.debug("tie between benign types%s resolved by the prior", where)
    return TIE_PRIOR


def check_predictions(predictions: pd.DataFrame, require_probabilities: bool = False) -> None:
    """Check a predictions table's columns and labels; raise ValueError naming what is wrong.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per slice with :data:`PREDICTION_COLUMNS` and, if ``require_probabilities``
        (or if any is present), all of :data:`PROBABILITY_COLUMNS`.
    require_probabilities : bool
        Whether the probability columns must be present.
    """
    if not isinstance(predictions, pd.DataFrame):
        raise ValueError(f"predictions must be a pandas DataFrame, got {type(predictions)}")
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    present = [c for c in PROBABILITY_COLUMNS if c in predictions.columns]
    if require_probabilities or present:
        missing += [c for c in PROBABILITY_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"predictions is missing columns {missing}; has {list(predictions.columns)}"
        )
    if predictions.empty:
        raise ValueError("predictions must have at least one row, got an empty table")
    as_class_names(predictions["true_label"], "predictions.true_label")
    as_class_names(predictions["predicted_label"], "predictions.predicted_label")


def _true_histology(group: pd.DataFrame, patient_id: Any) -> str:
    true = as_class_names(group["true_label"], "predictions.true_label")
    lesion = sorted(set(true) - {"free"})
    if len(lesion) > 1:
        raise ValueError(
            f"patient {patient_id}: lesion slices carry several true labels {lesion}; "
            "a patient has one histology"
        )
    if "histology" in group.columns:
        hist = group["histology"].dropna().unique()
        if len(hist) != 1 or hist[0] not in HISTOLOGIES:
            raise ValueError(
                f"patient {patient_id}: histology must be one of {list(HISTOLOGIES)}, "
                f"got {list(hist)}"
            )
        if lesion and lesion[0] != hist[0]:
            raise ValueError(
                f"patient {patient_id}: histology {hist[0]!r} disagrees with the true label "
                f"{lesion[0]!r} of its lesion slices"
            )
        return str(hist[0])
    if not lesion:
        raise ValueError(
            f"patient {patient_id}: no lesion slice and no histology column; cannot tell the "
            "true histology"
        )
    return lesion[0]


def diagnose_patients(predictions: pd.DataFrame, malignant_threshold: int = 2) -> pd.DataFrame:
    """Apply :func:`diagnose_patient` to every patient of a predictions table.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per slice (see the module docstring); filter it to one split first. If the
        probability columns are present they break PA/Warthin ties.
    malignant_threshold : int
        As in :func:`diagnose_patient` (paper: 2).

    Returns
    -------
    pandas.DataFrame
        One row per patient (sorted by patient_id): ``patient_id``, ``true_histology`` (the
        ``histology`` column if present, else the true label of the patient's lesion
        slices), ``predicted_histology``, ``n_slices`` and the predicted-slice counts
        ``n_pred_<class>`` for each class.
    """
    check_predictions(predictions)
    has_probs = all(c in predictions.columns for c in PROBABILITY_COLUMNS)
    rows = []
    for patient_id, group in predictions.groupby("patient_id", sort=True):
        predicted = as_class_names(group["predicted_label"], "predictions.predicted_label")
        probs = group[list(PROBABILITY_COLUMNS)].to_numpy(float) if has_probs else None
        row = {
            "patient_id": patient_id,
            "true_histology": _true_histology(group, patient_id),
            "predicted_histology": diagnose_patient(predicted, probs, malignant_threshold,
                                                    patient_id=str(patient_id)),
            "n_slices": len(group),
        }
        row.update({f"n_pred_{c}": int(np.sum(predicted == c)) for c in CLASSES})
        rows.append(row)
    return pd.DataFrame(rows)
