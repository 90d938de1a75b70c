"""Paired comparisons of two models on the same slices, with patients as the unit of
resampling (the channel ablation, Table 3; torch-free).

Two models evaluated on the same test slices (two input compositions of the ablation, same
seed and split) are compared by the difference of their pooled slice accuracies (or
micro-AUCs). The slices of one patient are correlated: they share the anatomy, the scanner and
the tumour, and a model tends to be right or wrong on most of them together. McNemar's test on
slices (McNemar 1947; :func:`parotidlib.evaluation.stats.mcnemar_exact`) treats them as
independent pairs and so overstates the evidence: ten discordant slices of one patient count
as ten independent observations. :func:`paired_bootstrap_difference` resamples *patients*
with replacement, the same patients for both models (a paired cluster bootstrap, Field &
Welsh 2007), and recomputes the difference on all slices of the drawn patients; the 95%
interval is the percentile interval (Efron & Tibshirani 1993, ch. 13), and the fractions of
resampled differences at or below and at or above 0 give a bootstrap p-like quantity
(Efron & Tibshirani 1993, ch. 16: the achieved significance level of a bootstrap
hypothesis test, here read off the resampling distribution of the difference).

:func:`paired_table` puts one row per composition against the reference, with McNemar's slice
p-value beside the bootstrap one, in a column whose name says it treats slices as independent.

References
----------
Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007; 69:369-390.
Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993.
McNemar Q. Note on the sampling error of the difference between correlated proportions or
    percentages. Psychometrika 1947; 12:153-157.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.config import check_int
from parotidlib.evaluation.classes import one_hot, probability_columns
from parotidlib.evaluation.decision import as_class_names, check_predictions
from parotidlib.evaluation.metrics import MIN_BOOTSTRAP_PATIENTS, micro_auc
from parotidlib.evaluation.stats import UNDEFINED_KEY, mcnemar_exact, undefined_block
from parotidlib.evaluation.text import block_text
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

__all__ = [
    "MCNEMAR_COLUMN",
    "MEASURES",
    "PAIRED_METHOD",
    "aligned_pair",
    "paired_bootstrap_difference",
    "paired_table",
]

#: Measures :func:`paired_bootstrap_difference` compares.
MEASURES: tuple[str, ...] = ("accuracy", "micro_auc")
#: How the interval and p are made (written beside them).
PAIRED_METHOD = (
    "paired patient-clustered percentile bootstrap: patients resampled with replacement, the "
    "same patients for both models, the difference recomputed on all their slices (Field & "
    "Welsh 2007; Efron & Tibshirani 1993); p_two_sided = min(1, 2 min(P(d <= 0), P(d >= 0))) "
    "over the resampled differences d")
#: The paired table's McNemar column: slices treated as independent pairs (optimistic).
MCNEMAR_COLUMN = "McNemar exact p (slices as independent)"
_BOOTSTRAP_P_COLUMN = "bootstrap p (two-sided, by patient)"
_CHUNK = 256  # resamples drawn at once for the accuracy (bounds the index array's size)


def _check_resamples(resamples: Any) -> int:
    return int(check_int("resamples", resamples, 0))


def _check_seed(seed: Any) -> int:
    return int(check_int("seed", seed, 0))


def aligned_pair(a: pd.DataFrame, b: pd.DataFrame, require_probabilities: bool = False,
                 scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """The slices of ``a`` with ``b``'s predictions beside them, matched on the slice key.

    The key is ``(patient_id, slice_index)``, plus ``side`` when both tables have it. The
    result keeps ``a``'s row order and has the key columns, ``true_label``,
    ``predicted_label_a``/``_b`` and, if required or present in both, ``prob_<class>_a``/``_b``
    for the classes of ``scheme`` (default the paper's four).

    Raises
    ------
    ValueError
        If a table is not a predictions table, lacks ``slice_index``, repeats a slice, if the
        two slice sets differ (the counts are named, and an example) or if a slice's true
        label differs between them.
    """
    for name, frame in (("a", a), ("b", b)):
        try:
            check_predictions(frame, require_probabilities=require_probabilities,
                              scheme=scheme)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
        if "slice_index" not in frame.columns:
            raise ValueError(f"{name} must have a 'slice_index' column to match slices, has "
                             f"{list(frame.columns)}")
    keys = [k for k in ("patient_id", "slice_index", "side")
            if k in a.columns and k in b.columns]
    columns = probability_columns(scheme)
    probs = list(columns) if require_probabilities or all(
        c in a.columns and c in b.columns for c in columns) else []
    parts = []
    for name, frame in (("a", a), ("b", b)):
        part = frame[[*keys, "true_label", "predicted_label", *probs]].copy()
        if "side" in keys:
            part["side"] = part["side"].fillna("")
        dup = part[part.duplicated(keys, keep=False)]
        if len(dup):
            example = ", ".join(f"{k}={dup.iloc[0][k]!r}" for k in keys)
            raise ValueError(f"{name} repeats slices ({len(dup)} rows), e.g. {example}")
        part["true_label"] = as_class_names(part["true_label"], f"{name}.true_label", scheme)
        part["predicted_label"] = as_class_names(part["predicted_label"],
                                                 f"{name}.predicted_label", scheme)
        parts.append(part.rename(columns={c: f"{c}_{name}" for c in
                                          ("true_label", "predicted_label", *probs)}))
    merged = parts[0].reset_index(drop=True).merge(parts[1], on=keys, how="outer",
                                                   indicator=True, sort=False)
    both = merged["_merge"] == "both"
    if not both.all():
        only_a = merged[merged["_merge"] == "left_only"]
        only_b = merged[merged["_merge"] == "right_only"]
        first = (only_a if len(only_a) else only_b).iloc[0]
        example = ", ".join(f"{k}={first[k]!r}" for k in keys)
        raise ValueError(
            f"a and b must hold the same slices (matched on {keys}): a has {len(parts[0])}, "
            f"b has {len(parts[1])}, {int(both.sum())} in common ({len(only_a)} only in a, "
            f"{len(only_b)} only in b), e.g. {example} only in {'a' if len(only_a) else 'b'}")
    differ = merged[merged["true_label_a"] != merged["true_label_b"]]
    if len(differ):
        first = differ.iloc[0]
        example = ", ".join(f"{k}={first[k]!r}" for k in keys)
        raise ValueError(f"a and b disagree on the true label of {len(differ)} slices, e.g. "
                         f"{example}: {first['true_label_a']!r} vs {first['true_label_b']!r}")
    out = merged.drop(columns=["_merge", "true_label_b"]).rename(
        columns={"true_label_a": "true_label"})
    return out.reset_index(drop=True)


def _quantiles(diffs: np.ndarray) -> dict[str, Any]:
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    p_le = float(np.mean(diffs <= 0))
    p_ge = float(np.mean(diffs >= 0))
    return {"ci95": [float(lo), float(hi)], "p_le_0": p_le,
            "p_two_sided": min(1.0, 2.0 * min(p_le, p_ge))}


def _accuracy_diffs(pair: pd.DataFrame, codes: np.ndarray, n_patients: int, resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    truth = pair["true_label"]
    ka = np.bincount(codes, weights=(pair["predicted_label_a"] == truth).to_numpy(float),
                     minlength=n_patients)
    kb = np.bincount(codes, weights=(pair["predicted_label_b"] == truth).to_numpy(float),
                     minlength=n_patients)
    n = np.bincount(codes, minlength=n_patients).astype(float)
    diffs = []
    for start in range(0, resamples, _CHUNK):
        pick = rng.integers(0, n_patients, size=(min(_CHUNK, resamples - start), n_patients))
        slices = n[pick].sum(axis=1)
        diffs.append((ka[pick].sum(axis=1) - kb[pick].sum(axis=1)) / slices)
    return np.concatenate(diffs)


def _micro_auc_diffs(y: np.ndarray, sa: np.ndarray, sb: np.ndarray, codes: np.ndarray,
                     n_patients: int, resamples: int, rng: np.random.Generator
                     ) -> np.ndarray:
    rows_of = [np.flatnonzero(codes == i) for i in range(n_patients)]
    present = y.sum(axis=0) > 0
    diffs = []
    for _ in range(resamples):
        pick = rng.integers(0, n_patients, size=n_patients)
        idx = np.concatenate([rows_of[i] for i in pick])
        if not np.all(y[idx].sum(axis=0)[present] > 0):
            continue  # a resample lacking a class measures another mixture: skipped, counted
        diffs.append(micro_auc(y[idx], sa[idx]) - micro_auc(y[idx], sb[idx]))
    return np.asarray(diffs, dtype=float)


def paired_bootstrap_difference(a: pd.DataFrame, b: pd.DataFrame, resamples: int = 1000,
                                seed: int = 0, measure: str = "accuracy",
                                scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """Difference of a measure between two models on the same slices, with a paired
    patient-clustered bootstrap interval.

    The value is ``measure(a) - measure(b)`` on all the slices (pooled slice accuracy, or the
    micro-averaged one-vs-rest AUC of :func:`parotidlib.evaluation.metrics.micro_auc`). Each
    of ``resamples`` resamples draws as many patients as there are, with replacement, and
    takes all their slices, the same draw for both models (Field & Welsh 2007); the interval
    is the 2.5 and 97.5 percentiles of the resampled differences (Efron & Tibshirani 1993).
    For the micro-AUC, a resample lacking a class present in the data is skipped and counted
    (``n_skipped``), as in :func:`parotidlib.evaluation.metrics.bootstrap_micro_auc_ci`.

    ``p_le_0`` is the fraction of resampled differences <= 0 (one-sided: evidence that a is
    better), ``p_two_sided`` is ``min(1, 2 min(P(d <= 0), P(d >= 0)))``: it equals
    ``2 min(p, 1 - p)`` when no resampled difference is exactly 0, and is 1, not 0, when every
    one is (two identical models).

    Parameters
    ----------
    a, b : DataFrame
        Predictions of two models on the same slices: ``patient_id``, ``slice_index``,
        ``true_label``, ``predicted_label``, the ``prob_<class>`` columns (required for
        ``micro_auc``) and, optionally, ``side``; matched by :func:`aligned_pair`.
    resamples : int
        Bootstrap resamples (>= 0; 0 leaves the interval and p undefined, "bootstrap_resamples
        is 0").
    seed : int
        Seed of the ``numpy.random.Generator``; the same seed gives the same result.
    measure : str
        ``"accuracy"`` or ``"micro_auc"``.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes): the micro-AUC's classes.

    Returns
    -------
    dict
        ``value``, ``ci95``, ``measure``, ``value_a``, ``value_b``, ``n_patients``,
        ``n_slices``, ``n_resamples``, ``n_skipped``, ``p_le_0``, ``p_two_sided``, ``method``.
        With fewer than 2 patients the block is undefined (``value`` and ``ci95`` null,
        ``undefined``: "fewer than 2 patients"); a null p or interval has its reason in
        ``<key>_undefined``.

    Raises
    ------
    ValueError
        On an unknown measure, bad ``resamples``/``seed``, or slices that do not match
        (:func:`aligned_pair`).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    resamples, seed = _check_resamples(resamples), _check_seed(seed)
    pair = aligned_pair(a, b, require_probabilities=measure == "micro_auc", scheme=scheme)
    codes, patients = pd.factorize(pair["patient_id"], sort=True)
    n_patients = len(patients)
    base: dict[str, Any] = {"measure": measure, "n_patients": int(n_patients),
                            "n_slices": int(len(pair)), "n_resamples": resamples,
                            "n_skipped": 0, "method": PAIRED_METHOD}

    def undefined(out: dict[str, Any], reason: str) -> dict[str, Any]:
        for key in ("ci95", "p_le_0", "p_two_sided"):
            out[key] = None
            if key != "ci95" or UNDEFINED_KEY not in out:
                out[f"{key}_{UNDEFINED_KEY}"] = reason
        return out

    if n_patients < MIN_BOOTSTRAP_PATIENTS:
        reason = f"fewer than {MIN_BOOTSTRAP_PATIENTS} patients"
        return undefined({**undefined_block(reason), **base}, reason)

    y = one_hot(pair["true_label"].to_numpy(object), scheme.classes)
    if measure == "accuracy":
        value_a = float(np.mean(pair["predicted_label_a"] == pair["true_label"]))
        value_b = float(np.mean(pair["predicted_label_b"] == pair["true_label"]))
    else:
        sa = pair[[f"{c}_a" for c in probability_columns(scheme)]].to_numpy(float)
        sb = pair[[f"{c}_b" for c in probability_columns(scheme)]].to_numpy(float)
        if not (np.all(np.isfinite(sa)) and np.all(np.isfinite(sb))):
            raise ValueError("probability columns of a and b must be finite")
        value_a, value_b = micro_auc(y, sa), micro_auc(y, sb)
    out = {"value": value_a - value_b, "ci95": None, **base,
           "value_a": value_a, "value_b": value_b}
    if resamples == 0:
        return undefined(out, "bootstrap_resamples is 0")

    rng = np.random.default_rng(seed)
    if measure == "accuracy":
        diffs = _accuracy_diffs(pair, codes, n_patients, resamples, rng)
    else:
        diffs = _micro_auc_diffs(y, sa, sb, codes, n_patients, resamples, rng)
    out["n_skipped"] = resamples - int(diffs.size)
    if diffs.size == 0:
        return undefined(out, "every resample lacked a class")
    out.update(_quantiles(diffs))
    logger.info("paired %s difference %.4f [%.4f, %.4f], %d patients, %d resamples "
                "(%d skipped)", measure, out["value"], *out["ci95"], n_patients, resamples,
                out["n_skipped"])
    return out


def paired_table(pairs: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], reference: str,
                 resamples: int = 1000, seed: int = 0,
                 scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """One row per composition against the reference, on the same slices.

    Parameters
    ----------
    pairs : mapping
        Row name (a composition, or ``"<composition> seed <k>"`` for several seeds) ->
        (predictions of that composition, predictions of the reference on the same slices).
        A row named ``reference`` is left out (a model against itself).
    reference : str
        The reference's name (design.md: ``t1+ce_t1+t2+gland``), written in each row.
    resamples, seed : int
        As in :func:`paired_bootstrap_difference` (the same seed for every row).
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    pandas.DataFrame
        Columns ``composition``, ``reference``, ``patients``, ``slices``, ``accuracy``,
        ``reference accuracy``, ``difference`` (accuracy - reference accuracy),
        ``difference [95% CI]`` (text; the paired patient bootstrap of
        :func:`paired_bootstrap_difference`), ``bootstrap p (two-sided, by patient)``, and, as
        a secondary column, :data:`MCNEMAR_COLUMN`: McNemar's exact test on the slices'
        paired correctness (:func:`parotidlib.evaluation.stats.mcnemar_exact`; McNemar 1947),
        which treats the slices as independent and is optimistic for clustered slices.
        Undefined values are NaN (numbers) or ``undefined (<reason>)`` (text).
    """
    rows = []
    for name, (composition, ref) in pairs.items():
        if name == reference:
            continue
        diff = paired_bootstrap_difference(composition, ref, resamples=resamples, seed=seed,
                                           scheme=scheme)
        pair = aligned_pair(composition, ref, scheme=scheme)
        correct_a = (pair["predicted_label_a"] == pair["true_label"]).to_numpy(bool)
        correct_b = (pair["predicted_label_b"] == pair["true_label"]).to_numpy(bool)
        test = mcnemar_exact(correct_a, correct_b)
        p_boot = diff.get("p_two_sided")
        rows.append({
            "composition": name, "reference": reference,
            "patients": diff["n_patients"], "slices": diff["n_slices"],
            "accuracy": float(correct_a.mean()), "reference accuracy": float(correct_b.mean()),
            "difference": np.nan if diff["value"] is None else float(diff["value"]),
            "difference [95% CI]": block_text(diff),
            _BOOTSTRAP_P_COLUMN: np.nan if p_boot is None else float(p_boot),
            MCNEMAR_COLUMN: test["pvalue"],
        })
    columns = ["composition", "reference", "patients", "slices", "accuracy",
               "reference accuracy", "difference", "difference [95% CI]", _BOOTSTRAP_P_COLUMN,
               MCNEMAR_COLUMN]
    return pd.DataFrame(rows, columns=columns)
