"""The batch's SLURM rules without a cluster (run/slurm.py, run/batch.py): the liveness rule
over faked squeue and sacct answers, the wait loop that collects outcomes as jobs end,
cancellation on SIGTERM, reruns that find their jobs still queued, the check of paths the
nodes must see, and the sbatch settings. Fast: no job runs."""

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from parotidlib.config import BatchConfig
from parotidlib.run import batch as B
from parotidlib.run import slurm as S
from parotidlib.run.slurm import Seen, verdict

# ------------------------------------------------------------------ the liveness rule


def test_queued_and_running_jobs_are_alive():
    for state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "SUSPENDED"):
        assert verdict("7_0", Seen(state, "Resources")).kind == "alive", state
    assert verdict("7_0", Seen("PENDING", "BeginTime")).kind == "alive"  # requeued, waiting
    assert verdict("7_0", Seen("PENDING", "ReqNodeNotAvail")).kind == "alive"  # nodes may return
    # sacct can lag behind a job that squeue no longer lists
    assert verdict("7_0", Seen(None, "", "RUNNING")).kind == "alive"


@pytest.mark.parametrize("reason", ["PartitionTimeLimit", "PartitionConfig", "InvalidAccount",
                                    "DependencyNeverSatisfied", "PartitionNodeLimit"])
def test_pending_for_a_reason_that_never_resolves_is_stuck(reason):
    v = verdict("7_1", Seen("PENDING", reason))
    assert v.kind == "stuck" and reason in v.message and "7_1" in v.message


def test_pending_for_nodes_larger_than_any_is_stuck():
    nodes = S.parse_sinfo_nodes("localhost|127.0.0.1|2|21000|debug*\n"
                                "localhost|127.0.0.1|2|21000|short\n")
    assert S.impossible_request("debug", "4", "1G", nodes)  # more CPUs than the node has
    assert S.impossible_request("debug", "1", "30G", nodes)  # more memory
    assert not S.impossible_request("debug", "2", "20000M", nodes)
    assert not S.impossible_request("gpu", "64", "1G", nodes)  # unknown partition: no verdict
    v = verdict("7_1", Seen("PENDING", "ReqNodeNotAvail, UnavailableNodes:", impossible=True))
    assert v.kind == "stuck" and "more CPUs or memory than any node" in v.message


def test_ended_jobs_say_their_state_and_who_cancelled():
    v = verdict("7_0", Seen("CANCELLED", "None"))
    assert (v.kind, v.state, v.cancelled) == ("ended", "CANCELLED", True)
    assert "was cancelled" in v.message and "state from squeue: CANCELLED" in v.message
    v = verdict("7_0", Seen(None, "", "CANCELLED by 0"))  # accounting names the user
    assert v.cancelled and "state from sacct: CANCELLED by root (uid 0)" in v.message
    v = verdict("7_0", Seen("TIMEOUT", "TimeLimit"))
    assert not v.cancelled and "hit its time limit" in v.message and "TimeLimit" in v.message
    assert "ran out of memory" in verdict("7_0", Seen(None, "", "OUT_OF_MEMORY")).message
    assert verdict("7_0", Seen("NODE_FAIL", "")).kind == "ended"


def test_a_job_that_vanishes_while_pending_was_cancelled_before_it_ran():
    """An array task cancelled while PENDING leaves squeue at once and never reaches sacct
    (or the cluster keeps no accounting): its last sighting tells."""
    v = verdict("7_1", Seen(None), last=Seen("PENDING", "Resources"))
    assert (v.kind, v.state, v.cancelled) == ("absent", "CANCELLED", True)
    assert "left the queue while PENDING" in v.message and "Resources" in v.message
    v = verdict("7_0", Seen(None), last=Seen("RUNNING", "None"))
    assert v.kind == "absent" and not v.cancelled and "last seen RUNNING" in v.message
    assert "never seen" in verdict("7_0", Seen(None)).message


def test_squeue_sacct_and_sinfo_answers_are_parsed():
    queue = S.parse_squeue("12_0|RUNNING|None|debug|1|500M|/r/logs/submitit/12/x.sh\n"
                           "12_1|PENDING|Resources|debug|1|500M|/r/logs/submitit/12/x.sh\n\n")
    assert queue["12_1"] == {"state": "PENDING", "reason": "Resources", "partition": "debug",
                             "cpus": "1", "memory": "500M",
                             "command": "/r/logs/submitit/12/x.sh"}
    acct = S.parse_sacct("12_0|COMPLETED\n12_0.batch|COMPLETED\n12_1|CANCELLED by 1000\n")
    assert acct == {"12_0": "COMPLETED", "12_1": "CANCELLED by 1000"}
    assert S.NO_ACCOUNTING.search("sacct: error: Slurm accounting storage is disabled")


def test_stepd_lines_are_found_in_a_jobs_stderr():
    err = ("training ...\nslurmstepd-localhost: error: *** JOB 14 ON localhost CANCELLED AT "
           "2026-01-01T10:00:00 ***\nmore\n")
    assert S.stepd_lines(err) == ["slurmstepd-localhost: error: *** JOB 14 ON localhost "
                                  "CANCELLED AT 2026-01-01T10:00:00 ***"]


# ------------------------------------------------------------------ the wait loop


class FakeJob:
    """A submitit job as the wait loop sees it: an id, a result file, stderr, cancel()."""

    def __init__(self, folder: Path, job_id: str, stderr: str = "") -> None:
        self.job_id = job_id
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl",
                                     stderr=folder / f"{job_id}.err")
        self._stderr = stderr
        self.cancelled = 0

    def stderr(self):
        return self._stderr

    def cancel(self, check=True):
        self.cancelled += 1

    def finish(self, outcome):
        from submitit.core.utils import cloudpickle_dump

        cloudpickle_dump(("success", outcome), self.paths.result_pickle)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(B, "POLL_S", 0.0)
    monkeypatch.setattr(B, "GRACE_S", 0.0)
    monkeypatch.setattr(B, "CANCEL_WAIT_S", 5.0)


def _queue(monkeypatch, answers, acct=None):
    """Fake squeue: one answer (job id -> (state, reason)) per call, the last repeated; fake
    sacct: ``acct`` (None: a cluster without accounting)."""
    calls = []

    def squeue(array_ids):
        answer = answers[min(len(calls), len(answers) - 1)]
        calls.append(sorted(set(array_ids)))
        return {j: {"state": st, "reason": r, "partition": "debug", "cpus": "1",
                    "memory": "1G", "command": "x"} for j, (st, r) in answer.items()}

    monkeypatch.setattr(S, "read_squeue", squeue)
    monkeypatch.setattr(S, "read_sacct", lambda ids: None if acct is None
                        else {j: acct[j] for j in ids if j in acct})
    return calls


def _wait(jobs, stop=None):
    outcomes = {}
    tasks = {name: {"name": name} for name in jobs}
    B._wait(dict(jobs), tasks, True, lambda t, o: outcomes.__setitem__(t["name"], o),
            stop or {"signum": None})
    return outcomes


def test_outcomes_come_as_jobs_end_and_the_lost_ones_are_named(tmp_path, monkeypatch, fast):
    """Issue 23 item 1: a job cancelled while PENDING (absent from squeue, no accounting),
    one stuck PENDING on a partition limit, one that ran and vanished, one with a result:
    every member gets an outcome and the wait returns."""
    done, gone, stuck, lost = (FakeJob(tmp_path, f"9_{i}", stderr="the job's own stderr\n")
                               for i in range(4))
    done.finish({"status": "done", "timing_s": {}})
    _queue(monkeypatch, [{"9_1": ("PENDING", "Resources"), "9_2": ("PENDING",
                                                                   "PartitionTimeLimit"),
                          "9_3": ("RUNNING", "None")}, {}])
    out = _wait({"a": done, "b": gone, "c": stuck, "d": lost})
    assert out["a"] == {"status": "done", "timing_s": {}}
    assert out["b"]["status"] == "cancelled" and "left the queue while PENDING" in out["b"][
        "error"]
    assert out["c"]["status"] == "failed" and "PartitionTimeLimit" in out["c"]["error"]
    assert stuck.cancelled == 1  # the batch cancels what can never start
    assert out["d"]["status"] == "failed" and "last seen RUNNING" in out["d"]["error"]
    # the job's stderr once (issue 23 item 6), with its path
    assert out["d"]["error"].count("the job's own stderr") == 1
    assert str(lost.paths.stderr) in out["d"]["error"]


def test_a_cancelled_running_job_says_cancelled_by_whom_not_a_dead_kernel(tmp_path,
                                                                        monkeypatch, fast):
    err = ("papermill ...\nslurmstepd-localhost: error: *** JOB 15 ON localhost CANCELLED AT "
           "2026-01-01T10:00:00 ***\n")
    job = FakeJob(tmp_path, "9_0", stderr=err)
    _queue(monkeypatch, [{"9_0": ("RUNNING", "None")}, {}], acct={"9_0": "CANCELLED by 0"})
    out = _wait({"a": job})["a"]
    assert out["status"] == "cancelled"
    assert "CANCELLED by root (uid 0)" in out["error"]
    assert out["error"].startswith("job 9_0 was cancelled")
    assert "SLURM: slurmstepd-localhost: error: *** JOB 15 ON localhost CANCELLED" in out[
        "error"]
    assert "DeadKernelError" not in out["error"]


def test_an_ended_job_gets_the_grace_period_to_show_its_result(tmp_path, monkeypatch, fast):
    """A job listed COMPLETED whose result file appears late (a shared file system) is done,
    not failed."""
    monkeypatch.setattr(B, "GRACE_S", 3600.0)
    job = FakeJob(tmp_path, "9_0")
    calls = []

    def squeue(ids):
        calls.append(1)
        if len(calls) == 3:
            job.finish({"status": "done"})
        return {"9_0": {"state": "COMPLETED", "reason": "None"}}

    monkeypatch.setattr(S, "read_squeue", squeue)
    monkeypatch.setattr(S, "read_sacct", lambda ids: None)
    assert _wait({"a": job}) == {"a": {"status": "done"}}


def test_sigterm_cancels_the_jobs_waits_for_the_queue_and_records_them(tmp_path, monkeypatch,
                                                                      fast):
    """Issue 23 item 2: the flag set by SIGTERM makes the wait cancel every job, wait until
    none is in the queue, record each as cancelled and raise BatchInterrupted saying so."""
    jobs = {"a": FakeJob(tmp_path, "9_0"), "b": FakeJob(tmp_path, "9_1")}
    calls = _queue(monkeypatch, [{"9_0": ("RUNNING", "None"), "9_1": ("PENDING", "Resources")},
                                 {"9_0": ("COMPLETING", "None")}, {}])
    outcomes = {}
    with pytest.raises(B.BatchInterrupted, match=r"terminated: cancelled 2 job\(s\) of the "
                       r"batch \(9_0, 9_1\); all have left the queue") as info:
        B._wait(jobs, {n: {"name": n} for n in jobs}, True,
                lambda t, o: outcomes.__setitem__(t["name"], o),
                {"signum": signal.SIGTERM})
    assert info.value.signum == signal.SIGTERM
    assert all(j.cancelled == 1 for j in jobs.values())
    assert len(calls) >= 3  # it waited for the queue to empty
    assert outcomes["a"]["status"] == outcomes["b"]["status"] == "cancelled"
    assert "(it was RUNNING) was cancelled by the batch command itself on SIGTERM" in \
        outcomes["a"]["error"]


def test_a_rerun_waits_for_members_whose_job_is_still_queued(tmp_path, monkeypatch):
    """Issue 23 item 2: jobs.json names the earlier jobs; those squeue lists as queued or
    running (with their script in this batch's logs) are not submitted again."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / B.JOBS_FILE).write_text(json.dumps({"a": {"job_id": "9_0"}, "b": {"job_id": "9_1"},
                                                "c": {"job_id": "9_2"}, "d": {"job_id": "3"}}))
    script = f"{logs}/submitit/9/9_submission.sh"
    monkeypatch.setattr(S, "read_squeue", lambda ids: {
        "9_0": {"state": "RUNNING", "reason": "None", "command": script},
        "9_1": {"state": "CANCELLED", "reason": "None", "command": script},
        "9_2": {"state": "PENDING", "reason": "Resources", "command": script},
        "3": {"state": "RUNNING", "reason": "None", "command": "/elsewhere/job.sh"}})
    tasks = [{"name": n} for n in ("a", "b", "c", "d", "e")]
    assert B._still_queued(tasks, logs) == {"a": "9_0", "c": "9_2"}
    monkeypatch.setattr(S, "read_squeue", lambda ids: None)
    with pytest.raises(B.BatchError, match="squeue failed"):
        B._still_queued(tasks, logs)


# ------------------------------------------------------------------ submission


def test_paths_the_nodes_may_not_see_are_refused_unless_the_node_is_this_machine(
        monkeypatch, tmp_path):
    """Issue 23 item 7: relative paths and paths under /tmp are named; on a cluster whose
    nodes are other machines the batch refuses to submit, on a one-machine cluster it goes
    on."""
    problems = S.unshared_paths({"the batch folder": "/tmp/r/b", "the venv": ".venv/bin/python",
                                 "the code": "/home/u/kit", "scratch": "/dev/shm/x"})
    assert problems[0].startswith("the batch folder: /tmp/r/b (under /tmp")
    assert problems[1].startswith("the venv: .venv/bin/python (a relative path")
    assert problems[2].startswith("scratch: /dev/shm/x") and len(problems) == 3
    batch = BatchConfig(executor="slurm", cluster={"partition": "gpu"})
    paths = {"the batch folder (members, logs, curated data)": "/tmp/r/b"}
    monkeypatch.setattr(S, "read_sinfo_nodes", lambda: S.parse_sinfo_nodes(
        "node01|10.0.0.1|64|256000|gpu\nnode02|10.0.0.2|64|256000|gpu\n"))
    with pytest.raises(B.BatchError, match=r"not submitting: .* nodes may not see: the batch "
                       r"folder \(members, logs, curated data\): /tmp/r/b"):
        B._check_shared(batch, paths)
    monkeypatch.setattr(S, "read_sinfo_nodes", lambda: S.parse_sinfo_nodes(
        "localhost|127.0.0.1|2|20000|gpu\n"))
    B._check_shared(batch, paths)  # one machine: /tmp is shared with itself
    B._check_shared(batch, {"the code": "/home/u/kit"})  # nothing to check


def test_no_gpus_no_gpu_flag_and_the_signal_delay(monkeypatch, tmp_path):
    """Issue 23 item 6: --gpus-per-node only when GPUs are asked for; signal_delay_s and
    max_requeues reach submitit; threads follow cpus_per_member (default 2)."""
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    batch = BatchConfig(executor="slurm", cluster={"time_min": 2, "signal_delay_s": 30,
                                                   "max_requeues": 5})
    executor = B._make_executor(batch, tmp_path / "logs")
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    assert "--gpus" not in script and "#SBATCH --signal=USR2@30" in script
    assert "#SBATCH --cpus-per-task=2" in script and "#SBATCH --time=2" in script
    assert executor._executor.max_num_timeout == 5
    assert B._cpus_per_member(batch) == 2
    assert B._cpus_per_member(BatchConfig(cluster={"cpus_per_member": 1})) == 1


def test_submitit_local_leaves_no_empty_job_pattern_folder(tmp_path):
    """Issue 23 item 6: the literal ``%j`` folder submitit makes is removed."""
    batch = BatchConfig(executor="submitit-local")
    job = B._make_executor(batch, tmp_path / "logs").submit(abs, -1)
    assert job.result() == 1
    assert (tmp_path / "logs" / "submitit" / "%j").is_dir()  # submitit made it
    B._tidy_logs(tmp_path / "logs")
    assert sorted(p.name for p in (tmp_path / "logs" / "submitit").iterdir()) == [job.job_id]


def test_members_are_checkpointable_and_requeue_the_same_task(monkeypatch):
    """At the time limit the member's kernel is stopped and the same task resubmitted; a
    run of the member that returns after that writes no result (the job runs again)."""
    from submitit.helpers import DelayedSubmission

    import parotidlib.processes

    killed = []
    monkeypatch.setattr(parotidlib.processes, "descendants", lambda pid=None: [4242])
    monkeypatch.setattr(parotidlib.processes, "kill", killed.extend)
    job = B.MemberJob()
    task = {"name": "fold0__seed0"}

    def member(t):
        assert job.checkpoint(t).args == (t,)  # SIGUSR2 while the member runs
        return {"status": "failed", "error": "DeadKernelError\n"}

    monkeypatch.setattr(B, "_run_member_safely", member)
    with pytest.raises(SystemExit):
        job(task)
    assert killed == [4242]  # the kernel
    again = job.checkpoint(task)
    assert isinstance(again, DelayedSubmission) and again.function is job
    assert again.args == (task,)
    monkeypatch.setattr(B, "_run_member_safely", lambda t: {"status": "done"})
    assert job(task) == {"status": "done"}  # the requeued run starts afresh


def test_a_member_whose_job_gets_sigterm_is_cancelled_not_a_dead_kernel(monkeypatch):
    """Issue 23 item 6: SLURM's SIGTERM (scancel) kills the notebook kernel too; the member
    says its job was ended, in which stage, not "DeadKernelError: Kernel died"."""
    import os

    def killed(task):
        os.kill(os.getpid(), signal.SIGTERM)
        return {"status": "failed", "error": (
            "Traceback (most recent call last):\nparotidlib.run.pipeline.StageError: stage "
            "'train' failed; see the executed notebook /r/b/m/20-train.ipynb: "
            "DeadKernelError: Kernel died\n")}

    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *a: None)  # as submitit's bypass
    try:
        monkeypatch.setattr(B, "_run_member_safely", killed)
        out = B.MemberJob()({"name": "seed0"})
    finally:
        signal.signal(signal.SIGTERM, before)
    assert out["status"] == "cancelled"
    assert "received SIGTERM from SLURM" in out["error"]
    assert "while its stage 'train' ran (the executed notebook /r/b/m/20-train.ipynb" in out[
        "error"]
    assert "DeadKernelError" not in out["error"]
    monkeypatch.setattr(B, "_run_member_safely", lambda task: {"status": "failed",
                                                               "error": "ValueError\n"})
    assert B.MemberJob()({"name": "seed0"})["status"] == "failed"  # no signal: its own failure


def test_a_members_own_cancelled_result_is_headed_by_the_slurm_state(tmp_path, monkeypatch,
                                                                     fast):
    job = FakeJob(tmp_path, "9_0", stderr="slurmstepd-localhost: error: *** JOB 15 ON "
                  "localhost CANCELLED AT 2026-01-01T10:00:00 ***\n")
    job.finish({"status": "cancelled", "error": "batch member 'a': its job received SIGTERM\n"})
    _queue(monkeypatch, [{"9_0": ("CANCELLED", "None")}])
    out = _wait({"a": job})["a"]
    assert out["status"] == "cancelled"
    assert out["error"].startswith("job 9_0 of batch member 'a' was cancelled (state from "
                                   "SLURM: CANCELLED)\nSLURM: slurmstepd-localhost: error: "
                                   "*** JOB 15 ON localhost CANCELLED AT")
    assert "its job received SIGTERM" in out["error"]


def test_a_cancelled_result_waits_for_the_job_to_end_completing_is_not_its_state(
        tmp_path, monkeypatch, fast):
    """The member answers SIGTERM before slurmctld has ended the job (squeue: COMPLETING);
    the batch waits for the end state SLURM gives it, then heads the account with it (CI saw
    'state from SLURM: COMPLETING')."""
    monkeypatch.setattr(B, "GRACE_S", 3600.0)
    job = FakeJob(tmp_path, "9_0")
    job.finish({"status": "cancelled", "error": "its job received SIGTERM\n"})
    calls = _queue(monkeypatch, [{"9_0": ("COMPLETING", "None")}, {"9_0": ("COMPLETING",
                                                                           "None")},
                                 {"9_0": ("CANCELLED", "None")}])
    out = _wait({"a": job})["a"]
    assert len(calls) == 3
    assert out["error"].startswith("job 9_0 of batch member 'a' was cancelled (state from "
                                   "SLURM: CANCELLED)")


def test_a_cancelled_result_is_taken_after_the_grace_period_if_the_job_never_ends(
        tmp_path, monkeypatch, fast):
    monkeypatch.setattr(B, "GRACE_S", 0.0)
    job = FakeJob(tmp_path, "9_0")
    job.finish({"status": "cancelled", "error": "its job received SIGTERM\n"})
    _queue(monkeypatch, [{"9_0": ("COMPLETING", "None")}])
    out = _wait({"a": job})["a"]
    assert out["status"] == "cancelled" and "(state from SLURM: COMPLETING)" in out["error"]
