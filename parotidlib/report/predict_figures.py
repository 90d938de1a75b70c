"""Every figure of the predict chain's report, drawn from the files its stages wrote.

From ``data/`` (the input crops), ``predictions.csv`` and ``external.json``: a strip of input
crops per patient (with the slice probabilities the rule counted), and for a cohort with
histology the confusion matrix and ROC curves of the external slices, the reliability
diagrams (internal test and external side by side) and the decision curve. Saved as
``figures/<name>.png`` (300 dpi) and ``.pdf``, labelled synthetic where they are.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.data.dataset import load_dataset
from parotidlib.evaluation.classes import probability_columns, scheme_of
from parotidlib.evaluation.external import labelled
from parotidlib.evaluation.metrics import confusion, roc_curves
from parotidlib.evaluation.results import read_predictions
from parotidlib.report.figures import save_figure
from parotidlib.report.figures.evaluation import plot_confusion_matrices, plot_roc
from parotidlib.report.figures.external import plot_decision_curve, plot_reliability
from parotidlib.report.figures.inputs import plot_patient_strip
from parotidlib.report.figures.style import pretty_name
from parotidlib.report.predict_report import EXTERNAL, INTERNAL

logger = logging.getLogger(__name__)

__all__ = ["draw_predict_figures", "strip_patients_shown"]


def strip_patients_shown(diagnoses: list[Mapping[str, Any]], n: int) -> list[str]:
    """The patients whose input strips are drawn: all when at most ``n``; otherwise the
    misdiagnosed ones first, then the others, in patient order, ``n`` in all."""
    ids = [d["patient_id"] for d in diagnoses]
    if len(ids) <= n:
        return ids
    wrong = [d["patient_id"] for d in diagnoses if d.get("correct") is False]
    rest = [i for i in ids if i not in set(wrong)]
    return sorted((wrong + rest)[:n])


def _calibration(results: Mapping[str, Any], level: str, key: str,
                 cls: str | None = None) -> dict[str, Any]:
    out = {}
    for label, name in ((INTERNAL, "internal"), (EXTERNAL, "external")):
        block = results.get(name)
        if not block:
            out[label] = None
            continue
        cal = block["calibration"][level][key]
        out[label] = cal[cls] if cls is not None else cal
    return out


def draw_predict_figures(run_dir: str | Path, results: Mapping[str, Any], strip_patients: int,
                         synthetic: bool) -> list[str]:
    """Draw and save the figures of a predict run; returns the names saved in report order.

    Parameters
    ----------
    run_dir : path
        The predict run's folder (``data/``, ``predictions.csv``).
    results : mapping
        Its ``external.json``.
    strip_patients : int
        Patients shown with their input crops (:func:`strip_patients_shown`).
    synthetic : bool
        Label every figure as coming from a synthetic cohort.
    """
    run_dir = Path(run_dir)
    saved: list[str] = []
    suffix = " (synthetic cohort)" if synthetic else ""

    def save(fig, name: str) -> None:
        save_figure(fig, run_dir, name, synthetic=synthetic)
        saved.append(name)

    dataset = load_dataset(run_dir / "data")
    predictions = read_predictions(run_dir / "predictions.csv")
    scheme = scheme_of(results)  # external.json's class_scheme; the paper's when absent
    by_patient = {d["patient_id"]: d for d in results["diagnoses"]}
    slices = dataset.slices
    for pid in strip_patients_shown(results["diagnoses"], strip_patients):
        rows = np.flatnonzero((slices["patient_id"] == pid).to_numpy())
        d = by_patient[pid]
        pred = predictions[predictions["patient_id"] == pid]
        labels = [None if not isinstance(v, str) else v for v in slices["label"].iloc[rows]]
        save(plot_patient_strip(np.asarray(dataset.images[rows]),
                                pred[list(probability_columns(scheme))].to_numpy(float),
                                dataset.channels, str(pid), d["predicted_histology"],
                                sum(int(d[f"n_pred_{c}"]) for c in scheme.malignant),
                                int(results["malignant_threshold"]),
                                true_histology=d["histology"], slice_labels=labels,
                                scheme=scheme),
             f"patient_{pid}")
    if not results.get("validated"):
        return saved
    scored = labelled(predictions, scheme)
    save(plot_confusion_matrices(confusion(scored["true_label"], scored["predicted_label"],
                                           scheme), classes=scheme.classes,
                                 title=f"External slices{suffix}"), "external_confusion_matrix")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")  # a class without slices is named in the legend
        roc = roc_curves(scored, scheme=scheme)
    save(plot_roc(roc, title=f"External slices{suffix}", classes=scheme.classes),
         "external_roc")
    save(plot_reliability({
        "Slices: malignant vs benign": _calibration(results, "slice", "malignant_vs_benign"),
        "Patients: malignant vs benign": _calibration(results, "patient",
                                                      "malignant_vs_benign"),
    }, title=f"Calibration{suffix}"), "calibration_malignant")
    panels = {f"Slices: {pretty_name(c)} vs rest": _calibration(results, "slice",
                                                                 "one_vs_rest", c)
              for c in scheme.classes}
    panels.update({f"Patients: {pretty_name(h)} vs rest": _calibration(
        results, "patient", "one_vs_rest", h) for h in scheme.classes[1:]
        if scheme.malignant != (h,)})
    save(plot_reliability(panels, title=f"Calibration, one-vs-rest{suffix}"),
         "calibration_one_vs_rest")
    curves = {}
    for label, name in ((INTERNAL, "internal"), (EXTERNAL, "external")):
        block = results.get(name)
        if block:
            curves[label] = pd.DataFrame(block["decision_curve"])
    save(plot_decision_curve(curves, title=f"Decision curve, patients{suffix}"),
         "decision_curve")
    return saved
