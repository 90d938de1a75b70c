"""Training curves: loss, accuracy and learning rate per epoch (from ``history.csv``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: Columns of ``history.csv`` (``parotidlib.learn.train.HISTORY_COLUMNS``) that the figure uses.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
)


def plot_training_curves(
    history: pd.DataFrame, best_epoch: int | None = None, figsize: tuple[float, float] = (11, 3.4)
) -> Figure:
    """Three panels: cross-entropy loss, accuracy (train vs validation), learning rate.

    Parameters
    ----------
    history : DataFrame
        One row per epoch with the columns :data:`REQUIRED_COLUMNS` (``history.csv`` or
        ``TrainResult.history``). Validation columns may be NaN (no validation patients).
    best_epoch : int, optional
        Marked by a dashed vertical line (the epoch saved as ``best.pt``).
    figsize : (float, float)
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot (no global figure state); Jupyter displays it inline.

    Raises
    ------
    ValueError
        If a required column is missing.

    Example
    -------
    >>> fig = plot_training_curves(pd.read_csv("run/model/history.csv"))  # doctest: +SKIP
    >>> fig.savefig("figures/training_curves.png", dpi=150)  # doctest: +SKIP
    """
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a DataFrame, got {type(history).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(
            f"history is missing columns {missing}; it has {list(history.columns)}"
        )
    if history.empty:
        warnings.warn("history has no rows: the training-curve panels are empty", stacklevel=2)

    fig = Figure(figsize=figsize, layout="constrained")
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    epoch = history["epoch"].to_numpy()
    for ax, what, label in ((ax_loss, "loss", "cross-entropy loss"),
                            (ax_acc, "accuracy", "accuracy")):
        ax.plot(epoch, history[f"train_{what}"], label="train", color="C0")
        val = history[f"val_{what}"].to_numpy(dtype=float)
        if np.isfinite(val).any():
            ax.plot(epoch, val, label="validation", color="C1")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(-0.02, 1.02)
    ax_loss.legend(frameon=False)

    ax_lr.plot(epoch, history["lr"], color="C2")
    lr = history["lr"].to_numpy(dtype=float)
    if lr.size and np.all(lr > 0):
        ax_lr.set_yscale("log")  # the paper's schedule decays geometrically
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.grid(alpha=0.3, which="both")

    if best_epoch is not None:
        for ax in (ax_loss, ax_acc, ax_lr):
            ax.axvline(best_epoch, color="0.4", linestyle="--", linewidth=0.8)
        ax_acc.annotate(f"best.pt (epoch {best_epoch})", (best_epoch, 0.02), fontsize=8,
                        color="0.3", xytext=(3, 0), textcoords="offset points")
    fig.suptitle("Training curves")
    return fig
