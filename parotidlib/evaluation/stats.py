"""Confidence intervals for proportions and McNemar's test (torch-free).

The paper (Xia et al. 2021, Table 4) reports slice accuracies with the Wilson score interval
and sensitivities/specificities with the continuity-corrected Wilson interval (Newcombe 1998,
method 4); ``tests/test_stats.py`` reproduces every printed bound of Table 4 from its counts.

References
----------
Wilson EB. Probable inference, the law of succession, and statistical inference.
    J Am Stat Assoc 1927; 22:209-212.
Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven
    methods. Stat Med 1998; 17:857-872 (method 4: score interval with continuity correction).
Brown LD, Cai TT, DasGupta A. Interval estimation for a binomial proportion.
    Stat Sci 2001; 16:101-133.
McNemar Q. Note on the sampling error of the difference between correlated proportions or
    percentages. Psychometrika 1947; 12:153-157.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from typing import Any

import numpy as np
from scipy.stats import norm
from statsmodels.stats.contingency_tables import mcnemar

logger = logging.getLogger(__name__)

__all__ = [
    "UNDEFINED_KEY",
    "UndefinedError",
    "mcnemar_exact",
    "proportion_or_undefined",
    "proportion_summary",
    "undefined_block",
    "wilson_interval",
]

#: Key of an undefined quantity's reason: inside a block (``{"value": null, "ci95": null,
#: "undefined": reason}``) and, as the suffix ``_undefined``, beside a bare number that is
#: null (``"macro_auc": null, "macro_auc_undefined": reason``); docs/metrics.md.
UNDEFINED_KEY = "undefined"


class UndefinedError(ValueError):
    """A quantity the data do not define (an empty denominator, a class absent, ...).

    Raised where the arguments are valid but the data leave the quantity undefined, so that
    callers assembling metrics.json can write it as undefined (:func:`undefined_block`)
    instead of failing. It is a ``ValueError``, as before.

    Parameters
    ----------
    reason : str
        The machine-readable reason written to metrics.json (e.g. ``"no malignant patient"``,
        docs/metrics.md, "Undefined quantities").
    message : str, optional
        The error message; default ``reason``.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason



def _check_count(value: Any, name: str) -> int:
    """Return ``value`` as int if it is a whole number (int, numpy int or integral float)."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be an integer count, got {value!r} (a bool)")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():  # False for nan/inf
        return int(value)
    raise ValueError(f"{name} must be an integer count, got {value!r}")


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool | np.bool_) or not isinstance(confidence, numbers.Real):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) exclusive, got {confidence!r}")
    return confidence


def _check_counts(successes: Any, total: Any) -> tuple[int, int]:
    total = _check_count(total, "total")
    if total <= 0:
        raise ValueError(f"total must be > 0, got {total}")
    successes = _check_count(successes, "successes")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must be in [0, total={total}], got {successes}")
    return successes, total


def wilson_interval(
    successes: int,
    total: int,
    confidence: float = 0.95,
    continuity_correction: bool = False,
) -> tuple[float, float]:
    """Two-sided Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes : int
        Number of successes k, 0 <= k <= total.
    total : int
        Number of trials n > 0.
    confidence : float
        Coverage in (0, 1); z is the standard-normal quantile 1 - (1 - confidence) / 2.
    continuity_correction : bool
        False: Wilson (1927) score interval (Newcombe 1998 method 3), the interval of
        ``statsmodels.stats.proportion.proportion_confint(method="wilson")``: the same
        formula in another arrangement, so the bounds agree to within 4e-16 but differ in
        the last bits for 45,859 of the 80,600 (k, n) with k <= n <= 400 at 95 %.
        True: Wilson interval with continuity correction, Newcombe (1998) method 4::

            L = (2k + z^2 - 1 - z sqrt(z^2 - 2 - 1/n + 4p(nq + 1))) / (2(n + z^2))
            U = (2k + z^2 + 1 + z sqrt(z^2 + 2 - 1/n + 4p(nq - 1))) / (2(n + z^2))

        with p = k/n, q = 1 - p; L = 0 when k = 0 and U = 1 when k = n, as Newcombe defines.

    Returns
    -------
    (lower, upper) : tuple of float
        Bounds in [0, 1] (proportions, not percent).

    Raises
    ------
    ValueError
        If ``total`` <= 0, ``successes`` is outside [0, total] or not a whole number, or
        ``confidence`` is outside (0, 1).

    References
    ----------
    Wilson 1927; Newcombe 1998 (methods 3 and 4); Brown, Cai & DasGupta 2001.

    Examples
    --------
    >>> [round(b, 3) for b in wilson_interval(164, 186)]  # Table 4, benign vs malignant
    [0.827, 0.921]
    >>> [round(b, 3) for b in wilson_interval(88, 93, continuity_correction=True)]
    [0.873, 0.98]
    """
    k, n = _check_counts(successes, total)
    confidence = _check_confidence(confidence)
    z = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    z2 = z * z
    p = k / n
    if continuity_correction:
        q = 1.0 - p
        denom = 2.0 * (n + z2)
        # The lower radicand is >= z^2 + 2 - 1/n > 0 for 1 <= k <= n (4k(n-k+1)/n >= 4), the
        # upper one likewise for 0 <= k <= n - 1. At k = 0 (lower) and k = n (upper) they are
        # z^2 - 2 - 1/n, negative for confidence < 0.92 or so; Newcombe fixes those bounds at
        # 0 and 1, so they are not evaluated there.
        lower = 0.0 if k == 0 else (
            2 * k + z2 - 1 - z * math.sqrt(z2 - 2 - 1 / n + 4 * p * (n * q + 1))) / denom
        upper = 1.0 if k == n else (
            2 * k + z2 + 1 + z * math.sqrt(z2 + 2 - 1 / n + 4 * p * (n * q - 1))) / denom
    else:
        # Not statsmodels' proportion_confint: it rounds differently in the last bits (see
        # above), and these bounds are written to metrics.json, which must stay byte-identical.
        centre = (k + z2 / 2.0) / (n + z2)
        half = z * math.sqrt(k * (n - k) / n + z2 / 4.0) / (n + z2)
        lower, upper = centre - half, centre + half
    # Newcombe: the bound at an observed extreme is the extreme itself (also removes rounding).
    if k == 0:
        lower = 0.0
    if k == n:
        upper = 1.0
    return max(0.0, lower), min(1.0, upper)


def proportion_summary(
    successes: int,
    total: int,
    confidence: float = 0.95,
    continuity_correction: bool = False,
) -> dict[str, Any]:
    """A proportion with its Wilson interval, as a metrics.json block (docs/metrics.md).

    Parameters
    ----------
    successes, total, confidence, continuity_correction
        As in :func:`wilson_interval`.

    Returns
    -------
    dict
        ``{"value": k/n, "ci95": [lower, upper], "successes": k, "total": n}``. The key is
        ``ci95`` whatever ``confidence`` is (the schema's name); pass 0.95 for what it says.

    Examples
    --------
    >>> proportion_summary(1, 2)["value"]
    0.5
    """
    lower, upper = wilson_interval(successes, total, confidence, continuity_correction)
    k, n = _check_counts(successes, total)
    return {"value": k / n, "ci95": [lower, upper], "successes": k, "total": n}


def undefined_block(reason: str) -> dict[str, Any]:
    """The metrics.json block of an undefined quantity (docs/metrics.md).

    Parameters
    ----------
    reason : str
        Why the quantity is undefined, in the vocabulary of docs/metrics.md ("Undefined
        quantities"), e.g. ``"no benign slice"``.

    Returns
    -------
    dict
        ``{"value": None, "ci95": None, "undefined": reason}``.

    Examples
    --------
    >>> undefined_block("no malignant patient")
    {'value': None, 'ci95': None, 'undefined': 'no malignant patient'}
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason must be a non-empty string, got {reason!r}")
    return {"value": None, "ci95": None, UNDEFINED_KEY: reason}


def wilson_width(p: float, n: int, confidence: float = 0.95) -> float:
    """Width of the Wilson score interval at proportion ``p`` (any real in [0, 1]) and ``n``.

    ``2 z sqrt(n p (1 - p) + z^2 / 4) / (n + z^2)``; at ``p = k/n`` it is the width of
    :func:`wilson_interval` (k, n) (Wilson 1927).
    """
    if not 0.0 <= p <= 1.0 or n < 1:
        raise ValueError(f"wilson_width needs p in [0, 1] and n >= 1, got p={p!r}, n={n!r}")
    z = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    return 2.0 * z * math.sqrt(n * p * (1.0 - p) + z * z / 4.0) / (n + z * z)


def proportion_or_undefined(
    successes: int,
    total: int,
    reason: str,
    confidence: float = 0.95,
    continuity_correction: bool = False,
) -> dict[str, Any]:
    """:func:`proportion_summary`, or :func:`undefined_block` with ``reason`` when total is 0.

    Parameters
    ----------
    successes, total, confidence, continuity_correction
        As in :func:`wilson_interval`, except that ``total`` may be 0.
    reason : str
        Written as the block's ``undefined`` reason when ``total`` is 0.

    Examples
    --------
    >>> proportion_or_undefined(0, 0, "no benign slice")["undefined"]
    'no benign slice'
    """
    if _check_count(total, "total") == 0:
        _check_count(successes, "successes")
        if successes != 0:
            raise ValueError(f"successes must be 0 when total is 0, got {successes!r}")
        return undefined_block(reason)
    return proportion_summary(successes, total, confidence, continuity_correction)


def mcnemar_exact(correct_a: Any, correct_b: Any) -> dict[str, Any]:
    """Exact McNemar test for two classifiers' paired correctness on the same items.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, shape (N,)
        Whether classifier A (resp. B) got item i right; 0/1 integers are accepted.

    Returns
    -------
    dict
        ``statistic`` (min(b, c), as statsmodels reports for the exact test), ``pvalue``
        (two-sided binomial test of b vs c with p = 1/2), ``b`` (A right, B wrong), ``c``
        (A wrong, B right), ``n`` (items).

    Warns
    -----
    UserWarning
        If there is no discordant pair (b + c = 0): the p-value is then 1 and uninformative.

    References
    ----------
    McNemar 1947; ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``.

    Examples
    --------
    >>> mcnemar_exact([1, 1, 1, 0], [0, 0, 1, 0])["b"]
    2
    """
    a = _as_bool_vector(correct_a, "correct_a")
    b_vec = _as_bool_vector(correct_b, "correct_b")
    if a.shape != b_vec.shape:
        raise ValueError(
            f"correct_a and correct_b must have the same length, got {a.size} and {b_vec.size}"
        )
    both = int(np.sum(a & b_vec))
    a_only = int(np.sum(a & ~b_vec))
    b_only = int(np.sum(~a & b_vec))
    neither = int(np.sum(~a & ~b_vec))
    if a_only + b_only == 0:
        warnings.warn(
            "mcnemar_exact: no discordant pairs (b = c = 0); the p-value is 1 by definition",
            stacklevel=2,
        )
    result = mcnemar([[both, a_only], [b_only, neither]], exact=True)
    return {
        "statistic": float(result.statistic),
        "pvalue": float(result.pvalue),
        "b": a_only,
        "c": b_only,
        "n": int(a.size),
    }


def _as_bool_vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, (0, 1))):
        raise ValueError(f"{name} must hold booleans or 0/1, got values {np.unique(arr)[:5]!r}")
    return arr.astype(bool)
