"""Two models on the same test patients (evaluation/comparison.py)."""

import numpy as np
import pandas as pd
import pytest

from parotidlib.constants import CLASSES
from parotidlib.evaluation.comparison import compare_models
from parotidlib.evaluation.frames import cnn_vs_radiomics_frame
from parotidlib.evaluation.results import compute_metrics

PARAMS = {"malignant_threshold": 2, "bootstrap_resamples": 200, "bootstrap_seed": 0}


def _predictions(skill: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(16):
        hist = ("pleomorphic_adenoma", "warthin", "malignant")[i % 3]
        for k in range(6):
            true = hist if k >= 2 else "free"
            logits = rng.normal(size=4)
            logits[CLASSES.index(true)] += skill
            p = np.exp(logits) / np.exp(logits).sum()
            rows.append({"patient_id": f"P{i:02d}", "slice_index": k, "true_label": true,
                         "z_mm": float(k), "side": "left", "histology": hist,
                         "split": "test" if i < 10 else "train",
                         **{f"prob_{c}": p[j] for j, c in enumerate(CLASSES)},
                         "predicted_label": CLASSES[int(p.argmax())]})
    return pd.DataFrame(rows)


def test_the_better_model_wins_on_the_same_slices():
    cnn, radiomics = _predictions(4.0, 0), _predictions(0.5, 1)
    out = compare_models(cnn, radiomics, PARAMS, {"model": "logistic"})
    test_c, test_r = cnn[cnn.split == "test"], radiomics[radiomics.split == "test"]
    acc_c = (test_c.true_label == test_c.predicted_label).mean()
    acc_r = (test_r.true_label == test_r.predicted_label).mean()
    diff = out["cnn_vs_radiomics"]["accuracy"]
    assert diff["value"] == pytest.approx(acc_c - acc_r)
    assert diff["ci95"][0] > 0  # ten test patients, a large gap: the interval excludes 0
    assert diff["n_patients"] == 10 and diff["n_slices"] == 60
    assert out["radiomics"]["slice"]["test"]["accuracy"]["total"] == 60
    assert out["radiomics"]["info"] == {"model": "logistic"}
    assert 0 <= out["cnn_vs_radiomics"]["mcnemar"]["pvalue"] <= 1


def test_side_by_side_frame():
    cnn, radiomics = _predictions(4.0, 0), _predictions(0.5, 1)
    metrics = compute_metrics(cnn, PARAMS, synthetic=True)
    assert cnn_vs_radiomics_frame(metrics).empty  # no baseline in this run
    metrics.update(compare_models(cnn, radiomics, PARAMS))
    frame = cnn_vs_radiomics_frame(metrics)
    assert list(frame.columns) == ["CNN", "radiomics"]
    acc = metrics["radiomics"]["slice"]["test"]["accuracy"]
    assert frame.loc["slice accuracy [95% Wilson CI]", "radiomics"].endswith(
        f"({acc['successes']}/{acc['total']})")
    assert frame.loc["CNN minus radiomics: accuracy [95% CI], p", "CNN"].startswith(
        f"{metrics['cnn_vs_radiomics']['accuracy']['value']:.3f}")
