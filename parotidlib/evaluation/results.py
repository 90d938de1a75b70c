"""Assemble a run's metrics.json from its predictions (tables of it: :mod:`.frames`).

The numbers come from ``metrics`` (slice accuracy, ROC/AUC, clustered bootstrap),
``diagnostic_accuracy`` (Tables 4 and 5, threshold sweep) and ``decision`` (Figure 5's rule);
this module only puts them into the docs/metrics.md schema and into tables. Torch-free.

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

from parotidlib.constants import HISTOLOGIES
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

logger = logging.getLogger(__name__)


def slice_block(predictions: pd.DataFrame, split: str, resamples: int, seed: int) -> dict:
    """``slice.<split>`` of metrics.json; undefined AUCs and intervals carry their reason."""
    frame = select_split(predictions, split)
    roc = roc_curves(frame)
    auc: dict[str, Any] = {"value": float(roc.auc["micro"]), "ci95": None}
    if resamples == 0:
        auc[f"ci95_{UNDEFINED_KEY}"] = "bootstrap_resamples is 0"
    else:
        try:
            boot = bootstrap_micro_auc_ci(frame, n_resamples=resamples, seed=seed)
        except UndefinedError as err:  # one patient, or every resample lacked a class
            auc[f"ci95_{UNDEFINED_KEY}"] = err.reason
        else:
            auc.update(ci95=boot["ci95"], n_resamples=boot["n_resamples"],
                       n_skipped=boot["n_skipped"],
                       method="patient-clustered percentile bootstrap")
    block: dict[str, Any] = {"accuracy": slice_accuracy(frame), "micro_auc": auc,
                             "macro_auc": float(roc.auc["macro"]) if "macro" in roc.auc else None}
    if "macro" in roc.undefined:
        block[f"macro_auc_{UNDEFINED_KEY}"] = roc.undefined["macro"]
    block["class_auc"] = {k: float(v) for k, v in roc.auc.items() if k not in ("micro", "macro")}
    missing = {k: v for k, v in roc.undefined.items() if k != "macro"}
    if missing:
        block[f"class_auc_{UNDEFINED_KEY}"] = missing
    block.update(
        confusion_matrix=confusion(frame["true_label"], frame["predicted_label"]).tolist(),
        slices=int(len(frame)),
        patients=int(frame["patient_id"].nunique()),
    )
    return block


def compute_metrics(predictions: pd.DataFrame, params: Mapping[str, Any],
                    synthetic: bool) -> dict[str, Any]:
    """Every result of a run in the metrics.json schema of docs/metrics.md.

    Parameters
    ----------
    predictions : DataFrame
        predictions.csv (one row per slice, train and test splits).
    params : mapping
        Resolved params (``malignant_threshold``, ``bootstrap_resamples``, ``bootstrap_seed``).
    synthetic : bool
        Whether the cohort is the built-in synthetic one (labelled in every output).
    """
    resamples, seed = int(params["bootstrap_resamples"]), int(params["bootstrap_seed"])
    threshold = int(params["malignant_threshold"])
    test = select_split(predictions, "test")
    patients = diagnose_patients(test, malignant_threshold=threshold)
    sweep = threshold_sweep(test, thresholds=range(0, 11))
    metrics = {
        "synthetic": bool(synthetic),
        "slice": {split: slice_block(predictions, split, resamples, seed)
                  for split in ("train", "test")},
        "table4": table4(test),
        "patient": {
            "malignant_threshold": threshold,
            "table5": patient_table5(patients),
            "confusion_matrix": patient_confusion(patients).tolist(),
            "confusion_labels": list(HISTOLOGIES),
            "diagnoses": patients.to_dict(orient="records"),
            "threshold_sweep": sweep.replace({np.nan: None}).to_dict(orient="records"),
        },
        "timing_s": {},
    }
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
