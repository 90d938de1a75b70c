"""metrics.json assembly from a small predictions table, and the report's comparison tables."""

import json

import numpy as np
import pandas as pd
import pytest

from parotidlib.constants import CLASSES
from parotidlib.evaluation import frames, results
from parotidlib.evaluation.schema import validate_metrics
from parotidlib.report import paper

PARAMS = {"malignant_threshold": 2, "bootstrap_resamples": 40, "bootstrap_seed": 0}


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    rows = []
    histologies = ["pleomorphic_adenoma", "warthin", "malignant"] * 4
    for i, hist in enumerate(histologies):
        split = "test" if i < 6 else "train"
        for k in range(6):
            true = "free" if k < 2 else hist
            logits = rng.normal(size=4)
            logits[CLASSES.index(true)] += 3.0
            p = np.exp(logits) / np.exp(logits).sum()
            rows.append({"patient_id": f"P{i:02d}", "slice_index": k, "true_label": true,
                         "histology": hist, "split": split,
                         **{f"prob_{c}": p[j] for j, c in enumerate(CLASSES)},
                         "predicted_label": CLASSES[int(p.argmax())]})
    return pd.DataFrame(rows)


def test_metrics_follow_the_schema_and_the_counts(predictions, tmp_path):
    m = results.compute_metrics(predictions, PARAMS, synthetic=True)
    validate_metrics(m)
    test = predictions[predictions.split == "test"]
    acc = m["slice"]["test"]["accuracy"]
    assert acc["total"] == len(test)
    assert acc["successes"] == int((test.true_label == test.predicted_label).sum())
    assert np.sum(m["slice"]["test"]["confusion_matrix"]) == len(test)
    lo, hi = m["slice"]["test"]["micro_auc"]["ci95"]
    assert lo <= m["slice"]["test"]["micro_auc"]["value"] <= hi
    assert sum(r["patients"] for r in m["patient"]["table5"] if r["type"] != "benign") == 6
    assert [r["task"] for r in m["table4"]] == [
        "benign_vs_malignant", "pleomorphic_vs_warthin", "lesion_vs_none"]
    path = results.write_metrics(m, tmp_path / "metrics.json")
    assert json.loads(path.read_text())["synthetic"] is True


def test_bootstrap_can_be_switched_off(predictions):
    m = results.compute_metrics(predictions, {**PARAMS, "bootstrap_resamples": 0}, synthetic=False)
    assert m["slice"]["test"]["micro_auc"]["ci95"] is None
    assert m["synthetic"] is False


def test_display_tables_and_paper_comparison(predictions):
    m = results.compute_metrics(predictions, PARAMS, synthetic=True)
    assert list(frames.slice_table(m).index) == ["train", "test"]
    assert "positive" in frames.table4_frame(m).columns
    assert frames.patient_confusion_frame(m).to_numpy().sum() == 6
    assert list(frames.threshold_sweep_frame(m)["malignant_threshold"]) == list(range(11))
    side = paper.paper_vs_run(m)
    assert side.iloc[0]["paper"] == "0.929 [0.910, 0.930]"
    assert any("as printed (= PPV)" in q for q in side.index)
    text = paper.results_paragraph(m)
    assert text.startswith("On the synthetic cohort") and "paper 82.18%" in text


def test_patient_ids_stay_text_when_read_back(predictions, tmp_path):
    frame = predictions.assign(patient_id="007")
    frame.to_csv(tmp_path / "p.csv", index=False)
    assert set(results.read_predictions(tmp_path / "p.csv")["patient_id"]) == {"007"}
