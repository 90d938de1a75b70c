"""Cross-validated results: k patient-grouped folds over the whole cohort, the out-of-fold
predictions pooled, repeated over seeds (``cv-metrics.json``; torch-free).

The paper (Xia et al. 2021) evaluates one random 9:1 split: 21 test patients, 275 test slices.
Its interval is wide and rests on one draw of the test patients. Here every patient of the
cohort is a test patient once per seed: the patients are split into k folds by
:class:`sklearn.model_selection.StratifiedGroupKFold` (grouped by patient, stratified by
histology, shuffled with the seed; ``parotidlib.data.split.split_patients`` with
``cv_folds=k``), a model is trained on k - 1 folds and predicts the held-out one, and the k
held-out predictions are pooled into one out-of-fold (OOF) table per seed. Repeating the whole
procedure over several seeds shows how much the result depends on the fold assignment and the
training run.

The input, ``cv_predictions.csv``, holds the columns of predictions.csv plus ``fold`` and
``seed`` (:data:`CV_COLUMNS`); every slice appears exactly once per seed and every patient in
exactly one fold per seed (:func:`check_cv_predictions`). :func:`compute_cv_metrics` gives,
per seed, the blocks of metrics.json on the pooled OOF rows (``slice`` as ``slice.test``,
Table 4, Table 5, patient confusion matrix, exact-diagnosis accuracy), one row per fold and
seed, the spread of the fold and seed values, and the width of the pooled interval beside a
single split's.

With the radiomics baseline (``cv_radiomics_predictions.csv``: its out-of-fold predictions,
pooled from the same members as the CNN's), the baseline's pooled results are computed by the
same function as the CNN's, and the CNN minus the baseline on the same out-of-fold slices, per
seed (CNN seed s against radiomics seed s), by
:func:`parotidlib.evaluation.comparison.paired_comparison`: a patient-level paired bootstrap
of the accuracy and micro-AUC differences (Field & Welsh 2007), McNemar's exact test on the
slices beside it as a secondary figure (it treats slices as independent; McNemar 1947).

The pooled slice accuracy carries a Wilson interval as in metrics.json: it treats slices as
independent and is narrow; the micro-AUC interval is a patient-clustered percentile bootstrap
(Field & Welsh 2007), as in metrics.json. The per-fold and per-seed spreads are descriptive:
folds share training patients, so their sd is not a standard error (Bengio & Grandvalet 2004).

Grouped folds (``python -m parotidlib cv --group-by scanner``): the folds are the values of
a manifest column (``parotidlib.data.split.group_table``), each held out once by a model
trained on the others, the internal-external cross-validation of Steyerberg & Harrell (2016)
that TRIPOD+AI (Collins et al. 2024) recommends for multicentre data. The batch records its
groups in ``cv_groups.json`` (:func:`write_cv_groups`); :func:`compute_cv_metrics` then adds
``grouping`` and ``per_group``: each held-out group's results side by side (slice accuracy
with its Wilson interval, micro-AUC with its patient-clustered bootstrap interval, the exact
three-type patient diagnosis), beside the pooled ones, which are computed as for k folds.

Undefined quantities are null with their reason, as in metrics.json (docs/metrics.md,
"Undefined quantities"); nothing here fails on a small but valid cohort.

References
----------
Xia X, Feng B, Wang J, et al. Deep learning for differentiating benign from malignant parotid
    lesions on MR images. Front Oncol 2021; 11:632104.
Stone M. Cross-validatory choice and assessment of statistical predictions. J R Stat Soc B
    1974; 36:111-147.
Bengio Y, Grandvalet Y. No unbiased estimator of the variance of K-fold cross-validation.
    J Mach Learn Res 2004; 5:1089-1105.
Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007; 69:369-390.
McNemar Q. Note on the sampling error of the difference between correlated proportions or
    percentages. Psychometrika 1947; 12:153-157.
Wilson EB. Probable inference, the law of succession, and statistical inference.
    J Am Stat Assoc 1927; 22:209-212.
Steyerberg EW, Harrell FE Jr. Prediction models need appropriate internal, internal-external,
    and external validation. J Clin Epidemiol 2016; 69:245-247.
Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for reporting
    clinical prediction models that use regression or machine learning methods. BMJ 2024;
    385:e078378.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.evaluation.classes import (
    SCHEME_KEY,
    is_paper,
    one_hot,
    patient_class,
    probability_columns,
)
from parotidlib.evaluation.comparison import paired_comparison
from parotidlib.evaluation.decision import (
    PROBABILITY_COLUMNS,
    as_class_names,
    check_predictions,
    diagnose_patients,
)
from parotidlib.evaluation.diagnostic_accuracy import patient_confusion, patient_table5, table4
from parotidlib.evaluation.metrics import micro_auc, slice_accuracy
from parotidlib.evaluation.results import slice_block
from parotidlib.evaluation.schema import to_jsonable
from parotidlib.evaluation.stats import UNDEFINED_KEY, proportion_or_undefined, wilson_width
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

__all__ = [
    "CV_COLUMNS",
    "CV_FORMAT",
    "CV_GROUPS",
    "CV_METHOD",
    "CV_RADIOMICS_METHOD",
    "GROUPED_CV_METHOD",
    "REQUIRED_CV_COLUMNS",
    "check_cv_predictions",
    "compute_cv_metrics",
    "grouping_label",
    "read_cv_groups",
    "read_cv_predictions",
    "slice_keys",
    "wilson_width",
    "write_cv_groups",
]

#: Format tag of cv-metrics.json.
CV_FORMAT = "parotidlib.cv-metrics/1"
#: Columns of cv_predictions.csv: those of predictions.csv plus ``fold`` and ``seed`` (the
#: paper scheme's probability columns; another scheme has its own,
#: :func:`parotidlib.evaluation.classes.probability_columns`).
CV_COLUMNS: tuple[str, ...] = (
    "patient_id", "slice_index", "z_mm", "true_label", "side", "histology", "split",
    *PROBABILITY_COLUMNS, "predicted_label", "fold", "seed",
)
#: Columns :func:`check_cv_predictions` requires (``side``, if present, is part of a slice's
#: key; ``z_mm``, ``histology`` and ``split`` are optional; ``split`` is ignored), for the
#: paper's scheme.
REQUIRED_CV_COLUMNS: tuple[str, ...] = (
    "patient_id", "slice_index", "true_label", *PROBABILITY_COLUMNS, "predicted_label",
    "fold", "seed",
)
#: How the numbers are made (written into cv-metrics.json and the report).
CV_METHOD = (
    "k-fold cross-validation over all patients: StratifiedGroupKFold grouped by patient and "
    "stratified by histology (shuffled with each seed); the out-of-fold predictions of the k "
    "held-out folds pooled per seed; slice accuracy with the Wilson interval, micro-AUC with a "
    "patient-clustered percentile bootstrap (Field & Welsh 2007); per-fold and per-seed values "
    "summarised by mean, sd (ddof=1), min and max")
#: How the out-of-fold comparison with the radiomics baseline is made.
CV_RADIOMICS_METHOD = (
    "the radiomics baseline fitted in every member on the same training patients as the CNN and "
    "its out-of-fold predictions pooled the same way; CNN minus radiomics on the same pooled "
    "out-of-fold slices per seed (CNN seed s against radiomics seed s): patient-level paired "
    "percentile bootstrap of the accuracy and micro-AUC differences, McNemar's exact test on "
    "the slices as a secondary figure (it treats the slices of a patient as independent)")
#: How the numbers are made when the folds are the values of a manifest column.
GROUPED_CV_METHOD = (
    "leave-one-group-out cross-validation (internal-external validation, Steyerberg & Harrell "
    "2016; TRIPOD+AI 2024): one fold per value of a manifest column, each held out once by a "
    "model trained on the other groups (its validation patients drawn from those, stratified "
    "by histology); the held-out predictions pooled per seed and also reported per group; "
    "slice accuracy with the Wilson interval, micro-AUC with a patient-clustered percentile "
    "bootstrap (Field & Welsh 2007); per-group values summarised by mean, sd (ddof=1), min "
    "and max (as per fold)")
#: The grouping of a grouped cross-validation batch (written by ``run.cv``).
CV_GROUPS = "cv_groups.json"
_EXAMPLES = 3


def grouping_label(column: str) -> str:
    """The report's name of a grouped cross-validation, e.g. ``leave-one-scanner-out
    (internal-external validation)``."""
    return f"leave-one-{column}-out (internal-external validation)"


def write_cv_groups(run_dir: str | Path, column: str, table: pd.DataFrame) -> Path:
    """Write ``cv_groups.json``: the grouping column and one record per group (``fold``,
    ``group``, ``patients`` and the patients per histology of
    :func:`parotidlib.data.split.group_table`); return its path."""
    import json

    from parotidlib.io import write_text_atomic

    groups = [{k: (v if isinstance(v, str) else int(v)) for k, v in row.items()}
              for row in table.to_dict("records")]
    return write_text_atomic(Path(run_dir) / CV_GROUPS,
                             json.dumps({"column": column, "groups": groups}, indent=2))


def read_cv_groups(run_dir: str | Path) -> dict[str, Any] | None:
    """``cv_groups.json`` of a batch folder; None for k-fold cross-validation (no file)."""
    import json

    path = Path(run_dir) / CV_GROUPS
    return json.loads(path.read_text()) if path.is_file() else None


def write_cv_metrics(run_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``cv_metrics.json`` into the batch folder (atomically); return its path."""
    import json

    from parotidlib.io import write_text_atomic

    return write_text_atomic(Path(run_dir) / "cv_metrics.json", json.dumps(metrics, indent=2))


def read_cv_predictions(path: str | Path) -> pd.DataFrame:
    """Read cv_predictions.csv keeping patient ids as text ("007" stays "007", not 7)."""
    return pd.read_csv(path, dtype={"patient_id": str, "split": str, "true_label": str,
                                    "predicted_label": str, "histology": str, "side": str})


def slice_keys(frame: pd.DataFrame) -> list[str]:
    """The columns naming a slice: ``patient_id``, ``slice_index`` and ``side`` if present."""
    return [c for c in ("patient_id", "slice_index", "side") if c in frame.columns]


def _key_text(keys: Sequence[str], values: Any) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, values, strict=True))


def _as_int_column(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values[numeric.isna() | (numeric != np.floor(numeric))]
    if len(bad):
        raise ValueError(f"cv_predictions.{column} must hold integers, got {bad.iloc[0]!r} "
                         f"(row {bad.index[0]!r})")
    return numeric.astype(np.int64)


def check_cv_predictions(frame: pd.DataFrame, scheme: ClassScheme = PAPER_CLASSES) -> None:
    """Check a pooled out-of-fold predictions table; raise ValueError naming the problem.

    The rules: the :data:`REQUIRED_CV_COLUMNS` (with the probability columns of ``scheme``,
    default the paper's) are present, labels and probabilities are those of a predictions
    table (:func:`parotidlib.evaluation.decision.check_predictions`),
    ``fold`` and ``seed`` are integers (``fold`` >= 0), every slice (:func:`slice_keys`)
    appears once per seed, every patient lies in one fold per seed, every seed has at least 2
    folds and the same number of folds, and every seed covers the same slices.

    Raises
    ------
    ValueError
        Naming the rule broken and an example (the slice, patient or seed).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"cv_predictions must be a pandas DataFrame, got {type(frame)}")
    required = [c for c in REQUIRED_CV_COLUMNS if c not in PROBABILITY_COLUMNS]
    required[required.index("predicted_label"):required.index("predicted_label")] = \
        probability_columns(scheme)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"cv_predictions is missing columns {missing}; has "
                         f"{list(frame.columns)}")
    check_predictions(frame, require_probabilities=True, scheme=scheme)
    fold, seed = _as_int_column(frame, "fold"), _as_int_column(frame, "seed")
    if (fold < 0).any():
        raise ValueError(f"cv_predictions.fold must be >= 0, got {int(fold.min())}")
    keys = slice_keys(frame)
    table = frame[keys].assign(_fold=fold.to_numpy(), _seed=seed.to_numpy())
    if "side" in table:  # a missing side is a key value of its own, not NaN != NaN
        table["side"] = table["side"].fillna("")

    counts = table.groupby(["_seed", *keys], sort=True).size()
    repeated = counts[counts > 1]
    if len(repeated):
        (s, *key), times = repeated.index[0], int(repeated.iloc[0])
        raise ValueError(
            f"every slice must appear once per seed; {len(repeated)} slices appear more than "
            f"once, e.g. {_key_text(keys, tuple(key))} appears {times} times for seed {int(s)}")

    folds_of = table.groupby(["_seed", "patient_id"], sort=True)["_fold"].unique()
    split = folds_of[folds_of.map(len) > 1]
    if len(split):
        (s, pid), folds = split.index[0], sorted(int(f) for f in split.iloc[0])
        raise ValueError(
            f"every patient must lie in one fold per seed; {len(split)} (seed, patient) pairs "
            f"span several folds, e.g. patient {pid!r} in folds {folds} for seed {int(s)}")

    n_folds = table.groupby("_seed")["_fold"].nunique()
    if (n_folds < 2).any():
        s = int(n_folds.index[(n_folds < 2).to_numpy()][0])
        raise ValueError(f"cross-validation needs at least 2 folds per seed; seed {s} has "
                         f"{int(n_folds[s])}")
    if n_folds.nunique() > 1:
        raise ValueError(f"every seed must have the same number of folds, got "
                         f"{ {int(s): int(k) for s, k in n_folds.items()} }")

    sets = {int(s): set(map(tuple, g[keys].itertuples(index=False, name=None)))
            for s, g in table.groupby("_seed", sort=True)}
    first_seed, reference = next(iter(sets.items()))
    for s, got in sets.items():
        if got == reference:
            continue
        only_ref, only_s = sorted(reference - got, key=str), sorted(got - reference, key=str)
        example = (f"{_key_text(keys, only_ref[0])} is in seed {first_seed} only" if only_ref
                   else f"{_key_text(keys, only_s[0])} is in seed {s} only")
        raise ValueError(
            f"every seed must cover the same slices; seed {first_seed} has {len(reference)} "
            f"slices, seed {s} has {len(got)} ({len(only_ref)} missing, {len(only_s)} extra), "
            f"e.g. {example}")


def _width(block: Mapping[str, Any] | None) -> float | None:
    ci = (block or {}).get("ci95")
    return None if ci is None else float(ci[1]) - float(ci[0])


def _patient_block(rows: pd.DataFrame, malignant_threshold: int,
                   scheme: ClassScheme) -> dict[str, Any]:
    patients = diagnose_patients(rows, malignant_threshold=malignant_threshold, scheme=scheme)
    correct = int((patients["true_histology"] == patients["predicted_histology"]).sum())
    return {
        "table5": patient_table5(patients, scheme=scheme),
        "confusion_matrix": patient_confusion(patients, scheme).tolist(),
        "confusion_labels": list(scheme.classes[1:]),
        "accuracy": proportion_or_undefined(correct, len(patients), "no patient"),
    }


def _pooled_block(rows: pd.DataFrame, malignant_threshold: int, bootstrap_resamples: int,
                  bootstrap_seed: int, scheme: ClassScheme) -> dict[str, Any]:
    """One seed's pooled out-of-fold results: ``slice``, ``table4``, ``patient``."""
    return {
        "slice": slice_block(rows, "test", bootstrap_resamples, bootstrap_seed, scheme),
        "table4": table4(rows, scheme=scheme),
        "patient": _patient_block(rows, malignant_threshold, scheme),
    }


def _prepared(cv_predictions: pd.DataFrame, scheme: ClassScheme) -> pd.DataFrame:
    """A checked pooled table with integer ``fold`` and ``seed`` and every row ``test``."""
    check_cv_predictions(cv_predictions, scheme)
    return cv_predictions.assign(
        fold=_as_int_column(cv_predictions, "fold").to_numpy(),
        seed=_as_int_column(cv_predictions, "seed").to_numpy(),
        split="test",  # slice_block selects a split: every OOF row is a held-out prediction
    )


def _check_same_folds(cnn: pd.DataFrame, radiomics: pd.DataFrame) -> None:
    """The baseline's pooled rows come from the CNN's members: same seeds, same folds."""
    seeds_c, seeds_r = sorted(cnn["seed"].unique()), sorted(radiomics["seed"].unique())
    if seeds_c != seeds_r:
        raise ValueError(f"the radiomics predictions must have the CNN's seeds "
                         f"{[int(s) for s in seeds_c]}, got {[int(s) for s in seeds_r]}")
    folds_c = cnn.groupby(["seed", "patient_id"])["fold"].first()
    folds_r = radiomics.groupby(["seed", "patient_id"])["fold"].first()
    joined = pd.concat([folds_c.rename("cnn"), folds_r.rename("radiomics")], axis=1)
    differ = joined[joined["cnn"] != joined["radiomics"]]
    if len(differ):
        (s, pid), row = differ.index[0], differ.iloc[0]
        raise ValueError(
            f"the radiomics predictions must come from the CNN's folds; {len(differ)} (seed, "
            f"patient) pairs differ, e.g. patient {pid!r} seed {int(s)}: CNN fold "
            f"{row['cnn']}, radiomics fold {row['radiomics']}")


def _radiomics_blocks(cnn: pd.DataFrame, radiomics: pd.DataFrame, seeds: Sequence[int],
                      malignant_threshold: int, bootstrap_resamples: int,
                      bootstrap_seed: int, info: Mapping[str, Any] | None,
                      scheme: ClassScheme) -> dict[str, Any]:
    """``radiomics`` and ``cnn_vs_radiomics`` of cv-metrics.json."""
    _check_same_folds(cnn, radiomics)
    per_seed: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for s in seeds:
        rows_c, rows_r = cnn[cnn["seed"] == s], radiomics[radiomics["seed"] == s]
        per_seed[str(s)] = _pooled_block(rows_r, malignant_threshold, bootstrap_resamples,
                                         bootstrap_seed, scheme)
        try:
            paired[str(s)] = paired_comparison(rows_c, rows_r, bootstrap_resamples,
                                               bootstrap_seed, slices="out-of-fold",
                                               scheme=scheme)
        except ValueError as err:
            raise ValueError(f"seed {s}: CNN and radiomics out-of-fold predictions: {err}"
                             ) from err
    return {"radiomics": {"info": dict(info or {}), "per_seed": per_seed},
            "cnn_vs_radiomics": {"per_seed": paired, "method": CV_RADIOMICS_METHOD}}


def _fold_row(rows: pd.DataFrame, seed: int, fold: int, scheme: ClassScheme
              ) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed, "fold": fold,
                           "patients": int(rows["patient_id"].nunique()),
                           "slices": int(len(rows)),
                           "accuracy": slice_accuracy(rows, scheme=scheme)}
    y = one_hot(as_class_names(rows["true_label"], "cv_predictions.true_label", scheme),
                scheme.classes)
    scores = rows[list(probability_columns(scheme))].to_numpy(float)
    try:  # defined for any non-empty fold: each slice is a positive and K - 1 negatives
        row["micro_auc"] = micro_auc(y, scores)
    except ValueError as err:
        row["micro_auc"], row[f"micro_auc_{UNDEFINED_KEY}"] = None, str(err)
    return row


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    """mean, sd (ddof=1), min, max and n of the defined values; null with reasons otherwise."""
    defined = np.asarray([v for v in values if v is not None], dtype=float)
    out: dict[str, Any] = {"n": int(defined.size)}
    if defined.size == 0:
        for key in ("mean", "sd", "min", "max"):
            out[key], out[f"{key}_{UNDEFINED_KEY}"] = None, "no defined value"
        return out
    out.update(mean=float(defined.mean()), min=float(defined.min()),
               max=float(defined.max()))
    if defined.size < 2:
        out["sd"], out[f"sd_{UNDEFINED_KEY}"] = None, "one value"
    else:
        out["sd"] = float(defined.std(ddof=1))
    return out


def _grouping_blocks(frame: pd.DataFrame, seeds: Sequence[int], grouping: Mapping[str, Any],
                     malignant_threshold: int, bootstrap_resamples: int, bootstrap_seed: int,
                     scheme: ClassScheme) -> dict[str, Any]:
    """``grouping`` and ``per_group`` of cv-metrics.json (folds grouped by a column)."""
    try:
        column = str(grouping["column"])
        names = {int(g["fold"]): str(g["group"]) for g in grouping["groups"]}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"grouping must be cv_groups.json's content (column, groups with fold "
                         f"and group), got {grouping!r}") from err
    per_group: list[dict[str, Any]] = []
    for s in seeds:
        rows = frame[frame["seed"] == s]
        folds = sorted(int(f) for f in rows["fold"].unique())
        if folds != sorted(names):
            raise ValueError(f"seed {s}: the out-of-fold predictions have folds {folds}, the "
                             f"grouping by {column!r} has {sorted(names)}")
        for f in folds:
            part = rows[rows["fold"] == f]
            block = _pooled_block(part, malignant_threshold, bootstrap_resamples,
                                  bootstrap_seed, scheme)
            hist = part.drop_duplicates("patient_id")["histology"].map(
                lambda h: patient_class(h, scheme)) if "histology" in part \
                else pd.Series(dtype=str)
            per_group.append({
                "seed": int(s), "fold": f, "group": names[f],
                "patients": int(part["patient_id"].nunique()), "slices": int(len(part)),
                "histology": {h: int((hist == h).sum()) for h in scheme.classes[1:]},
                "slice": block["slice"], "patient_accuracy": block["patient"]["accuracy"]})
    return {"grouping": {"column": column, "label": grouping_label(column),
                         "groups": [dict(g) for g in grouping["groups"]],
                         "method": GROUPED_CV_METHOD},
            "per_group": per_group}


def _single_split_accuracy(single_split: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        block = single_split["slice"]["test"]["accuracy"]
    except (KeyError, TypeError) as err:
        raise ValueError("single_split must be a metrics.json dict with slice.test.accuracy "
                         f"(missing {err})") from err
    if not isinstance(block, Mapping):
        raise ValueError(f"single_split slice.test.accuracy must be a block, got {block!r}")
    return block


def _interval_width(cv_block: Mapping[str, Any],
                    single_split: Mapping[str, Any] | None) -> dict[str, Any]:
    cv = _width(cv_block)
    out: dict[str, Any] = {"cv": cv, "cv_slices": int(cv_block["total"])}
    reason = "no single-split run given"
    if single_split is not None:
        block = _single_split_accuracy(single_split)
        out["single_split"] = _width(block)
        if out["single_split"] is None:
            reason = block.get(UNDEFINED_KEY) or "single split's interval missing"
        n = block.get("total")
        if n:
            out["single_split_slices"] = int(n)
            out["single_split_expected"] = wilson_width(float(cv_block["value"]), int(n))
    for key in ("single_split", "single_split_expected"):
        if out.get(key) is None:
            out[key], out[f"{key}_{UNDEFINED_KEY}"] = None, reason
    if out["single_split"] is None or out["single_split"] == 0.0 or cv is None:
        out["ratio"] = None
        out[f"ratio_{UNDEFINED_KEY}"] = (reason if out["single_split"] is None
                                         else "single split's interval has width 0")
    else:
        out["ratio"] = cv / out["single_split"]
    return out


def compute_cv_metrics(cv_predictions: pd.DataFrame, malignant_threshold: int = 2,
                       bootstrap_resamples: int = 1000, bootstrap_seed: int = 0,
                       synthetic: bool = False,
                       single_split: Mapping[str, Any] | None = None,
                       radiomics_predictions: pd.DataFrame | None = None,
                       radiomics_info: Mapping[str, Any] | None = None,
                       grouping: Mapping[str, Any] | None = None,
                       scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """Everything cv-metrics.json holds; plain JSON types.

    Parameters
    ----------
    cv_predictions : DataFrame
        cv_predictions.csv (:data:`CV_COLUMNS`), checked by :func:`check_cv_predictions`.
    malignant_threshold : int
        The decision rule's threshold (Figure 5).
    bootstrap_resamples, bootstrap_seed : int
        The patient-clustered micro-AUC bootstrap of each seed's pooled slices (0: off).
    synthetic : bool
        Whether the cohort is the built-in synthetic one (labelled in every output).
    single_split : mapping, optional
        A single-split run's metrics.json, to compare the widths of the slice-accuracy
        intervals.
    radiomics_predictions : DataFrame, optional
        cv_radiomics_predictions.csv: the radiomics baseline's out-of-fold predictions of the
        same slices, from the same members (same seeds and folds; checked like
        ``cv_predictions``). None (``radiomics: false``): no radiomics keys.
    radiomics_info : mapping, optional
        What the baseline is (e.g. ``{"model": "logistic"}``), written as
        ``radiomics.info``.
    grouping : mapping, optional
        ``cv_groups.json`` (:func:`read_cv_groups`) when the folds are the values of a
        manifest column (``column``; ``groups``: ``fold``, ``group``, counts); None for k
        folds.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes); recorded as
        ``class_scheme`` unless it is the paper's.

    Returns
    -------
    dict
        ``format`` (:data:`CV_FORMAT`), ``synthetic``, ``malignant_threshold``, ``folds``
        (k), ``seeds`` (sorted), ``n_patients``, ``n_slices`` (per seed), ``per_seed`` (seed
        as text -> ``slice`` as metrics.json's ``slice.test`` on the seed's pooled OOF rows,
        ``table4``, ``patient``: ``table5``, ``confusion_matrix``, ``confusion_labels``,
        ``accuracy`` of the exact three-type diagnosis, Wilson), ``per_fold`` (one row per
        seed and fold: ``seed``, ``fold``, ``patients``, ``slices``, ``accuracy`` block,
        ``micro_auc``), ``spread`` (``slice_accuracy`` and ``micro_auc``, each with
        ``per_fold`` and ``per_seed``: ``n``, ``mean``, ``sd`` (ddof=1; null with
        ``sd_undefined`` for one value), ``min``, ``max``), ``interval_width`` (``cv``: width
        of the first seed's pooled slice-accuracy Wilson interval; ``single_split``: that of
        ``single_split``'s ``slice.test.accuracy``; ``single_split_expected``: the Wilson
        width at the CV accuracy with the single split's test slice count; ``ratio``: cv /
        single_split; null with a reason where not given) and ``method`` (:data:`CV_METHOD`).
        With ``radiomics_predictions`` also ``radiomics`` (``info``; ``per_seed``: seed as
        text -> the baseline's ``slice``, ``table4`` and ``patient``, computed as the CNN's)
        and ``cnn_vs_radiomics`` (``per_seed``: seed as text -> CNN seed s minus radiomics
        seed s on the same out-of-fold slices,
        :func:`parotidlib.evaluation.comparison.paired_comparison`: ``accuracy``,
        ``micro_auc``, ``mcnemar``, ``method``; ``method``: :data:`CV_RADIOMICS_METHOD`).
        With ``grouping`` also ``grouping`` (``column``, ``label`` (:func:`grouping_label`),
        ``groups`` as given, ``method``: :data:`GROUPED_CV_METHOD`) and ``per_group`` (one
        record per seed and held-out group: ``seed``, ``fold``, ``group``, ``patients``,
        ``slices``, ``histology`` (patients per lesion class), ``slice`` (as ``per_seed``'s, on
        the group's rows), ``patient_accuracy``), and ``method`` is
        :data:`GROUPED_CV_METHOD`.

    Raises
    ------
    ValueError
        A table fails :func:`check_cv_predictions` (the radiomics one's message starts with
        ``cv_radiomics_predictions``), or the baseline's rows are not the CNN's slices, seeds
        and folds, or the folds are not the grouping's.
    """
    frame = _prepared(cv_predictions, scheme)
    seeds = sorted(int(s) for s in frame["seed"].unique())
    per_seed: dict[str, Any] = {}
    per_fold: list[dict[str, Any]] = []
    for s in seeds:
        rows = frame[frame["seed"] == s]
        per_seed[str(s)] = _pooled_block(rows, malignant_threshold, bootstrap_resamples,
                                         bootstrap_seed, scheme)
        for f in sorted(int(f) for f in rows["fold"].unique()):
            per_fold.append(_fold_row(rows[rows["fold"] == f], s, f, scheme))
    first = per_seed[str(seeds[0])]["slice"]
    spread = {
        "slice_accuracy": {
            "per_fold": _spread([r["accuracy"]["value"] for r in per_fold]),
            "per_seed": _spread([per_seed[str(s)]["slice"]["accuracy"]["value"]
                                 for s in seeds]),
        },
        "micro_auc": {
            "per_fold": _spread([r["micro_auc"] for r in per_fold]),
            "per_seed": _spread([per_seed[str(s)]["slice"]["micro_auc"]["value"]
                                 for s in seeds]),
        },
    }
    out = {
        "format": CV_FORMAT,
        "synthetic": bool(synthetic),
        "malignant_threshold": int(malignant_threshold),
        "folds": int(frame.groupby("seed")["fold"].nunique().iloc[0]),
        "seeds": seeds,
        "n_patients": int(frame["patient_id"].nunique()),
        "n_slices": int(len(frame) // len(seeds)),
        "per_seed": per_seed,
        "per_fold": per_fold,
        "spread": spread,
        "interval_width": _interval_width(first["accuracy"], single_split),
        "method": CV_METHOD if grouping is None else GROUPED_CV_METHOD,
    }
    if not is_paper(scheme):
        out[SCHEME_KEY] = scheme.record()
    if grouping is not None:
        out.update(_grouping_blocks(frame, seeds, grouping, malignant_threshold,
                                    bootstrap_resamples, bootstrap_seed, scheme))
    if radiomics_predictions is not None:
        try:
            radiomics = _prepared(radiomics_predictions, scheme)
        except ValueError as err:
            raise ValueError(f"cv_radiomics_predictions: {err}") from err
        out.update(_radiomics_blocks(frame, radiomics, seeds, malignant_threshold,
                                     bootstrap_resamples, bootstrap_seed, radiomics_info,
                                     scheme))
    logger.info("CV: %d folds x %d seeds, %d patients, pooled slice accuracy %.4f (seed %d)",
                out["folds"], len(seeds), out["n_patients"], first["accuracy"]["value"],
                seeds[0])
    return to_jsonable(out)

