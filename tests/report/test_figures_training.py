"""Tests of parotidlib.report.figures.training."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from parotidlib.learn.schedule import paper_lr
from parotidlib.report.figures.training import plot_training_curves


def history(n=1200, with_val=True):
    epoch = np.arange(1, n + 1)
    frame = pd.DataFrame({
        "epoch": epoch,
        "train_loss": 1.4 * np.exp(-epoch / 300),
        "train_accuracy": 1 - 0.7 * np.exp(-epoch / 300),
        "val_loss": 1.4 * np.exp(-epoch / 400) + 0.1,
        "val_accuracy": 1 - 0.75 * np.exp(-epoch / 400),
        "lr": [paper_lr(e - 1) for e in epoch],
        "seconds": 0.1,
    })
    if not with_val:
        frame[["val_loss", "val_accuracy"]] = np.nan
    return frame


def test_builds_three_panels_with_train_and_validation():
    fig = plot_training_curves(history(), best_epoch=900)
    assert isinstance(fig, Figure)
    loss, acc, lr = fig.axes
    assert [line.get_label() for line in loss.get_lines()[:2]] == ["train", "validation"]
    assert len(acc.get_lines()) == 3  # train, validation, best-epoch marker
    assert lr.get_yscale() == "log"
    np.testing.assert_allclose(lr.get_lines()[0].get_ydata()[[0, 600, 1199]],
                               [1e-6, 8e-7, 1e-6 * 0.8**6])
    fig.savefig(io.BytesIO(), format="png")


def test_without_validation_draws_training_only():
    fig = plot_training_curves(history(5, with_val=False))
    assert len(fig.axes[0].get_lines()) == 1


def test_missing_column_raises_and_empty_warns():
    with pytest.raises(ValueError, match="val_loss"):
        plot_training_curves(history(3).drop(columns="val_loss"))
    with pytest.warns(UserWarning, match="no rows"):
        plot_training_curves(history(0))
