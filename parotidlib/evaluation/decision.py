"""Patient diagnosis from slice predictions: the paper's Figure 5 rule, generalised to the
run's class scheme (torch-free).

Xia et al. 2021, "Automatic Patient Diagnosis": (1) a patient with more than two slices
predicted malignant is diagnosed malignant, otherwise benign; (2) a benign patient is a
pleomorphic adenoma if it has more slices predicted pleomorphic adenoma than Warthin, and
vice versa. Slices predicted ``free`` count for neither. The paper does not say what happens
on a tie; the tie-break used here is documented in :func:`diagnose_patient`.

For a class scheme (:class:`parotidlib.study.ClassScheme`, the ``classes`` param) the rule
reads: malignant when more than ``malignant_threshold`` slices are predicted as any malignant
class (then the most frequent malignant class); otherwise the most frequent predicted benign
class, ties broken as for the paper's two. With the paper's scheme this is the rule above.

The predictions table (``predictions.csv``, one row per slice) has the columns
``patient_id, true_label, predicted_label`` and one ``prob_<class>`` column per class of the
scheme, in its order (:func:`parotidlib.evaluation.classes.probability_columns`; the paper's
four: :data:`PROBABILITY_COLUMNS`), optionally ``histology`` and ``split``; labels are class
names of the scheme or their indices.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.config import check_int, is_int
from parotidlib.evaluation.classes import patient_class, probability_columns
from parotidlib.study import PAPER_CLASSES, ClassScheme

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

#: Per-class probability columns of the paper scheme's predictions table, in CLASSES order.
PROBABILITY_COLUMNS: tuple[str, ...] = probability_columns(PAPER_CLASSES)
#: Columns every predictions table must have.
PREDICTION_COLUMNS: tuple[str, ...] = ("patient_id", "true_label", "predicted_label")
#: Benign type chosen on a PA/Warthin tie that probabilities cannot break: pleomorphic
#: adenoma is the more frequent benign type in the paper's cohort (90 vs 63 patients, Table 1).
#: For any scheme the tie goes to the first tied class in class order, which in the paper's
#: scheme is this one.
TIE_PRIOR = "pleomorphic_adenoma"
#: Tolerance on the per-slice sum of probabilities (softmax outputs written as float32/CSV).
PROBABILITY_SUM_TOL = 1e-3


def as_class_names(labels: Any, name: str = "labels",
                   scheme: ClassScheme = PAPER_CLASSES) -> np.ndarray:
    """Class names for labels given as names or indices into the scheme's classes.

    Parameters
    ----------
    labels : array-like, shape (N,)
        Class names (``"free"``, ...) or integer indices into ``scheme.classes`` (numpy/pandas
        integers too).
    name : str
        Argument name used in error messages.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    numpy.ndarray of str, shape (N,)

    Raises
    ------
    ValueError
        On an unknown name, an index outside the classes, or anything else (NaN, floats, ...).
    """
    classes = scheme.classes
    values = list(np.asarray(labels, dtype=object).ravel())
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            if v not in classes:
                raise ValueError(f"{name}[{i}] must be one of {list(classes)}, got {v!r}")
            out.append(v)
        elif is_int(v):
            if not 0 <= int(v) < len(classes):
                raise ValueError(
                    f"{name}[{i}] must be a class index in 0..{len(classes) - 1}, got {v!r}"
                )
            out.append(classes[int(v)])
        else:
            raise ValueError(
                f"{name}[{i}] must be a class name in {list(classes)} or an index, got {v!r}"
            )
    return np.asarray(out, dtype=object)


def _check_probabilities(probabilities: Any, n: int, where: str,
                         scheme: ClassScheme) -> np.ndarray:
    probs = np.asarray(probabilities, dtype=float)
    k = len(scheme.classes)
    if probs.shape != (n, k):
        raise ValueError(
            f"slice_probabilities must have shape ({n}, {k}) (slices x classes in "
            f"{'CLASSES' if scheme is PAPER_CLASSES else 'the class scheme'} order){where}, "
            f"got {probs.shape}"
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


def _most_frequent(candidates: Sequence[str], counts: dict[str, int], probs: np.ndarray | None,
                   scheme: ClassScheme, where: str) -> str:
    """The candidate class with most predicted slices; a tie goes to the larger probability
    summed over all the patient's slices, then to the first tied class in class order."""
    top = max(counts[c] for c in candidates)
    tied = [c for c in candidates if counts[c] == top]
    if len(tied) > 1 and probs is not None:
        sums = {c: probs[:, scheme.classes.index(c)].sum() for c in tied}
        best = max(sums.values())
        tied = [c for c in tied if sums[c] == best]
    if len(tied) > 1:
        logger.debug("tie between %s%s resolved by class order", tied, where)
    return tied[0]


def diagnose_patient(
    slice_labels: Sequence[str | int] | np.ndarray,
    slice_probabilities: np.ndarray | None = None,
    malignant_threshold: int = 2,
    patient_id: str | None = None,
    scheme: ClassScheme = PAPER_CLASSES,
) -> str:
    """Diagnose one patient from its slices' predicted classes (paper's Figure 5).

    Rule: more than ``malignant_threshold`` slices predicted as any malignant class of the
    scheme gives that patient the most frequent malignant class (the paper: ``"malignant"``);
    otherwise the patient is benign and its type is the benign class with most predicted
    slices. Slices predicted ``free`` count for neither. A scheme without benign classes
    diagnoses every patient by its most frequent malignant class.

    Tie-break (equal counts of the leading classes, 0 vs 0 included; the paper is silent):
    with ``slice_probabilities`` the tied class with the larger probability summed over all
    the patient's slices wins; without them, or if those sums are equal too, the first tied
    class in class order. In the paper's scheme that is :data:`TIE_PRIOR`
    (``"pleomorphic_adenoma"``), the more frequent benign type in the paper's cohort (90 vs
    63 patients, Table 1), i.e. the prior's choice.

    Parameters
    ----------
    slice_labels : sequence of str or int, shape (N,)
        Predicted class of each slice, as class names of the scheme or their indices. N >= 1.
    slice_probabilities : array-like, shape (N, K), optional
        Predicted class probabilities of each slice, columns in the scheme's class order
        (K classes), rows summing to 1 (tolerance 1e-3). Used only to break ties.
    malignant_threshold : int
        Number of malignant slices a patient may have and still be benign (paper: 2).
    patient_id : str, optional
        Named in warnings and error messages.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    str
        A lesion class of the scheme (paper: ``"pleomorphic_adenoma"``, ``"warthin"`` or
        ``"malignant"``).

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
    names = as_class_names(slice_labels, "slice_labels", scheme)
    if names.size == 0:
        raise ValueError(f"slice_labels must hold at least one slice{where}, got none")
    probs = None
    if slice_probabilities is not None:
        probs = _check_probabilities(slice_probabilities, names.size, where, scheme)

    counts = {c: int(np.sum(names == c)) for c in scheme.classes}
    if counts[scheme.classes[0]] == names.size:
        warnings.warn(
            f"no lesion slice was predicted{where} ({names.size} slices, all free); "
            "diagnosing by the benign tie-break",
            stacklevel=2,
        )
    if scheme.malignant and sum(counts[c] for c in scheme.malignant) > malignant_threshold:
        return _most_frequent(scheme.malignant, counts, probs, scheme, where)
    return _most_frequent(scheme.benign or scheme.malignant, counts, probs, scheme, where)


def check_predictions(predictions: pd.DataFrame, require_probabilities: bool = False,
                      scheme: ClassScheme = PAPER_CLASSES) -> None:
    """Check a predictions table's columns and labels; raise ValueError naming what is wrong.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per slice with :data:`PREDICTION_COLUMNS` and, if ``require_probabilities``
        (or if any is present), every ``prob_<class>`` column of the scheme
        (:func:`parotidlib.evaluation.classes.probability_columns`).
    require_probabilities : bool
        Whether the probability columns must be present.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).
    """
    if not isinstance(predictions, pd.DataFrame):
        raise ValueError(f"predictions must be a pandas DataFrame, got {type(predictions)}")
    columns = probability_columns(scheme)
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    present = [c for c in columns if c in predictions.columns]
    if require_probabilities or present:
        missing += [c for c in columns if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"predictions is missing columns {missing}; has {list(predictions.columns)}"
        )
    if predictions.empty:
        raise ValueError("predictions must have at least one row, got an empty table")
    as_class_names(predictions["true_label"], "predictions.true_label", scheme)
    as_class_names(predictions["predicted_label"], "predictions.predicted_label", scheme)


def _true_histology(group: pd.DataFrame, patient_id: Any, scheme: ClassScheme) -> str:
    true = as_class_names(group["true_label"], "predictions.true_label", scheme)
    lesion = sorted(set(true) - {scheme.classes[0]})
    if len(lesion) > 1:
        raise ValueError(
            f"patient {patient_id}: lesion slices carry several true labels {lesion}; "
            "a patient has one histology"
        )
    if "histology" in group.columns:
        hist = group["histology"].dropna().unique()
        cls = patient_class(hist[0], scheme) if len(hist) == 1 else None
        if cls is None:
            raise ValueError(
                f"patient {patient_id}: histology must be one of "
                f"{list(dict.fromkeys((*scheme.histologies, *scheme.classes[1:])))}, "
                f"got {list(hist)}"
            )
        if lesion and lesion[0] != cls:
            raise ValueError(
                f"patient {patient_id}: histology {hist[0]!r} disagrees with the true label "
                f"{lesion[0]!r} of its lesion slices"
            )
        return cls
    if not lesion:
        raise ValueError(
            f"patient {patient_id}: no lesion slice and no histology column; cannot tell the "
            "true histology"
        )
    return lesion[0]


def diagnose_patients(predictions: pd.DataFrame, malignant_threshold: int = 2,
                      scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """Apply :func:`diagnose_patient` to every patient of a predictions table.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per slice (see the module docstring); filter it to one split first. If the
        probability columns are present they break ties.
    malignant_threshold : int
        As in :func:`diagnose_patient` (paper: 2).
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    pandas.DataFrame
        One row per patient (sorted by patient_id): ``patient_id``, ``true_histology`` (the
        class of the ``histology`` column if present,
        :func:`parotidlib.evaluation.classes.patient_class`, else the true label of the
        patient's lesion slices), ``predicted_histology`` (a lesion class), ``n_slices`` and
        the predicted-slice counts ``n_pred_<class>`` for each class of the scheme.
    """
    check_predictions(predictions, scheme=scheme)
    columns = list(probability_columns(scheme))
    has_probs = all(c in predictions.columns for c in columns)
    rows = []
    for patient_id, group in predictions.groupby("patient_id", sort=True):
        predicted = as_class_names(group["predicted_label"], "predictions.predicted_label",
                                   scheme)
        probs = group[columns].to_numpy(float) if has_probs else None
        row = {
            "patient_id": patient_id,
            "true_histology": _true_histology(group, patient_id, scheme),
            "predicted_histology": diagnose_patient(predicted, probs, malignant_threshold,
                                                    patient_id=str(patient_id), scheme=scheme),
            "n_slices": len(group),
        }
        row.update({f"n_pred_{c}": int(np.sum(predicted == c)) for c in scheme.classes})
        rows.append(row)
    return pd.DataFrame(rows)
