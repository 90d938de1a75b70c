"""Cross-validation under another class scheme (issue 25, item 1): a 2-fold smoke-profile CV
of a tiny synthetic cohort with five histologies under ``classes: benign_malignant``; the
pooled tables, cv_metrics.json and cv.html follow the curated dataset's classes."""

import json
from pathlib import Path

import pytest

from parotidlib.evaluation.cv import read_cv_predictions
from parotidlib.report.cv_report import CV_SCHEME, cv_scheme
from parotidlib.run.cv import members_scheme, run_cv
from parotidlib.study import SCHEMES
from parotidlib.synth.generate import generate_cohort

ROOT = Path(__file__).resolve().parents[2]
#: Table 1's mix with basal cell adenomas and mucoepidermoid carcinomas added.
MIX = {"pleomorphic_adenoma": 0.3, "warthin": 0.25, "malignant": 0.2,
       "basal_cell_adenoma": 0.15, "mucoepidermoid_carcinoma": 0.1}


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    base = tmp_path_factory.mktemp("cv_scheme")
    manifest = generate_cohort(base / "cohort", n_patients=16, seed=4, jobs=1,
                               pixel_scale=2.0, histologies=MIX)
    params = base / "bm.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text()
                      .replace('cohort_manifest: ""', f'cohort_manifest: "{manifest}"')
                      .replace("epochs: 2", "epochs: 1") + "classes: benign_malignant\n")
    html = run_cv(params, folds=2, seeds=[0], reports_dir=base / "reports")
    return {"html": html, "run_dir": html.parent, "manifest": manifest}


def test_the_pooled_tables_and_metrics_follow_the_scheme(cv):
    run_dir = cv["run_dir"]
    dataset = json.loads((run_dir / "data" / "dataset.json").read_text())
    assert dataset["classes"] == ["free", "benign", "malignant"]
    pooled = read_cv_predictions(run_dir / "cv_predictions.csv")
    assert [c for c in pooled.columns if c.startswith("prob_")] == [
        "prob_free", "prob_benign", "prob_malignant"]
    assert set(pooled["true_label"]) <= {"free", "benign", "malignant"}
    assert not pooled.duplicated(["patient_id", "slice_index", "side"]).any()
    assert set(pooled["histology"]) == set(MIX)  # the further histologies among them

    assert cv_scheme(run_dir) == SCHEMES["benign_malignant"]
    recorded = json.loads((run_dir / CV_SCHEME).read_text())["class_scheme"]
    assert recorded["name"] == "benign_malignant"
    members = json.loads((run_dir / "folds" / "members.json").read_text())
    assert members_scheme(run_dir, members) == SCHEMES["benign_malignant"]

    metrics = json.loads((run_dir / "cv_metrics.json").read_text())
    assert metrics["class_scheme"]["classes"] == ["free", "benign", "malignant"]
    block = metrics["per_seed"]["0"]
    assert len(block["slice"]["confusion_matrix"]) == 3
    assert block["slice"]["accuracy"]["total"] == len(pooled)
    assert block["patient"]["confusion_labels"] == ["benign", "malignant"]


def test_cv_html_says_the_scheme(cv):
    text = cv["html"].read_text()
    assert "Class scheme <code>benign_malignant</code>" in text
    assert "basal cell adenoma" in text and "mucoepidermoid carcinoma" in text
    assert "patient accuracy (2 classes)" in text
    assert "paper (21 test patients)" not in text


def test_members_of_different_schemes_are_refused(tmp_path):
    for name, scheme in (("a", SCHEMES["paper"]), ("b", SCHEMES["benign_malignant"])):
        (tmp_path / "folds" / name / "data").mkdir(parents=True)
        (tmp_path / "folds" / name / "data" / "dataset.json").write_text(
            json.dumps({"class_scheme": scheme.record()}))
    with pytest.raises(ValueError, match="differ in their class scheme: a has paper"):
        members_scheme(tmp_path, [{"run_dir": "a"}, {"run_dir": "b"}])
