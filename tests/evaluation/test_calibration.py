"""Calibration and decision-curve statistics against independent computations.

Reliability bins and the Brier score are checked against scikit-learn (calibration_curve,
brier_score_loss), the bins' intervals against statsmodels' Wilson interval, the calibration
intercept and slope against a direct maximum-likelihood fit with scipy and against synthetic
data of known calibration, and the ECE and the decision curve against hand computations.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq, minimize
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from statsmodels.stats.proportion import proportion_confint

from parotidlib.constants import CLASSES
from parotidlib.evaluation.calibration import (
    NET_BENEFIT_COLUMNS,
    REASON_CONSTANT_PREDICTIONS,
    REASON_NO_NEGATIVE,
    REASON_NO_POSITIVE,
    REASON_SEPARATION,
    RELIABILITY_COLUMNS,
    brier_score,
    calibration_intercept_slope,
    calibration_summary,
    expected_calibration_error,
    net_benefit,
    one_vs_rest,
    reliability_bins,
)


def _calibrated(n: int = 20000, seed: int = 20210301) -> tuple[np.ndarray, np.ndarray]:
    """p ~ U(0.05, 0.95) and y ~ Bernoulli(p): perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, p


def _datasets():
    rng = np.random.default_rng(7)
    y, p = _calibrated(500, seed=3)
    yield "calibrated", y, p
    # Concentrated in [0, 0.3]: most uniform bins are empty.
    p = rng.uniform(0.0, 0.3, 200)
    yield "low", (rng.uniform(size=200) < p).astype(int), p
    # Values on every uniform edge, including 0 and 1, and many ties (quantile edges repeat).
    p = np.round(rng.uniform(size=300), 1)
    yield "edges", (rng.uniform(size=300) < 0.5).astype(int), p
    # Tiny.
    yield "tiny", np.array([0, 1, 1]), np.array([0.2, 0.6, 0.61])


# --------------------------------------------------------------------------- reliability


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [1, 3, 5, 10, 15])
def test_reliability_bins_match_sklearn_calibration_curve(strategy, n_bins):
    for name, y, p in _datasets():
        frame = reliability_bins(y, p, n_bins=n_bins, strategy=strategy)
        prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
        assert list(frame.columns) == list(RELIABILITY_COLUMNS)
        assert len(frame) == len(prob_true), name
        np.testing.assert_allclose(frame["observed"], prob_true, rtol=0, atol=1e-12)
        np.testing.assert_allclose(frame["mean_predicted"], prob_pred, rtol=0, atol=1e-12)
        assert frame["n"].sum() == len(y)
        assert (frame["n"] > 0).all()  # empty bins left out
        assert (frame["bin_low"] <= frame["mean_predicted"] + 1e-12).all()
        assert (frame["mean_predicted"] <= frame["bin_high"] + 1e-12).all()


def test_reliability_bins_intervals_are_wilson():
    y, p = _calibrated(400, seed=11)
    frame = reliability_bins(y, p, n_bins=8, confidence=0.9)
    for row in frame.itertuples():
        k = round(row.observed * row.n)
        lo, hi = proportion_confint(k, row.n, alpha=0.1, method="wilson")
        assert row.ci_low == pytest.approx(lo, abs=1e-12)
        assert row.ci_high == pytest.approx(hi, abs=1e-12)
        assert row.ci_low <= row.observed <= row.ci_high


def test_reliability_bins_by_hand():
    # 3 uniform bins [0, 1/3], (1/3, 2/3], (2/3, 1]: the middle one is empty and left out.
    frame = reliability_bins([0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.9, 0.8], n_bins=3)
    assert frame["n"].tolist() == [3, 2]
    np.testing.assert_allclose(frame["mean_predicted"], [0.2, 0.85])
    np.testing.assert_allclose(frame["observed"], [1 / 3, 1.0])
    np.testing.assert_allclose(frame["bin_low"], [0.0, 2 / 3])
    np.testing.assert_allclose(frame["bin_high"], [1 / 3, 1.0])
    assert frame["ci_high"].iloc[1] == 1.0  # Wilson at k = n


# --------------------------------------------------------------------------- Brier, ECE


def test_brier_score_matches_sklearn():
    for _name, y, p in _datasets():
        assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    assert brier_score([True, False], [1.0, 0.0]) == 0.0
    assert brier_score([1, 0, 1, 0], [0.5] * 4) == 0.25


def test_expected_calibration_error_by_hand():
    # n_bins = 2: [0, 0.5] holds p = 0.1, 0.3, 0.4 (y = 0, 0, 1): mean p = 0.8/3, observed
    # 1/3, gap 0.2/3, weight 3/5. (0.5, 1] holds p = 0.8, 0.6 (y = 1, 1): mean 0.7, observed
    # 1, gap 0.3, weight 2/5. ECE = 3/5 * 0.2/3 + 2/5 * 0.3 = 0.04 + 0.12 = 0.16.
    y = [0, 0, 1, 1, 1]
    p = [0.1, 0.3, 0.4, 0.8, 0.6]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.16, abs=1e-12)
    # One bin: |mean(y) - mean(p)| = |0.6 - 0.44| = 0.16 as well.
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(0.16, abs=1e-12)
    # With 10 bins every item is alone in its bin: mean |y - p| = (0.1+0.3+0.6+0.2+0.4)/5.
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.32, abs=1e-12)


def test_expected_calibration_error_matches_sklearn_bins():
    y, p = _calibrated()
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
    counts = counts[counts > 0]
    expected = np.sum(counts * np.abs(prob_true - prob_pred)) / len(y)
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)
    assert expected_calibration_error(y, p) < 0.02  # calibrated by construction, n = 20000


# --------------------------------------------------------------------------- intercept, slope


def _mle_slope(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of logit P(y=1) = a + b x, by scipy, independent of statsmodels."""
    def nll(theta):
        eta = theta[0] + theta[1] * x
        return np.sum(np.logaddexp(0.0, eta) - y * eta)

    def grad(theta):
        r = expit(theta[0] + theta[1] * x) - y
        return np.array([r.sum(), (r * x).sum()])

    res = minimize(nll, np.zeros(2), jac=grad, method="BFGS", options={"gtol": 1e-10})
    return float(res.x[0]), float(res.x[1])


def _mle_offset_intercept(y: np.ndarray, x: np.ndarray) -> float:
    """The a solving the score equation sum(sigmoid(a + x)) = sum(y) of the offset model."""
    return float(brentq(lambda a: np.sum(expit(a + x)) - np.sum(y), -50, 50, xtol=1e-14))


def test_perfectly_calibrated_gives_slope_one_intercept_zero():
    y, p = _calibrated()
    out = calibration_intercept_slope(y, p)
    assert out["slope"]["value"] == pytest.approx(1.0, abs=0.1)
    assert out["intercept"]["value"] == pytest.approx(0.0, abs=0.1)
    lo, hi = out["slope"]["ci95"]
    assert lo < 1.0 < hi
    lo, hi = out["intercept"]["ci95"]
    assert lo < 0.0 < hi
    assert out["n"] == len(y)
    assert "offset" in out["method"] and "Cox 1958" in out["method"]


def test_overconfident_predictions_give_slope_one_half():
    # p' = sigmoid(2 logit p): logit P(y=1) = logit p = 0.5 logit p', so slope 0.5, intercept 0.
    y, p = _calibrated()
    out = calibration_intercept_slope(y, expit(2 * logit(p)))
    assert out["slope"]["value"] == pytest.approx(0.5, abs=0.05)
    lo, hi = out["slope"]["ci95"]
    assert lo < 0.5 < hi and hi < 1.0


def test_shifted_predictions_give_intercept_shift():
    # p' = sigmoid(logit p - 1): predictions too low, calibration-in-the-large about +1
    # (not exactly 1, since the offset model fixes the slope at 1 but averages over p).
    y, p = _calibrated()
    out = calibration_intercept_slope(y, expit(logit(p) - 1.0))
    assert out["intercept"]["value"] == pytest.approx(1.0, abs=0.1)
    assert out["slope"]["value"] == pytest.approx(1.0, abs=0.1)


def test_intercept_and_slope_match_direct_maximum_likelihood():
    rng = np.random.default_rng(42)
    p = rng.uniform(0.01, 0.99, 300)
    y = (rng.uniform(size=300) < expit(0.3 + 0.7 * logit(p))).astype(int)
    out = calibration_intercept_slope(y, p)
    _a, b = _mle_slope(y, logit(p))
    assert out["slope"]["value"] == pytest.approx(b, abs=1e-6)
    assert out["intercept"]["value"] == pytest.approx(_mle_offset_intercept(y, logit(p)),
                                                      abs=1e-8)


def test_extreme_probabilities_are_clipped():
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.0, 1.0, 0.3, 0.6, 0.4, 0.7])
    eps = 1e-6
    out = calibration_intercept_slope(y, p, eps=eps)
    x = logit(np.clip(p, eps, 1 - eps))
    assert out["intercept"]["value"] == pytest.approx(_mle_offset_intercept(y, x), abs=1e-7)
    assert out["slope"]["value"] == pytest.approx(_mle_slope(y, x)[1], abs=1e-5)
    assert out["eps"] == eps


@pytest.mark.parametrize("y, reason", [([0, 0, 0], REASON_NO_POSITIVE),
                                       ([1, 1, 1], REASON_NO_NEGATIVE)])
def test_one_class_leaves_intercept_and_slope_undefined(y, reason):
    out = calibration_intercept_slope(y, [0.1, 0.5, 0.9])
    for key in ("intercept", "slope"):
        assert out[key] == {"value": None, "ci95": None, "undefined": reason}


def test_constant_predictions_leave_only_the_slope_undefined():
    y = [0, 1, 1, 0, 1]
    out = calibration_intercept_slope(y, [0.4] * 5)
    assert out["slope"] == {"value": None, "ci95": None, "undefined": REASON_CONSTANT_PREDICTIONS}
    # Offset model with constant x: a = logit(mean y) - logit(0.4).
    assert out["intercept"]["value"] == pytest.approx(logit(0.6) - logit(0.4), abs=1e-8)


@pytest.mark.parametrize("p", [[0.1, 0.2, 0.8, 0.9], [0.1, 0.5, 0.5, 0.9]])
def test_separation_leaves_the_slope_undefined(p):
    # The second case is quasi-complete separation (a tie at the threshold).
    out = calibration_intercept_slope([0, 0, 1, 1], p)
    assert out["slope"]["undefined"] == REASON_SEPARATION
    assert out["intercept"]["value"] is not None


# --------------------------------------------------------------------------- net benefit


def test_net_benefit_by_hand():
    # 10 patients, 4 malignant (prevalence 0.4); treat (operate) if p >= pt.
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p = [0.9, 0.7, 0.4, 0.2, 0.8, 0.5, 0.3, 0.25, 0.1, 0.05]
    # pt = 0.1, odds 1/9: TP = 4 (all positives), FP = 5 (0.8, 0.5, 0.3, 0.25, 0.1; the
    #   0.1 tie is treated). NB = 4/10 - 5/10 * 1/9 = 0.344444; all: 0.4 - 0.6/9 = 0.333333.
    # pt = 0.3, odds 3/7: TP = 3 (0.9, 0.7, 0.4), FP = 3 (0.8, 0.5, 0.3 tie).
    #   NB = 0.3 - 0.3 * 3/7 = 0.171429; all: 0.4 - 0.6 * 3/7 = 0.142857.
    # pt = 0.5, odds 1: TP = 2 (0.9, 0.7), FP = 2 (0.8, 0.5 tie). NB = 0.2 - 0.2 = 0;
    #   all: 0.4 - 0.6 = -0.2.
    frame = net_benefit(y, p, [0.1, 0.3, 0.5])
    assert list(frame.columns) == list(NET_BENEFIT_COLUMNS)
    np.testing.assert_allclose(frame["threshold"], [0.1, 0.3, 0.5])
    np.testing.assert_allclose(frame["net_benefit_model"],
                               [0.4 - 0.5 / 9, 0.3 - 0.3 * 3 / 7, 0.0], atol=1e-12)
    np.testing.assert_allclose(frame["net_benefit_treat_all"],
                               [0.4 - 0.6 / 9, 0.4 - 0.6 * 3 / 7, -0.2], atol=1e-12)
    np.testing.assert_allclose(frame["net_benefit_model"], [0.344444, 0.171429, 0.0],
                               atol=1e-6)
    assert (frame["net_benefit_treat_none"] == 0.0).all()


def test_net_benefit_of_a_perfect_model_is_the_prevalence():
    y = np.array([1, 0, 1, 0, 0])
    p = y.astype(float)
    frame = net_benefit(y, p, np.linspace(0.05, 0.95, 19))
    np.testing.assert_allclose(frame["net_benefit_model"], 0.4)
    # Treat-all equals the model when every p exceeds the threshold.
    frame = net_benefit(y, np.full(5, 0.99), [0.2, 0.6])
    np.testing.assert_allclose(frame["net_benefit_model"], frame["net_benefit_treat_all"])


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, np.nan])
def test_net_benefit_refuses_thresholds_outside_the_open_interval(bad):
    with pytest.raises(ValueError, match="thresholds"):
        net_benefit([0, 1], [0.2, 0.8], [0.5, bad])


def test_net_benefit_refuses_empty_thresholds():
    with pytest.raises(ValueError, match="thresholds"):
        net_benefit([0, 1], [0.2, 0.8], [])


# --------------------------------------------------------------------------- summary, helper


def test_calibration_summary_is_json_and_agrees_with_its_parts():
    y, p = _calibrated(2000, seed=9)
    summary = calibration_summary(y, p, n_bins=5)
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["n"] == 2000
    assert summary["prevalence"] == pytest.approx(y.mean())
    assert summary["brier"] == pytest.approx(brier_score_loss(y, p))
    assert summary["ece"] == expected_calibration_error(y, p, n_bins=5)
    recal = calibration_intercept_slope(y, p)
    assert summary["slope"] == recal["slope"] and summary["intercept"] == recal["intercept"]
    assert len(summary["reliability"]) == 5
    assert set(summary["reliability"][0]) == set(RELIABILITY_COLUMNS)


def test_calibration_summary_of_one_class_is_json_with_reasons():
    summary = calibration_summary([1, 1, 1, 1], [0.6, 0.7, 0.8, 0.9])
    json.dumps(summary, allow_nan=False)
    assert summary["slope"]["undefined"] == REASON_NO_NEGATIVE
    assert summary["intercept"]["value"] is None
    assert summary["prevalence"] == 1.0
    assert summary["brier"] == pytest.approx((0.16 + 0.09 + 0.04 + 0.01) / 4)


def test_one_vs_rest_splits_columns_in_class_order():
    labels = np.array(["free", "malignant", "warthin", "malignant"])
    prob = np.array([[0.7, 0.1, 0.1, 0.1],
                     [0.1, 0.1, 0.1, 0.7],
                     [0.1, 0.2, 0.6, 0.1],
                     [0.2, 0.2, 0.2, 0.4]])
    out = one_vs_rest(labels, prob, CLASSES)
    assert list(out) == list(CLASSES)
    y, p = out["malignant"]
    assert y.tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(p, [0.1, 0.7, 0.1, 0.4])
    y, _p = out["pleomorphic_adenoma"]
    assert y.sum() == 0  # absent class: y all 0, its slope is then undefined
    assert calibration_intercept_slope(*out["pleomorphic_adenoma"])["slope"]["undefined"] == (
        REASON_NO_POSITIVE)
    # Works on a predictions-like frame too.
    frame = pd.DataFrame(prob, columns=[f"prob_{c}" for c in CLASSES])
    out2 = one_vs_rest(pd.Series(labels), frame.to_numpy(), CLASSES)
    np.testing.assert_array_equal(out2["free"][1], prob[:, 0])


@pytest.mark.parametrize("labels, prob, classes, match", [
    (["a", "c"], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], "labels"),
    (["a", "b"], [[0.5, 0.5]], ["a", "b"], "probabilities"),
    (["a", "b"], [[0.5, 0.5], [1.5, 0.5]], ["a", "b"], "probabilities"),
    (["a", "b"], [[0.5, 0.5], [0.5, 0.5]], ["a", "a"], "classes"),
    (["a", "b"], [[0.5, 0.5], [0.5, 0.5]], [], "classes"),
])
def test_one_vs_rest_validates(labels, prob, classes, match):
    with pytest.raises(ValueError, match=match):
        one_vs_rest(labels, prob, classes)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("func", [
    brier_score, expected_calibration_error, calibration_intercept_slope, calibration_summary,
    reliability_bins, lambda y, p: net_benefit(y, p, [0.5]),
])
@pytest.mark.parametrize("y, p, match", [
    ([0, 1, 1], [0.2, 0.8], r"len\(y\)=3, len\(p\)=2"),
    ([0, 2], [0.2, 0.8], "y must be binary 0/1, got value 2"),
    (["a", "b"], [0.2, 0.8], "y must hold 0/1"),
    ([0, 1], [0.2, 1.2], r"p must hold probabilities in \[0, 1\], got value 1.2"),
    ([0, 1], [-0.1, 0.5], "got value -0.1"),
    ([0, 1], [np.nan, 0.5], "got value nan"),
    ([], [], "y must be a non-empty"),
    ([[0, 1]], [[0.2, 0.8]], "y must be a non-empty 1-D"),
])
def test_invalid_y_or_p_is_refused(func, y, p, match):
    with pytest.raises(ValueError, match=match):
        func(y, p)


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="strategy"):
        reliability_bins([0, 1], [0.2, 0.8], strategy="equal")
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=2.5)
    with pytest.raises(ValueError, match="confidence"):
        reliability_bins([0, 1], [0.2, 0.8], confidence=1.0)
    with pytest.raises(ValueError, match="eps"):
        calibration_intercept_slope([0, 1], [0.2, 0.8], eps=0.0)


def test_calibration_module_does_not_import_torch():
    code = ("import sys; import parotidlib.evaluation.calibration; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_intercept_with_many_predictions_at_the_clipping_bound_solves_its_score_equation():
    """Many probabilities far below eps (clipped offsets at logit(1e-6)) once sent statsmodels'
    IRLS from its default start to an intercept of -6e14; the maximum-likelihood intercept is
    the root of sum(expit(a + logit(p))) = sum(y), found here by scipy's brentq."""
    rng = np.random.default_rng(0)
    p = np.where(rng.random(1300) < 0.3, 1e-9, rng.uniform(0.05, 0.95, 1300))
    y = (rng.random(1300) < np.clip(p * 1.1, 0, 1)).astype(int)
    x = logit(np.clip(p, 1e-6, 1 - 1e-6))
    root = brentq(lambda a: expit(a + x).sum() - y.sum(), -50, 50)
    assert calibration_intercept_slope(y, p)["intercept"]["value"] == pytest.approx(root,
                                                                                     abs=1e-6)
