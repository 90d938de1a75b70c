"""A run stopped by a signal takes its processes with it; bad params and folders are refused
before anything is made; run folders can go elsewhere; interactive notebooks say what to run
first. (Issue-tracker probe of faults and bad input.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parotidlib.processes import descendants
from parotidlib.run.cli import main
from parotidlib.synth import generate_cohort

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("cohort") / "c", n_patients=6, seed=4,
                           jobs=1)


def _params(tmp_path, manifest, **extra):
    text = (ROOT / "params" / "smoke.yaml").read_text().replace(
        'cohort_manifest: ""', f"cohort_manifest: {manifest}")
    text = text.replace("curate_jobs: 1", "curate_jobs: 2").replace("epochs: 2", "epochs: 1")
    text += "".join(f"{k}: {v}\n" for k, v in extra.items())
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_run_killed_during_parallel_curation_leaves_no_process_and_reruns(
        tmp_path, tiny_cohort, sig):
    params = _params(tmp_path, tiny_cohort)
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "parotidlib", "run", "--params", str(params), "--reports-dir",
         str(reports), "--name", "killed"],
        cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        run_dir = reports / "killed"
        deadline = time.monotonic() + 120
        parts = []
        while time.monotonic() < deadline and not parts:
            parts = list(run_dir.glob(".data.tmp-*/parts"))
            time.sleep(0.02)
        assert parts, "curation never started"
        time.sleep(0.3)  # the workers are forked
        started = descendants(proc.pid)
        assert len(started) >= 3, started  # the kernel and its two curation workers
        os.kill(proc.pid, sig)
        out = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143
        assert "terminated" in out and "Traceback" not in out
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and [p for p in started if _alive(p)]:
        time.sleep(0.2)
    assert not [p for p in started if _alive(p)], "processes of the killed run are left"
    # the rerun resumes: curation completes and the dead run's temporary folder is gone
    from parotidlib.run.pipeline import run_study
    from parotidlib.run.stages import STAGES

    run_study(params, name="killed", reports_dir=reports, stages=STAGES[:1])
    assert (run_dir / "data" / "dataset.json").is_file()
    assert not list(run_dir.glob(".data.tmp-*"))


def test_ctrl_c_prints_one_line(tmp_path, tiny_cohort):
    params = _params(tmp_path, tiny_cohort)
    proc = subprocess.Popen(
        [sys.executable, "-m", "parotidlib", "run", "--params", str(params), "--reports-dir",
         str(tmp_path / "r"), "--name", "int"],
        cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (tmp_path / "r" / "int" / ".stages").exists():
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = err.decode()
    assert proc.returncode == 130
    assert "interrupted" in err and "rerun the same command" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("epochs: 3\nlr: 1.0e-3\nepochs: 4\n", "'epochs' appears twice"),
])
def test_empty_or_duplicated_params_are_refused_before_any_folder_is_made(
        tmp_path, capsys, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    reports = tmp_path / "reports"
    assert main(["run", "--params", str(path), "--reports-dir", str(reports)]) == 2
    assert message in capsys.readouterr().err
    assert not reports.exists()


def test_a_missing_cohort_leaves_no_run_folder(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(f"cohort_manifest: {tmp_path / 'nowhere' / 'manifest.csv'}\n")
    reports = tmp_path / "reports"
    assert main(["run", "--params", str(path), "--reports-dir", str(reports)]) == 1
    assert "cohort_manifest" in capsys.readouterr().err
    assert not reports.exists()


def test_reports_dir_from_the_environment(monkeypatch, tmp_path):
    from parotidlib.paths import REPORTS_DIR, reports_dir

    monkeypatch.delenv("PAROTIDLIB_REPORTS_DIR", raising=False)
    assert reports_dir() == REPORTS_DIR
    monkeypatch.setenv("PAROTIDLIB_REPORTS_DIR", str(tmp_path))
    assert reports_dir() == tmp_path


def test_the_console_names_the_profile_and_its_duration_class(capsys, tmp_path):
    from parotidlib.params import load_params
    from parotidlib.run.estimate import describe_profile, duration_class

    assert duration_class(load_params(ROOT / "params" / "default.yaml")) == "CPU minutes"
    paper = load_params(ROOT / "params" / "paper.yaml")
    assert duration_class(paper) == "GPU hours (days on a CPU)"
    line = describe_profile(paper, "params/paper.yaml")
    assert "paper.yaml" in line and "1200 epochs at 224 px" in line


def test_notebooks_run_by_hand_say_what_to_run_first(tmp_path):
    import papermill as pm

    out = tmp_path / "20-train.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(ROOT / "notebooks" / "20-train.ipynb"), str(out),
                            parameters={"run_dir": str(tmp_path / "empty")},
                            kernel_name="python3", progress_bar=False)
    assert "10-curate.ipynb" in err.value.evalue


def test_run_is_synthetic_refuses_to_guess(tmp_path):
    from parotidlib.data.sources import run_is_synthetic

    with pytest.raises(FileNotFoundError, match="10-curate"):
        run_is_synthetic(tmp_path)


def test_a_manifest_side_that_contradicts_the_label_maps_stops_the_run(
        tmp_path, tiny_cohort, capsys):
    import shutil

    import pandas as pd

    cohort = tmp_path / "cohort"
    shutil.copytree(Path(tiny_cohort).parent, cohort)
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    row = manifest.index[manifest["tumor_side"].isin(["left", "right"])][0]
    pid, side = manifest.at[row, "patient_id"], manifest.at[row, "tumor_side"]
    manifest.at[row, "tumor_side"] = {"left": "right", "right": "left"}[side]
    manifest.to_csv(cohort / "manifest.csv", index=False)
    params = _params(tmp_path, cohort / "manifest.csv")
    assert main(["run", "--params", str(params), "--reports-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "curate" in err and pid in err and "tumor_side" in err


def test_a_volume_replaced_behind_a_padded_manifest_path_is_recurated(tmp_path, tiny_cohort):
    import shutil

    import pandas as pd

    from parotidlib.run.pipeline import run_study
    from parotidlib.run.stages import STAGES

    cohort = tmp_path / "cohort"
    shutil.copytree(Path(tiny_cohort).parent, cohort)
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    manifest["t1"] = manifest["t1"] + "  "  # as a spreadsheet may leave it
    manifest.to_csv(cohort / "manifest.csv", index=False)
    params = _params(tmp_path, cohort / "manifest.csv")
    run = dict(name="padded", reports_dir=tmp_path / "r", stages=STAGES[:1])
    run_study(params, **run)
    assert run_study(params, **run).skipped == ["curate"]
    import nibabel as nib
    import numpy as np

    path = cohort / manifest["t1"].str.strip()[0]
    image = nib.load(path)  # the volume replaced by another with the same grid, same path
    data = np.asanyarray(image.dataobj)
    nib.save(nib.Nifti1Image((data // 2).astype(data.dtype), image.affine, image.header), path)
    assert run_study(params, **run).skipped == []
