"""The study definition end to end (issue 25): a synthetic cohort with an ADC map and a fifth
histology run through the whole chain and cross-validation with ``series: [t1, t2, adc]`` and
``classes: benign_malignant``; a custom mapping that excludes a histology; and the refusals,
each with its message (real papermill runs on the smoke profile)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from parotidlib.evaluation.schema import validate_metrics
from parotidlib.run.pipeline import run_study
from parotidlib.synth.generate import generate_cohort

ROOT = Path(__file__).resolve().parent.parent
SMOKE = (ROOT / "params" / "smoke.yaml").read_text()
#: Table 1's mix with basal cell adenomas and mucoepidermoid carcinomas added.
MIX = {"pleomorphic_adenoma": 0.3, "warthin": 0.25, "malignant": 0.2,
       "basal_cell_adenoma": 0.15, "mucoepidermoid_carcinoma": 0.1}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "cohort"
    return generate_cohort(out, n_patients=16, seed=4, jobs=1, pixel_scale=2.0,
                           histologies=MIX, diffusion=True)


def _params(tmp: Path, manifest: Path, name: str, extra: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(SMOKE.replace('cohort_manifest: ""', f"cohort_manifest: {manifest}")
                    .replace("channels: [t1, ce_t1, t2, gland]\n", "") + extra)
    return path


DIFFUSION = "series: [t1, t2, adc]\nchannels: [t1, t2, adc, gland]\n"


@pytest.fixture(scope="module")
def benign_malignant(cohort, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bm")
    params = _params(tmp, cohort, "bm", DIFFUSION + "classes: benign_malignant\n")
    return run_study(params, name="bm", reports_dir=tmp / "reports"), params, tmp


def test_the_cohort_has_an_adc_map_and_five_histologies(cohort):
    manifest = pd.read_csv(cohort)
    assert {"adc", "adc_labels", "adc_scale_mm2_s"} <= set(manifest.columns)
    assert set(manifest["histology"]) == set(MIX)


def test_benign_malignant_on_t1_t2_adc_runs_through_the_report(benign_malignant):
    result, _, _ = benign_malignant
    run_dir = result.run_dir
    dataset = json.loads((run_dir / "data" / "dataset.json").read_text())
    assert dataset["classes"] == ["free", "benign", "malignant"]
    assert dataset["class_scheme"]["name"] == "benign_malignant"
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert [c for c in predictions.columns if c.startswith("prob_")] == \
        ["prob_free", "prob_benign", "prob_malignant"]
    slices = pd.read_csv(run_dir / "data" / "slices.csv")
    lesions = slices[slices["label"] != "free"]
    benign = lesions["histology"].isin(["pleomorphic_adenoma", "warthin", "basal_cell_adenoma"])
    assert (lesions.loc[benign, "label"] == "benign").all()
    assert (lesions.loc[~benign, "label"] == "malignant").all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    validate_metrics(metrics)
    tasks = [row["task"] for row in metrics["table4"]]
    assert "lesion_vs_none" in tasks and "pleomorphic_vs_warthin" not in tasks
    html = (run_dir / "report.html").read_text()
    assert "Synthetic data" in html and "benign_malignant" in html
    assert (run_dir / "checklist.md").is_file()


def test_cross_validation_of_the_same_study(benign_malignant):
    from parotidlib.run.cv import run_cv

    _, params, tmp = benign_malignant
    report = run_cv(params, folds=2, reports_dir=tmp / "reports")
    pooled = pd.read_csv(report.parent / "cv_predictions.csv")
    assert {"prob_benign", "prob_malignant"} <= set(pooled.columns)
    assert pooled.groupby(["patient_id", "slice_index", "side"]).size().max() == 1
    assert "Cross-validation" in report.read_text()


def test_a_custom_mapping_excludes_a_histology_and_counts_it(cohort, tmp_path):
    classes = ("classes:\n  pleomorphic_adenoma: pleomorphic_adenoma\n  warthin: warthin\n"
               "  basal_cell_adenoma: other_benign\n  malignant: malignant\n"
               "  exclude: [mucoepidermoid_carcinoma]\n")
    params = _params(tmp_path, cohort, "custom", classes)
    result = run_study(params, name="custom", reports_dir=tmp_path / "reports")
    dataset = json.loads((result.run_dir / "data" / "dataset.json").read_text())
    manifest = pd.read_csv(cohort)
    n_mec = int((manifest["histology"] == "mucoepidermoid_carcinoma").sum())
    assert dataset["excluded_histologies"] == {"mucoepidermoid_carcinoma": n_mec}
    slices = pd.read_csv(result.run_dir / "data" / "slices.csv")
    assert "mucoepidermoid_carcinoma" not in set(slices["histology"])
    assert dataset["classes"] == ["free", "pleomorphic_adenoma", "warthin", "other_benign",
                                  "malignant"]
    assert "mucoepidermoid_carcinoma" in (result.run_dir / "report.html").read_text()


@pytest.mark.parametrize(("extra", "message"), [
    ("", "mucoepidermoid_carcinoma"),  # the paper scheme does not cover the fifth histologies
    ("series: [t1, t2]\nchannels: [t1, adc]\n", "'adc' is not one of series"),
    ("series: [t1, t2, dwi]\nchannels: [t1, t2, dwi]\n", "dwi"),
])
def test_refusals_name_what_is_wrong(cohort, tmp_path, extra, message):
    manifest = cohort
    if "dwi" in extra:  # a manifest missing a series column
        table = pd.read_csv(cohort).drop(columns=["dwi", "dwi_labels"])
        manifest = cohort.parent / "no_dwi.csv"
        table.to_csv(manifest, index=False)
    params = _params(tmp_path, manifest, "refused", extra)
    proc = subprocess.run([sys.executable, "-m", "parotidlib", "run", "--params", str(params),
                           "--name", "refused", "--reports-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]


def test_the_three_class_bundle_predicts_another_cohort(benign_malignant, cohort, tmp_path):
    from parotidlib.run.predict import run_predict

    result, params, _ = benign_malignant
    run = run_predict(result.run_dir, cohort, name="again", params_path=params,
                      reports_dir=tmp_path / "reports")
    predictions = pd.read_csv(run.run_dir / "predictions.csv")
    assert [c for c in predictions.columns if c.startswith("prob_")] == \
        ["prob_free", "prob_benign", "prob_malignant"]
    assert set(predictions["predicted_label"]) <= {"free", "benign", "malignant"}
    external = json.loads((run.run_dir / "external.json").read_text())
    assert external["validated"] and external["class_scheme"]["name"] == "benign_malignant"
    assert {d["predicted_histology"] for d in external["diagnoses"]} <= {"benign", "malignant"}
    assert "benign_malignant" in (run.run_dir / "report.html").read_text()
