"""The external-validation statistics (evaluation/external.py) on small seeded tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation import external as E
from parotidlib.evaluation.decision import diagnose_patients


def _predictions(n_patients: int = 12, seed: int = 0, split: str = "external",
                 labelled: bool = True, skill: float = 2.0) -> pd.DataFrame:
    """Seeded slice predictions: each patient 3-6 lesion slices and 2 free slices."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        hist = HISTOLOGIES[i % 3]
        for k in range(int(rng.integers(3, 7)) + 2):
            true = hist if k >= 2 else "free"
            logits = rng.normal(size=4)
            logits[CLASSES.index(true)] += skill
            p = np.exp(logits) / np.exp(logits).sum()
            rows.append({"patient_id": f"X{i:02d}", "slice_index": k,
                         "true_label": true if (labelled or true == "free") else np.nan,
                         "histology": hist if labelled else np.nan, "split": split,
                         **{f"prob_{c}": p[j] for j, c in enumerate(CLASSES)},
                         "predicted_label": CLASSES[int(p.argmax())]})
    return pd.DataFrame(rows)


def test_patient_probabilities_by_hand():
    frame = pd.DataFrame({
        "patient_id": ["A"] * 3, "true_label": ["free", "warthin", "warthin"],
        "prob_free": [0.9, 0.2, 0.0], "prob_pleomorphic_adenoma": [0.05, 0.2, 0.2],
        "prob_warthin": [0.05, 0.4, 0.4], "prob_malignant": [0.0, 0.2, 0.4],
    })
    out = E.patient_probabilities(frame).iloc[0]
    # lesion slices only: means PA 0.2, W 0.4, M 0.3 -> renormalised over 0.9
    assert out["p_pleomorphic_adenoma"] == pytest.approx(0.2 / 0.9)
    assert out["p_warthin"] == pytest.approx(0.4 / 0.9)
    assert out["p_malignant"] == pytest.approx(0.3 / 0.9)


def test_diagnoses_agree_with_the_decision_rule():
    frame = _predictions()
    ours = E.patient_diagnoses(frame, 2)
    reference = diagnose_patients(frame, 2)
    assert list(ours["predicted_histology"]) == list(reference["predicted_histology"])
    assert list(ours["n_pred_malignant"]) == list(reference["n_pred_malignant"])
    row = ours.iloc[0]
    assert row["rule"].startswith(f"{row['n_pred_malignant']} slice(s) predicted malignant")
    assert (ours["correct"] == (ours["histology"] == ours["predicted_histology"])).all()


def test_slice_calibration_matches_sklearn_brier():
    frame = _predictions(n_patients=15, seed=3)
    blocks = E.calibration_blocks(frame, n_bins=5)
    y = (frame["true_label"] == "warthin").to_numpy(int)
    assert blocks["slice"]["one_vs_rest"]["warthin"]["brier"] == pytest.approx(
        brier_score_loss(y, frame["prob_warthin"]))
    lesion = frame[frame["true_label"] != "free"]
    p = lesion["prob_malignant"] / (1 - lesion["prob_free"])
    assert blocks["slice"]["malignant_vs_benign"]["brier"] == pytest.approx(
        brier_score_loss((lesion["true_label"] == "malignant").astype(int), p))
    patients = E.patient_probabilities(frame)
    hist = frame.drop_duplicates("patient_id").set_index("patient_id")["histology"]
    y_pat = (patients["patient_id"].map(hist) == "malignant").astype(int)
    assert blocks["patient"]["malignant_vs_benign"]["brier"] == pytest.approx(
        brier_score_loss(y_pat, patients["p_malignant"]))
    assert blocks["patient"]["malignant_vs_benign"]["n"] == 15


def test_decision_curve_hand_example():
    frame = _predictions(n_patients=6, seed=1)
    curve = E.decision_curve(frame, thresholds=(0.5,))
    patients = E.patient_probabilities(frame)
    hist = frame.drop_duplicates("patient_id").set_index("patient_id")["histology"]
    treat = patients["p_malignant"] >= 0.5
    malignant = patients["patient_id"].map(hist) == "malignant"
    tp, fp = int((treat & malignant).sum()), int((treat & ~malignant).sum())
    assert curve["net_benefit_model"].iloc[0] == pytest.approx(tp / 6 - fp / 6 * 1.0)
    assert curve["net_benefit_treat_all"].iloc[0] == pytest.approx(2 / 6 - 4 / 6)


def test_unlabelled_cohort_is_unvalidated():
    out = E.compute_external_metrics(_predictions(labelled=False), 2, 50, 0,
                                     internal=_predictions(split="test", seed=5))
    assert out["validated"] is False and out["n_labelled_patients"] == 0
    assert "external" not in out and "difference" not in out
    assert all(d["histology"] is None and d["correct"] is None for d in out["diagnoses"])
    json.dumps(out, allow_nan=False)


def test_mixed_cohort_scores_the_labelled_patients_only():
    mixed = pd.concat([_predictions(n_patients=6, seed=2),
                       _predictions(n_patients=3, seed=4, labelled=False).assign(
                           patient_id=lambda f: "U" + f["patient_id"])])
    out = E.compute_external_metrics(mixed, 2, 50, 0)
    assert out["n_patients"] == 9 and out["n_labelled_patients"] == 6
    assert out["external"]["slice"]["patients"] == 6
    assert out["internal"] is None


def test_labelled_cohort_beside_internal_and_differences():
    ext = _predictions(n_patients=12, seed=7, skill=1.0)
    internal = _predictions(n_patients=9, seed=8, split="test", skill=3.0)
    out = E.compute_external_metrics(ext, 2, 200, 0, internal=internal, synthetic=True)
    json.dumps(out, allow_nan=False)
    assert out["synthetic"] is True and out["validated"] is True
    e, i = out["external"]["slice"]["accuracy"], out["internal"]["slice"]["accuracy"]
    diff = out["difference"]["slice_accuracy"]
    assert diff["value"] == pytest.approx(e["value"] - i["value"])
    assert diff["ci95"][0] <= diff["value"] <= diff["ci95"][1]
    assert diff["value"] < 0  # the external predictions were made less skilful
    pat = out["difference"]["patient_accuracy"]
    pe, pi = out["external"]["patient"]["accuracy"], out["internal"]["patient"]["accuracy"]
    assert pat["value"] == pytest.approx(pe["value"] - pi["value"])
    assert pat["ci95"][0] <= pat["value"] <= pat["ci95"][1]
    assert [r["type"] for r in out["external"]["patient"]["table5"]] == [
        "pleomorphic_adenoma", "warthin", "benign", "malignant"]
    assert len(out["external"]["decision_curve"]) == len(E.DECISION_THRESHOLDS)


def test_single_patient_cohort():
    one = _predictions(n_patients=1, seed=9)
    out = E.compute_external_metrics(one, 2, 50, 0, internal=_predictions(split="test"))
    json.dumps(out, allow_nan=False)
    assert out["n_patients"] == 1
    auc_ci = out["external"]["slice"]["micro_auc"]
    assert auc_ci["ci95"] is None and "undefined" in str(auc_ci)
    assert "undefined" in out["difference"]["slice_accuracy"]
    slope = out["external"]["calibration"]["patient"]["malignant_vs_benign"]["slope"]
    assert slope["value"] is None
