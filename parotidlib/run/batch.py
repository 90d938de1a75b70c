"""Batches of runs: a grid over params, each member its own run folder, on this machine or
on a SLURM cluster (submitit).

A batch (:func:`run_batch`) takes a params profile and a grid (params key -> values: folds,
seeds, channel compositions, learning rates...). Every combination is a *member*, a run
folder ``<batch>/<members_dir>/<member>/`` that trains, evaluates and analyses (notebooks
20-40) with the grid's values as overrides. Curation runs once per distinct curation
(members that differ only in the split, e.g. cross-validation folds, share one; a grid over
``channels`` curates all four and each member selects its own): the curated data are
written by the batch before any member starts, and are read-only to members (a member's
``data`` is a symbolic link to them, or a derived split of them,
:func:`parotidlib.data.curate.resplit_dataset`). So members on different nodes never race:
each writes only into its own folder.

A finished member (every stage stamp complete under the keys its params give,
:func:`parotidlib.run.pipeline.chain_complete`) is not run again, so an interrupted batch
resumes, and a rerun on a cluster resubmits only unfinished or failed members. A failed
member does not stop the others; its traceback goes to ``<batch>/logs/<member>.err`` and
the batch raises :class:`BatchError` naming it, after writing ``members.json``.

Executors (``executor``):

- ``local``: this machine; ``jobs`` members at once, each in a process of its own (one that
  dies, e.g. killed by the out-of-memory killer, is a failed member; the others go on), the
  cores divided between them, and one GPU per member when the machine has several;
- ``slurm``: a job array through submitit (``cluster:`` settings: partition, time limit,
  GPUs, CPUs, memory, account, array parallelism), logs under ``<batch>/logs/submitit``;
- ``submitit-local``: submitit's local executor, the same code path without a cluster (the
  tests run it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parotidlib.config import BatchConfig, CurationConfig, field_names, section
from parotidlib.constants import GLAND_CHANNEL
from parotidlib.io import sha256_json, write_text_atomic
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.run.stages import Stage, batch_stages

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

__all__ = ["BatchError", "BatchInterrupted", "BatchResult", "Member", "MemberJob", "expand_grid",
           "member_name", "run_batch"]

#: Stages every member runs (curation is the batch's).
MEMBER_STAGES: tuple[Stage, ...] = batch_stages("member")
#: Curation settings that only split the patients: members differing in them share data.
SPLIT_KEYS = ("test_fraction", "split_seed", "cv_folds", "fold", "cv_group_by")


class BatchError(RuntimeError):
    """Members of a batch failed; names them and where their tracebacks are."""


@dataclass(frozen=True)
class Member:
    """One combination of a grid: its folder name and the params it overrides."""

    name: str
    overrides: dict[str, Any]


@dataclass
class BatchResult:
    """A finished batch: its folder and one record per member (``members.json``)."""

    batch_dir: Path
    members: list[dict[str, Any]] = field(default_factory=list)
    #: Members that were complete already and not run again.
    skipped: list[str] = field(default_factory=list)


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(map(str, value))
    return str(value)


def member_name(overrides: Mapping[str, Any]) -> str:
    """Folder name of a member: ``t1+t2__seed0``, ``fold2__seed1``, ``lr=0.001__seed0``.

    Channel lists are joined with ``+`` (the ablation's composition names); ``fold`` and
    ``seed`` are written without ``=``; other keys as ``key=value``. Characters outside
    ``[A-Za-z0-9._+=-]`` become ``_``.
    """
    parts = []
    for key, value in overrides.items():
        if key == "channels":
            parts.append(_value_text(value))
        elif key in ("fold", "seed"):
            parts.append(f"{key}{value}")
        else:
            parts.append(f"{key}={_value_text(value)}")
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", "__".join(parts)) or "base"


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[Member]:
    """Every combination of a grid, in the grid's key order (the last key varies fastest).

    Raises
    ------
    ValueError
        Two combinations would get the same folder name.
    """
    keys = list(grid)
    members = [Member(member_name(dict(zip(keys, combo, strict=True))),
                      dict(zip(keys, combo, strict=True)))
               for combo in itertools.product(*(list(grid[k]) for k in keys))]
    names = [m.name for m in members]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"grid {dict(grid)} gives members with the same folder name: "
                         f"{repeated}")
    return members


# --------------------------------------------------------------------------- curation


def _curation_signature(params: Mapping[str, Any]) -> str:
    keys = [k for k in field_names(CurationConfig) if k not in SPLIT_KEYS]
    return sha256_json({k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in params.items() if k in keys + ["cohort_manifest",
                                                                   "synth_patients",
                                                                   "synth_seed"]})[:12]


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        import shutil

        shutil.rmtree(link)  # a derived split, now the shared split itself
    os.symlink(os.path.relpath(target, link.parent), link, target_is_directory=True)


def _prepare_data(member_dir: Path, data_dir: Path, params: Mapping[str, Any]) -> str:
    """Give a member its data (link, or derived split) and return its upstream key part."""
    from parotidlib.data.curate import resplit_dataset

    curated = json.loads((data_dir / "dataset.json").read_text())["config"]
    split = {k: params[k] for k in SPLIT_KEYS}
    if all(curated.get(k) == v for k, v in split.items()):
        _link(member_dir / "data", data_dir)
    else:
        link = member_dir / "data"
        if link.is_symlink():
            link.unlink()
        resplit_dataset(data_dir, link, section(params, CurationConfig))
    return sha256_json(split)


# --------------------------------------------------------------------------- members


def _run_member(task: dict[str, Any]) -> dict[str, Any]:
    """Run one member's stages (in this process, a worker, or a SLURM job)."""
    from parotidlib.run.pipeline import run_study

    if not logging.getLogger().handlers:  # a worker or a job: log like the parent CLI
        logging.basicConfig(level=logging.INFO, datefmt="%H:%M:%S",
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    member_dir = Path(task["member_dir"])
    # The params frozen at submission (the member's params.yaml, overrides applied), and
    # the cohort's record from the batch's curation: nothing is read from the params file
    # the batch was started with, and the cohort is not looked for (the member starts at
    # training, on the curated data the batch prepared).
    result = run_study(task["params_path"], name=member_dir.name, force=task["force"],
                       reports_dir=member_dir.parent, stages=MEMBER_STAGES,
                       notebooks_dir=Path(task["notebooks_dir"]), upstream=task["upstream"],
                       overrides=task.get("overrides"), cohort=task.get("cohort"))
    logger.info("batch member %s: %s", member_dir.name,
                "unchanged, not rerun" if len(result.skipped) == len(MEMBER_STAGES)
                else "done")
    return {"timing_s": result.timing_s, "skipped": result.skipped, "resumed": result.resumed}


def _run_member_safely(task: dict[str, Any]) -> dict[str, Any]:
    """:func:`_run_member`, its failure returned as a traceback instead of raised."""
    try:
        return {"status": "done", **_run_member(task)}
    except Exception:  # one member's failure must not stop the others
        return {"status": "failed", "error": traceback.format_exc()}


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # torch without CUDA support
        return 0


def _member_process(run: Callable[[dict[str, Any]], dict[str, Any]], task: dict[str, Any],
                    conn: Connection, parent_pid: int) -> None:
    """Body of one member's process (local executor): run the member, send back its result.

    The process dies with the batch (:func:`parotidlib.processes.die_with_parent`). A member
    that dies before sending (killed, out of memory) leaves the pipe empty, which the batch
    reads as that member's failure (:func:`_run_local`).
    """
    from parotidlib.processes import die_with_parent

    die_with_parent(parent_pid)
    try:
        conn.send(run(task))
    finally:
        conn.close()


def _death_message(name: str, pid: int | None, exitcode: int | None) -> str:
    """What a member's ``.err`` says when its process ended without a result."""
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
        how += f" (exit code {exitcode})"
        if exitcode == -signal.SIGKILL:
            how += ("; SIGKILL is also what the kernel's out-of-memory killer sends (see "
                    "`dmesg`), so a member that needs more memory than it had dies this way")
    else:
        how = f"exited with code {exitcode}"
    return (f"batch member {name!r}: its process (pid {pid}) {how} before it returned a "
            f"result. The other members were not affected. Rerun the same command to retry "
            f"this member (finished members are kept).\n")


def _stop(proc: BaseProcess) -> None:
    """Kill a member's process and every process it started (notebook kernels run in
    sessions of their own, so they are found by parentage, as the CLI does)."""

    from parotidlib.processes import descendants, kill

    if proc.pid is not None:
        kill([*descendants(proc.pid), proc.pid])
    proc.join()


def _run_local(tasks: list[dict[str, Any]], jobs: int,
               on_outcome: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
               ) -> list[dict[str, Any]]:
    """Run members on this machine, ``jobs`` at once, each in a process of its own.

    One process per member (not a shared pool: in a ``ProcessPoolExecutor`` one worker that
    dies breaks the pool and every member with it). A member whose process dies (killed,
    out of memory) without returning a result becomes a failed member whose error names its
    exit signal or code; the others run on. Members are started with ``spawn`` and die with
    the batch; if the batch itself stops (an exception, Ctrl-C in a notebook), the members
    still running are killed with their processes.

    Parameters
    ----------
    tasks : list of dict
        One task per member (:func:`_run_member`).
    jobs : int
        How many members run at once; 1 runs them one after another in this process.
    on_outcome : callable, optional
        Called with (task, outcome) as each member ends (the batch records it at once).

    Returns
    -------
    list of dict
        One result per task, in the tasks' order, as :func:`_run_member_safely` returns it.
    """
    report = on_outcome or (lambda task, outcome: None)
    if jobs == 1 or len(tasks) <= 1:
        out = []
        for t in tasks:
            out.append(_run_member_safely(t))
            report(t, out[-1])
        return out
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    run = _run_member_safely
    todo = list(range(len(tasks)))
    results: dict[int, dict[str, Any]] = {}
    running: dict[Connection, tuple[int, BaseProcess]] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                i = todo.pop(0)
                reader, writer = context.Pipe(duplex=False)
                proc = context.Process(target=_member_process, name=f"member {tasks[i]['name']}",
                                       args=(run, tasks[i], writer, os.getpid()))
                proc.start()
                writer.close()  # the member holds the only writer: its death reads as EOF
                running[reader] = (i, proc)
            for reader in wait(list(running)):
                i, proc = running.pop(reader)
                try:
                    outcome: dict[str, Any] | None = reader.recv()
                except (EOFError, OSError):  # died before sending, or while sending
                    outcome = None
                finally:
                    reader.close()
                proc.join(60)
                if proc.is_alive():  # sent its result, then hung on its way out
                    logger.warning("batch member %s: its process %d has not exited 60 s after "
                                   "its result; killed", tasks[i]["name"], proc.pid)
                    _stop(proc)
                if outcome is None:
                    outcome = {"status": "failed",
                               "error": _death_message(tasks[i]["name"], proc.pid,
                                                       proc.exitcode)}
                    logger.error("batch member %s: its process %s exited with code %s without "
                                 "a result; the other members go on", tasks[i]["name"],
                                 proc.pid, proc.exitcode)
                results[i] = outcome
                report(tasks[i], outcome)
    finally:
        for reader, (_, proc) in running.items():
            _stop(proc)
            reader.close()
    return [results[i] for i in range(len(tasks))]


def _cpus_per_member(batch: BatchConfig) -> int:
    """CPUs a SLURM member asks for (``cluster.cpus_per_member``, default 2); its torch
    thread count follows it."""
    return int(batch.cluster.get("cpus_per_member", 2))


def _submitit_parameters(batch: BatchConfig) -> dict[str, Any]:
    """BatchConfig.cluster in submitit's AutoExecutor names (slurm_* apply to SLURM only)."""
    c = batch.cluster
    out: dict[str, Any] = {"timeout_min": int(c.get("time_min", 60)),
                           "cpus_per_task": _cpus_per_member(batch),
                           "nodes": 1, "tasks_per_node": 1}
    if int(c.get("gpus_per_member", 0)) > 0:  # no --gpus-per-node=0 on clusters without GPUs
        out["gpus_per_node"] = int(c["gpus_per_member"])
    if "mem_gb" in c:
        out["mem_gb"] = float(c["mem_gb"])
    names = {"partition": "slurm_partition", "account": "slurm_account",
             "array_parallelism": "slurm_array_parallelism", "qos": "slurm_qos",
             "constraint": "slurm_constraint", "setup": "slurm_setup",
             "signal_delay_s": "slurm_signal_delay_s"}
    for key, name in names.items():
        if key in c:
            out[name] = list(c[key]) if key == "setup" else c[key]
    return out


class MemberJob:
    """A member as a submitit job (:func:`_run_member_safely`), checkpointable.

    SLURM sends SIGUSR2 ``cluster.signal_delay_s`` seconds before a job's time limit (and on
    preemption); submitit then calls :meth:`checkpoint` and requeues the job, at most
    ``cluster.max_requeues`` times. Training writes a checkpoint every ``checkpoint_every``
    epochs, and a rerun of the member resumes it (the stage's stamp is incomplete under the
    same key), so the requeued job needs nothing but the same task: the member's notebook
    kernel is stopped here and the job starts again where the last checkpoint left it.
    """

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        """Run the member; one that fails because SLURM ended its job (SIGTERM: scancel, an
        administrator, preemption, the time limit) is a cancelled member, not the failure
        of its notebook kernel, which died of the same signal."""
        import signal
        import threading
        import time

        _REQUEUE["started"] = False
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":  # in a SLURM job
            from submitit.slurm.slurm import SlurmJobEnvironment

            SlurmJobEnvironment._requeue = _requeue_ignoring_sigterm
        received: list[str] = []
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            received.append(time.strftime("%Y-%m-%d %H:%M:%S"))
            if callable(previous):
                previous(signum, frame)  # submitit's: logs it, goes on

        if main:
            signal.signal(signal.SIGTERM, on_term)
        try:
            outcome = _run_member_safely(task)
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
        if _REQUEUE["started"]:
            # the job is being requeued (checkpoint below) and SLURM ends this run of it: no
            # result, or the batch would take the member as finished while it runs again
            raise SystemExit(-1)
        if received and outcome.get("status") == "failed":
            stage = re.search(r"stage '(\w+)' failed; see the executed notebook (\S+)",
                              outcome.get("error", ""))
            where = (f" while its stage {stage.group(1)!r} ran (the executed notebook "
                     f"{stage.group(2).rstrip(':')} shows how far it got)" if stage else "")
            error = outcome.get("error", "")
            outcome = {"status": "cancelled", "error": (
                f"batch member {task.get('name')!r}: its job received SIGTERM from SLURM at "
                f"{received[0]}{where}, and its notebook kernel ended with it. Rerun the same "
                f"command to submit it again (finished stages are kept).\n")}
            if "DeadKernelError" not in error:  # not the kernel's death: keep what it was
                outcome["error"] += f"What the member reported then:\n{error}"
        return outcome

    def checkpoint(self, task: dict[str, Any]) -> Any:
        from submitit.helpers import DelayedSubmission

        from parotidlib.processes import descendants, kill

        logger.warning("batch member %s: time limit near (or preempted): stopping its notebook "
                       "kernel and requeueing the job; it resumes from its last training "
                       "checkpoint", task.get("name"))
        _REQUEUE["started"] = True
        kill(descendants())
        return DelayedSubmission(self, task)


#: Whether this job process has begun to requeue itself (:meth:`MemberJob.checkpoint`).
_REQUEUE = {"started": False}


def _requeue_ignoring_sigterm(env: Any, countdown: int) -> None:
    """submitit's ``SlurmJobEnvironment._requeue`` (``scontrol requeue`` of the job), with
    scontrol immune to SIGTERM. scontrol runs inside the job, and SLURM ends the job it
    requeues with SIGTERM to all its processes: when that killed scontrol before it returned,
    submitit's signal handler raised into the member, which reported a failure although its
    job was requeued."""
    import signal
    import subprocess

    subprocess.check_call(["scontrol", "requeue", env.job_id], timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    logger.info("requeued job %s (%d requeue(s) left)", env.job_id, countdown)


class BatchInterrupted(BatchError):
    """SIGTERM or SIGINT stopped a batch whose members were submitted: its jobs were cancelled
    (and recorded as cancelled); ``signum`` is the signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self):
        return (BatchInterrupted, (self.signum, str(self)))


#: Seconds between two looks at the queue, and how long a job listed in an end state, or
#: absent from squeue and sacct, may stay without a result before its member is recorded as
#: failed (a shared file system may show the result late; a preempted job may be requeued).
POLL_S = 5.0
GRACE_S = 60.0
#: How long SIGTERM/SIGINT waits for the cancelled jobs to leave the queue.
CANCEL_WAIT_S = 120.0
#: Lines of a job's stderr quoted in its member's ``.err``.
STDERR_LINES = 200


def _job_stderr(job: Any) -> str:
    """The last :data:`STDERR_LINES` lines of a job's stderr, headed by its path ('' when the
    job wrote none: it never started)."""
    try:
        text = job.stderr() or ""
    except Exception:  # the log is missing when the job never started
        return ""
    lines = text.splitlines()
    if not lines:
        return ""
    cut = len(lines) > STDERR_LINES
    head = (f"--- the last {STDERR_LINES} lines of the job's stderr" if cut
            else "--- the job's stderr") + f" ({job.paths.stderr}) ---\n"
    return head + "\n".join(lines[-STDERR_LINES:]) + "\n"


def _job_outcome(job: Any, name: str, message: str | None = None) -> dict[str, Any]:
    """A finished job's outcome: the member's own (its result file), else a failure whose
    error says what happened to the job (``message``, from the queue) and quotes its stderr
    once."""
    from submitit.core.utils import pickle_load

    from parotidlib.run.slurm import stepd_lines

    if job.paths.result_pickle.exists():
        try:
            kind, value = pickle_load(job.paths.result_pickle)
        except Exception as exc:  # a truncated result file
            kind, value = "error", f"its result file {job.paths.result_pickle} is unreadable: {exc}"
        if kind == "success":
            return value
        message = f"job {job.job_id} of batch member {name!r} failed: {value}"
    stderr = _job_stderr(job)
    text = (message or f"job {job.job_id} of batch member {name!r} ended without a result")
    text += "\n" + "".join(f"SLURM: {line}\n" for line in stepd_lines(stderr)) + stderr
    return {"status": "failed", "error": text, "job_id": job.job_id}


def _make_executor(batch: BatchConfig, logs: Path) -> Any:
    """submitit's executor for the batch: the cluster settings, checkpointing bounded by
    ``cluster.max_requeues``."""
    import submitit

    cluster = "slurm" if batch.executor == "slurm" else "local"
    extra = ({"slurm_max_num_timeout": int(batch.cluster.get("max_requeues", 3))}
             if cluster == "slurm" else {})
    executor = submitit.AutoExecutor(folder=logs / "submitit" / "%j", cluster=cluster, **extra)
    executor.update_parameters(name="parotidlib-batch", **_submitit_parameters(batch))
    return executor


def _tidy_logs(logs: Path) -> None:
    """Remove the empty ``%j`` folder submitit makes beside the jobs' own folders."""
    try:
        (logs / "submitit" / "%j").rmdir()
    except OSError:
        pass


@contextlib.contextmanager
def _deferred_signals() -> Iterator[dict[str, int | None]]:
    """While members are submitted and waited on, SIGTERM and SIGINT only set a flag (read
    by the wait loop, which cancels the jobs); a job is never submitted unrecorded."""
    import signal
    import threading

    flag: dict[str, int | None] = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["signum"] is None:
            flag["signum"] = signum
            print(f"{signal.Signals(signum).name}: cancelling the batch's jobs ...",
                  file=sys.stderr, flush=True)
        else:
            print("still cancelling the batch's jobs; they are recorded once they have left "
                  "the queue", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _read_jobs(logs: Path) -> dict[str, dict[str, Any]]:
    try:
        jobs = json.loads((logs / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return jobs if isinstance(jobs, dict) else {}


#: The batch's record of the jobs it submitted (member -> job id), in ``<batch>/logs/``.
JOBS_FILE = "jobs.json"


def _still_queued(tasks: list[dict[str, Any]], logs: Path) -> dict[str, str]:
    """Members (of ``tasks``) whose job from an earlier submission of this batch is still
    queued or running (squeue), member -> job id: a rerun waits for them instead of
    submitting them again."""
    from parotidlib.run.slurm import ACTIVE_STATES, read_squeue

    earlier = {t["name"]: str(_read_jobs(logs).get(t["name"], {}).get("job_id", ""))
               for t in tasks}
    earlier = {n: j for n, j in earlier.items() if j}
    if not earlier:
        return {}
    queue = read_squeue(j.split("_")[0] for j in earlier.values())
    if queue is None:
        raise BatchError("squeue failed, so the batch cannot tell which of its members' jobs "
                         "from an earlier submission still run; not submitting any (rerun "
                         "when squeue answers)")
    out = {}
    for name, job_id in earlier.items():
        row = queue.get(job_id)
        # the same job: still active, and its script in this batch's logs (ids are reused
        # by a cluster that was reinstalled)
        if row and row["state"].split(" ")[0] in ACTIVE_STATES \
                and str(logs) in row.get("command", str(logs)):
            out[name] = job_id
    return out


def _check_shared(batch: BatchConfig, paths: Mapping[str, str | os.PathLike]) -> None:
    """Refuse to submit SLURM jobs that need paths the nodes may not see (relative, or under
    /tmp and the like), unless every node of the partition is this machine."""
    from parotidlib.run.slurm import nodes_are_this_machine, read_sinfo_nodes, unshared_paths

    problems = unshared_paths(paths)
    if not problems:
        return
    nodes = read_sinfo_nodes()
    if nodes is not None and nodes_are_this_machine(nodes, batch.cluster.get("partition")):
        logger.info("the batch's jobs need %s; fine here, since every node of the partition "
                    "is this machine", "; ".join(problems))
        return
    raise BatchError(
        "not submitting: the SLURM jobs need these paths, which the cluster's nodes may not "
        "see: " + "; ".join(problems) + ". Put the checkout with its venv and the reports "
        "folder (--reports-dir, or PAROTIDLIB_REPORTS_DIR) on a file system the nodes share "
        "(see docs/batches.md, 'A SLURM cluster')")


def _run_submitit(tasks: list[dict[str, Any]], batch: BatchConfig, logs: Path,
                  on_outcome: Callable[[dict[str, Any], dict[str, Any]], None],
                  on_submitted: Callable[[dict[str, str]], None] | None = None,
                  running: Mapping[str, str] | None = None) -> None:
    """Run members as submitit jobs (a SLURM job array, or submitit's local executor) and
    report each outcome (``on_outcome(task, outcome)``) as its job finishes.

    On SLURM, members whose job from an earlier submission still runs are not submitted
    again: the batch waits for those jobs. Every job is watched by the liveness rule of
    :mod:`parotidlib.run.slurm` (a job that left the queue, or is stuck PENDING, is a failed
    or cancelled member). SIGTERM or SIGINT cancels the jobs, waits for them to leave the
    queue, records them as cancelled and raises :class:`BatchInterrupted`.

    ``running``: member -> job id of the members whose earlier job still runs
    (:func:`_still_queued`; looked up here when not given).
    """
    from parotidlib.io import write_text_atomic

    slurm = batch.executor == "slurm"
    by_name = {t["name"]: t for t in tasks}
    with _deferred_signals() as stop:
        executor = _make_executor(batch, logs)
        adopted = dict(running if running is not None
                       else _still_queued(tasks, logs) if slurm else {})
        for name, job_id in adopted.items():
            logger.warning("batch member %s: its job %s from an earlier submission is still in "
                           "the queue; not submitted again, the batch waits for it", name,
                           job_id)
        todo = [t for t in tasks if t["name"] not in adopted]
        jobs: dict[str, Any] = {}
        if todo:
            for job, task in zip(executor.map_array(MemberJob(), todo), todo, strict=True):
                jobs[task["name"]] = job
            logger.info("submitted %d member(s) as %s job array %s", len(todo),
                        "SLURM" if slurm else "local", jobs[todo[0]["name"]].job_id.split("_")[0])
        if adopted:
            from submitit.slurm.slurm import SlurmJob

            jobs.update({name: SlurmJob(folder=logs / "submitit" / "%j", job_id=job_id)
                         for name, job_id in adopted.items()})
        if slurm:
            known = _read_jobs(logs)
            known.update({n: {"job_id": j.job_id} for n, j in jobs.items()})
            write_text_atomic(logs / JOBS_FILE, json.dumps(known, indent=2))
        if on_submitted is not None:
            on_submitted({n: j.job_id for n, j in jobs.items()})
        try:
            _wait(jobs, by_name, slurm, on_outcome, stop)
        finally:
            _tidy_logs(logs)  # made by submitit when the jobs start


def _wait(jobs: dict[str, Any], tasks: Mapping[str, dict[str, Any]], slurm: bool,
          on_outcome: Callable[[dict[str, Any], dict[str, Any]], None],
          stop: dict[str, int | None]) -> None:
    """Poll the jobs until each has an outcome (see :func:`_run_submitit`)."""
    import time

    from parotidlib.run import slurm as S

    last_seen: dict[str, S.Seen] = {}
    ended_at: dict[str, float] = {}
    accounting = True
    nodes: list[dict[str, str]] | None = None
    waiting = dict(jobs)

    def finish(name: str, outcome: dict[str, Any]) -> None:
        waiting.pop(name)
        on_outcome(tasks[name], outcome)

    while waiting:
        if stop["signum"] is not None:
            _cancel(waiting, tasks, slurm, on_outcome, stop["signum"])
        queue = (S.read_squeue(j.job_id.split("_")[0] for j in waiting.values())
                 if slurm else None)
        if queue is not None:
            absent = [j.job_id for j in waiting.values() if j.job_id not in queue]
            acct = S.read_sacct(absent) if accounting and absent else {}
            if acct is None:
                accounting = False
                logger.info("the cluster keeps no accounting (sacct): jobs are followed "
                            "through squeue alone")
                acct = {}
        now = time.monotonic()
        for name, job in list(waiting.items()):
            row = queue.get(job.job_id) if queue is not None else None
            if job.paths.result_pickle.exists():
                outcome = _job_outcome(job, name)
                if slurm and outcome.get("status") == "cancelled":  # SIGTERM in the job
                    state = (row or {}).get("state") or (acct.get(job.job_id) if queue
                                                           is not None else None)
                    # the member answered before SLURM finished ending the job (COMPLETING):
                    # wait for SLURM's end state (CANCELLED, TIMEOUT...), at most GRACE_S
                    if (queue is None or (state or "").split(" ")[0] in S.ACTIVE_STATES) \
                            and now - ended_at.setdefault(name, now) < GRACE_S:
                        continue
                    outcome = _with_slurm_state(job, name, outcome, state)
                finish(name, outcome)
                continue
            if not slurm:
                if job.done():  # submitit-local: its process ended without a result
                    if now - ended_at.setdefault(name, now) >= 5:
                        finish(name, _job_outcome(job, name, (
                            f"job {job.job_id} of batch member {name!r}: its process ended "
                            f"({job.state}) without a result")))
                continue
            if queue is None:  # squeue failed this time: ask again at the next poll
                continue
            impossible = False
            if row and row["reason"].startswith("ReqNodeNotAvail"):
                nodes = nodes if nodes is not None else (S.read_sinfo_nodes() or [])
                impossible = S.impossible_request(row.get("partition", ""), row.get("cpus", "0"),
                                                  row.get("memory", "0"), nodes)
            seen = (S.Seen(row["state"], row["reason"], impossible=impossible) if row
                    else S.Seen(None, "", acct.get(job.job_id)))
            v = S.verdict(job.job_id, seen, last=last_seen.get(name))
            if row:
                last_seen[name] = seen
            if v.kind == "alive":
                ended_at.pop(name, None)
            elif v.kind == "stuck":
                logger.error("batch member %s: %s", name, v.message)
                job.cancel(check=False)
                finish(name, {"status": "failed", "job_id": job.job_id,
                              "error": v.message + "\n"})
            elif now - ended_at.setdefault(name, now) >= GRACE_S:
                logger.error("batch member %s: %s", name, v.message)
                outcome = _job_outcome(job, name, v.message)
                if v.cancelled:
                    outcome["status"] = "cancelled"
                finish(name, outcome)
        deadline = time.monotonic() + (POLL_S if waiting else 0)
        while time.monotonic() < deadline and stop["signum"] is None:
            time.sleep(0.2)


def _with_slurm_state(job: Any, name: str, outcome: dict[str, Any], state: str | None
                      ) -> dict[str, Any]:
    """A member cancelled by SIGTERM (its own account), headed by what SLURM says: the job's
    state (``CANCELLED by alice (uid 1000)`` where accounting names the user) and the lines
    slurmstepd wrote into its stderr."""
    from parotidlib.run.slurm import describe_state, stepd_lines

    stderr = _job_stderr(job)
    head = (f"job {job.job_id} of batch member {name!r} was cancelled (state from SLURM: "
            f"{describe_state(state) if state else 'not known any more'})\n")
    return {**outcome, "job_id": job.job_id, "error": (
        head + "".join(f"SLURM: {line}\n" for line in stepd_lines(stderr))
        + outcome.get("error", "") + stderr)}


def _cancel(waiting: dict[str, Any], tasks: Mapping[str, dict[str, Any]], slurm: bool,
            on_outcome: Callable[[dict[str, Any], dict[str, Any]], None], signum: int) -> None:
    """Cancel the jobs still waited on, wait until they have left the queue, record their
    members as cancelled and raise :class:`BatchInterrupted` saying what was done."""
    import signal
    import time

    from parotidlib.processes import descendants, kill
    from parotidlib.run.slurm import ACTIVE_STATES, read_squeue

    what = signal.Signals(signum).name
    ids = {name: job.job_id for name, job in waiting.items()}
    states: dict[str, str] = {}
    if slurm:
        queue = read_squeue(j.split("_")[0] for j in ids.values()) or {}
        states = {n: queue.get(j, {}).get("state", "") for n, j in ids.items()}
    for job in waiting.values():
        # submitit-local: the job's process and the member's kernels
        pids = (descendants(job._process.pid)
                if not slurm and getattr(job, "_process", None) else [])
        job.cancel(check=False)
        kill(pids)
    deadline = time.monotonic() + CANCEL_WAIT_S
    left = sorted(ids.values())
    while left and time.monotonic() < deadline:
        time.sleep(1.0)
        if slurm:
            queue = read_squeue(j.split("_")[0] for j in ids.values())
            if queue is not None:
                left = sorted(j for j in ids.values()
                              if queue.get(j, {}).get("state", "").split(" ")[0]
                              in ACTIVE_STATES)
        else:
            left = sorted(j.job_id for j in waiting.values() if not j.done())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for name in list(waiting):
        job = waiting.pop(name)
        was = f" (it was {states[name]})" if states.get(name) else ""
        on_outcome(tasks[name], {
            "status": "cancelled", "job_id": job.job_id,
            "error": (f"batch member {name!r}: its job {job.job_id}{was} was cancelled by the "
                      f"batch command itself on {what} at {stamp} (scancel through submitit). "
                      f"Rerun the same command to submit it again (finished members are "
                      f"kept).\n")})
    gone = ("all have left the queue" if not left else
            f"still in the queue after {CANCEL_WAIT_S:.0f} s: {', '.join(left)} (see squeue)")
    raise BatchInterrupted(signum, (
        f"{'terminated' if signum == signal.SIGTERM else 'interrupted'}: cancelled "
        f"{len(ids)} job(s) of the batch ({', '.join(sorted(ids.values()))}); {gone}; "
        f"recorded as cancelled in members.json and logs/<member>.err; rerun the same command "
        f"to submit them again (finished members are kept)"))


# --------------------------------------------------------------------------- batch


def run_batch(params_path: str | Path, grid: Mapping[str, Sequence[Any]] | None = None,
              name: str | None = None, members_dir: str = "members",
              overrides: Mapping[str, Any] | None = None, executor: str | None = None,
              jobs: int | None = None, cluster: Mapping[str, Any] | None = None,
              force: bool = False, reports_dir: str | Path | None = None,
              notebooks_dir: Path = NOTEBOOKS_DIR) -> BatchResult:
    """Run every member of a grid; finished members are not run again.

    Parameters
    ----------
    params_path : path
        Params profile; its ``grid``, ``executor``, ``jobs`` and ``cluster`` are the defaults
        of the arguments below.
    grid : mapping, optional
        Params key -> values (overrides the profile's ``grid``).
    name : str, optional
        The batch folder under ``reports_dir``, one plain folder name (default ``<params
        name>_batch``; no date or commit, so that a rerun resumes it). The batch holds the
        folder's lock while it runs (:func:`parotidlib.run.pipeline.run_folder`).
    members_dir : str
        Subfolder of the members (``ablation`` for the channel ablation, ``folds`` for
        cross-validation).
    overrides : mapping, optional
        Params every member and the curation get (e.g. ``cv_folds``).
    executor, jobs, cluster
        As BatchConfig (override the profile's).

    Returns
    -------
    BatchResult

    Raises
    ------
    BatchError
        Some members failed (the others ran; ``members.json`` records every status).
    ValueError
        ``name`` is not one plain folder name.
    parotidlib.io.FolderLockedError
        Another process runs a batch in the same folder (its pid is named).
    """
    from parotidlib.params import load_params
    from parotidlib.run.pipeline import run_folder
    from parotidlib.run.provenance import check_run_name

    params_path = Path(params_path)
    params = load_params(params_path, overrides)
    batch = section({**params, **{k: v for k, v in (("grid", grid), ("executor", executor),
                                                    ("jobs", jobs), ("cluster", cluster))
                                  if v is not None}}, BatchConfig)
    if not batch.grid:
        raise ValueError(f"the batch has no grid: give one (e.g. grid: {{seed: [0, 1]}}) in "
                         f"{params_path} or as an argument")
    members = expand_grid(batch.grid)
    reports = Path(reports_dir or default_reports_dir()).resolve()
    batch_dir = reports / check_run_name(name if name is not None
                                         else f"{params_path.stem}_batch", "batch name")
    # The batch folder is this batch's alone while it runs: a second one there stops at once.
    with run_folder(batch_dir, "batch", "the batch folder"):
        return _run_batch_in(params_path, batch, members, reports, batch_dir, members_dir,
                             overrides, force, notebooks_dir)


def _run_batch_in(params_path: Path, batch: BatchConfig, members: list[Member], reports: Path,
                  batch_dir: Path, members_dir: str, overrides: Mapping[str, Any] | None,
                  force: bool, notebooks_dir: Path) -> BatchResult:
    """:func:`run_batch` in its claimed and locked batch folder."""
    from parotidlib.params import load_params, to_yaml
    from parotidlib.run.pipeline import chain_complete, chain_keys, run_study
    from parotidlib.run.provenance import mark_folder

    logs = batch_dir / "logs"
    base = dict(overrides or {})
    # Curation: once per distinct curation (split settings aside), by the batch itself. A grid
    # over channels curates every channel of the member's study (its series and the gland)
    # once; each member selects its own at load.
    groups: dict[str, dict[str, Any]] = {}
    member_params = {}
    for m in members:
        curation_keys = {k: v for k, v in m.overrides.items()
                         if k in field_names(CurationConfig) and k not in SPLIT_KEYS
                         and k != "channels"}
        eff = load_params(params_path, {**base, **m.overrides})
        member_params[m.name] = eff
        curate_overrides = {**base, **({"channels": [*eff["series"], GLAND_CHANNEL]}
                                       if "channels" in batch.grid else {}), **curation_keys}
        sig = _curation_signature(load_params(params_path, curate_overrides))
        groups.setdefault(sig, {"overrides": curate_overrides,
                                "members": []})["members"].append(m.name)
    single = len(groups) == 1
    data_of: dict[str, tuple[Path, str]] = {}
    for sig, group in groups.items():
        curated = run_study(params_path, name=batch_dir.name if single else sig,
                            force=force, reports_dir=reports if single else
                            batch_dir / "curations", overrides=group["overrides"],
                            stages=batch_stages("shared"), notebooks_dir=notebooks_dir)
        cohort = json.loads((curated.run_dir / "cohort.json").read_text())
        for member in group["members"]:
            data_of[member] = (curated.run_dir / "data", curated.keys["curate"], cohort)

    # Members: data prepared here (read-only to them), then run where the executor says.
    threads = (max(1, (os.cpu_count() or 1) // batch.jobs) if batch.executor == "local"
               else _cpus_per_member(batch))
    gpus = _gpu_count() if batch.executor == "local" and batch.jobs > 1 else 0
    tasks, records, result = [], {}, BatchResult(batch_dir)
    frozen: dict[str, str] = {}
    for i, m in enumerate(members):
        member_dir = batch_dir / members_dir / m.name
        data_dir, data_key, cohort = data_of[m.name]
        mark_folder(member_dir, "member")  # laid out by the batch: the kit's own
        upstream = sha256_json([data_key, _prepare_data(member_dir, data_dir,
                                                        member_params[m.name])])
        member_overrides = {**base, **m.overrides, "num_threads": threads}
        if gpus > 1 and str(member_params[m.name]["device"]) in ("auto", "cuda"):
            member_overrides["device"] = f"cuda:{i % gpus}"  # one GPU per member
        params = load_params(params_path, member_overrides)
        keys = chain_keys(params, MEMBER_STAGES, upstream, notebooks_dir=notebooks_dir)
        records[m.name] = {"name": m.name, "overrides": m.overrides, "run_dir": m.name}
        if not force and chain_complete(member_dir, MEMBER_STAGES, keys):
            records[m.name].update(status="done", skipped=[s.name for s in MEMBER_STAGES])
            result.skipped.append(m.name)
            continue
        frozen[m.name] = to_yaml(params)
        records[m.name]["status"] = "submitted"
        # params_path: the member's params.yaml, written (frozen) at submission below
        tasks.append({"params_path": str(member_dir / "params.yaml"),
                      "member_dir": str(member_dir), "upstream": upstream, "force": force,
                      "notebooks_dir": str(notebooks_dir), "name": m.name, "cohort": cohort})
    logger.info("batch %s: %d member(s), %d finished before, %d to run (%s executor)",
                batch_dir.name, len(members), len(result.skipped), len(tasks), batch.executor)
    members_json = batch_dir / members_dir / "members.json"

    def write_members() -> None:
        write_text_atomic(members_json, json.dumps([records[m.name] for m in members],
                                                   indent=2))

    def record(task: dict[str, Any], outcome: dict[str, Any]) -> None:
        """One member's outcome, written as it comes: its ``.err`` and members.json."""
        outcome = dict(outcome)
        err = logs / f"{task['name']}.err"
        if outcome["status"] != "done":
            write_text_atomic(err, outcome.pop("error", "") or "(no error text)\n")
            outcome["log"] = str(err.relative_to(batch_dir))
        elif err.exists():
            err.unlink()  # a failure of an earlier run, now fixed
        records[task["name"]].update(outcome)
        write_members()

    def submitted(job_ids: Mapping[str, str]) -> None:
        for name, job_id in job_ids.items():
            records[name]["job_id"] = job_id
        write_members()

    if tasks:
        if batch.executor == "slurm":
            from parotidlib.run.imports import PACKAGE_DIR

            _check_shared(batch, {"the venv's Python (jobs run it by its path)": sys.executable,
                                  "the kit's code": PACKAGE_DIR,
                                  "the notebooks": notebooks_dir,
                                  "the batch folder (members, logs, curated data)": batch_dir})
        # Freeze what members read when they start: their params, overrides applied (an
        # edit of the params file after submission changes nothing), unless a job of an
        # earlier submission still runs the member (the batch waits for it, see
        # _run_submitit, and leaves its params alone).
        running = _still_queued(tasks, logs) if batch.executor == "slurm" else {}
        for task in tasks:
            if task["name"] not in running:
                write_text_atomic(Path(task["params_path"]), frozen[task["name"]])
        write_members()
        if batch.executor == "local":
            _run_local(tasks, batch.jobs, on_outcome=record)
        else:
            _run_submitit(tasks, batch, logs, on_outcome=record, on_submitted=submitted,
                          running=running)
    result.members = [records[m.name] for m in members]
    write_members()
    failed = [r for r in result.members if r.get("status") != "done"]
    if failed:
        raise BatchError(f"{len(failed)} of {len(members)} member(s) of the batch {batch_dir} "
                         f"failed: " + "; ".join(f"{r['name']} (see {r.get('log')})"
                                                 for r in failed)
                         + "; rerun the same command to retry them (finished members are kept)")
    return result
