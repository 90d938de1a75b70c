"""The whole study chain end to end with params/smoke.yaml (a real papermill run)."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from parotidlib.metrics_schema import validate_metrics
from parotidlib.pipeline import StageError, run_study

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("PAROTIDLIB_DATA_DIR", str(base / "data"))  # the cohort goes here, not data/
    try:
        result = run_study(SMOKE, name="smoke", reports_dir=base / "reports")
        yield result
    finally:
        mp.undo()


def test_smoke_run_writes_the_report_and_valid_metrics(smoke_run):
    run_dir = smoke_run.run_dir
    html = (run_dir / "report.html").read_text()
    for section in ("Paper vs this run", "Table 1", "Figure 7", "Figure 6", "Table 4",
                    "Table 5", "Synthetic data", "data:image/png;base64"):
        assert section in html, section
    assert "from parotidlib" not in html  # code hidden
    metrics = json.loads((run_dir / "metrics.json").read_text())
    validate_metrics(metrics)
    assert metrics["synthetic"] is True
    assert set(metrics["timing_s"]) >= {"curate", "train", "evaluate", "statistics", "report"}
    for name in ("fig2_patient_series", "fig3_example_inputs", "training_curves",
                 "fig6_roc_test", "fig7_confusion_matrix_test", "fig5_threshold_sweep"):
        assert (run_dir / "figures" / f"{name}.png").stat().st_size > 0
        assert (run_dir / "figures" / f"{name}.pdf").stat().st_size > 0
    for stage in ("10-curate", "20-train", "30-evaluate", "40-statistics", "50-report"):
        assert (run_dir / f"{stage}.ipynb").exists()


def test_second_run_skips_every_finished_stage(smoke_run, monkeypatch):
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(smoke_run.run_dir.parent.parent / "data"))
    again = run_study(SMOKE, name="smoke", reports_dir=smoke_run.run_dir.parent)
    assert again.skipped == ["curate", "train", "evaluate", "statistics", "report"]


def test_failing_stage_stops_the_run_and_keeps_its_notebook(smoke_run, tmp_path):
    # A cohort whose files are missing passes params validation and fails inside curation.
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    (cohort / "manifest.csv").write_text(
        "patient_id,histology,tumor_side,age,sex,scanner,t1,ce_t1,t2,"
        "t1_labels,ce_t1_labels,t2_labels\n"
        "P1,warthin,left,60,M,GE,t1.nii.gz,ce.nii.gz,t2.nii.gz,l1.nii.gz,lc.nii.gz,l2.nii.gz\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text() + f"\ncohort_manifest: {cohort / 'manifest.csv'}\n")
    with pytest.raises(StageError) as err:
        run_study(bad, name="broken", reports_dir=smoke_run.run_dir.parent)
    assert err.value.stage == "curate" and "10-curate.ipynb" in str(err.value)
    kept = nbformat.read(str(err.value.notebook), as_version=4)
    errors = [o for c in kept.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and "P1" in errors[0]["evalue"]
    assert not (smoke_run.run_dir.parent / "broken" / "20-train.ipynb").exists()
    assert sorted(p.name for p in cohort.iterdir()) == ["manifest.csv"]  # input untouched


def test_cli_refuses_an_unknown_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    proc = subprocess.run([sys.executable, "-m", "parotidlib", "run", "--params", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown params key" in proc.stderr and "epochs" in proc.stderr
