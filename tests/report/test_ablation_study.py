"""The ablation's tables follow the study (issue 25, item 1): the reference is every series
plus the gland and the statistics are over the curated dataset's class scheme; the paper's
Table 3 stands beside the paper's study only (a small seeded ablation folder, no training)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parotidlib.config import REFERENCE
from parotidlib.report import ablation as A
from parotidlib.report.figures.ablation import plot_ablation
from parotidlib.study import PAPER_CLASSES, SCHEMES

SERIES = ("t1", "t2", "adc")
BM = SCHEMES["benign_malignant"]
COMPOSITIONS = ("t1", "adc", "t1+t2+adc+gland")
PATIENTS = {"P0": "pleomorphic_adenoma", "P1": "warthin", "P2": "basal_cell_adenoma",
            "P3": "malignant", "P4": "mucoepidermoid_carcinoma", "P5": "warthin"}


def _predictions(seed: int) -> pd.DataFrame:
    """Three slices per patient (one free, two of its class) with seeded probabilities."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid, histology in PATIENTS.items():
        for k, label in enumerate(("free", BM.class_of(histology), BM.class_of(histology))):
            prob = rng.dirichlet(np.ones(len(BM.classes)))
            rows.append({"patient_id": pid, "slice_index": k, "z_mm": 3.0 * k, "side": "left",
                         "true_label": label, "histology": histology, "split": "test",
                         **{f"prob_{c}": p for c, p in zip(BM.classes, prob, strict=True)},
                         "predicted_label": BM.classes[int(np.argmax(prob))]})
    return pd.DataFrame(rows)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """An ablation batch over t1, t2 and adc under benign_malignant, cross-validated form:
    one pooled table per composition (seed 0)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({
        "config": {"series": list(SERIES), "labels_from": "", "classes": "benign_malignant"},
        "classes": list(BM.classes), "class_scheme": BM.record()}))
    members = []
    for i, composition in enumerate(COMPOSITIONS):
        rel = f"pooled/{composition}__seed0.csv"
        (tmp_path / "ablation" / "pooled").mkdir(parents=True, exist_ok=True)
        _predictions(i).assign(fold=0, seed=0).to_csv(tmp_path / "ablation" / rel, index=False)
        members.append({"composition": composition, "seed": 0, "pooled": rel,
                        "folds": [], "status": "done"})
    (tmp_path / "ablation" / "members.json").write_text(json.dumps(members))
    return tmp_path


def test_the_study_comes_from_the_curated_dataset(run_dir, tmp_path_factory):
    study = A.ablation_study(run_dir)
    assert study == A.AblationStudy(SERIES, BM)
    assert study.reference == "t1+t2+adc+gland" and not study.paper and not study.paper_series
    note = A.study_note(study)
    assert "series t1, t2, adc" in note and "benign_malignant" in note
    assert "t1 + t2 + adc + gland" in note
    paper = A.ablation_study(tmp_path_factory.mktemp("old"))  # a folder without data
    assert paper == A.PAPER_STUDY and paper.reference == REFERENCE and paper.paper
    assert A.study_note(paper) is None


def test_tables_compare_with_every_series_plus_gland_over_the_scheme(run_dir):
    study = A.ablation_study(run_dir)
    members = A.read_members(run_dir, study.scheme)
    frames = {c: _predictions(i) for i, c in enumerate(COMPOSITIONS)}
    for _, row in members.iterrows():
        frame = frames[row["composition"]]
        assert row["successes"] == int((frame["true_label"] == frame["predicted_label"]).sum())
        assert row["patients"] == len(PATIENTS)

    summary = A.summary_table(members, study)
    assert list(summary["composition"]) == ["t1", "adc", "t1 + t2 + adc + gland"]
    assert list(summary["row"]) == ["", "", ""]  # Table 3's letters name the paper's rows
    assert summary["paper accuracy"].isna().all()  # t1 alone is not the paper's (a) here

    paired = A.paired_comparisons(run_dir, members, resamples=50)
    assert list(paired["composition"]) == ["t1", "adc"]
    assert set(paired["reference"]) == {"t1 + t2 + adc + gland"}
    reference = frames["t1+t2+adc+gland"]
    right = (reference["true_label"] == reference["predicted_label"]).mean()
    assert paired["reference accuracy"].to_numpy() == pytest.approx([right, right])
    assert paired["difference"].to_numpy() == pytest.approx(
        (paired["accuracy"] - paired["reference accuracy"]).to_numpy())
    assert paired.equals(A.paired_comparisons(run_dir, members, study.reference, 50,
                                              scheme=study.scheme))
    with pytest.raises(ValueError, match="prob_pleomorphic_adenoma"):  # the paper's classes
        A.paired_comparisons(run_dir, members, resamples=50, scheme=PAPER_CLASSES)

    fig = plot_ablation(members, summary, title="Input channel composition")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "paper (Table 3)" not in labels and len(labels) == 2


def test_the_papers_study_keeps_table_3(run_dir):
    """The paper's series and classes: row letters and Table 3's accuracies as before."""
    members = pd.DataFrame([
        {"composition": c, "seed": 0, "accuracy": 0.8, "total": 100, "micro_auc": 0.9,
         "ci_low": 0.7, "ci_high": 0.9} for c in ("t1", "t1+ce_t1+t2+gland", "ce_t1+gland")])
    summary = A.summary_table(members)  # the paper's study by default
    assert list(summary["row"]) == ["a", "g", ""]
    assert list(summary["composition"]) == ["t1", "t1 + ce_t1 + t2 + gland", "ce_t1 + gland"]
    assert summary["paper accuracy"].iloc[:2].tolist() == [0.706, 0.822]
    other = A.summary_table(members, A.AblationStudy(scheme=BM))  # paper series, other classes
    assert list(other["row"]) == ["a", "g", ""] and other["paper accuracy"].isna().all()
