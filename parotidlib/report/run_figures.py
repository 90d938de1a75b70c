"""Every figure of a run, drawn from the files its stages wrote (the report stage draws them).

The computing stages (curate, train, evaluate, statistics, saliency) write data; the
figures are drawn here, from ``data/``, ``model/history.csv``, ``predictions.csv``,
``metrics.json`` and the saliency files (``saliency.json``, ``saliency_maps.npz``), so that a
change to a figure reruns the report stage only (docs/design.md, "Stage cache"). Each is
saved as ``figures/<name>.png`` (300 dpi) and ``.pdf``, labelled synthetic where it is.

A run whose test split lacks a class still gets every figure: each draws what is defined
and names what is not, with its reason (see :mod:`parotidlib.report.figures.evaluation`).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.data.dataset import load_dataset
from parotidlib.data.sources import run_manifest
from parotidlib.evaluation.classes import run_scheme
from parotidlib.evaluation.frames import threshold_sweep_frame
from parotidlib.evaluation.metrics import RocResult, confusion, roc_curves, select_split
from parotidlib.evaluation.results import read_predictions
from parotidlib.learn.explain import read_saliency
from parotidlib.report.figures import save_figure
from parotidlib.report.figures.cohort import plot_patient_series
from parotidlib.report.figures.evaluation import (
    plot_confusion_matrices,
    plot_roc,
    plot_threshold_sweep,
)
from parotidlib.report.figures.inputs import plot_example_inputs
from parotidlib.report.figures.saliency import plot_saliency_examples
from parotidlib.report.figures.training import plot_training_curves
from parotidlib.study import PAPER_CLASSES, ClassScheme, Study

logger = logging.getLogger(__name__)

#: Figure names in the order the report shows them (the paper's figure numbers).
RUN_FIGURES: tuple[str, ...] = (
    "fig2_patient_series", "fig3_example_inputs", "training_curves",
    "fig7_confusion_matrix_test", "fig6_roc_test", "fig7_confusion_matrix_train",
    "fig6_roc_train", "fig5_threshold_sweep", "saliency_examples",
)


def _title(split: str, synthetic: bool) -> str:
    return ("Test slices" if split == "test" else "Training slices") + (
        " (synthetic cohort)" if synthetic else "")


def _roc(predictions: pd.DataFrame, split: str,
         scheme: ClassScheme = PAPER_CLASSES) -> RocResult:
    # A class without a curve is named in the figure's legend; its warning is only logged.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        roc = roc_curves(predictions, split=split, scheme=scheme)
    for warning in caught:
        logger.info("%s split: %s", split, warning.message)
    return roc


def saliency_titles(summary: Mapping[str, Any]) -> list[str]:
    """Row labels of the saliency examples: patient and slice, true class, the predicted
    class when wrong, and the share of the true-class map inside the ROI."""
    titles = []
    for e in summary["examples"]:
        share = ("undefined" if e["mask_fraction"] is None
                 else f"{e['mask_fraction']:.2f} in ROI")
        wrong = "" if e["correct"] else f" (predicted {e['predicted_label']})"
        titles.append(f"{e['patient_id']} slice {e['slice_index']}: {e['true_label']}{wrong}, "
                      f"{share}")
    return titles


def draw_run_figures(run_dir: str | Path, params: Mapping[str, Any], synthetic: bool
                     ) -> list[str]:
    """Draw and save the figures of a run whose stages have written their files.

    Parameters
    ----------
    run_dir : path
        The run folder (``cohort.json``, ``data/``, ``model/history.csv``,
        ``predictions.csv``, ``metrics.json``).
    params : mapping
        The run's resolved params (``split_seed`` picks Figure 3's examples).
    synthetic : bool
        Label every figure as coming from the synthetic cohort.

    Returns
    -------
    list of str
        The names saved; a figure whose input file is missing is left out (and logged).
    """
    run_dir = Path(run_dir)
    saved: list[str] = []

    def save(fig, name: str) -> None:
        save_figure(fig, run_dir, name, synthetic=synthetic)
        saved.append(name)

    if (run_dir / "data" / "dataset.json").is_file():
        dataset = load_dataset(run_dir / "data")
        manifest = run_manifest(run_dir)
        lesions = dataset.slices.query("split == 'test' and label != 'free'")["patient_id"]
        if len(lesions):
            save(plot_patient_series(manifest, lesions.iloc[0],
                                     study=Study.from_config(dataset.meta.get("config", {}))),
                 "fig2_patient_series")
        save(plot_example_inputs(dataset, per_class=1, seed=int(params.get("split_seed", 0))),
             "fig3_example_inputs")
    history = run_dir / "model" / "history.csv"
    if history.is_file():
        save(plot_training_curves(pd.read_csv(history)), "training_curves")
    if (run_dir / "predictions.csv").is_file():
        predictions = read_predictions(run_dir / "predictions.csv")
        scheme = run_scheme(run_dir)  # the paper's four classes for a run before the scheme
        for split in ("test", "train"):
            part = select_split(predictions, split, scheme)
            save(plot_confusion_matrices(confusion(part["true_label"], part["predicted_label"],
                                                   scheme),
                                         classes=scheme.classes, title=_title(split, synthetic)),
                 f"fig7_confusion_matrix_{split}")
            save(plot_roc(_roc(predictions, split, scheme), title=_title(split, synthetic),
                          classes=scheme.classes),
                 f"fig6_roc_{split}")
    if (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        save(plot_threshold_sweep(threshold_sweep_frame(metrics)), "fig5_threshold_sweep")
    saliency = read_saliency(run_dir)
    if saliency is not None and saliency[0].get("computed"):
        summary, arrays = saliency
        save(plot_saliency_examples(arrays["images"], arrays["maps"], list(arrays["channels"]),
                                    saliency_titles(summary),
                                    method_name=summary["method_name"],
                                    title=_title("test", synthetic)),
             "saliency_examples")
    missing = [n for n in RUN_FIGURES if n not in saved]
    if missing:
        logger.info("figures not drawn (their inputs are missing): %s", ", ".join(missing))
    return saved
