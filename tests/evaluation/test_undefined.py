"""A test split that lacks classes (a small cohort, skipped patients): every statistic, table
and figure completes, and what the data leave undefined is written and shown as undefined
with its reason (docs/metrics.md, "Undefined quantities")."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation import frames, results
from parotidlib.evaluation.diagnostic_accuracy import threshold_sweep
from parotidlib.evaluation.metrics import bootstrap_micro_auc_ci, roc_curves
from parotidlib.evaluation.schema import validate_metrics
from parotidlib.evaluation.stats import (
    UndefinedError,
    proportion_or_undefined,
    proportion_summary,
    undefined_block,
)
from parotidlib.report import paper
from parotidlib.report.figures.evaluation import (
    plot_confusion_matrices,
    plot_roc,
    plot_threshold_sweep,
)
from parotidlib.report.run_figures import draw_run_figures

PARAMS = {"malignant_threshold": 2, "bootstrap_resamples": 30, "bootstrap_seed": 0}


def make_predictions(test_histologies, n_free=2, n_lesion=4, seed=0):
    """Train: two patients of each histology; test: one patient per entry of
    ``test_histologies``. Each patient has ``n_free`` free and ``n_lesion`` lesion slices,
    with informative, imperfect softmax probabilities (seeded)."""
    rng = np.random.default_rng(seed)
    patients = [("train", h) for h in HISTOLOGIES for _ in range(2)]
    patients += [("test", h) for h in test_histologies]
    rows = []
    for i, (split, hist) in enumerate(patients):
        for k in range(n_free + n_lesion):
            true = "free" if k < n_free else hist
            logits = rng.normal(size=4)
            logits[CLASSES.index(true)] += 2.5
            p = np.exp(logits) / np.exp(logits).sum()
            rows.append({"patient_id": f"P{i:02d}", "slice_index": k, "true_label": true,
                         "z_mm": 6.4 * k, "side": "left", "histology": hist, "split": split,
                         **{f"prob_{c}": p[j] for j, c in enumerate(CLASSES)},
                         "predicted_label": CLASSES[int(p.argmax())]})
    return pd.DataFrame(rows)


@pytest.fixture
def malignant_only():
    """The test split holds malignant patients only (with their free slices)."""
    return make_predictions(["malignant"] * 3)


@pytest.fixture
def metrics(malignant_only):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # roc_curves warns about each class without a curve
        return results.compute_metrics(malignant_only, PARAMS, synthetic=True)


def saves(fig) -> bool:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getbuffer().nbytes > 1000


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


# ---- the convention ----------------------------------------------------------------------

def test_undefined_block_and_proportion_or_undefined():
    assert undefined_block("no benign slice") == {"value": None, "ci95": None,
                                                  "undefined": "no benign slice"}
    assert proportion_or_undefined(0, 0, "no benign slice") == undefined_block("no benign slice")
    assert proportion_or_undefined(3, 4, "unused") == proportion_summary(3, 4)
    with pytest.raises(ValueError, match="reason"):
        undefined_block("")
    with pytest.raises(ValueError, match="successes"):
        proportion_or_undefined(1, 0, "no benign slice")


def test_bootstrap_with_one_patient_is_undefined_with_a_reason(malignant_only):
    one = malignant_only[malignant_only["patient_id"] == "P06"]
    with pytest.raises(UndefinedError, match="at least 2 patients") as err:
        bootstrap_micro_auc_ci(one, n_resamples=10)
    assert err.value.reason == "fewer than 2 patients"
    assert isinstance(err.value, ValueError)


# ---- metrics.json ------------------------------------------------------------------------

def test_metrics_of_a_one_histology_test_split_are_valid_and_say_why(metrics, tmp_path):
    validate_metrics(metrics)
    path = results.write_metrics(metrics, tmp_path / "metrics.json")
    stored = json.loads(path.read_text())
    validate_metrics(stored)
    test = stored["slice"]["test"]
    # Defined: accuracy, micro-AUC with its interval, macro over the classes present.
    assert test["accuracy"]["total"] == 18 and test["micro_auc"]["ci95"] is not None
    assert set(test["class_auc"]) == {"free", "malignant"}
    assert test["class_auc_undefined"] == {"pleomorphic_adenoma": "no pleomorphic_adenoma slice",
                                           "warthin": "no warthin slice"}
    assert test["macro_auc"] is not None and "macro_auc_undefined" not in test
    assert "class_auc_undefined" not in stored["slice"]["train"]  # train has every class
    rows = {r["task"]: r for r in stored["table4"]}
    assert list(rows) == ["benign_vs_malignant", "pleomorphic_vs_warthin", "lesion_vs_none"]
    assert rows["benign_vs_malignant"]["sensitivity"] == {
        "value": None, "ci95": None, "undefined": "no benign slice"}
    assert rows["benign_vs_malignant"]["specificity"]["value"] is not None
    pw = rows["pleomorphic_vs_warthin"]
    assert pw["n"] == 0
    assert {k: pw[k]["undefined"] for k in ("accuracy", "sensitivity", "specificity")} == {
        "accuracy": "no pleomorphic_adenoma or warthin slice",
        "sensitivity": "no pleomorphic_adenoma slice", "specificity": "no warthin slice"}
    t5 = {r["type"]: r for r in stored["patient"]["table5"]}
    assert list(t5) == ["pleomorphic_adenoma", "warthin", "benign", "malignant"]
    for kind in ("pleomorphic_adenoma", "warthin", "benign"):
        assert (t5[kind]["patients"], t5[kind]["accuracy"]) == (
            0, {"value": None, "ci95": None, "undefined": f"no {kind} patient"})
    assert t5["malignant"]["patients"] == 3 and t5["malignant"]["accuracy"]["total"] == 3
    for row in stored["patient"]["threshold_sweep"]:
        assert row["sensitivity"] is not None and "sensitivity_undefined" not in row
        assert row["specificity"] is row["specificity_lo"] is row["specificity_hi"] is None
        assert row["specificity_undefined"] == "no benign patient"


def test_a_test_split_of_one_patient_and_one_class(malignant_only):
    # Only the lesion slices of one malignant patient: no per-class curve, no macro-AUC, no
    # bootstrap; the micro-AUC (each slice against the three other classes) stays defined.
    one = malignant_only[(malignant_only["split"] == "train")
                         | ((malignant_only["patient_id"] == "P06")
                            & (malignant_only["true_label"] == "malignant"))]
    with pytest.warns(UserWarning, match="no one-vs-rest curve"):
        m = results.compute_metrics(one, PARAMS, synthetic=False)
    test = m["slice"]["test"]
    assert 0.0 <= test["micro_auc"]["value"] <= 1.0
    assert test["micro_auc"]["ci95"] is None
    assert test["micro_auc"]["ci95_undefined"] == "fewer than 2 patients"
    assert (test["macro_auc"], test["macro_auc_undefined"]) == (None, "only malignant slices")
    assert test["class_auc"] == {}
    assert test["class_auc_undefined"]["malignant"] == "only malignant slices"
    assert test["class_auc_undefined"]["free"] == "no free slice"
    rows = {r["task"]: r for r in m["table4"]}
    assert rows["lesion_vs_none"]["sensitivity"]["undefined"] == "no free slice"
    table = frames.slice_table(m)
    assert table.loc["test", "micro-AUC [95% bootstrap CI]"].endswith(
        "[CI undefined (fewer than 2 patients)]")
    assert table.loc["test", "macro-AUC"] == "undefined (only malignant slices)"
    assert "95% CI undefined: fewer than 2 patients" in paper.results_paragraph(m)


def test_bootstrap_switched_off_says_so(malignant_only):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = results.compute_metrics(malignant_only, {**PARAMS, "bootstrap_resamples": 0},
                                    synthetic=True)
    assert m["slice"]["test"]["micro_auc"]["ci95_undefined"] == "bootstrap_resamples is 0"


def test_benign_only_test_split_leaves_the_sensitivity_undefined():
    df = make_predictions(["pleomorphic_adenoma", "warthin"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = results.compute_metrics(df, PARAMS, synthetic=True)
    validate_metrics(m)
    for row in m["patient"]["threshold_sweep"]:
        assert row["sensitivity"] is None and row["sensitivity_undefined"] == "no malignant patient"
        assert row["specificity"] is not None
    rows = {r["task"]: r for r in m["table4"]}
    assert rows["benign_vs_malignant"]["specificity"]["undefined"] == "no malignant slice"
    t5 = {r["type"]: r for r in m["patient"]["table5"]}
    assert t5["malignant"]["accuracy"]["undefined"] == "no malignant patient"
    sweep = frames.threshold_sweep_frame(m)
    assert sweep["sensitivity"].dtype == float and sweep["sensitivity"].isna().all()
    fig = plot_threshold_sweep(sweep)
    assert "Sensitivity: undefined (no malignant patient)" in legend_texts(fig)
    assert saves(fig)


# ---- tables and the paper comparison -----------------------------------------------------

def test_every_frame_shows_undefined_with_its_reason(metrics, malignant_only):
    slices = frames.slice_table(metrics)
    assert "no warthin slice" in slices.loc["test", "AUC undefined"]
    assert slices.loc["train", "AUC undefined"] == ""
    t4 = frames.table4_frame(metrics)
    assert t4.loc["benign vs malignant", "sensitivity (CC)"] == "undefined (no benign slice)"
    assert t4.loc["pleomorphic vs warthin", "accuracy"] == (
        "undefined (no pleomorphic_adenoma or warthin slice)")
    assert t4.loc["pleomorphic vs warthin", "TP/FN/FP/TN"] == "0/0/0/0"
    t5 = frames.table5_frame(metrics)
    assert t5.loc["warthin", "accuracy [95% Wilson CI]"] == "undefined (no warthin patient)"
    assert t5.loc["warthin", "patients"] == 0
    assert frames.patient_confusion_frame(metrics).to_numpy().sum() == 3
    sweep = frames.threshold_sweep_frame(metrics)
    assert sweep["specificity"].dtype == float and sweep["specificity"].isna().all()
    assert set(sweep["specificity_undefined"]) == {"no benign patient"}
    cm = frames.confusion_frame(malignant_only, "test")
    assert cm.loc["warthin"].sum() == 0 and cm.to_numpy().sum() == 18


def test_paper_comparison_and_results_text_say_undefined(metrics):
    side = paper.paper_vs_run(metrics)
    assert side.loc["Table 4 benign vs malignant: sensitivity", "this run"] == (
        "undefined (no benign slice)")
    assert side.loc["Table 4 pleomorphic vs warthin: accuracy", "this run"] == (
        "undefined (no pleomorphic_adenoma or warthin slice)")
    assert side.loc["Table 5 warthin: correct / patients", "this run"] == (
        "0 / 0, undefined (no warthin patient)")
    text = paper.results_paragraph(metrics)
    assert "undefined (no pleomorphic_adenoma or warthin slice; paper 0.634)" in text
    assert "malignant test patients correctly" in text
    assert "undefined for pleomorphic adenoma (no pleomorphic_adenoma patient)" in text


# ---- figures -----------------------------------------------------------------------------

def test_threshold_sweep_figure_from_metrics_json_nulls(metrics):
    # The reported crash: the sweep read back from metrics.json holds None (object columns).
    raw = pd.DataFrame(json.loads(json.dumps(metrics))["patient"]["threshold_sweep"])
    assert raw["specificity"].dtype == object
    fig = plot_threshold_sweep(raw, title="one histology")
    assert "Specificity: undefined (no benign patient)" in legend_texts(fig)
    assert len(fig.axes[0].lines) == 3  # sensitivity, specificity (legend only), paper's rule
    assert saves(fig)


def test_threshold_sweep_figure_without_reason_columns(malignant_only):
    sweep = threshold_sweep(malignant_only, thresholds=range(0, 4), split="test")
    fig = plot_threshold_sweep(sweep.drop(columns="specificity_undefined"))
    assert "Specificity: undefined (no reason given)" in legend_texts(fig)


def test_roc_figure_names_the_classes_without_a_curve(malignant_only):
    with pytest.warns(UserWarning):
        roc = roc_curves(malignant_only, split="test")
    assert roc.classes == ("free", "malignant")
    assert roc.undefined == {"pleomorphic_adenoma": "no pleomorphic_adenoma slice",
                             "warthin": "no warthin slice"}
    labels = legend_texts(plot_roc(roc))
    assert "Warthin tumour: no curve (no warthin slice)" in labels
    assert any(lab.startswith("Macro-average (AUC = ") for lab in labels)
    lesion_only = malignant_only[malignant_only["true_label"] == "malignant"]
    with pytest.warns(UserWarning):
        roc = roc_curves(lesion_only, split="test")
    assert roc.classes == () and set(roc.auc) == {"micro"}
    fig = plot_roc(roc)
    labels = legend_texts(fig)
    assert "Macro-average: undefined (only malignant slices)" in labels
    assert "Malignant: no curve (only malignant slices)" in labels
    assert any(lab.startswith("Micro-average (AUC = ") for lab in labels)
    assert saves(fig)


def test_confusion_figure_marks_rows_without_slices(malignant_only):
    test = malignant_only[malignant_only["split"] == "test"]
    cm = frames.confusion_frame(test, "test").to_numpy()
    fig = plot_confusion_matrices(cm)
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert "undefined (no warthin slice)" in texts
    assert "undefined (no pleomorphic_adenoma slice)" in texts
    assert not any("undefined" in t.get_text() for t in fig.axes[0].texts)  # counts: zeros
    assert saves(fig)


def test_run_figures_of_a_one_histology_run(metrics, malignant_only, tmp_path):
    malignant_only.to_csv(tmp_path / "predictions.csv", index=False)
    results.write_metrics(metrics, tmp_path / "metrics.json")
    saved = draw_run_figures(tmp_path, {}, synthetic=True)
    assert saved == ["fig7_confusion_matrix_test", "fig6_roc_test",
                     "fig7_confusion_matrix_train", "fig6_roc_train", "fig5_threshold_sweep"]
    for name in saved:
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
