"""metrics.json as tables for display (notebooks and the report): slice results, Table 4,
Table 5, the patient confusion matrix and the threshold sweep. Torch-free.

An undefined quantity (docs/metrics.md, "Undefined quantities") is shown as
``undefined (<reason>)``; a quantity that is missing without a reason (a metrics.json
written before reasons were recorded) as ``n/a``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from parotidlib.constants import HISTOLOGIES
from parotidlib.evaluation.metrics import confusion, select_split
from parotidlib.evaluation.stats import UNDEFINED_KEY
from parotidlib.evaluation.text import block_text, number_text, undefined_text
from parotidlib.study import PAPER_CLASSES, ClassScheme

__all__ = [
    "confusion_frame",
    "patient_confusion_frame",
    "slice_table",
    "table4_frame",
    "table5_frame",
    "threshold_sweep_frame",
    "undefined_text",
]

#: Numeric columns of the threshold sweep (null in metrics.json where undefined).
_SWEEP_MEASURES = tuple(f"{m}{s}" for m in ("sensitivity", "specificity")
                        for s in ("", "_lo", "_hi"))


def slice_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Slice accuracy and AUCs per split, with 95% intervals and counts.

    Undefined values read ``undefined (<reason>)``; a column ``AUC undefined`` names the
    classes without a one-vs-rest curve and why, when a split has such a class.
    """
    rows = []
    for split, block in metrics["slice"].items():
        row = {"split": split, "patients": block.get("patients"),
               "slices": block.get("slices"),
               "accuracy [95% Wilson CI] (k/n)": block_text(block["accuracy"]),
               "micro-AUC [95% bootstrap CI]": block_text(block["micro_auc"]),
               "macro-AUC": number_text(block, "macro_auc")}
        missing = block.get(f"class_auc_{UNDEFINED_KEY}")
        if missing:
            row["AUC undefined"] = "; ".join(f"{c}: {r}" for c, r in missing.items())
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("split")
    if "AUC undefined" in frame:
        frame["AUC undefined"] = frame["AUC undefined"].fillna("")
    return frame


def table4_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Table 4 as displayed: one row per binary task, the positive class named."""
    rows = []
    for row in metrics["table4"]:
        rows.append({"task": row["task"].replace("_", " "), "positive": row["positive"],
                     "accuracy": block_text(row["accuracy"]),
                     "sensitivity (CC)": block_text(row.get("sensitivity")),
                     "specificity (CC)": block_text(row.get("specificity")),
                     "TP/FN/FP/TN": f"{row['tp']}/{row['fn']}/{row['fp']}/{row['tn']}"})
    return pd.DataFrame(rows).set_index("task")


def table5_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Table 5: patients and correctly diagnosed patients per type, with Wilson intervals."""
    rows = [{"tumour type": r["type"].replace("_", " "), "patients": r["patients"],
             "correctly predicted": r["correct"],
             "accuracy [95% Wilson CI]": block_text(r["accuracy"])}
            for r in metrics["patient"]["table5"]]
    return pd.DataFrame(rows).set_index("tumour type")


def patient_confusion_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Patient-level confusion matrix (rows true histology, columns diagnosis)."""
    labels = metrics["patient"].get("confusion_labels", list(HISTOLOGIES))
    return pd.DataFrame(metrics["patient"]["confusion_matrix"],
                        index=pd.Index(labels, name="true \\ predicted"), columns=labels)


def threshold_sweep_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The decision rule's malignant-slice threshold sweep (test patients).

    Returns
    -------
    pandas.DataFrame
        One row per threshold, as in metrics.json; the sensitivity and specificity columns
        and their bounds are floats, NaN where undefined, and ``sensitivity_undefined`` /
        ``specificity_undefined`` (present only then) give the reason.
    """
    frame = pd.DataFrame(metrics["patient"]["threshold_sweep"])
    for column in _SWEEP_MEASURES:
        if column in frame:  # JSON null -> NaN, so that the columns stay numeric
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def confusion_frame(predictions: pd.DataFrame, split: str,
                    scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """The K x K slice confusion matrix of one split over the scheme's classes (rows true
    class, columns predicted; the paper's 4 x 4 by default)."""
    part = select_split(predictions, split, scheme)
    return pd.DataFrame(confusion(part["true_label"], part["predicted_label"], scheme),
                        index=pd.Index(scheme.classes, name=f"{split}: true \\ predicted"),
                        columns=list(scheme.classes))


def model_column(slices: Mapping[str, Any], block: Mapping[str, Any]) -> dict[str, str]:
    """One model's column of a side-by-side table: the slice results ``slices`` (accuracy,
    micro- and macro-AUC) and ``block``'s Table 4 accuracies and Table 5 counts."""
    col = {"slice accuracy [95% Wilson CI]": block_text(slices["accuracy"]),
           "micro-AUC [95% bootstrap CI]": block_text(slices["micro_auc"]),
           "macro-AUC": number_text(slices, "macro_auc")}
    for r in block["table4"]:
        col[f"Table 4, {r['task'].replace('_', ' ')}: accuracy"] = block_text(r["accuracy"])
    for r in block["patient"]["table5"]:
        col[f"Table 5, {r['type'].replace('_', ' ')}: patients correct"] = (
            f"{r['correct']}/{r['patients']}")
    return col


def cnn_vs_radiomics_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The CNN and the radiomics baseline side by side on the same test patients (slice
    accuracy and AUCs, Table 4 accuracies, Table 5), with the paired differences below;
    empty when the run has no baseline (``radiomics: false``)."""
    if "radiomics" not in metrics:
        return pd.DataFrame()
    rows = {label: model_column(block["slice"]["test"], block)
            for label, block in (("CNN", metrics), ("radiomics", metrics["radiomics"]))}
    cmp = metrics["cnn_vs_radiomics"]
    diff = {"CNN minus radiomics: accuracy [95% CI], p": (
                f"{block_text(cmp['accuracy'])}, p {number_text(cmp['accuracy'], 'p_two_sided')}"),
            "CNN minus radiomics: micro-AUC [95% CI], p": (
                f"{block_text(cmp['micro_auc'])}, p "
                f"{number_text(cmp['micro_auc'], 'p_two_sided')}"),
            "McNemar exact p on slices (slices as independent)":
                f"{cmp['mcnemar']['pvalue']:.3g}"}
    frame = pd.DataFrame(rows)
    for key, text in diff.items():
        frame.loc[key] = [text, ""]
    frame.index.name = "test patients"
    return frame
