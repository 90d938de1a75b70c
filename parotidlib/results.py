"""Assemble a run's metrics.json from its predictions, and tabulate it for display.

The numbers come from ``metrics`` (slice accuracy, ROC/AUC, clustered bootstrap),
``evaluation_tables`` (Tables 4 and 5, threshold sweep) and ``decision`` (Figure 5's rule);
this module only puts them into the DESIGN.md schema and into tables. Torch-free.
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
from parotidlib.decision import diagnose_patients
from parotidlib.evaluation_tables import patient_confusion, patient_table5, table4, threshold_sweep
from parotidlib.io import write_text_atomic
from parotidlib.metrics import (
    bootstrap_micro_auc_ci,
    confusion,
    roc_curves,
    select_split,
    slice_accuracy,
)
from parotidlib.metrics_schema import to_jsonable, validate_metrics

logger = logging.getLogger(__name__)


def _slice_block(predictions: pd.DataFrame, split: str, resamples: int, seed: int) -> dict:
    frame = select_split(predictions, split)
    roc = roc_curves(frame)
    auc: dict[str, Any] = {"value": float(roc.auc["micro"]), "ci95": None}
    if resamples > 0 and frame["patient_id"].nunique() >= 2:
        boot = bootstrap_micro_auc_ci(frame, n_resamples=resamples, seed=seed)
        auc.update(ci95=boot["ci95"], n_resamples=boot["n_resamples"],
                   n_skipped=boot["n_skipped"], method="patient-clustered percentile bootstrap")
    return {
        "accuracy": slice_accuracy(frame),
        "micro_auc": auc,
        "macro_auc": float(roc.auc["macro"]) if "macro" in roc.auc else None,
        "class_auc": {k: float(v) for k, v in roc.auc.items() if k not in ("micro", "macro")},
        "confusion_matrix": confusion(frame["true_label"], frame["predicted_label"]).tolist(),
        "slices": int(len(frame)),
        "patients": int(frame["patient_id"].nunique()),
    }


def compute_metrics(predictions: pd.DataFrame, params: Mapping[str, Any],
                    synthetic: bool) -> dict[str, Any]:
    """Every result of a run in the metrics.json schema of DESIGN.md.

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
        "slice": {split: _slice_block(predictions, split, resamples, seed)
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


def run_is_synthetic(run_dir: str | Path) -> bool:
    """Whether the run's cohort (cohort.json, written by the pipeline) is the built-in one."""
    from parotidlib.sources import is_synthetic

    info = Path(run_dir) / "cohort.json"
    if not info.exists():
        return True  # interactive use without the pipeline: the default cohort
    return is_synthetic(Path(json.loads(info.read_text())["manifest"]))


def _ci(block: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    text = f"{block['value']:.{digits}f}"
    if block.get("ci95"):
        text += f" [{block['ci95'][0]:.{digits}f}, {block['ci95'][1]:.{digits}f}]"
    if "successes" in block:
        text += f" ({block['successes']}/{block['total']})"
    return text


def slice_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Slice accuracy and AUCs per split, with 95% intervals and counts."""
    rows = []
    for split, block in metrics["slice"].items():
        rows.append({"split": split, "patients": block.get("patients"),
                     "slices": block.get("slices"),
                     "accuracy [95% Wilson CI] (k/n)": _ci(block["accuracy"]),
                     "micro-AUC [95% bootstrap CI]": _ci(block["micro_auc"]),
                     "macro-AUC": f"{block['macro_auc']:.3f}" if block.get("macro_auc") else "n/a"})
    return pd.DataFrame(rows).set_index("split")


def table4_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Table 4 as displayed: one row per binary task, the positive class named."""
    rows = []
    for row in metrics["table4"]:
        rows.append({"task": row["task"].replace("_", " "), "positive": row["positive"],
                     "accuracy": _ci(row["accuracy"]),
                     "sensitivity (CC)": _ci(row.get("sensitivity")),
                     "specificity (CC)": _ci(row.get("specificity")),
                     "TP/FN/FP/TN": f"{row['tp']}/{row['fn']}/{row['fp']}/{row['tn']}"})
    return pd.DataFrame(rows).set_index("task")


def table5_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Table 5: patients and correctly diagnosed patients per type, with Wilson intervals."""
    rows = [{"tumour type": r["type"].replace("_", " "), "patients": r["patients"],
             "correctly predicted": r["correct"], "accuracy [95% Wilson CI]": _ci(r["accuracy"])}
            for r in metrics["patient"]["table5"]]
    return pd.DataFrame(rows).set_index("tumour type")


def patient_confusion_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Patient-level confusion matrix (rows true histology, columns diagnosis)."""
    labels = metrics["patient"].get("confusion_labels", list(HISTOLOGIES))
    return pd.DataFrame(metrics["patient"]["confusion_matrix"],
                        index=pd.Index(labels, name="true \\ predicted"), columns=labels)


def threshold_sweep_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The decision rule's malignant-slice threshold sweep (test patients)."""
    return pd.DataFrame(metrics["patient"]["threshold_sweep"])
