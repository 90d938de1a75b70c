"""metrics.json as tables for display (notebooks and the report): slice results, Table 4,
Table 5, the patient confusion matrix and the threshold sweep. Torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation.metrics import confusion, select_split


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


def confusion_frame(predictions: pd.DataFrame, split: str) -> pd.DataFrame:
    """The 4 x 4 slice confusion matrix of one split (rows true class, columns predicted)."""
    part = select_split(predictions, split)
    return pd.DataFrame(confusion(part["true_label"], part["predicted_label"]),
                        index=pd.Index(CLASSES, name=f"{split}: true \\ predicted"),
                        columns=list(CLASSES))
