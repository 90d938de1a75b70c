"""Batches of runs (run/batch.py): grids, member names, executor settings, members whose
process dies."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from parotidlib import params as P
from parotidlib.config import BatchConfig, ParamsError
from parotidlib.run import batch as B
from parotidlib.run.batch import _submitit_parameters, expand_grid, member_name

ROOT = Path(__file__).resolve().parents[2]


def test_member_names():
    assert member_name({"channels": ["t1", "t2"], "seed": 0}) == "t1+t2__seed0"
    assert member_name({"fold": 2, "seed": 1}) == "fold2__seed1"
    assert member_name({"lr": 0.001, "model_widths": [8, 16]}) == "lr=0.001__model_widths=8+16"
    assert member_name({"optimizer": "a/b c"}) == "optimizer=a_b_c"
    assert member_name({}) == "base"


def test_expand_grid_is_the_cartesian_product_in_key_order():
    members = expand_grid({"fold": [0, 1, 2], "seed": [0, 1]})
    assert [m.name for m in members] == ["fold0__seed0", "fold0__seed1", "fold1__seed0",
                                         "fold1__seed1", "fold2__seed0", "fold2__seed1"]
    assert members[3].overrides == {"fold": 1, "seed": 1}
    with pytest.raises(ValueError, match="same folder name"):
        expand_grid({"optimizer": ["a/b", "a_b"]})


def test_batch_params_are_validated():
    resolved = P.resolve({"grid": {"lr": [1e-3, 3e-4]}, "executor": "slurm",
                          "cluster": {"partition": "gpu", "time_min": 90, "mem_gb": 32}})
    assert resolved["grid"] == {"lr": [1e-3, 3e-4]}
    for bad, match in (({"grid": {"sed": [0]}}, "not a params key"),
                       ({"grid": {"seed": []}}, "non-empty list"),
                       ({"grid": {"jobs": [1, 2]}}, "not a params key"),
                       ({"executor": "pbs"}, "executor"),
                       ({"cluster": {"partition": "gpu", "nodes": 2}}, "unknown cluster"),
                       ({"cluster": {"time_min": 0}}, "cluster.time_min"),
                       ({"cluster": {"mem_gb": -1}}, "cluster.mem_gb")):
        with pytest.raises(ParamsError, match=match):
            P.resolve(bad)


def test_cluster_section_maps_to_submitit_parameters():
    batch = BatchConfig(executor="slurm", cluster={
        "partition": "gpu", "time_min": 120, "gpus_per_member": 1, "cpus_per_member": 8,
        "mem_gb": 32, "account": "radiology", "array_parallelism": 10,
        "setup": ["module load cuda"]})
    out = _submitit_parameters(batch)
    assert out == {"timeout_min": 120, "gpus_per_node": 1, "cpus_per_task": 8, "nodes": 1,
                   "tasks_per_node": 1, "mem_gb": 32.0, "slurm_partition": "gpu",
                   "slurm_account": "radiology", "slurm_array_parallelism": 10,
                   "slurm_setup": ["module load cuda"]}



def test_cluster_section_gives_the_sbatch_script(monkeypatch, tmp_path):
    """The sbatch script submitit would submit (no cluster here: srun is faked present)."""
    import submitit
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    batch = BatchConfig(executor="slurm", cluster={
        "partition": "gpu", "time_min": 120, "gpus_per_member": 1, "cpus_per_member": 8,
        "mem_gb": 32, "account": "radiology", "setup": ["module load cuda"]})
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(**_submitit_parameters(batch))
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=120", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB",
                 "#SBATCH --account=radiology", "module load cuda"):
        assert line in script, line


# ------------------------------------------------------------------ a member's process dies

#: The real member, as the members' spawned processes import it (this module is imported
#: there to unpickle the function below, with the batch module unpatched).
_MEMBER = B._run_member_safely


def _member_that_dies(task):
    """A member as run in its own process: ``seed1`` kills its process (as kill -9, or the
    out-of-memory killer, would); the others run for real."""
    if task["name"] == "seed1":
        os.kill(os.getpid(), signal.SIGKILL)
    return _MEMBER(task)


def _quick_member(task):
    """A member that only reports its process id (for :func:`_run_local` alone)."""
    if task["name"] == "seed1":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)  # still running when its sibling dies
    return {"status": "done", "pid": os.getpid()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")
def test_a_member_process_killed_fails_alone_in_the_local_pool(monkeypatch):
    """Issue 21 item 9, the executor alone: with two at once, the member whose process is
    killed (SIGKILL) is a failed result naming the signal; the other, running beside it,
    and the one started after it finish, each in a process of its own."""
    monkeypatch.setattr(B, "_run_member_safely", _quick_member)
    tasks = [{"name": n} for n in ("seed0", "seed1", "seed2")]
    out = B._run_local(tasks, jobs=2)
    assert [o["status"] for o in out] == ["done", "failed", "done"]
    assert out[0]["pid"] != out[2]["pid"] != os.getpid()
    assert "'seed1'" in out[1]["error"] and "SIGKILL (exit code -9)" in out[1]["error"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")
def test_a_killed_member_fails_alone_and_the_rerun_resubmits_only_it(tmp_path, monkeypatch):
    """Issue 21 item 9: under ``jobs: 2`` one member's process is killed with SIGKILL. The
    other member completes, ``members.json`` records the killed one as failed with its
    ``.err`` naming the signal, and the rerun submits that member only."""
    from parotidlib.synth import generate_cohort

    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(tmp_path / "data"))
    cohort = generate_cohort(tmp_path / "cohort", n_patients=6, seed=4, jobs=1)
    params = tmp_path / "p.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text()
                      .replace('cohort_manifest: ""', f"cohort_manifest: {cohort}")
                      .replace("epochs: 2", "epochs: 1"))
    batch = dict(grid={"seed": [0, 1]}, name="b", executor="local", jobs=2,
                 reports_dir=tmp_path / "reports")
    batch_dir = tmp_path / "reports" / "b"

    monkeypatch.setattr(B, "_run_member_safely", _member_that_dies)
    with pytest.raises(B.BatchError, match=r"1 of 2 member.*seed1 \(see logs/seed1\.err\)"):
        B.run_batch(params, **batch)
    members = json.loads((batch_dir / "members" / "members.json").read_text())
    assert [(m["name"], m["status"]) for m in members] == [("seed0", "done"),
                                                           ("seed1", "failed")]
    assert members[0]["skipped"] == []  # it ran, and completely
    assert (batch_dir / "members" / "seed0" / "metrics.json").is_file()
    assert not (batch_dir / "logs" / "seed0.err").exists()
    err = (batch_dir / "logs" / "seed1.err").read_text()
    assert "'seed1'" in err and "killed by SIGKILL" in err

    monkeypatch.setattr(B, "_run_member_safely", _MEMBER)
    submitted = []
    run_local = B._run_local

    hidden = tmp_path / "hidden"

    def recording(tasks, jobs, **kw):
        """Issue 23 items 3 and 4: once the batch has submitted, the params file is edited
        and the cohort is out of sight (a node that cannot see it): the member runs on the
        params frozen at submission and the data the batch prepared."""
        submitted.extend(t["name"] for t in tasks)
        params.write_text(params.read_text().replace("epochs: 1", "epochs: 3"))
        cohort.parent.rename(hidden)
        try:
            return run_local(tasks, jobs, **kw)
        finally:
            hidden.rename(cohort.parent)

    monkeypatch.setattr(B, "_run_local", recording)
    result = B.run_batch(params, **batch)
    assert submitted == ["seed1"] and result.skipped == ["seed0"]
    assert [m["status"] for m in result.members] == ["done", "done"]
    assert not (batch_dir / "logs" / "seed1.err").exists()
    member = batch_dir / "members" / "seed1"
    assert "epochs: 1\n" in (member / "params.yaml").read_text()
    assert len((member / "model" / "history.csv").read_text().splitlines()) == 1 + 1
    assert json.loads((member / "cohort.json").read_text()) == {
        "manifest": str(cohort), "fingerprint": json.loads(
            (batch_dir / "cohort.json").read_text())["fingerprint"], "synthetic": True}
    assert json.loads((member / "metrics.json").read_text())["synthetic"] is True
