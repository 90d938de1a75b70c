"""Evaluation figures: confusion matrices (paper's Figure 7), ROC curves (Figure 6) and the
decision rule's threshold sweep (Figure 5's rule).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global
figure state, nothing shown twice in notebooks); save it with ``fig.savefig``.

A small test set may lack a class or a tumour type. The figures then draw what is defined
and say what is not, with the reason of docs/metrics.md ("Undefined quantities"): a ROC
panel names each class without a curve in its legend, a row-normalised confusion matrix
marks a row without slices as undefined, and the threshold sweep names an undefined
sensitivity or specificity in its legend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from parotidlib.constants import CLASSES
from parotidlib.evaluation.metrics import RocResult
from parotidlib.report.figures.style import CLASS_COLOURS, FIGURE_RC, class_colours, pretty_name

logger = logging.getLogger(__name__)

__all__ = [
    "plot_confusion_matrices",
    "plot_confusion_matrix",
    "plot_roc",
    "plot_threshold_sweep",
]

def _draw_confusion(ax: Axes, cm: np.ndarray, classes: Sequence[str], normalize: bool,
                    title: str | None) -> None:
    counts = np.asarray(cm)
    empty = np.zeros(counts.shape[0], dtype=bool)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        # A row without slices has no fractions: it is left blank and marked undefined.
        empty = totals[:, 0] == 0
        data = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
        fmt, vmax, cbar_label = ".2f", 1.0, "Fraction of true class"
    else:
        data, fmt, vmax, cbar_label = counts, "d", None, "Slices"
    labels = [pretty_name(c) for c in classes]
    mask = np.repeat(empty[:, None], counts.shape[1], axis=1) if empty.any() else None
    sns.heatmap(data, ax=ax, annot=True, fmt=fmt, cmap="Blues", vmin=0, vmax=vmax,
                square=True, cbar_kws={"label": cbar_label, "shrink": 0.8}, mask=mask,
                xticklabels=labels, yticklabels=labels, linewidths=0.5, linecolor="white")
    for i in np.flatnonzero(empty):
        ax.text(counts.shape[1] / 2, i + 0.5, f"undefined (no {classes[i]} slice)",
                ha="center", va="center", fontsize=8, color="0.35")
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.tick_params(axis="x", labelrotation=30)
    ax.tick_params(axis="y", labelrotation=0)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    if title:
        ax.set_title(title)


def _check_cm(cm: Any, classes: Sequence[str]) -> np.ndarray:
    arr = np.asarray(cm)
    n = len(classes)
    if arr.shape != (n, n) or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise ValueError(f"cm must be a non-negative integer array of shape ({n}, {n}) "
                         f"matching classes, got shape {arr.shape}, dtype {arr.dtype}")
    return arr


def plot_confusion_matrix(cm: Any, classes: Sequence[str] = CLASSES, normalize: bool = False,
                          title: str | None = None) -> Figure:
    """One confusion-matrix heatmap (rows true class, columns predicted, as Figure 7).

    Parameters
    ----------
    cm : array-like of int, shape (K, K)
        Counts, e.g. from :func:`parotidlib.evaluation.metrics.confusion`.
    classes : sequence of str, length K
        Class names in the matrix's order (pretty-printed on the axes).
    normalize : bool
        False: counts. True: each row divided by its total (fraction of the true class).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One heatmap axes plus its colour bar axes. With ``normalize``, a row without slices
        is left blank and marked ``undefined (no <class> slice)``.
    """
    counts = _check_cm(cm, classes)
    with mpl.rc_context(FIGURE_RC):
        fig = Figure(figsize=(5.6, 4.8), layout="constrained")
        _draw_confusion(fig.add_subplot(), counts, classes, normalize, title)
    return fig


def plot_confusion_matrices(cm: Any, classes: Sequence[str] = CLASSES,
                            title: str | None = None) -> Figure:
    """Counts and row-normalised confusion matrices side by side in one figure.

    Returns
    -------
    matplotlib.figure.Figure
        Two heatmap axes (counts, fractions) plus their two colour bar axes; in the
        fractions, a row without slices is marked undefined.
    """
    counts = _check_cm(cm, classes)
    with mpl.rc_context(FIGURE_RC):
        fig = Figure(figsize=(11.5, 4.8), layout="constrained")
        left, right = fig.subplots(1, 2)
        _draw_confusion(left, counts, classes, False, "Counts")
        _draw_confusion(right, counts, classes, True, "Row-normalised")
        if title:
            fig.suptitle(title)
    return fig


def plot_roc(roc_result: RocResult, title: str | None = None,
             classes: Sequence[str] | None = None) -> Figure:
    """One-vs-rest ROC curves per class with micro- and macro-averages (paper's Figure 6).

    Parameters
    ----------
    roc_result : RocResult
        From :func:`parotidlib.evaluation.metrics.roc_curves`.
    title : str, optional
    classes : sequence of str, optional
        The run's classes in their order (``ClassScheme.classes``); by default the paper's
        CLASSES when they hold every class of ``roc_result``, else its classes as they come.

    Returns
    -------
    matplotlib.figure.Figure
        One square axes; the legend gives each curve's AUC and names each class (and the
        macro-average) without a curve, with the reason (``RocResult.undefined``), as an
        entry without a line.
    """
    if not isinstance(roc_result, RocResult):
        raise ValueError(f"roc_result must be a RocResult, got {type(roc_result).__name__}")
    if classes is None:
        named = [*roc_result.classes, *(k for k in roc_result.undefined if k != "macro")]
        classes = CLASSES if set(named) <= set(CLASSES) else list(dict.fromkeys(named))
    colours = class_colours(classes)
    with mpl.rc_context(FIGURE_RC):
        fig = Figure(figsize=(5.6, 5.2), layout="constrained")
        ax = fig.add_subplot()
        for name in classes:
            if name in roc_result.classes:
                ax.plot(roc_result.fpr[name], roc_result.tpr[name], lw=1.6,
                        color=colours[name],
                        label=f"{pretty_name(name)} (AUC = {roc_result.auc[name]:.3f})")
            elif name in roc_result.undefined:
                ax.plot([], [], lw=0, color=colours[name],
                        label=f"{pretty_name(name)}: no curve ({roc_result.undefined[name]})")
        for name, style in (("micro", ":"), ("macro", "--")):
            if name in roc_result.fpr:
                ax.plot(roc_result.fpr[name], roc_result.tpr[name], ls=style, lw=2.4,
                        color="black" if name == "micro" else "dimgrey",
                        label=f"{pretty_name(name)} (AUC = {roc_result.auc[name]:.3f})")
            elif name in roc_result.undefined:
                ax.plot([], [], lw=0, label=f"{pretty_name(name)}: undefined "
                                            f"({roc_result.undefined[name]})")
        ax.plot([0, 1], [0, 1], color="lightgrey", lw=1, ls="-", label="Chance", zorder=0)
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="False positive rate",
               ylabel="True positive rate")
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", frameon=True)
        if title:
            ax.set_title(title)
    return fig


def plot_threshold_sweep(sweep_df: pd.DataFrame, title: str | None = None,
                         paper_threshold: int = 2) -> Figure:
    """Patient-level sensitivity and specificity for malignancy against the threshold.

    Parameters
    ----------
    sweep_df : pandas.DataFrame
        From :func:`parotidlib.evaluation.diagnostic_accuracy.threshold_sweep` or
        :func:`parotidlib.evaluation.frames.threshold_sweep_frame` (columns
        ``malignant_threshold``, ``sensitivity[_lo|_hi]``, ``specificity[_lo|_hi]``; None or
        NaN where undefined, with the reason in ``sensitivity_undefined`` /
        ``specificity_undefined`` if present).
    title : str, optional
    paper_threshold : int
        Marked with a vertical line: the paper's rule ("more than two malignant slices").

    Returns
    -------
    matplotlib.figure.Figure
        One axes; shaded bands are the 95% Wilson (continuity-corrected) intervals. A
        measure undefined at every threshold (no malignant or no benign patient) is not
        drawn, and its legend entry says ``undefined (<reason>)``.
    """
    needed = ["malignant_threshold"] + [f"{m}{s}" for m in ("sensitivity", "specificity")
                                        for s in ("", "_lo", "_hi")]
    missing = [c for c in needed if c not in getattr(sweep_df, "columns", ())]
    if missing:
        raise ValueError(f"sweep_df is missing columns {missing} (see threshold_sweep)")
    x = sweep_df["malignant_threshold"].to_numpy()

    def column(name: str) -> np.ndarray:  # None (JSON null) and NaN alike become NaN
        return pd.to_numeric(sweep_df[name], errors="coerce").to_numpy(dtype=float)

    with mpl.rc_context(FIGURE_RC):
        fig = Figure(figsize=(6.0, 4.2), layout="constrained")
        ax = fig.add_subplot()
        for measure, colour, marker in (("sensitivity", CLASS_COLOURS["malignant"], "o"),
                                        ("specificity", CLASS_COLOURS["free"], "s")):
            y, lo, hi = (column(f"{measure}{s}") for s in ("", "_lo", "_hi"))
            defined = np.isfinite(y)
            label = measure.capitalize()
            if not defined.all():
                reasons = sweep_df.get(f"{measure}_undefined", pd.Series(dtype=object))
                why = "; ".join(sorted({str(r) for r in reasons.dropna()})) or "no reason given"
                if defined.any():
                    label += f" (undefined at {int((~defined).sum())} thresholds: {why})"
                else:
                    label += f": undefined ({why})"
            if not defined.any():
                ax.plot([], [], lw=0, marker=marker, color=colour, label=label)
                continue
            ax.plot(x, y, marker=marker, color=colour, label=label)
            band = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(x, np.where(band, lo, 0.0), np.where(band, hi, 0.0), where=band,
                            color=colour, alpha=0.15, lw=0)
        ax.axvline(paper_threshold, color="grey", ls="--", lw=1,
                   label=f"Paper's rule (> {paper_threshold})")
        ax.set(xlabel="Malignant-slice threshold (malignant if more slices than this)",
               ylabel="Patients (fraction)", ylim=(-0.02, 1.02))
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        if title:
            ax.set_title(title)
    return fig
