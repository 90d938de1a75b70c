"""Calibration and clinical usefulness of predicted probabilities (torch-free).

A binary outcome ``y`` (0/1) and a predicted probability ``p`` of ``y = 1`` per item: a slice
(one-vs-rest of a class, :func:`one_vs_rest`), or a patient (the patient-level malignant
probability, malignant vs benign). The functions here measure how far ``p`` can be read as a
probability (calibration) and whether acting on it helps (decision curve):

- :func:`reliability_bins`: the reliability diagram, observed frequency per bin of ``p`` with
  its Wilson interval (binning as ``sklearn.calibration.calibration_curve``);
- :func:`brier_score`: mean squared error of ``p``;
- :func:`calibration_intercept_slope`: logistic recalibration (Cox 1958), calibration slope
  and calibration-in-the-large with Wald intervals, via statsmodels;
- :func:`expected_calibration_error`: the binned ECE of Naeini et al. (2015);
- :func:`net_benefit`: the decision curve of Vickers & Elkin (2006), with treat-all and
  treat-none;
- :func:`calibration_summary`: the JSON-able block an (external) validation report stores.

Undefined quantities follow docs/metrics.md ("Undefined quantities"): a calibration intercept
or slope the data do not define (a single outcome class, constant predictions, perfect
separation) is written as ``stats.undefined_block(reason)``, never raised. Invalid arguments
raise ``ValueError`` naming the argument and the value.

References
----------
Cox DR. Two further applications of a model for binary regression. Biometrika 1958;
    45:562-565.
Steyerberg EW. Clinical Prediction Models, 2nd ed. Springer 2019 (chapter 15, calibration
    intercept and slope).
Naeini MP, Cooper GF, Hauskrecht M. Obtaining well calibrated probabilities using Bayesian
    binning. AAAI 2015; 2901-2907 (expected calibration error).
Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction
    models. Med Decis Making 2006; 26:565-574.
Van Calster B, McLernon DJ, van Smeden M, Wynants L, Steyerberg EW. Calibration: the Achilles
    heel of predictive analytics. BMC Med 2019; 17:230.
Brier GW. Verification of forecasts expressed in terms of probability. Mon Weather Rev 1950;
    78:1-3.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from parotidlib.config import check_int
from parotidlib.evaluation.stats import undefined_block, wilson_interval

__all__ = [
    "BIN_STRATEGIES",
    "REASON_CONSTANT_PREDICTIONS",
    "REASON_NOT_CONVERGED",
    "REASON_NO_NEGATIVE",
    "REASON_NO_POSITIVE",
    "REASON_SEPARATION",
    "RELIABILITY_COLUMNS",
    "NET_BENEFIT_COLUMNS",
    "brier_score",
    "calibration_intercept_slope",
    "calibration_summary",
    "expected_calibration_error",
    "net_benefit",
    "one_vs_rest",
    "reliability_bins",
]

#: Binning strategies of :func:`reliability_bins` (those of sklearn's calibration_curve).
BIN_STRATEGIES = ("uniform", "quantile")

#: Columns of :func:`reliability_bins`.
RELIABILITY_COLUMNS = (
    "bin_low", "bin_high", "n", "mean_predicted", "observed", "ci_low", "ci_high",
)

#: Columns of :func:`net_benefit`.
NET_BENEFIT_COLUMNS = (
    "threshold", "net_benefit_model", "net_benefit_treat_all", "net_benefit_treat_none",
)

#: Reasons of an undefined calibration intercept or slope (docs/metrics.md vocabulary style).
REASON_NO_POSITIVE = "no positive case"
REASON_NO_NEGATIVE = "no negative case"
REASON_CONSTANT_PREDICTIONS = "constant predicted probability"
REASON_SEPARATION = "perfect separation"
REASON_NOT_CONVERGED = "fit did not converge"

_METHOD = (
    "logistic recalibration (Cox 1958; Steyerberg 2019): slope = coefficient of logit(p) in "
    "the logistic regression of y on logit(p) with an intercept; intercept "
    "(calibration-in-the-large) = intercept of the logistic regression of y with logit(p) as "
    "offset and no other covariate; statsmodels GLM Binomial (logit link), Wald 95% "
    "intervals; p clipped to [{eps:g}, 1 - {eps:g}]"
)


# --------------------------------------------------------------------------- validation


def _check_y_p(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``y`` (binary 0/1 or bool) and ``p`` (probabilities); return int and float."""
    y_arr = np.asarray(y)
    p_arr = np.asarray(p)
    if y_arr.ndim != 1 or y_arr.size == 0:
        raise ValueError(f"y must be a non-empty 1-D array, got shape {y_arr.shape}")
    if p_arr.ndim != 1 or p_arr.size == 0:
        raise ValueError(f"p must be a non-empty 1-D array, got shape {p_arr.shape}")
    if y_arr.size != p_arr.size:
        raise ValueError(
            f"y and p must have the same length, got len(y)={y_arr.size}, len(p)={p_arr.size}"
        )
    if y_arr.dtype == bool:
        y_int = y_arr.astype(np.int64)
    else:
        if not np.issubdtype(y_arr.dtype, np.number):
            raise ValueError(f"y must hold 0/1 or booleans, got dtype {y_arr.dtype} "
                             f"(values {np.unique(y_arr)[:5]!r})")
        bad = ~np.isin(y_arr, (0, 1))
        if np.any(bad):
            raise ValueError(f"y must be binary 0/1, got value {y_arr[bad][0].item()!r}")
        y_int = y_arr.astype(np.int64)
    if p_arr.dtype == bool or not np.issubdtype(p_arr.dtype, np.number):
        raise ValueError(f"p must hold probabilities (numbers), got dtype {p_arr.dtype}")
    p_float = p_arr.astype(np.float64)
    bad = ~(np.isfinite(p_float) & (p_float >= 0.0) & (p_float <= 1.0))
    if np.any(bad):
        raise ValueError(
            f"p must hold probabilities in [0, 1], got value {p_float[bad][0].item()!r}"
        )
    return y_int, p_float


def _check_n_bins(n_bins: Any) -> int:
    return int(check_int("n_bins", n_bins, 1))


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool | np.bool_) or not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a number in (0, 0.5), got {eps!r}")
    if not 0.0 < float(eps) < 0.5:
        raise ValueError(f"eps must be in (0, 0.5) exclusive, got {eps!r}")
    return float(eps)


# --------------------------------------------------------------------------- binning


def _bin_ids(p: np.ndarray, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and each probability's bin index, exactly as sklearn's calibration_curve.

    Bins are ``[e0, e1], (e1, e2], ..., (e_{k-1}, e_k]`` (``numpy.searchsorted`` on the inner
    edges, side left): a probability on an inner edge falls in the lower bin.
    """
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0.0, 1.0, n_bins + 1) * 100)
    else:
        raise ValueError(f"strategy must be one of {BIN_STRATEGIES}, got {strategy!r}")
    return edges, np.searchsorted(edges[1:-1], p)


def reliability_bins(
    y: Any,
    p: Any,
    n_bins: int = 10,
    strategy: str = "uniform",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Reliability diagram: observed frequency of ``y = 1`` per bin of ``p``, with intervals.

    Parameters
    ----------
    y : array-like of 0/1 or bool, shape (N,)
        Observed outcome.
    p : array-like of float in [0, 1], shape (N,)
        Predicted probability of ``y = 1``.
    n_bins : int
        Number of bins (>= 1).
    strategy : {"uniform", "quantile"}
        ``"uniform"``: equal-width bins on [0, 1]; ``"quantile"``: edges at the quantiles of
        ``p`` (equal counts up to ties), as ``sklearn.calibration.calibration_curve``.
    confidence : float
        Coverage of the Wilson interval of each bin's observed frequency.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin (empty bins are left out), in increasing order, with columns
        ``bin_low``, ``bin_high`` (edges; a bin is ``(bin_low, bin_high]``, the first one
        closed), ``n`` (items), ``mean_predicted`` (mean ``p``), ``observed`` (fraction of
        ``y = 1``), ``ci_low``, ``ci_high`` (Wilson score interval of ``observed``,
        :func:`parotidlib.evaluation.stats.wilson_interval`). ``observed`` and
        ``mean_predicted`` equal calibration_curve's ``prob_true`` and ``prob_pred``.

    Raises
    ------
    ValueError
        If ``y`` or ``p`` is invalid, ``n_bins`` < 1, ``strategy`` unknown or ``confidence``
        outside (0, 1).

    References
    ----------
    Niculescu-Mizil A, Caruana R. Predicting good probabilities with supervised learning.
    ICML 2005. Van Calster et al. 2019 (flexible and binned calibration curves).

    Examples
    --------
    >>> frame = reliability_bins([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], n_bins=2)
    >>> frame[["n", "mean_predicted", "observed"]].round(3).values.tolist()
    [[2.0, 0.15, 0.0], [2.0, 0.8, 1.0]]
    """
    y_int, p_float = _check_y_p(y, p)
    n_bins = _check_n_bins(n_bins)
    edges, ids = _bin_ids(p_float, n_bins, strategy)
    counts = np.bincount(ids, minlength=n_bins)
    sums = np.bincount(ids, weights=p_float, minlength=n_bins)
    positives = np.bincount(ids, weights=y_int, minlength=n_bins)
    rows = []
    for b in np.flatnonzero(counts):
        n, k = int(counts[b]), int(round(positives[b]))
        lo, hi = wilson_interval(k, n, confidence)
        rows.append({
            "bin_low": float(edges[b]),
            "bin_high": float(edges[b + 1]),
            "n": n,
            "mean_predicted": float(sums[b] / n),
            "observed": float(positives[b] / n),
            "ci_low": lo,
            "ci_high": hi,
        })
    return pd.DataFrame(rows, columns=list(RELIABILITY_COLUMNS))


def expected_calibration_error(y: Any, p: Any, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width bins (Naeini et al. 2015).

    ``ECE = sum_b (n_b / N) * |observed_b - mean_predicted_b|`` over the non-empty bins of
    :func:`reliability_bins` with ``strategy="uniform"``.

    Parameters
    ----------
    y, p
        As in :func:`reliability_bins`.
    n_bins : int
        Number of equal-width bins on [0, 1].

    Returns
    -------
    float
        In [0, 1]; 0 when every bin's observed frequency equals its mean prediction. It
        depends on ``n_bins`` and is biased upwards in small bins (Van Calster et al. 2019
        prefer the intercept, slope and a flexible curve).

    References
    ----------
    Naeini MP, Cooper GF, Hauskrecht M. AAAI 2015.

    Examples
    --------
    >>> round(expected_calibration_error([0, 1, 1, 1], [0.25, 0.25, 0.75, 0.75], n_bins=2), 6)
    0.25
    """
    frame = reliability_bins(y, p, n_bins=n_bins, strategy="uniform")
    weights = frame["n"].to_numpy(dtype=float)
    gaps = np.abs(frame["observed"].to_numpy() - frame["mean_predicted"].to_numpy())
    return float(np.sum(weights * gaps) / np.sum(weights))


def brier_score(y: Any, p: Any) -> float:
    """Brier score, the mean squared difference between ``p`` and ``y`` (Brier 1950).

    Parameters
    ----------
    y, p
        As in :func:`reliability_bins`.

    Returns
    -------
    float
        ``mean((p - y)^2)`` in [0, 1]; 0.25 for ``p = 0.5`` everywhere. Equals
        ``sklearn.metrics.brier_score_loss(y, p)``.

    Examples
    --------
    >>> round(brier_score([0, 1], [0.2, 0.6]), 6)
    0.1
    """
    from sklearn.metrics import brier_score_loss

    y_int, p_float = _check_y_p(y, p)
    return float(brier_score_loss(y_int, p_float, pos_label=1))


# --------------------------------------------------------------------------- recalibration


def _logit(p: np.ndarray, eps: float) -> np.ndarray:
    q = np.clip(p, eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)


def _fit_glm(y: np.ndarray, exog: np.ndarray, offset: np.ndarray | None) -> Any:
    """Fit a Binomial GLM; None when statsmodels reports separation or no convergence."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            # Started at "perfectly calibrated" (intercept 0, slope 1): IRLS from its
            # default start (the mean outcome, offset ignored) can diverge when many
            # offsets sit at the clipping bound (intercept -3e15 on real predictions).
            start = np.zeros(exog.shape[1])
            start[1:] = 1.0
            result = sm.GLM(y, exog, family=sm.families.Binomial(), offset=offset).fit(
                start_params=start)
        except (PerfectSeparationError, PerfectSeparationWarning):
            raise _Separation() from None
        except ConvergenceWarning:
            return None
    if not getattr(result, "converged", True):
        return None
    return result


class _Separation(Exception):
    """Internal: statsmodels found the outcome perfectly separated."""


def _coefficient_block(result: Any, index: int) -> dict[str, Any] | None:
    value = float(result.params[index])
    lo, hi = (float(b) for b in np.asarray(result.conf_int(alpha=0.05))[index])
    if not all(np.isfinite((value, lo, hi))):
        return None
    return {"value": value, "ci95": [lo, hi]}


def calibration_intercept_slope(y: Any, p: Any, eps: float = 1e-6) -> dict[str, Any]:
    """Calibration intercept and slope by logistic recalibration, with Wald 95% intervals.

    With ``x = logit(p)`` (``p`` clipped to ``[eps, 1 - eps]``):

    - the **slope** is ``b`` in ``logit P(y = 1) = a + b x`` (Cox 1958). 1 is ideal; below 1
      the predictions are too extreme (overconfident, typical of overfitting), above 1 too
      moderate;
    - the **intercept** (calibration-in-the-large) is ``a`` in ``logit P(y = 1) = a + x``,
      ``x`` an offset (slope fixed at 1). 0 is ideal; above 0 the predictions are too low on
      average, below 0 too high (Steyerberg 2019; Van Calster et al. 2019).

    Both are fitted as statsmodels ``GLM(family=Binomial())`` (logit link); the intervals are
    the fitted models' Wald intervals (``conf_int(alpha=0.05)``).

    Parameters
    ----------
    y, p
        As in :func:`reliability_bins`.
    eps : float
        Clipping of ``p`` before the logit, in (0, 0.5); p = 0 or 1 would give an infinite
        logit.

    Returns
    -------
    dict
        ``intercept`` and ``slope``: each a block ``{"value": float, "ci95": [lo, hi]}`` (the
        interval is on the logit scale, not a proportion), or, where the data leave it
        undefined, :func:`parotidlib.evaluation.stats.undefined_block` with one of the
        reasons ``REASON_NO_POSITIVE``/``REASON_NO_NEGATIVE`` (``y`` has one class: both
        undefined), ``REASON_CONSTANT_PREDICTIONS`` (every clipped ``p`` equal: the slope
        only), ``REASON_SEPARATION`` (``logit(p)`` separates the classes, no finite slope),
        ``REASON_NOT_CONVERGED``; ``method`` (text), ``n`` (items), ``eps``.

    Raises
    ------
    ValueError
        If ``y``, ``p`` or ``eps`` is invalid (never for undefined quantities).

    References
    ----------
    Cox DR. Biometrika 1958; 45:562-565. Steyerberg EW. Clinical Prediction Models, 2nd ed.
    Springer 2019. Van Calster B et al. BMC Med 2019; 17:230.

    Examples
    --------
    >>> calibration_intercept_slope([1, 1, 1], [0.2, 0.5, 0.9])["slope"]["undefined"]
    'no negative case'
    """
    y_int, p_float = _check_y_p(y, p)
    eps = _check_eps(eps)
    out: dict[str, Any] = {"method": _METHOD.format(eps=eps), "n": int(y_int.size),
                           "eps": eps}
    n_pos = int(y_int.sum())
    if n_pos == 0 or n_pos == y_int.size:
        reason = REASON_NO_POSITIVE if n_pos == 0 else REASON_NO_NEGATIVE
        out["intercept"] = undefined_block(reason)
        out["slope"] = undefined_block(reason)
        return out
    x = _logit(p_float, eps)
    ones = np.ones((x.size, 1))

    # Calibration-in-the-large: defined whenever both classes occur (the offset model's
    # intercept solves mean(sigmoid(a + x)) = mean(y), a monotone equation in a).
    try:
        fit = _fit_glm(y_int, ones, offset=x)
        block = None if fit is None else _coefficient_block(fit, 0)
    except _Separation:
        block = None
    out["intercept"] = block if block is not None else undefined_block(REASON_NOT_CONVERGED)

    # Slope: needs a non-constant x, and overlapping classes (with one covariate the MLE is
    # finite iff no threshold on x separates y, ties at the threshold allowed).
    if np.ptp(x) == 0.0:
        out["slope"] = undefined_block(REASON_CONSTANT_PREDICTIONS)
        return out
    x0, x1 = x[y_int == 0], x[y_int == 1]
    if x0.max() <= x1.min() or x1.max() <= x0.min():
        out["slope"] = undefined_block(REASON_SEPARATION)
        return out
    try:
        fit = _fit_glm(y_int, np.column_stack([ones[:, 0], x]), offset=None)
    except _Separation:
        out["slope"] = undefined_block(REASON_SEPARATION)
        return out
    block = None if fit is None else _coefficient_block(fit, 1)
    out["slope"] = block if block is not None else undefined_block(REASON_NOT_CONVERGED)
    return out


# --------------------------------------------------------------------------- decision curve


def _check_thresholds(thresholds: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(thresholds))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"thresholds must be numbers in (0, 1), got dtype {arr.dtype}")
    t = arr.astype(np.float64)
    bad = ~(np.isfinite(t) & (t > 0.0) & (t < 1.0))
    if np.any(bad):
        raise ValueError(
            f"thresholds must lie in (0, 1) exclusive (the odds pt/(1-pt) is 0 or infinite "
            f"at the ends), got {t[bad][0].item()!r}"
        )
    return t


def net_benefit(y: Any, p: Any, thresholds: Any) -> pd.DataFrame:
    """Decision curve: net benefit of "treat if ``p >= pt``" against the threshold ``pt``.

    For each threshold probability ``pt`` (here: operate as malignant when the predicted
    probability of malignancy is at least ``pt``), with ``n`` items, ``TP`` the positives and
    ``FP`` the negatives with ``p >= pt``:

    - model: ``NB = TP/n - FP/n * pt/(1 - pt)``;
    - treat all: ``prevalence - (1 - prevalence) * pt/(1 - pt)``;
    - treat none: 0.

    Parameters
    ----------
    y, p
        As in :func:`reliability_bins` (``y = 1``: the condition to treat, e.g. malignant).
    thresholds : array-like of float in (0, 1)
        Threshold probabilities, in the order given; 0 and 1 are refused.

    Returns
    -------
    pandas.DataFrame
        Columns ``threshold``, ``net_benefit_model``, ``net_benefit_treat_all``,
        ``net_benefit_treat_none`` (0.0), one row per threshold.

    References
    ----------
    Vickers AJ, Elkin EB. Med Decis Making 2006; 26:565-574.

    Examples
    --------
    >>> net_benefit([1, 0], [0.9, 0.4], [0.5]).round(3).values.tolist()
    [[0.5, 0.5, 0.0, 0.0]]
    """
    y_int, p_float = _check_y_p(y, p)
    t = _check_thresholds(thresholds)
    n = y_int.size
    prevalence = y_int.mean()
    positive = y_int == 1
    treat = p_float[None, :] >= t[:, None]  # thresholds x items
    tp = np.sum(treat & positive[None, :], axis=1)
    fp = np.sum(treat & ~positive[None, :], axis=1)
    odds = t / (1.0 - t)
    return pd.DataFrame({
        "threshold": t,
        "net_benefit_model": tp / n - fp / n * odds,
        "net_benefit_treat_all": prevalence - (1.0 - prevalence) * odds,
        "net_benefit_treat_none": np.zeros_like(t),
    }, columns=list(NET_BENEFIT_COLUMNS))


# --------------------------------------------------------------------------- summary, helper


def calibration_summary(y: Any, p: Any, n_bins: int = 10) -> dict[str, Any]:
    """The calibration block an (external) validation report stores; JSON-able.

    Parameters
    ----------
    y, p
        As in :func:`reliability_bins`.
    n_bins : int
        Equal-width bins of the ECE and of the stored reliability diagram.

    Returns
    -------
    dict
        ``n`` (int), ``prevalence`` (mean of ``y``), ``brier`` (:func:`brier_score`), ``ece``
        and ``n_bins`` (:func:`expected_calibration_error`), ``intercept``, ``slope`` and
        ``method`` (:func:`calibration_intercept_slope`; blocks, undefined blocks with a
        reason where the data leave them undefined), ``reliability`` (the rows of
        :func:`reliability_bins`, uniform, as a list of dicts). Plain Python numbers, lists
        and ``None`` only, so ``json.dumps`` writes it as strict JSON.

    Examples
    --------
    >>> sorted(calibration_summary([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.6]))[:4]
    ['brier', 'ece', 'eps', 'intercept']
    """
    y_int, p_float = _check_y_p(y, p)
    n_bins = _check_n_bins(n_bins)
    recal = calibration_intercept_slope(y_int, p_float)
    bins = reliability_bins(y_int, p_float, n_bins=n_bins, strategy="uniform")
    reliability = [
        {key: (int(row[key]) if key == "n" else float(row[key])) for key in RELIABILITY_COLUMNS}
        for row in bins.to_dict("records")
    ]
    return {
        "n": int(y_int.size),
        "prevalence": float(y_int.mean()),
        "brier": brier_score(y_int, p_float),
        "ece": expected_calibration_error(y_int, p_float, n_bins=n_bins),
        "n_bins": n_bins,
        "intercept": recal["intercept"],
        "slope": recal["slope"],
        "method": recal["method"],
        "eps": recal["eps"],
        "reliability": reliability,
    }


def one_vs_rest(
    labels: Any, probabilities: Any, classes: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-class binary outcomes and probabilities, for one-vs-rest calibration.

    Parameters
    ----------
    labels : array-like of str, shape (N,)
        True class name of each item; each must be one of ``classes``.
    probabilities : array-like of float in [0, 1], shape (N, K)
        Predicted probability of each class, columns in ``classes`` order (e.g. the
        ``prob_<class>`` columns of predictions.csv in the class scheme's order,
        :func:`parotidlib.evaluation.classes.probability_columns`).
    classes : sequence of str, length K
        Distinct class names.

    Returns
    -------
    dict
        ``class -> (y, p)``, in ``classes`` order: ``y`` (int 0/1, shape (N,)) is 1 where the
        label is that class, ``p`` (float, shape (N,)) is its probability column.

    Raises
    ------
    ValueError
        If ``classes`` is empty or repeats a name, ``probabilities`` is not N x K or holds a
        value outside [0, 1], or a label is not in ``classes``.

    Examples
    --------
    >>> y, p = one_vs_rest(["a", "b"], [[0.9, 0.1], [0.3, 0.7]], ["a", "b"])["b"]
    >>> y.tolist(), p.tolist()
    ([0, 1], [0.1, 0.7])
    """
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of class names, got the string {classes!r}")
    names = [str(c) for c in classes]
    if not names:
        raise ValueError("classes must name at least one class, got []")
    if len(set(names)) != len(names):
        raise ValueError(f"classes must be distinct, got {names!r}")
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {lab.shape}")
    lab = lab.astype(str)
    unknown = ~np.isin(lab, names)
    if np.any(unknown):
        raise ValueError(f"labels must be one of {names}, got {lab[unknown][0].item()!r}")
    prob = np.asarray(probabilities)
    if prob.ndim != 2 or prob.shape != (lab.size, len(names)):
        raise ValueError(
            f"probabilities must have shape (len(labels), len(classes)) = "
            f"({lab.size}, {len(names)}), got {prob.shape}"
        )
    if prob.dtype == bool or not np.issubdtype(prob.dtype, np.number):
        raise ValueError(f"probabilities must be numbers, got dtype {prob.dtype}")
    prob = prob.astype(np.float64)
    bad = ~(np.isfinite(prob) & (prob >= 0.0) & (prob <= 1.0))
    if np.any(bad):
        raise ValueError(f"probabilities must lie in [0, 1], got value {prob[bad][0].item()!r}")
    return {
        name: ((lab == name).astype(np.int64), prob[:, j].copy())
        for j, name in enumerate(names)
    }
