"""Wilson intervals against statsmodels and published bounds; McNemar's exact test."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from parotidlib.evaluation.stats import mcnemar_exact, proportion_summary, wilson_interval


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("total", [1, 2, 5, 10, 37, 100])
def test_plain_wilson_matches_statsmodels(total, confidence):
    for k in range(total + 1):  # k = 0 and k = n included
        ours = wilson_interval(k, total, confidence)
        ref = proportion_confint(k, total, alpha=1 - confidence, method="wilson")
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_plain_wilson_matches_statsmodels_for_every_count_up_to_400():
    # Every k <= n <= 400 at 95 %: the hand-written interval is kept (it differs from
    # statsmodels' in the last bits, which would change metrics.json) but must agree.
    n = np.repeat(np.arange(1, 401), np.arange(2, 402))
    k = np.concatenate([np.arange(m + 1) for m in range(1, 401)])
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    ours = np.array([wilson_interval(int(a), int(b)) for a, b in zip(k, n, strict=True)])
    np.testing.assert_allclose(ours[:, 0], ref_lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours[:, 1], ref_hi, rtol=0, atol=1e-12)


# Newcombe 1998, Table II, method 4 (score interval with continuity correction).
@pytest.mark.parametrize("k, n, lo, hi", [
    (81, 263, 0.2535, 0.3682),
    (15, 148, 0.0598, 0.1644),
    (0, 20, 0.0000, 0.2005),
    (1, 29, 0.0018, 0.1963),
])
def test_corrected_wilson_matches_newcombe_table(k, n, lo, hi):
    got = wilson_interval(k, n, continuity_correction=True)
    assert got == pytest.approx((lo, hi), abs=5e-5)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_corrected_wilson_is_plain_wilson_half_a_count_out(confidence):
    # Newcombe (1998) method 4 solves |p - pi| - 1/(2n) = z sqrt(pi (1 - pi) / n): its lower
    # bound is the plain Wilson lower bound of k - 1/2 successes, its upper bound the plain
    # upper bound of k + 1/2 (away from the extremes k = 0 and k = n, fixed at 0 and 1).
    alpha = 1 - confidence
    for n in (1, 2, 7, 29, 93, 148, 263, 400):
        k = np.arange(n + 1)
        got = np.array([wilson_interval(int(a), n, confidence, True) for a in k])
        ref_lo = proportion_confint(k[1:] - 0.5, n, alpha=alpha, method="wilson")[0]
        ref_hi = proportion_confint(k[:-1] + 0.5, n, alpha=alpha, method="wilson")[1]
        np.testing.assert_allclose(got[1:, 0], ref_lo, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[:-1, 1], ref_hi, rtol=0, atol=1e-12)
        assert got[0, 0] == 0.0 and got[-1, 1] == 1.0


# Xia et al. 2021, Table 4: which counts and which interval reproduce each printed bound.
# Test set: 89 free, 57 PA, 36 Warthin, 93 malignant slices (Figure 7 confusion matrix
# [[89,0,0,0],[0,41,15,1],[0,14,18,4],[0,4,13,76]]). Accuracy uses the plain Wilson
# interval, sensitivity and specificity the continuity-corrected one (Newcombe method 4).
TABLE4 = [
    # row, measure, k, n, continuity correction, paper's bounds
    ("benign vs malignant", "accuracy", 164, 186, False, (0.827, 0.921)),
    ("benign vs malignant", "sensitivity (benign)", 88, 93, True, (0.873, 0.980)),
    ("benign vs malignant", "specificity (malignant)", 76, 93, True, (0.721, 0.887)),
    ("PA vs Warthin", "accuracy", 59, 93, False, (0.533, 0.725)),
    # The paper's PA-vs-Warthin "sensitivity"/"specificity" are 41/(41+18) and 18/(18+16):
    # the PPV and NPV of the 2x2 table (see parotidlib.evaluation.diagnostic_accuracy).
    ("PA vs Warthin", "sensitivity = PPV (PA)", 41, 59, True, (0.560, 0.805)),
    ("PA vs Warthin", "specificity = NPV", 18, 34, True, (0.354, 0.698)),
    ("without vs with lesion", "accuracy", 275, 275, False, (0.986, 1.0)),
    ("without vs with lesion", "sensitivity (free)", 89, 89, True, (0.948, 1.0)),
    ("without vs with lesion", "specificity (lesion)", 186, 186, True, (0.975, 1.0)),
]


@pytest.mark.parametrize("row, measure, k, n, cc, bounds", TABLE4)
def test_paper_table4_bounds_from_counts(row, measure, k, n, cc, bounds):
    got = wilson_interval(k, n, continuity_correction=cc)
    assert tuple(round(b, 3) for b in got) == bounds, (row, measure)


def test_paper_table4_other_interval_does_not_reproduce():
    # The choice of interval per measure matters: swapping it breaks the match.
    assert tuple(round(b, 3) for b in wilson_interval(164, 186, continuity_correction=True)) \
        != (0.827, 0.921)
    assert tuple(round(b, 3) for b in wilson_interval(88, 93)) != (0.873, 0.980)
    assert tuple(round(b, 3) for b in wilson_interval(89, 89)) != (0.948, 1.0)


def test_paper_abstract_accuracy_bounds():
    # Abstract: test accuracy 82.18% [0.77, 0.86] = 226/275 with the plain interval.
    assert tuple(round(b, 2) for b in wilson_interval(226, 275)) == (0.77, 0.86)
    # Training accuracy 92.94% = 2821/3035 gives [0.92, 0.94]; the paper prints
    # [0.91, 0.93], which no Wilson interval of these counts reproduces (documented).
    assert tuple(round(b, 2) for b in wilson_interval(2821, 3035)) == (0.92, 0.94)
    assert tuple(round(b, 2) for b in wilson_interval(2821, 3035, 0.95, True)) == (0.92, 0.94)


def test_corrected_interval_contains_plain_and_is_symmetric():
    for n in (1, 3, 10, 50):
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            clo, chi = wilson_interval(k, n, continuity_correction=True)
            assert 0.0 <= clo <= lo <= k / n <= hi <= chi <= 1.0
            mlo, mhi = wilson_interval(n - k, n, continuity_correction=True)
            assert (clo, chi) == pytest.approx((1 - mhi, 1 - mlo), abs=1e-12)
    assert wilson_interval(0, 7, continuity_correction=True)[0] == 0.0
    assert wilson_interval(7, 7, continuity_correction=True)[1] == 1.0
    # At low confidence (z^2 < 2 + 1/n) the formula's radicand at an extreme is negative;
    # Newcombe's fixed bounds apply there instead of a math domain error.
    for confidence in (0.5, 0.8, 0.9):
        lo, hi = wilson_interval(0, 1, confidence, continuity_correction=True)
        assert lo == 0.0 and 0.0 < hi < 1.0
        lo, hi = wilson_interval(3, 3, confidence, continuity_correction=True)
        assert 0.0 < lo < 1.0 and hi == 1.0
        lo, hi = wilson_interval(0, 3, confidence, continuity_correction=True)
        assert lo == 0.0 and 0.0 < hi < 1.0


def test_integral_numpy_and_float_counts_accepted():
    assert wilson_interval(np.int64(3), np.int32(10)) == wilson_interval(3, 10)
    assert wilson_interval(3.0, 10.0) == wilson_interval(3, 10)


@pytest.mark.parametrize("args, name", [
    ((0, 0), "total"),
    ((1, -5), "total"),
    ((11, 10), "successes"),
    ((-1, 10), "successes"),
    ((2.5, 10), "successes"),
    ((2, 10.5), "total"),
    ((True, 10), "successes"),
    ((float("nan"), 10), "successes"),
    ((2, 10, 0.0), "confidence"),
    ((2, 10, 1.0), "confidence"),
    ((2, 10, 95), "confidence"),
    ((2, 10, "0.95"), "confidence"),
])
def test_bad_input_names_argument(args, name):
    with pytest.raises(ValueError, match=name):
        wilson_interval(*args)
    with pytest.raises(ValueError, match=name):
        proportion_summary(*args)


def test_total_zero_message_has_value():
    with pytest.raises(ValueError, match=r"total must be > 0, got 0"):
        wilson_interval(0, 0)


def test_proportion_summary_block():
    block = proportion_summary(164, 186)
    assert block["successes"] == 164 and block["total"] == 186
    assert block["value"] == pytest.approx(0.8817, abs=1e-4)
    assert [round(b, 3) for b in block["ci95"]] == [0.827, 0.921]
    cc = proportion_summary(88, 93, continuity_correction=True)
    assert [round(b, 3) for b in cc["ci95"]] == [0.873, 0.980]


def test_mcnemar_exact_counts_and_pvalue():
    # A right / B wrong on 6 items, the reverse on 1: two-sided binomial p = 2 P(X <= 1).
    a = np.array([1] * 6 + [0] * 1 + [1] * 10 + [0] * 3, dtype=bool)
    b = np.array([0] * 6 + [1] * 1 + [1] * 10 + [0] * 3, dtype=bool)
    res = mcnemar_exact(a, b)
    assert (res["b"], res["c"], res["n"]) == (6, 1, 20)
    assert res["pvalue"] == pytest.approx(2 * (1 + 7) / 2**7)
    assert res["statistic"] == 1.0
    # 0/1 integers are accepted and give the same answer.
    assert mcnemar_exact(a.astype(int), b.astype(int)) == res


def test_mcnemar_no_discordant_pairs_warns():
    with pytest.warns(UserWarning, match="discordant"):
        res = mcnemar_exact([1, 0, 1], [1, 0, 1])
    assert res["pvalue"] == 1.0


@pytest.mark.parametrize("a, b, name", [
    ([1, 0], [1, 0, 1], "same length"),
    ([], [], "correct_a"),
    ([1, 2], [1, 0], "correct_a"),
    ([1, 0], ["x", "y"], "correct_b"),
])
def test_mcnemar_bad_input(a, b, name):
    with pytest.raises(ValueError, match=name):
        mcnemar_exact(a, b)


def test_statistics_modules_do_not_import_torch():
    # docs/design.md, "Package layout": stats and decision (and the metrics built on them) are
    # torch-free.
    code = ("import sys; import parotidlib.evaluation.stats, parotidlib.evaluation.decision, "
            "parotidlib.evaluation.metrics, "
            "parotidlib.evaluation.diagnostic_accuracy, parotidlib.evaluation.schema; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
