"""The whole study chain end to end with params/smoke.yaml (a real papermill run)."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from parotidlib.evaluation.schema import validate_metrics
from parotidlib.learn.bundle import load_bundle
from parotidlib.params import load_params
from parotidlib.run.imports import PACKAGE_DIR
from parotidlib.run.pipeline import StageError, run_study

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("PAROTIDLIB_DATA_DIR", str(base / "data"))  # the cohort goes here, not data/
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    papermill_logger = logging.getLogger("papermill")
    level = papermill_logger.level
    papermill_logger.setLevel(logging.INFO)
    papermill_logger.addHandler(handler)
    try:
        result = run_study(SMOKE, name="smoke", reports_dir=base / "reports")
        result.papermill_log = [r.getMessage() for r in records]
        yield result
    finally:
        papermill_logger.removeHandler(handler)
        papermill_logger.setLevel(level)
        mp.undo()


def test_smoke_run_writes_the_report_and_valid_metrics(smoke_run):
    run_dir = smoke_run.run_dir
    html = (run_dir / "report.html").read_text()
    for section in ("Paper vs this run", "Table 1", "Figure 7", "Figure 6", "Table 4",
                    "Table 5", "Synthetic data", "data:image/png;base64",
                    "Does the CNN beat radiomics", "CNN minus radiomics",
                    "Where does the network look?", "Model-parameter randomisation test",
                    "Both models on the test patients of the <strong>synthetic</strong>",
                    "Test slices of the <strong>synthetic</strong> cohort"):
        assert section in html, section
    assert "from parotidlib" not in html  # code hidden
    data_dir = smoke_run.run_dir.parent.parent / "data"  # the cohort, outside the project
    assert str(data_dir) not in html and str(ROOT) not in html  # no absolute paths
    metrics = json.loads((run_dir / "metrics.json").read_text())
    validate_metrics(metrics)
    assert metrics["synthetic"] is True
    # the radiomics baseline on the same test slices as the CNN
    assert (metrics["radiomics"]["slice"]["test"]["slices"]
            == metrics["slice"]["test"]["slices"])
    assert (run_dir / "radiomics_predictions.csv").is_file()
    assert set(metrics["timing_s"]) >= {"curate", "train", "evaluate", "statistics", "report"}
    # where the network looks: every test slice's map, examples drawn by the report
    saliency = json.loads((run_dir / "saliency.json").read_text())
    assert saliency["computed"] and saliency["synthetic"] is True
    assert saliency["n_slices"] == metrics["slice"]["test"]["slices"]
    assert saliency["randomisation"]["n_slices"] == saliency["n_slices"]
    assert saliency["examples"] and "saliency_maps.npz" in os.listdir(run_dir)
    for name in ("fig2_patient_series", "fig3_example_inputs", "training_curves",
                 "fig6_roc_test", "fig7_confusion_matrix_test", "fig5_threshold_sweep",
                 "saliency_examples"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 0
        assert (run_dir / "figures" / f"{name}.pdf").stat().st_size > 0
    for stage in ("10-curate", "20-train", "30-evaluate", "40-statistics", "45-saliency",
                  "50-report"):
        assert (run_dir / f"{stage}.ipynb").exists()
    checklist = (run_dir / "checklist.md").read_text()  # TRIPOD+AI, answered from the run
    assert "TRIPOD+AI" in checklist and "to be completed by the authors" in checklist
    assert "Reporting checklist (TRIPOD+AI 2024)" in html and "27c" in html
    bundle = load_bundle(run_dir)  # the model, ready for new patients
    assert bundle.channels == ("t1", "ce_t1", "t2", "gland")
    assert bundle.curation.image_size == load_params(SMOKE)["image_size"]


def test_papermill_has_no_unknown_parameter_to_warn_about(smoke_run):
    assert smoke_run.papermill_log, "papermill's log was not captured"
    assert not [m for m in smoke_run.papermill_log if "unknown parameter" in m.lower()]


def test_second_run_skips_every_finished_stage(smoke_run, monkeypatch):
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(smoke_run.run_dir.parent.parent / "data"))
    again = run_study(SMOKE, name="smoke", reports_dir=smoke_run.run_dir.parent)
    assert again.skipped == ["curate", "train", "evaluate", "statistics", "saliency", "report"]


def test_failing_stage_stops_the_run_and_keeps_its_notebook(smoke_run, tmp_path):
    # A cohort whose files are not NIfTI passes params validation and fails inside curation.
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for name in ("t1", "ce", "t2", "l1", "lc", "l2"):
        (cohort / f"{name}.nii.gz").write_bytes(b"not a NIfTI file")
    (cohort / "manifest.csv").write_text(
        "patient_id,histology,tumor_side,age,sex,scanner,t1,ce_t1,t2,"
        "t1_labels,ce_t1_labels,t2_labels\n"
        "P1,warthin,left,60,M,GE,t1.nii.gz,ce.nii.gz,t2.nii.gz,l1.nii.gz,lc.nii.gz,l2.nii.gz\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace('cohort_manifest: ""',
                                             f"cohort_manifest: {cohort / 'manifest.csv'}"))
    with pytest.raises(StageError) as err:
        run_study(bad, name="broken", reports_dir=smoke_run.run_dir.parent)
    assert err.value.stage == "curate" and "10-curate.ipynb" in str(err.value)
    kept = nbformat.read(str(err.value.notebook), as_version=4)
    errors = [o for c in kept.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and "P1" in errors[0]["evalue"]
    assert not (smoke_run.run_dir.parent / "broken" / "20-train.ipynb").exists()
    assert sorted(p.name for p in cohort.iterdir()) == sorted(  # input untouched
        ["manifest.csv", "t1.nii.gz", "ce.nii.gz", "t2.nii.gz", "l1.nii.gz", "lc.nii.gz",
         "l2.nii.gz"])


def test_cli_refuses_an_unknown_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    proc = subprocess.run([sys.executable, "-m", "parotidlib", "run", "--params", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown params key" in proc.stderr and "epochs" in proc.stderr


def test_editing_a_figure_reruns_the_report_stage_only(smoke_run, monkeypatch, tmp_path):
    """The stage keys follow the library modules each notebook runs: an edit of the
    training-curves figure (in a copy of the library's source) changes the report's key only."""
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(smoke_run.run_dir.parent.parent / "data"))
    package = tmp_path / "parotidlib"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    figure = package / "report" / "figures" / "training.py"
    source = figure.read_text()
    assert '"""Three panels:' in source
    figure.write_text(source.replace('"""Three panels:', '"""Three panels (edited):'))
    again = run_study(SMOKE, name="smoke", reports_dir=smoke_run.run_dir.parent,
                      package_dir=package)
    assert again.skipped == ["curate", "train", "evaluate", "statistics", "saliency"]
    assert again.keys["train"] == smoke_run.keys["train"]
    assert again.keys["report"] != smoke_run.keys["report"]


def test_more_epochs_in_a_new_run_folder_reuses_curation_and_resumes_training(
        smoke_run, monkeypatch):
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(smoke_run.run_dir.parent.parent / "data"))
    epochs = load_params(SMOKE)["epochs"]
    more = run_study(SMOKE, name="smoke-more", reports_dir=smoke_run.run_dir.parent,
                     overrides={"epochs": epochs + 1})
    assert more.reused == {"curate": str(smoke_run.run_dir)}
    assert more.resumed == ["train"]
    history = (more.run_dir / "model" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + epochs + 1
    trained = nbformat.read(str(more.run_dir / "20-train.ipynb"), as_version=4)
    assert f"resumed after epoch {epochs}" in json.dumps(trained.cells[-3].outputs)
    # the run it started from keeps its own model
    first = (smoke_run.run_dir / "model" / "history.csv").read_text().splitlines()
    assert len(first) == 1 + epochs


def test_a_test_split_of_one_histology_completes_statistics_and_report(
        smoke_run, monkeypatch, tmp_path):
    """The missing-class test: a run whose test split holds one histology (a small cohort,
    skipped patients) completes the statistics and report stages, and says what is undefined."""
    from parotidlib.constants import HISTOLOGIES
    from parotidlib.evaluation.results import read_predictions
    from parotidlib.run.stages import STAGES

    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(smoke_run.run_dir.parent.parent / "data"))
    run_dir = tmp_path / "reports" / "oneclass"
    shutil.copytree(smoke_run.run_dir, run_dir, symlinks=True)
    predictions = read_predictions(run_dir / "predictions.csv")
    test = predictions["split"] == "test"
    kept = predictions.loc[test, "histology"].iloc[0]  # the first test patient's histology
    predictions = predictions[~test | (predictions["histology"] == kept)]
    predictions.to_csv(run_dir / "predictions.csv", index=False)
    assert set(predictions.loc[predictions["split"] == "test", "histology"]) == {kept}
    # the evaluate stage's other output, the radiomics baseline, on the same slices
    baseline = read_predictions(run_dir / "radiomics_predictions.csv")
    keep = baseline["split"] != "test"
    baseline[keep | (baseline["histology"] == kept)].to_csv(
        run_dir / "radiomics_predictions.csv", index=False)

    result = run_study(SMOKE, name="oneclass", reports_dir=tmp_path / "reports",
                       stages=STAGES[3:], upstream="")
    assert result.run_dir == run_dir.resolve()
    assert "statistics" not in result.skipped and "report" not in result.skipped

    metrics = json.loads((run_dir / "metrics.json").read_text())
    validate_metrics(metrics)
    assert metrics["cnn_vs_radiomics"]["accuracy"]["n_slices"] == int(
        (predictions["split"] == "test").sum())
    table5 = {r["type"]: r for r in metrics["patient"]["table5"]}
    for kind in (h for h in HISTOLOGIES if h != kept):
        assert table5[kind]["patients"] == 0
        assert table5[kind]["accuracy"]["undefined"] == f"no {kind} patient"
    sweep = metrics["patient"]["threshold_sweep"]
    measure = "specificity" if kept == "malignant" else "sensitivity"
    assert all(row[measure] is None and row[f"{measure}_undefined"] for row in sweep)
    for name in ("fig6_roc_test", "fig7_confusion_matrix_test", "fig5_threshold_sweep"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 0
    html = (run_dir / "report.html").read_text()
    assert "undefined (" in html
    assert f"undefined (no {next(h for h in HISTOLOGIES if h != kept)} patient)" in html


def test_stage_notebooks_run_by_hand_record_their_params_for_the_report(smoke_run, tmp_path):
    """Run by hand (no pipeline: no params.yaml, no cohort.json), a stage notebook records
    the params it ran with and the report notebook runs on them."""
    import papermill as pm

    run_dir = tmp_path / "by-hand"
    shutil.copytree(smoke_run.run_dir, run_dir, symlinks=True)
    for name in ("params.yaml", "cohort.json", "metrics.json"):
        (run_dir / name).unlink()
    for name, parameters in (("40-statistics", {"bootstrap_resamples": 20}), ("50-report", {})):
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"),
                            str(run_dir / f"{name}.ipynb"),
                            parameters={"run_dir": str(run_dir), **parameters},
                            kernel_name="python3", progress_bar=False, cwd=str(run_dir))
    assert load_params(run_dir / "params.yaml")["bootstrap_resamples"] == 20
    assert json.loads((run_dir / "metrics.json").read_text())["synthetic"] is True


# --------------------------------------------------------------------------- predict chain


def _second_cohort(base: Path, n_patients: int = 4, seed: int = 5) -> Path:
    """A tiny shifted synthetic cohort: another seed, one 3 T scanner, more Warthin."""
    from parotidlib.synth import EXTERNAL_SHIFT, generate_cohort

    return generate_cohort(base / "second", n_patients=n_patients, seed=seed, jobs=1,
                           **EXTERNAL_SHIFT)


def _copy_manifest(manifest: Path, out: Path, rows: slice | None = None,
                   **blank: bool) -> Path:
    """The manifest with absolute paths (optionally fewer rows, blanked columns) in ``out``."""
    import pandas as pd

    from parotidlib.data.manifest import FILE_COLUMNS

    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for col in FILE_COLUMNS:
        table[col] = [str((manifest.parent / p).resolve()) for p in table[col]]
    if rows is not None:
        table = table.iloc[rows]
    for col in blank:
        table[col] = ""
    out.mkdir(parents=True)
    table.to_csv(out / "manifest.csv", index=False)
    return out / "manifest.csv"


def test_predict_validates_a_second_cohort_beside_the_internal_test(smoke_run, tmp_path):
    from parotidlib.run.predict import run_predict

    manifest = _second_cohort(tmp_path)
    result = run_predict(smoke_run.run_dir, manifest, name="second", params_path=SMOKE,
                         reports_dir=tmp_path / "reports")
    run_dir = result.run_dir
    results = json.loads((run_dir / "external.json").read_text())
    assert results["validated"] and results["synthetic"] and results["n_patients"] == 4
    assert results["internal"] is not None and "difference" in results
    assert results["model"]["training_run"] == "smoke"
    # every curated slice predicted once, in the external split
    import pandas as pd

    predictions = pd.read_csv(run_dir / "predictions.csv", dtype={"patient_id": str})
    slices = pd.read_csv(run_dir / "data" / "slices.csv", dtype={"patient_id": str})
    assert len(predictions) == len(slices) and set(predictions["split"]) == {"external"}
    assert len(pd.read_csv(run_dir / "patients.csv")) == 4
    html = (run_dir / "report.html").read_text()
    for text in ("Validation beside the internal test", "Table 4", "Table 5", "internal test",
                 "External minus internal", "Calibration and decision curve", "Brier",
                 "Siemens Skyra 3T 100%", "Synthetic data", "data:image/png;base64"):
        assert text in html, text
    assert str(tmp_path) not in html and str(ROOT) not in html  # no absolute paths
    # the TRIPOD+AI checklist of the evaluation, in the report and beside it
    checklist = (run_dir / "checklist.md").read_text()
    assert "Reporting checklist (TRIPOD+AI 2024)" in html and "bmj-2023-078378" in checklist
    assert "**Synthetic data.**" in checklist and "No updating" in checklist
    assert str(tmp_path) not in checklist and str(ROOT) not in checklist
    assert "SYN0001" not in checklist  # no patient id
    for name in ("calibration_malignant", "calibration_one_vs_rest", "decision_curve",
                 "external_roc", "external_confusion_matrix", "patient_SYN0001"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 0
    # the bundle's curation settings were used, not the params file's
    dataset = json.loads((run_dir / "data" / "dataset.json").read_text())
    assert dataset["image_size"] == load_bundle(smoke_run.run_dir).curation.image_size
    again = run_predict(smoke_run.run_dir, manifest, name="second", params_path=SMOKE,
                        reports_dir=tmp_path / "reports")
    assert again.skipped == ["curate", "predict", "report"]


def test_predict_one_new_patient_without_histology_is_unvalidated(smoke_run, tmp_path):
    from parotidlib.run.predict import run_predict

    manifest = _copy_manifest(_second_cohort(tmp_path), tmp_path / "new", rows=slice(1, 2),
                              histology=True)
    result = run_predict(smoke_run.run_dir / "bundle.pt", manifest, name="new-patient",
                         params_path=SMOKE, reports_dir=tmp_path / "reports")
    results = json.loads((result.run_dir / "external.json").read_text())
    assert results["n_patients"] == 1 and results["validated"] is False
    assert "external" not in results
    (diagnosis,) = results["diagnoses"]
    assert diagnosis["histology"] is None and diagnosis["correct"] is None
    assert diagnosis["predicted_histology"] in ("pleomorphic_adenoma", "warthin", "malignant")
    html = (result.run_dir / "report.html").read_text()
    assert "Unvalidated" in html and "none (unvalidated)" in html
    assert not (result.run_dir / "figures" / "calibration_malignant.png").exists()


def test_predict_refuses_a_cohort_without_a_channel_of_the_model(smoke_run, tmp_path):
    manifest = _copy_manifest(_second_cohort(tmp_path), tmp_path / "no-ce", ce_t1=True)
    proc = subprocess.run(
        [sys.executable, "-m", "parotidlib", "predict", "--model", str(smoke_run.run_dir),
         "--cohort", str(manifest), "--name", "refused", "--reports-dir",
         str(tmp_path / "reports")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "cannot supply ['ce_t1']" in proc.stderr and "'ce_t1' empty for 4" in proc.stderr
    assert not (tmp_path / "reports" / "refused").exists()
