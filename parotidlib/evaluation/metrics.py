"""Slice-level evaluation metrics: confusion matrix, accuracy, ROC curves, micro-AUC CI.

These reproduce the paper's slice-level results (Xia et al. 2021, Results; Figure 6: ROC
curves with micro-AUC 0.98 train / 0.93 test; Figure 7: confusion matrix; slice accuracy
92.94% / 82.18% with 95% CIs). Functions take the predictions table described in
:mod:`parotidlib.evaluation.decision` (one row per slice) and, where they take ``split``,
filter it on its ``split`` column first. Every function takes the run's class scheme
(``scheme``, :class:`parotidlib.study.ClassScheme`; default the paper's four classes): the
confusion matrix, the one-vs-rest curves and the micro- and macro-averages run over its
classes. Binary tables (Table 4) and patient-level results
(Table 5) are in :mod:`parotidlib.evaluation.diagnostic_accuracy`.

References
----------
Fawcett T. An introduction to ROC analysis. Pattern Recognit Lett 2006; 27:861-874
    (one-vs-rest, micro- and macro-averaged ROC).
Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993 (percentile
    interval); Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;
    69:369-390 (resampling whole clusters, here patients, since slices of a patient are
    correlated).
"""

from __future__ import annotations

import logging
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import auc, confusion_matrix, roc_auc_score, roc_curve

from parotidlib.config import check_int
from parotidlib.evaluation.classes import one_hot, probability_columns
from parotidlib.evaluation.decision import as_class_names, check_predictions
from parotidlib.evaluation.stats import UndefinedError, proportion_summary
from parotidlib.progress import tqdm  # a widget in a notebook, plain text in a run
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

__all__ = [
    "MIN_BOOTSTRAP_PATIENTS",
    "RocResult",
    "bootstrap_micro_auc_ci",
    "confusion",
    "micro_auc",
    "roc_curves",
    "select_split",
    "slice_accuracy",
]

#: Fewest patients a clustered bootstrap accepts (with one patient every resample is the same).
MIN_BOOTSTRAP_PATIENTS = 2


def select_split(predictions: pd.DataFrame, split: str | None,
                 scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """Rows of ``predictions`` whose ``split`` column equals ``split`` (all rows if None).

    Raises
    ------
    ValueError
        If the table fails :func:`parotidlib.evaluation.decision.check_predictions`, has no
        ``split`` column while one is asked for, or no row of that split.
    """
    check_predictions(predictions, scheme=scheme)
    if split is None:
        return predictions
    if "split" not in predictions.columns:
        raise ValueError(f"split={split!r} was asked for but predictions has no 'split' column")
    out = predictions[predictions["split"] == split]
    if out.empty:
        raise ValueError(
            f"split must be one of {sorted(predictions['split'].unique())}, got {split!r} "
            "(no rows)"
        )
    return out


def confusion(y_true: Any, y_pred: Any, scheme: ClassScheme = PAPER_CLASSES) -> np.ndarray:
    """K x K confusion matrix in the scheme's class order (rows: true class, columns:
    predicted; the paper's 4 x 4 in CLASSES order by default).

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        Class names or indices (see :func:`parotidlib.evaluation.decision.as_class_names`).

    Returns
    -------
    numpy.ndarray of int, shape (K, K)
        Element (i, j) counts slices of true class i predicted as class j, as in the paper's
        Figure 7.
    """
    t = as_class_names(y_true, "y_true", scheme)
    p = as_class_names(y_pred, "y_pred", scheme)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size}, {p.size}")
    return confusion_matrix(t, p, labels=list(scheme.classes))


def slice_accuracy(
    predictions: pd.DataFrame, split: str | None = None, confidence: float = 0.95,
    scheme: ClassScheme = PAPER_CLASSES,
) -> dict[str, Any]:
    """Slice accuracy over the scheme's classes (the paper: four) with its Wilson score
    interval (metrics.json block).

    Returns
    -------
    dict
        :func:`parotidlib.evaluation.stats.proportion_summary` of correct slices over all slices.
    """
    frame = select_split(predictions, split, scheme)
    t = as_class_names(frame["true_label"], "predictions.true_label", scheme)
    p = as_class_names(frame["predicted_label"], "predictions.predicted_label", scheme)
    return proportion_summary(int(np.sum(t == p)), int(t.size), confidence)


@dataclass(frozen=True)
class RocResult:
    """One-vs-rest ROC curves of a prediction over the scheme's classes.

    Attributes
    ----------
    fpr, tpr : dict[str, numpy.ndarray]
        False- and true-positive rates (shape (M_k,)) keyed by class name, ``"micro"`` and
        ``"macro"``. Classes absent from (or making up all of) y_true are left out.
    auc : dict[str, float]
        Area under each curve, same keys.
    classes : tuple[str, ...]
        The classes that have a curve, in the scheme's class order.
    undefined : dict[str, str]
        Why a curve is missing, keyed by class name (``"no warthin slice"``, ``"only
        malignant slices"``) and ``"macro"`` (when no class has a curve); the reasons of
        docs/metrics.md, "Undefined quantities". Empty when every curve is defined.
    """

    fpr: dict[str, np.ndarray]
    tpr: dict[str, np.ndarray]
    auc: dict[str, float]
    classes: tuple[str, ...]
    undefined: dict[str, str] = field(default_factory=dict)


def _labels_and_scores(frame: pd.DataFrame, scheme: ClassScheme
                       ) -> tuple[np.ndarray, np.ndarray]:
    check_predictions(frame, require_probabilities=True, scheme=scheme)
    y = one_hot(as_class_names(frame["true_label"], "predictions.true_label", scheme),
                scheme.classes)
    scores = frame[list(probability_columns(scheme))].to_numpy(float)
    if not np.all(np.isfinite(scores)):
        raise ValueError("predictions probability columns must be finite")
    return y, scores


def micro_auc(y_binary: np.ndarray, scores: np.ndarray) -> float:
    """Micro-averaged AUC: the AUC of all (slice, class) pairs pooled.

    Parameters
    ----------
    y_binary : numpy.ndarray of {0, 1}, shape (N, K)
        One-hot true classes in the scheme's class order
        (:func:`parotidlib.evaluation.classes.one_hot`).
    scores : numpy.ndarray, shape (N, K)
        Predicted probabilities, same column order.
    """
    return float(roc_auc_score(np.ravel(y_binary), np.ravel(scores)))


def roc_curves(predictions: pd.DataFrame, split: str | None = None,
               scheme: ClassScheme = PAPER_CLASSES) -> RocResult:
    """Per-class one-vs-rest ROC curves plus micro- and macro-averages (paper's Figure 6).

    The micro-average pools every (slice, class) decision (``roc_curve`` of the raveled
    one-hot labels and probabilities). The macro-average curve interpolates the per-class
    TPRs on the union of their FPRs and averages them (scikit-learn's ROC example); its AUC
    is the mean one-vs-rest AUC of the classes present, i.e.
    ``roc_auc_score(multi_class="ovr", average="macro")`` when every class is present.

    A class absent from the split, or making up all of it, has no one-vs-rest curve; when
    that leaves no class with a curve (a split of one class), the macro-average is
    undefined too. The micro-average is defined for any non-empty split (each slice is a
    positive for its class and a negative for the others). What is missing is named,
    with its reason, in :attr:`RocResult.undefined`.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Predictions table with the ``prob_<class>`` columns.
    split : str, optional
        Restrict to this split.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Warns
    -----
    UserWarning
        For each class absent from the true labels (or the only class present): it gets no
        curve and is left out of the macro-average.
    """
    frame = select_split(predictions, split, scheme)
    y, scores = _labels_and_scores(frame, scheme)
    fprs: dict[str, np.ndarray] = {}
    tprs: dict[str, np.ndarray] = {}
    aucs: dict[str, float] = {}
    undefined: dict[str, str] = {}
    present = []
    for j, name in enumerate(scheme.classes):
        positives = int(y[:, j].sum())
        if positives in (0, len(y)):
            warnings.warn(
                f"roc_curves: class {name!r} has {positives} of {len(y)} true slices; "
                "no one-vs-rest curve, left out of the macro-average",
                stacklevel=2,
            )
            undefined[name] = f"no {name} slice" if positives == 0 else f"only {name} slices"
            continue
        present.append(name)
        fprs[name], tprs[name], _ = roc_curve(y[:, j], scores[:, j])
        aucs[name] = float(auc(fprs[name], tprs[name]))
    fprs["micro"], tprs["micro"], _ = roc_curve(y.ravel(), scores.ravel())
    aucs["micro"] = float(auc(fprs["micro"], tprs["micro"]))
    if not present:  # one class only: a positive for it has no negative to be ranked against
        only = next(c for j, c in enumerate(scheme.classes) if y[:, j].any())
        undefined["macro"] = f"only {only} slices"
        return RocResult(fpr=fprs, tpr=tprs, auc=aucs, classes=(), undefined=undefined)

    grid = np.unique(np.concatenate([fprs[c] for c in present]))
    fprs["macro"] = grid
    tprs["macro"] = np.mean([np.interp(grid, fprs[c], tprs[c]) for c in present], axis=0)
    # One-vs-rest macro AUC on the one-hot columns of the classes present: the quantity of
    # roc_auc_score(multi_class="ovr", average="macro") (tested equal), without its check
    # that rows sum to 1 within 1e-5, which probabilities rounded in a CSV can fail.
    cols = [scheme.classes.index(c) for c in present]
    aucs["macro"] = float(roc_auc_score(y[:, cols], scores[:, cols], average="macro"))
    return RocResult(fpr=fprs, tpr=tprs, auc=aucs, classes=tuple(present),
                     undefined=undefined)


def bootstrap_micro_auc_ci(
    predictions: pd.DataFrame,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    split: str | None = None,
    progress: bool = False,
    scheme: ClassScheme = PAPER_CLASSES,
) -> dict[str, Any]:
    """Micro-AUC with a patient-clustered percentile bootstrap confidence interval.

    Each resample draws patients with replacement (as many as there are) and takes all of
    their slices, so the interval reflects between-patient variation rather than treating
    correlated slices as independent. A resample lacking any class present in the
    original data is skipped and counted: its AUC would measure a different mixture.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Predictions table with ``patient_id`` and the ``prob_<class>`` columns.
    n_resamples : int
        Bootstrap resamples drawn (>= 1), skipped ones included.
    seed : int
        Seed of the ``numpy.random.Generator``; the same seed gives the same interval.
    confidence : float
        Coverage of the percentile interval, in (0, 1).
    split : str, optional
        Restrict to this split.
    progress : bool
        Show a tqdm progress bar over the resamples.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    dict
        ``value`` (micro-AUC of the data), ``ci95`` ([lower, upper] percentiles of the
        resampled AUCs), ``n_resamples``, ``n_skipped``, ``n_patients``, ``confidence``.

    Raises
    ------
    ValueError
        With bad ``n_resamples``, ``seed`` or ``confidence``.
    parotidlib.evaluation.stats.UndefinedError
        (a ``ValueError``) With fewer than :data:`MIN_BOOTSTRAP_PATIENTS` patients (reason
        ``"fewer than 2 patients"``) or if every resample was skipped (reason ``"every
        resample lacked a class"``): the interval is undefined.
    """
    check_int("n_resamples", n_resamples, 1)
    check_int("seed", seed, 0)
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) \
            or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1) exclusive, got {confidence!r}")
    frame = select_split(predictions, split, scheme)
    y, scores = _labels_and_scores(frame, scheme)
    patient_codes, patients = pd.factorize(frame["patient_id"], sort=True)
    if len(patients) < MIN_BOOTSTRAP_PATIENTS:
        raise UndefinedError(
            f"fewer than {MIN_BOOTSTRAP_PATIENTS} patients",
            f"predictions must hold at least {MIN_BOOTSTRAP_PATIENTS} patients for a "
            f"patient-clustered bootstrap, got {len(patients)}",
        )
    value = micro_auc(y, scores)
    rows_of = [np.flatnonzero(patient_codes == i) for i in range(len(patients))]
    present = y.sum(axis=0) > 0
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in tqdm(range(n_resamples), desc="bootstrap micro-AUC", disable=not progress):
        pick = rng.integers(0, len(patients), size=len(patients))
        idx = np.concatenate([rows_of[i] for i in pick])
        if not np.all(y[idx].sum(axis=0)[present] > 0):
            continue
        aucs.append(micro_auc(y[idx], scores[idx]))
    n_skipped = n_resamples - len(aucs)
    if not aucs:
        raise UndefinedError(
            "every resample lacked a class",
            f"all {n_resamples} bootstrap resamples lacked a class present in the data "
            f"({len(patients)} patients); the interval cannot be computed",
        )
    if n_skipped > 0.1 * n_resamples:
        warnings.warn(
            f"bootstrap_micro_auc_ci: {n_skipped} of {n_resamples} resamples skipped (a class "
            "missing); the interval rests on fewer resamples and is biased towards mixed ones",
            stacklevel=2,
        )
    alpha = (1.0 - float(confidence)) / 2.0
    lower, upper = np.quantile(aucs, [alpha, 1.0 - alpha])
    logger.info("micro-AUC %.4f, bootstrap CI [%.4f, %.4f] from %d resamples (%d skipped)",
                value, lower, upper, len(aucs), n_skipped)
    return {
        "value": value,
        "ci95": [float(lower), float(upper)],
        "n_resamples": int(n_resamples),
        "n_skipped": int(n_skipped),
        "n_patients": len(patients),
        "confidence": float(confidence),
    }
