"""Assemble a run's metrics.json from its predictions (tables of it: :mod:`.frames`).

The numbers come from ``metrics`` (slice accuracy, ROC/AUC, clustered bootstrap),
``diagnostic_accuracy`` (Tables 4 and 5, threshold sweep) and ``decision`` (Figure 5's rule);
this module only puts them into the docs/metrics.md schema and into tables. Torch-free.

The run's class scheme (:class:`parotidlib.study.ClassScheme`, read from its dataset.json
by :func:`parotidlib.evaluation.classes.run_scheme`) is passed in; metrics.json records it
under ``class_scheme`` when it is not the paper's, so that the paper's run keeps today's
bytes and any other run says what its class keys are.

A quantity the data leave undefined (a test split without a class, one patient, ...) is
written as null with its reason (docs/metrics.md, "Undefined quantities"); nothing here
fails on a small but legitimate split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.evaluation.classes import SCHEME_KEY, is_paper
from parotidlib.evaluation.decision import diagnose_patients
from parotidlib.evaluation.diagnostic_accuracy import (
    patient_confusion,
    patient_table5,
    table4,
    threshold_sweep,
)
from parotidlib.evaluation.metrics import (
    bootstrap_micro_auc_ci,
    confusion,
    roc_curves,
    select_split,
    slice_accuracy,
)
from parotidlib.evaluation.schema import to_jsonable, validate_metrics
from parotidlib.evaluation.stats import UNDEFINED_KEY, UndefinedError
from parotidlib.io import write_text_atomic
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)


def slice_block(predictions: pd.DataFrame, split: str, resamples: int, seed: int,
                scheme: ClassScheme = PAPER_CLASSES) -> dict:
    """``slice.<split>`` of metrics.json over the scheme's classes; undefined AUCs and
    intervals carry their reason."""
    frame = select_split(predictions, split, scheme)
    roc = roc_curves(frame, scheme=scheme)
    auc: dict[str, Any] = {"value": float(roc.auc["micro"]), "ci95": None}
    if resamples == 0:
        auc[f"ci95_{UNDEFINED_KEY}"] = "bootstrap_resamples is 0"
    else:
        try:
            boot = bootstrap_micro_auc_ci(frame, n_resamples=resamples, seed=seed,
                                          scheme=scheme)
        except UndefinedError as err:  # one patient, or every resample lacked a class
            auc[f"ci95_{UNDEFINED_KEY}"] = err.reason
        else:
            auc.update(ci95=boot["ci95"], n_resamples=boot["n_resamples"],
                       n_skipped=boot["n_skipped"],
                       method="patient-clustered percentile bootstrap")
    block: dict[str, Any] = {"accuracy": slice_accuracy(frame, scheme=scheme), "micro_auc": auc,
                             "macro_auc": float(roc.auc["macro"]) if "macro" in roc.auc else None}
    if "macro" in roc.undefined:
        block[f"macro_auc_{UNDEFINED_KEY}"] = roc.undefined["macro"]
    block["class_auc"] = {k: float(v) for k, v in roc.auc.items() if k not in ("micro", "macro")}
    missing = {k: v for k, v in roc.undefined.items() if k != "macro"}
    if missing:
        block[f"class_auc_{UNDEFINED_KEY}"] = missing
    block.update(
        confusion_matrix=confusion(frame["true_label"], frame["predicted_label"],
                                   scheme).tolist(),
        slices=int(len(frame)),
        patients=int(frame["patient_id"].nunique()),
    )
    return block


def compute_metrics(predictions: pd.DataFrame, params: Mapping[str, Any],
                    synthetic: bool, scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """Every result of a run in the metrics.json schema of docs/metrics.md.

    Parameters
    ----------
    predictions : DataFrame
        predictions.csv (one row per slice, train and test splits).
    params : mapping
        Resolved params (``malignant_threshold``, ``bootstrap_resamples``, ``bootstrap_seed``).
    synthetic : bool
        Whether the cohort is the built-in synthetic one (labelled in every output).
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes); recorded as
        ``class_scheme`` unless it is the paper's.
    """
    resamples, seed = int(params["bootstrap_resamples"]), int(params["bootstrap_seed"])
    threshold = int(params["malignant_threshold"])
    test = select_split(predictions, "test", scheme)
    patients = diagnose_patients(test, malignant_threshold=threshold, scheme=scheme)
    sweep = threshold_sweep(test, thresholds=range(0, 11), scheme=scheme)
    metrics: dict[str, Any] = {"synthetic": bool(synthetic)}
    if not is_paper(scheme):
        metrics[SCHEME_KEY] = scheme.record()
    metrics.update({
        "slice": {split: slice_block(predictions, split, resamples, seed, scheme)
                  for split in ("train", "test")},
        "table4": table4(test, scheme=scheme),
        "patient": {
            "malignant_threshold": threshold,
            "table5": patient_table5(patients, scheme=scheme),
            "confusion_matrix": patient_confusion(patients, scheme).tolist(),
            "confusion_labels": list(scheme.classes[1:]),
            "diagnoses": patients.to_dict(orient="records"),
            "threshold_sweep": sweep.replace({np.nan: None}).to_dict(orient="records"),
        },
        "timing_s": {},
    })
    metrics = to_jsonable(metrics)
    validate_metrics(metrics)
    return metrics


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read predictions.csv keeping patient ids as text ("007" stays "007", not 7)."""
    return pd.read_csv(path, dtype={"patient_id": str, "split": str, "true_label": str,
                                    "predicted_label": str})


def write_metrics(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Validate and write metrics.json atomically, keeping the pipeline's timings if present."""
    path = Path(path)
    metrics = dict(metrics)
    timing = path.parent / "timing.json"
    if timing.exists() and not metrics.get("timing_s"):
        metrics["timing_s"] = json.loads(timing.read_text())
    validate_metrics(metrics)
    return write_text_atomic(path, json.dumps(metrics, indent=2))
