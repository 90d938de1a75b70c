"""Batches on a real SLURM cluster (``--executor slurm``): slurmctld and slurmd on this machine,
started by ``bash .ci/slurm start`` (.ci/run does it before ``make test``). Without ``sinfo``,
or with the cluster down, every test here skips with the reason.

What a cluster does to a batch (issue 23): the smoke cross-validation on SLURM equals
submitit's local executor byte for byte, with the params file edited and the cohort out of
sight once the members are submitted; members cancelled while pending and while running end
as cancelled members whose ``.err`` says so, and the batch returns; a member stuck PENDING for
a reason that never resolves fails with the reason; SIGTERM of the command cancels its jobs
and leaves none in the queue, and a rerun never submits a member whose job still runs; a
member that reaches its time limit is requeued and resumes from its checkpoint to the
predictions of an uninterrupted run; torch in a job uses the CPUs the job asked for.

Every run uses the smoke profile on a 12-patient cohort (1 epoch, 2 folds); the time-limit
test trains longer on purpose (about 100 s, so that the 2-minute limit's signal comes while
it trains).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from parotidlib.run import batch as B
from parotidlib.run import slurm as S

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slurm


def _cluster_problem() -> str | None:
    """Why the tests cannot run here (None: they can)."""
    if shutil.which("sinfo") is None or shutil.which("srun") is None:
        return ("no SLURM client (sinfo, srun) on this machine; `bash .ci/slurm start` "
                "installs and starts a one-node cluster (root, apt)")
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo does not answer ({exc}); start the cluster: bash .ci/slurm start"
    if out.returncode != 0:
        return (f"the SLURM cluster is down (sinfo: {out.stderr.strip()[:200]}); "
                f"start it: bash .ci/slurm start")
    if not any(s.strip().rstrip("*") in ("idle", "mixed", "allocated")
               for s in out.stdout.splitlines()):
        return f"no SLURM node is up (sinfo: {out.stdout.strip()!r})"
    return None


def _squeue(job_ids) -> dict[str, dict[str, str]]:
    return S.read_squeue({j.split("_")[0] for j in job_ids}) or {}


def _active(job_ids) -> list[str]:
    queue = _squeue(job_ids)
    return sorted(j for j in job_ids
                  if queue.get(j, {}).get("state", "").split(" ")[0] in S.ACTIVE_STATES)


def _wait_for(what, predicate, timeout_s=180.0, every_s=0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The cluster (or a skip), a 12-patient cohort, the smoke params (1 epoch) on it, and
    one reports folder for every batch here (curation runs once and is reused)."""
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    from parotidlib.synth import generate_cohort

    base = tmp_path_factory.mktemp("slurm")
    mp = pytest.MonkeyPatch()
    mp.setenv("PAROTIDLIB_DATA_DIR", str(base / "data"))
    mp.setattr(B, "POLL_S", 1.0)
    mp.setattr(B, "GRACE_S", 10.0)
    cohort = generate_cohort(base / "cohort", n_patients=12, seed=0, jobs=1)
    params = base / "smoke.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text()
                      .replace('cohort_manifest: ""', f"cohort_manifest: {cohort}")
                      .replace("epochs: 2", "epochs: 1"))
    cpus = max(int(n["cpus"]) for n in S.read_sinfo_nodes() or [{"cpus": "1"}])
    try:
        yield dict(base=base, reports=base / "reports", params=params, cohort=Path(cohort),
                   cpus=cpus)
    finally:
        mp.undo()


def _cli(kit, *args, name):
    """The batch command as a user types it, started in its own process."""
    grid = kit["base"] / "seeds.yaml"
    grid.write_text("seed: [0, 1]\n")
    command = [sys.executable, "-m", "parotidlib", "batch", "--params", str(kit["params"]),
               "--grid", str(grid), "--name", name, "--reports-dir", str(kit["reports"]),
               "--executor", "slurm", *args]
    log = (kit["base"] / f"{name}.log").open("a")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=kit["base"],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


# ------------------------------------------------------------------ results


def test_cv_on_slurm_equals_submitit_local_and_ignores_what_changes_after_submission(
        kit, monkeypatch):
    """One array, both folds; cv_predictions.csv byte-identical to submitit's local executor.
    The members ask for every CPU of the node, so the second fold waits in the queue; once
    submitted, the params file is edited (epochs 1 -> 3) and the cohort is moved out of sight
    (a node that cannot see it): both folds still train 1 epoch on the prepared data."""
    from parotidlib.run.cv import run_cv

    cluster = {"cpus_per_member": kit["cpus"], "time_min": 10}
    common = dict(folds=2, seeds=[0], reports_dir=kit["reports"], cluster=cluster)
    local = run_cv(kit["params"], name="cv_local", executor="submitit-local", **common).parent

    original = kit["params"].read_text()
    hidden = kit["base"] / "hidden"
    seen_at_submission = {}
    real = B._run_submitit

    def after_submission(tasks, batch, logs, on_outcome, on_submitted=None, running=None):
        def submitted(job_ids):
            seen_at_submission.update(_squeue(job_ids.values()))
            kit["params"].write_text(original.replace("epochs: 1", "epochs: 3"))
            kit["cohort"].parent.rename(hidden)
            on_submitted(job_ids)

        try:
            return real(tasks, batch, logs, on_outcome, on_submitted=submitted,
                        running=running)
        finally:
            if hidden.exists():
                hidden.rename(kit["cohort"].parent)
            kit["params"].write_text(original)

    monkeypatch.setattr(B, "_run_submitit", after_submission)
    on_slurm = run_cv(kit["params"], name="cv_slurm", executor="slurm", **common).parent

    assert (on_slurm / "cv_predictions.csv").read_bytes() == \
        (local / "cv_predictions.csv").read_bytes()
    assert (on_slurm / "cv.html").is_file()
    members = json.loads((on_slurm / "folds" / "members.json").read_text())
    ids = [m["job_id"] for m in members]
    assert [m["status"] for m in members] == ["done", "done"]
    assert ids[0].split("_")[0] == ids[1].split("_")[0]  # one array
    assert seen_at_submission[ids[1]]["state"] == "PENDING"  # it started after the edit
    for m in members:
        folder = on_slurm / "folds" / m["run_dir"]
        text = (folder / "params.yaml").read_text()
        assert "epochs: 1\n" in text and f"num_threads: {kit['cpus']}\n" in text
        assert len((folder / "model" / "history.csv").read_text().splitlines()) == 2
        assert json.loads((folder / "cohort.json").read_text())["manifest"] == \
            str(kit["cohort"])
    assert not (kit["base"] / "data").exists()  # no cohort generated in its place
    assert not (on_slurm / "logs" / "submitit" / "%j").exists()  # no empty pattern folder
    assert not (local / "logs" / "submitit" / "%j").exists()


def test_torch_in_a_job_uses_the_cpus_it_asked_for(kit):
    """Issue 23 item 6: a process in a job with cpus_per_member=1 (as a member's notebook
    kernel) runs torch on one thread, whatever this machine has."""
    from submitit.helpers import CommandFunction

    from parotidlib.config import BatchConfig

    batch = BatchConfig(executor="slurm", cluster={"cpus_per_member": 1, "time_min": 5})
    executor = B._make_executor(batch, kit["base"] / "probe")
    probe = CommandFunction([sys.executable, "-c", "import parotidlib, torch, os; "
                             "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"])
    assert executor.submit(probe).result().split() == ["1", "1"]


# ------------------------------------------------------------------ what clusters do


def test_members_cancelled_pending_and_running_end_as_cancelled(kit):
    """Issue 23 items 1 and 6: three members, one at a time (each asks for every CPU). The
    running one and a pending one are cancelled with scancel: both end as cancelled members
    whose .err says so (the state from SLURM, not a dead kernel), the third finishes, and the
    batch returns."""
    started = {}

    def cancel_two():
        jobs = B._read_jobs(kit["reports"] / "cancel" / "logs")
        ids = [jobs[f"seed{i}"]["job_id"] for i in range(3)]
        started["ids"] = ids
        _wait_for("the first member to run",
                  lambda: _squeue(ids).get(ids[0], {}).get("state") == "RUNNING")
        time.sleep(3)  # into its training
        subprocess.run(["scancel", ids[2]], check=True)
        subprocess.run(["scancel", ids[0]], check=True)

    jobs_file = kit["reports"] / "cancel" / "logs" / B.JOBS_FILE
    canceller = threading.Thread(target=lambda: (
        _wait_for("the jobs file", jobs_file.is_file), cancel_two()))
    canceller.start()
    try:
        with pytest.raises(B.BatchError, match=r"2 of 3 member"):
            B.run_batch(kit["params"], {"seed": [0, 1, 2]}, name="cancel", executor="slurm",
                        cluster={"cpus_per_member": kit["cpus"], "time_min": 10},
                        reports_dir=kit["reports"])
    finally:
        canceller.join()
    batch = kit["reports"] / "cancel"
    members = json.loads((batch / "members" / "members.json").read_text())
    assert [m["status"] for m in members] == ["cancelled", "done", "cancelled"]
    running = (batch / "logs" / "seed0.err").read_text()
    head = running.split("--- the job's stderr")[0]
    # the member's own account when it returned one (SIGTERM while a stage ran), else the
    # liveness rule's: either way SLURM's state and slurmstepd's line, no dead kernel
    assert re.match(rf"job {started['ids'][0]} (of batch member 'seed0' )?was cancelled", head)
    assert "CANCELLED)" in head and "CANCELLED AT" in head
    assert "DeadKernelError" not in head
    pending = (batch / "logs" / "seed2.err").read_text()
    assert f"job {started['ids'][2]} left the queue while PENDING" in pending
    assert "cancelled while pending" in pending
    assert not _active([started["ids"][0], started["ids"][2]])


def test_a_member_pending_for_a_reason_that_never_resolves_fails_with_it(kit):
    """Issue 23 item 1: 5 minutes asked of a partition whose limit is 1 minute stays PENDING
    for ever (SLURM says PartitionTimeLimit, or PartitionConfig): the batch cancels it and
    names the reason."""
    partitions = subprocess.run(["sinfo", "-h", "-o", "%P %l"], capture_output=True,
                                text=True, check=True).stdout.split("\n")
    if "short 1:00" not in [p.strip() for p in partitions]:
        pytest.skip("no partition 'short' with a 1-minute limit (the cluster of .ci/slurm "
                    "has one)")
    started = time.monotonic()
    with pytest.raises(B.BatchError, match=r"1 of 1 member"):
        B.run_batch(kit["params"], {"seed": [0]}, name="stuck", executor="slurm",
                    cluster={"partition": "short", "time_min": 5, "cpus_per_member": 1},
                    reports_dir=kit["reports"])
    assert time.monotonic() - started < 60
    err = (kit["reports"] / "stuck" / "logs" / "seed0.err").read_text()
    assert re.search(r"PENDING with the reason '(PartitionTimeLimit|PartitionConfig)'", err)
    assert "The batch cancelled it" in err
    job = json.loads((kit["reports"] / "stuck" / "members" / "members.json").read_text())[0]
    assert not _active([job["job_id"]])


def test_sigterm_cancels_the_jobs_and_a_rerun_never_submits_a_member_still_queued(kit):
    """Issue 23 item 2. The command is killed outright (SIGKILL: a lost login session) while
    its two members are queued and running; the rerun finds both jobs in the queue and waits
    for them instead of submitting them again. SIGTERM of the rerun cancels both, waits for
    them to leave the queue, records them as cancelled and says so; no job is left."""
    args = ("--cpus-per-member", str(kit["cpus"]), "--time-min", "10")
    logs = kit["reports"] / "sig" / "logs"
    first = _cli(kit, *args, name="sig")
    try:
        jobs = _wait_for("the jobs file", lambda: B._read_jobs(logs))
        ids = [jobs["seed0"]["job_id"], jobs["seed1"]["job_id"]]
        _wait_for("the first member to run",
                  lambda: _squeue(ids).get(ids[0], {}).get("state") == "RUNNING")
    finally:
        first.kill()
        first.wait()
    assert _active(ids) == sorted(ids)  # the jobs outlive their command

    again = _cli(kit, *args, name="sig")
    try:
        log = kit["base"] / "sig.log"
        _wait_for("the rerun to find the jobs", lambda: log.read_text().count(
            "from an earlier submission is still in the queue; not submitted again") == 2)
        assert B._read_jobs(logs) == jobs  # nothing submitted
        time.sleep(1)
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=180) == 128 + signal.SIGTERM
    finally:
        if again.poll() is None:
            again.kill()
    text = log.read_text()
    assert (f"terminated: cancelled 2 job(s) of the batch ({', '.join(sorted(ids))}); all "
            f"have left the queue; recorded as cancelled") in text
    assert not _active(ids)
    members = json.loads((kit["reports"] / "sig" / "members" / "members.json").read_text())
    assert [m["status"] for m in members] == ["cancelled", "cancelled"]
    err = (logs / "seed0.err").read_text()
    assert "was cancelled by the batch command itself on SIGTERM" in err


#: Training's share of the time-limit member, in seconds (two trainings at once: the member
#: and its reference): longer than the 75 s after which SLURM's signal comes at the latest
#: (45 s before the 2-minute limit, or up to 30 s earlier), so that it comes while training,
#: with room for a machine that runs twice as fast as when the epochs were timed (a load
#: that ends meanwhile: at 100 s the training once finished before the signal). Timed over
#: 60 epochs, so that the setup of a training counts little, and capped at 30000 epochs only
#: (a cap of 3000 cut a quiet machine's training short of the signal).
TRAIN_S = 160

#: Seconds an epoch takes, from a short training (the member's own code and data); run twice
#: at once, as the member and its reference will run.
CALIBRATE = """
import sys, time
from parotidlib.config import TrainConfig, section
from parotidlib.data.dataset import load_dataset
from parotidlib.learn.train import train_model
from parotidlib.params import load_params
params = load_params(sys.argv[1], {"epochs": 60, "num_threads": 1})
data = load_dataset(sys.argv[2], channels=params["channels"])
rows = data.indices("train")
start = time.perf_counter()
train_model(data.images[rows], data.labels[rows], data.slices["patient_id"].to_numpy()[rows],
            section(params, TrainConfig), sys.argv[3], channels=data.channels, progress=False)
print((time.perf_counter() - start) / 60)
"""


def _epochs_for(seconds: float, params: Path, kit) -> int:
    from parotidlib.run.pipeline import run_study
    from parotidlib.run.stages import STAGES

    data = run_study(params, name="curated", reports_dir=kit["reports"],
                     stages=STAGES[:1]).run_dir / "data"
    runs = [subprocess.Popen([sys.executable, "-c", CALIBRATE, str(params), str(data),
                              str(kit["base"] / f"calibrate{i}")], stdout=subprocess.PIPE,
                             text=True) for i in range(2)]
    per_epoch = max(float(r.communicate(timeout=120)[0].split()[-1]) for r in runs)
    return max(100, min(30000, int(seconds / per_epoch)))


def test_a_time_limit_requeues_the_member_and_it_resumes_to_the_same_predictions(kit):
    """Issue 23 item 5: training of about 160 s under a 2-minute limit, SIGUSR2 45 s before
    it: the job checkpoints, is requeued and resumes training from its last checkpoint (once,
    or more on a loaded machine); its predictions equal those of the same member run without
    a limit (beside it, on the node's other CPU)."""
    long = kit["base"] / "long.yaml"
    # batches of 2: epochs of some weight, so that few of them (a few hundred) fill the time
    text = (kit["params"].read_text().replace("checkpoint_every: 1", "checkpoint_every: 10")
            .replace("lr_decay_every: 1", "lr_decay_every: 100")
            .replace("batch_size: 16", "batch_size: 2")
            .replace("model_widths: [8, 16]", "model_widths: [16, 32]") + "radiomics: false\n")
    long.write_text(text)
    epochs = _epochs_for(TRAIN_S, long, kit)
    long.write_text(text.replace("epochs: 1", f"epochs: {epochs}"))
    grid = kit["base"] / "one.yaml"
    grid.write_text("seed: [0]\n")
    reference = subprocess.Popen(
        [sys.executable, "-m", "parotidlib", "batch", "--params", str(long), "--grid",
         str(grid), "--name", "uninterrupted", "--reports-dir", str(kit["reports"]),
         "--executor", "slurm", "--cpus-per-member", "1", "--time-min", "20"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = B.run_batch(long, {"seed": [0]}, name="limited", executor="slurm",
                             cluster={"cpus_per_member": 1, "time_min": 2,
                                      "signal_delay_s": 45, "max_requeues": 5},
                             reports_dir=kit["reports"])
        assert reference.wait(timeout=600) == 0
    finally:
        if reference.poll() is None:
            reference.kill()
    member = result.members[0]
    assert member["status"] == "done"
    job_id = member["job_id"]
    out = (kit["reports"] / "limited" / "logs" / "submitit" / job_id /
           f"{job_id}_0_log.out").read_text()
    assert out.count("Starting with JobEnvironment") >= 2  # it ran again after the limit
    limited = kit["reports"] / "limited" / "members" / "seed0"
    train = json.loads((limited / ".stages" / "train.json").read_text())
    assert train["complete"] and train["resumed"]  # training resumed from a checkpoint
    assert (limited / "predictions.csv").read_bytes() == (
        kit["reports"] / "uninterrupted" / "members" / "seed0" / "predictions.csv").read_bytes()
    assert len((limited / "model" / "history.csv").read_text().splitlines()) == epochs + 1
