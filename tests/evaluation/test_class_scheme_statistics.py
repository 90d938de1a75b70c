"""The statistics follow the class scheme (issue 25, item 1): Table 4's tasks, Table 5's rows,
the decision rule, the AUCs and metrics.json for the benign_malignant and a custom scheme; the
paper's scheme keeps today's outputs."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from parotidlib.constants import CLASSES
from parotidlib.evaluation import external, frames, results
from parotidlib.evaluation.classes import one_hot, patient_class, run_scheme, scheme_of
from parotidlib.evaluation.decision import diagnose_patient, diagnose_patients
from parotidlib.evaluation.diagnostic_accuracy import (
    TABLE4_TASKS,
    patient_table5,
    table4,
    table4_tasks,
)
from parotidlib.evaluation.metrics import roc_curves
from parotidlib.evaluation.schema import validate_metrics
from parotidlib.report import paper
from parotidlib.study import PAPER_CLASSES, class_scheme

BM = class_scheme("benign_malignant")
FIVE = class_scheme({"pleomorphic_adenoma": "pa", "warthin": "warthin",
                     "basal_cell_adenoma": "other_benign", "malignant": "malignant"})
PARAMS = {"malignant_threshold": 2, "bootstrap_resamples": 30, "bootstrap_seed": 0}


def _table(scheme, histologies, seed=0, skill=2.5):
    """Seeded predictions over ``scheme``'s classes: two free slices, then 3-5 lesion slices
    of the patient's class; the first half of the patients test, the rest train."""
    rng = np.random.default_rng(seed)
    k = len(scheme.classes)
    rows = []
    for i, hist in enumerate(histologies):
        true_class = patient_class(hist, scheme)
        for s in range(2 + int(rng.integers(3, 6))):
            true = "free" if s < 2 else true_class
            logits = rng.normal(size=k)
            logits[scheme.classes.index(true)] += skill
            p = np.exp(logits) / np.exp(logits).sum()
            rows.append({"patient_id": f"P{i:02d}", "slice_index": s, "true_label": true,
                         "histology": hist, "split": "test" if i < len(histologies) // 2
                         else "train",
                         **{f"prob_{c}": p[j] for j, c in enumerate(scheme.classes)},
                         "predicted_label": scheme.classes[int(p.argmax())]})
    return pd.DataFrame(rows)


BM_HISTOLOGIES = ["pleomorphic_adenoma", "warthin", "malignant", "basal_cell_adenoma",
                  "mucoepidermoid_carcinoma", "malignant"] * 2


def test_the_paper_scheme_is_read_back_for_a_run_without_one(tmp_path):
    assert run_scheme(tmp_path) is PAPER_CLASSES
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"classes": list(CLASSES)}))
    assert run_scheme(tmp_path) is PAPER_CLASSES
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"class_scheme": BM.record()}))
    assert run_scheme(tmp_path) == BM
    assert table4_tasks(PAPER_CLASSES) is TABLE4_TASKS


def test_benign_malignant_rule_is_malignant_by_any_malignant_class():
    # 3 malignant slices > 2: malignant, however many benign slices.
    assert diagnose_patient(["malignant"] * 3 + ["benign"] * 6, scheme=BM) == "malignant"
    assert diagnose_patient(["malignant"] * 2 + ["benign"] + ["free"], scheme=BM) == "benign"
    # A custom scheme with two malignant classes: their slices add up.
    two = class_scheme({"warthin": "warthin", "malignant": "carcinoma",
                        "lymphoma": "lymphoma", "malignant_classes": ["lymphoma"]})
    assert diagnose_patient(["carcinoma", "lymphoma", "lymphoma", "warthin"] * 1,
                            scheme=two) == "lymphoma"
    assert diagnose_patient(["carcinoma", "lymphoma", "warthin"], scheme=two) == "warthin"


def test_ties_are_broken_as_today():
    # Counts tied: the summed probability decides; then the first class in class order.
    labels = ["pa", "warthin", "other_benign", "free"]
    assert diagnose_patient(labels, scheme=FIVE) == "pa"
    probs = np.array([[0.1, 0.3, 0.3, 0.3, 0.0], [0.1, 0.2, 0.4, 0.3, 0.0],
                      [0.1, 0.2, 0.3, 0.4, 0.0], [0.7, 0.0, 0.1, 0.2, 0.0]])
    assert FIVE.classes == ("free", "pa", "warthin", "other_benign", "malignant")
    assert diagnose_patient(labels, probs, scheme=FIVE) == "other_benign"
    with pytest.warns(UserWarning, match="no lesion slice"):
        assert diagnose_patient(["free"] * 3, scheme=BM) == "benign"


def test_benign_malignant_table4_table5_and_patients():
    pred = _table(BM, BM_HISTOLOGIES)
    test = pred[pred.split == "test"]
    rows = table4(test, scheme=BM)
    assert [r["task"] for r in rows] == ["benign_vs_malignant", "lesion_vs_none"]
    bm = rows[0]
    lesion = test[test.true_label != "free"]
    benign_true = lesion.true_label == "benign"
    assert bm["tp"] == int((benign_true & (lesion.predicted_label == "benign")).sum())
    assert bm["n"] == len(lesion)
    assert rows[1]["n"] == len(test) and rows[1]["positive"] == "free"
    patients = diagnose_patients(test, scheme=BM)
    assert set(patients["true_histology"]) == {"benign", "malignant"}
    assert list(patients.columns[-3:]) == ["n_pred_free", "n_pred_benign", "n_pred_malignant"]
    for _, p in patients.iterrows():
        said = "malignant" if p["n_pred_malignant"] > 2 else "benign"
        assert p["predicted_histology"] == said
    t5 = patient_table5(patients, scheme=BM)
    assert [r["type"] for r in t5] == ["benign", "malignant"]
    assert sum(r["patients"] for r in t5) == len(patients)
    assert t5[0]["correct"] == int(((patients.true_histology == "benign")
                                    & (patients.predicted_histology == "benign")).sum())


def test_five_class_scheme_has_the_benign_pair_tasks_and_group_row():
    assert [t.name for t in table4_tasks(FIVE)] == [
        "benign_vs_malignant", "pa_vs_warthin", "pa_vs_other_benign",
        "warthin_vs_other_benign", "lesion_vs_none"]
    pair = table4_tasks(FIVE)[1]
    assert (pair.positive_classes, pair.negative_classes) == (("pa",), ("warthin",))
    pred = _table(FIVE, ["pleomorphic_adenoma", "warthin", "basal_cell_adenoma",
                         "malignant"] * 3)
    m = results.compute_metrics(pred, PARAMS, synthetic=True, scheme=FIVE)
    validate_metrics(m)
    assert m["class_scheme"]["classes"] == list(FIVE.classes)
    assert [r["type"] for r in m["patient"]["table5"]] == [
        "pa", "warthin", "other_benign", "benign", "malignant"]
    assert np.shape(m["slice"]["test"]["confusion_matrix"]) == (5, 5)
    assert np.shape(m["patient"]["confusion_matrix"]) == (4, 4)
    assert m["patient"]["confusion_labels"] == list(FIVE.classes[1:])
    assert list(frames.confusion_frame(pred, "test", FIVE).columns) == list(FIVE.classes)
    bad = json.loads(json.dumps(m))
    bad["slice"]["test"]["confusion_matrix"] = [row[:4] for row in bad["slice"]["test"][
        "confusion_matrix"][:4]]
    with pytest.raises(ValueError, match="slice.test.confusion_matrix must be 5 x 5"):
        validate_metrics(bad)
    bad = json.loads(json.dumps(m))
    bad["table4"][1]["task"] = "pleomorphic_vs_warthin"
    with pytest.raises(ValueError, match=r"table4\[1\].task must be one of"):
        validate_metrics(bad)


def test_aucs_run_over_the_schemes_classes():
    pred = _table(BM, BM_HISTOLOGIES, skill=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        roc = roc_curves(pred, scheme=BM)
    y = one_hot(pred["true_label"], BM.classes)
    scores = pred[[f"prob_{c}" for c in BM.classes]].to_numpy()
    assert roc.classes == BM.classes
    assert roc.auc["micro"] == pytest.approx(roc_auc_score(y.ravel(), scores.ravel()))
    assert roc.auc["macro"] == pytest.approx(roc_auc_score(y, scores, average="macro"))
    for j, c in enumerate(BM.classes):
        assert roc.auc[c] == pytest.approx(roc_auc_score(y[:, j], scores[:, j]))
    m = results.compute_metrics(pred, PARAMS, synthetic=False, scheme=BM)
    assert set(m["slice"]["train"]["class_auc"]) == set(BM.classes)


def test_report_shows_another_scheme_alone():
    pred = _table(BM, BM_HISTOLOGIES)
    m = results.compute_metrics(pred, PARAMS, synthetic=True, scheme=BM)
    assert scheme_of(m) == BM
    table = paper.paper_vs_run(m)
    assert list(table.columns) == ["this run"]
    assert "Table 4 benign vs malignant: accuracy" in table.index
    text = paper.results_paragraph(m)
    assert text.startswith("This run's class scheme (benign_malignant") and "paper" in text
    assert "0.882" not in text and "92.94" not in text
    counts = paper.slice_counts_vs_paper(pred.assign(label=pred.true_label), BM)
    assert list(counts.columns) == ["this run"]
    assert paper.scheme_note(PAPER_CLASSES) is None


def test_external_follows_the_scheme():
    pred = _table(BM, BM_HISTOLOGIES, seed=3).assign(split="external")
    r = external.compute_external_metrics(pred, 2, 20, 0, scheme=BM)
    assert r["class_scheme"]["name"] == "benign_malignant"
    d = r["diagnoses"][0]
    assert {"p_benign", "p_malignant", "n_pred_benign"} <= set(d)
    assert d["histology"] in ("benign", "malignant")
    cal = r["external"]["calibration"]
    assert set(cal["slice"]["one_vs_rest"]) == set(BM.classes)
    assert cal["slice"]["malignant_vs_benign"].get("brier") is not None
    assert [t["task"] for t in r["external"]["table4"]] == ["benign_vs_malignant",
                                                            "lesion_vs_none"]
