"""Evaluation figures build, carry the expected axes and labels, and save."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from parotidlib.constants import CLASSES
from parotidlib.evaluation.decision import PROBABILITY_COLUMNS
from parotidlib.evaluation.diagnostic_accuracy import threshold_sweep
from parotidlib.evaluation.metrics import roc_curves
from parotidlib.report.figures.evaluation import (
    plot_confusion_matrices,
    plot_confusion_matrix,
    plot_roc,
    plot_threshold_sweep,
)
from parotidlib.report.figures.style import pretty_name

CM = np.array([[89, 0, 0, 0], [0, 41, 15, 1], [0, 14, 18, 4], [0, 4, 13, 76]])


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    # Six patients (2 per histology), each with 5 free and 5 lesion slices.
    true = np.concatenate([[0] * 5 + [h] * 5 for h in (1, 1, 2, 2, 3, 3)])
    alpha = np.ones((60, 4))
    alpha[np.arange(60), true] += 3  # informative, imperfect probabilities
    probs = np.array([rng.dirichlet(a) for a in alpha])
    df = pd.DataFrame({"patient_id": np.repeat([f"p{i}" for i in range(6)], 10),
                       "true_label": np.asarray(CLASSES)[true],
                       "predicted_label": np.asarray(CLASSES)[probs.argmax(1)]})
    for j, col in enumerate(PROBABILITY_COLUMNS):
        df[col] = probs[:, j]
    return df


def saves(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getbuffer().nbytes > 1000


def test_pretty_names():
    assert pretty_name("pleomorphic_adenoma") == "Pleomorphic adenoma"
    assert pretty_name("some_group") == "Some group"


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_single(normalize):
    fig = plot_confusion_matrix(CM, normalize=normalize, title="Test set")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][1] == "Pleomorphic adenoma"
    texts = [t.get_text() for t in ax.texts]
    assert ("0.72" if normalize else "41") in texts  # 41/57 = 0.72
    assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
    assert saves(fig)


def test_confusion_matrices_two_panels():
    fig = plot_confusion_matrices(CM, title="Slices")
    assert len(fig.axes) == 4  # two heatmaps + two colour bars
    assert [fig.axes[0].get_title(), fig.axes[1].get_title()] == ["Counts", "Row-normalised"]
    assert saves(fig)


def test_confusion_matrix_bad_shape():
    with pytest.raises(ValueError, match="cm"):
        plot_confusion_matrix(np.ones((3, 3), dtype=int))
    with pytest.raises(ValueError, match="cm"):
        plot_confusion_matrix(CM * 0.5)


def test_roc_plot(predictions):
    fig = plot_roc(roc_curves(predictions), title="ROC")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 4 + 2 + 1  # classes, micro, macro, chance
    assert any(lab.startswith("Micro-average (AUC = ") for lab in labels)
    assert ax.get_aspect() == 1.0
    assert saves(fig)
    with pytest.raises(ValueError, match="roc_result"):
        plot_roc({"auc": {}})


def test_threshold_sweep_plot(predictions):
    sweep = threshold_sweep(predictions, thresholds=range(0, 6))
    fig = plot_threshold_sweep(sweep)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 3  # sensitivity, specificity, paper's threshold
    assert saves(fig)
    with pytest.raises(ValueError, match="sweep_df"):
        plot_threshold_sweep(sweep.drop(columns="specificity_lo"))
