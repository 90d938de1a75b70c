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

import itertools
import json
import logging
import os
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parotidlib.config import BatchConfig, CurationConfig, field_names, section
from parotidlib.constants import CHANNELS
from parotidlib.io import sha256_json, write_text_atomic
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.run.stages import STAGES, Stage

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

__all__ = ["BatchError", "BatchResult", "Member", "expand_grid", "member_name", "run_batch"]

#: Stages every member runs (curation is the batch's).
MEMBER_STAGES: tuple[Stage, ...] = STAGES[1:4]
#: Curation settings that only split the patients: members differing in them share data.
SPLIT_KEYS = ("test_fraction", "split_seed", "cv_folds", "fold")


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
    result = run_study(task["params_path"], name=member_dir.name, force=task["force"],
                       reports_dir=member_dir.parent, stages=MEMBER_STAGES,
                       notebooks_dir=Path(task["notebooks_dir"]), upstream=task["upstream"],
                       overrides=task["overrides"])
    logger.info("batch member %s: %s", member_dir.name,
                "unchanged, not rerun" if len(result.skipped) == len(MEMBER_STAGES)
                else "done")
    return {"timing_s": result.timing_s, "skipped": result.skipped}


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
    import signal

    from parotidlib.processes import descendants

    if proc.pid is not None:
        for pid in [*descendants(proc.pid), proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.join()


def _run_local(tasks: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
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

    Returns
    -------
    list of dict
        One result per task, in the tasks' order, as :func:`_run_member_safely` returns it.
    """
    if jobs == 1 or len(tasks) <= 1:
        return [_run_member_safely(t) for t in tasks]
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
    finally:
        for reader, (_, proc) in running.items():
            _stop(proc)
            reader.close()
    return [results[i] for i in range(len(tasks))]


def _submitit_parameters(batch: BatchConfig) -> dict[str, Any]:
    """BatchConfig.cluster in submitit's AutoExecutor names (slurm_* apply to SLURM only)."""
    c = batch.cluster
    out: dict[str, Any] = {"timeout_min": int(c.get("time_min", 60)),
                           "gpus_per_node": int(c.get("gpus_per_member", 0)),
                           "cpus_per_task": int(c.get("cpus_per_member", 2)),
                           "nodes": 1, "tasks_per_node": 1}
    if "mem_gb" in c:
        out["mem_gb"] = float(c["mem_gb"])
    names = {"partition": "slurm_partition", "account": "slurm_account",
             "array_parallelism": "slurm_array_parallelism", "qos": "slurm_qos",
             "constraint": "slurm_constraint", "setup": "slurm_setup"}
    for key, name in names.items():
        if key in c:
            out[name] = list(c[key]) if key == "setup" else c[key]
    return out


def _run_submitit(tasks: list[dict[str, Any]], batch: BatchConfig, logs: Path
                  ) -> list[dict[str, Any]]:
    import submitit

    cluster = "slurm" if batch.executor == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=logs / "submitit" / "%j", cluster=cluster)
    executor.update_parameters(name="parotidlib-batch", **_submitit_parameters(batch))
    jobs = executor.map_array(_run_member_safely, tasks)
    logger.info("submitted %d member(s) as %s job array %s", len(jobs), cluster,
                jobs[0].job_id.split("_")[0] if jobs else "-")
    out = []
    for job in jobs:
        try:
            out.append(job.result())
        except Exception as exc:  # the job itself died (time limit, node failure, ...)
            stderr = ""
            try:
                stderr = job.stderr() or ""
            except Exception:  # the log may be missing when the job never started
                pass
            out.append({"status": "failed",
                        "error": f"job {job.job_id} failed: {exc}\n{stderr}"})
    return out


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
    from parotidlib.params import load_params
    from parotidlib.run.pipeline import chain_complete, chain_keys, run_study
    from parotidlib.run.provenance import mark_folder

    logs = batch_dir / "logs"
    base = dict(overrides or {})
    # A grid over channels curates all four once; each member selects its own at load.
    curate_overrides = {**base, **({"channels": list(CHANNELS)} if "channels" in batch.grid
                                   else {})}

    # Curation: once per distinct curation (split settings aside), by the batch itself.
    groups: dict[str, dict[str, Any]] = {}
    member_params = {}
    for m in members:
        curation_keys = {k: v for k, v in m.overrides.items()
                         if k in field_names(CurationConfig) and k not in SPLIT_KEYS
                         and k != "channels"}
        eff = load_params(params_path, {**base, **m.overrides})
        member_params[m.name] = eff
        sig = _curation_signature(load_params(params_path, {**curate_overrides,
                                                            **curation_keys}))
        groups.setdefault(sig, {"overrides": {**curate_overrides, **curation_keys},
                                "members": []})["members"].append(m.name)
    single = len(groups) == 1
    data_of: dict[str, tuple[Path, str]] = {}
    for sig, group in groups.items():
        curated = run_study(params_path, name=batch_dir.name if single else sig,
                            force=force, reports_dir=reports if single else
                            batch_dir / "curations", overrides=group["overrides"],
                            stages=STAGES[:1], notebooks_dir=notebooks_dir)
        for member in group["members"]:
            data_of[member] = (curated.run_dir / "data", curated.keys["curate"])

    # Members: data prepared here (read-only to them), then run where the executor says.
    threads = (max(1, (os.cpu_count() or 1) // batch.jobs) if batch.executor == "local"
               else int(batch.cluster.get("cpus_per_member", 0)))
    gpus = _gpu_count() if batch.executor == "local" and batch.jobs > 1 else 0
    tasks, records, result = [], {}, BatchResult(batch_dir)
    for i, m in enumerate(members):
        member_dir = batch_dir / members_dir / m.name
        data_dir, data_key = data_of[m.name]
        mark_folder(member_dir, "member")  # laid out by the batch: the kit's own
        upstream = sha256_json([data_key, _prepare_data(member_dir, data_dir,
                                                        member_params[m.name])])
        member_overrides = {**base, **m.overrides, "num_threads": threads}
        if gpus > 1 and str(member_params[m.name]["device"]) in ("auto", "cuda"):
            member_overrides["device"] = f"cuda:{i % gpus}"  # one GPU per member
        keys = chain_keys(load_params(params_path, member_overrides), MEMBER_STAGES, upstream,
                          notebooks_dir=notebooks_dir)
        records[m.name] = {"name": m.name, "overrides": m.overrides, "run_dir": m.name}
        if not force and chain_complete(member_dir, MEMBER_STAGES, keys):
            records[m.name].update(status="done", skipped=[s.name for s in MEMBER_STAGES])
            result.skipped.append(m.name)
            continue
        tasks.append({"params_path": str(params_path), "member_dir": str(member_dir),
                      "upstream": upstream, "overrides": member_overrides, "force": force,
                      "notebooks_dir": str(notebooks_dir), "name": m.name})
    logger.info("batch %s: %d member(s), %d finished before, %d to run (%s executor)",
                batch_dir.name, len(members), len(result.skipped), len(tasks), batch.executor)
    if tasks:
        outcomes = (_run_local(tasks, batch.jobs) if batch.executor == "local"
                    else _run_submitit(tasks, batch, logs))
        for task, outcome in zip(tasks, outcomes, strict=True):
            err = logs / f"{task['name']}.err"
            if outcome["status"] == "failed":
                write_text_atomic(err, outcome.pop("error"))
                outcome["log"] = str(err.relative_to(batch_dir))
            elif err.exists():
                err.unlink()  # a failure of an earlier run, now fixed
            records[task["name"]].update(outcome)
    result.members = [records[m.name] for m in members]
    write_text_atomic(batch_dir / members_dir / "members.json",
                      json.dumps(result.members, indent=2))
    failed = [r for r in result.members if r.get("status") != "done"]
    if failed:
        raise BatchError(f"{len(failed)} of {len(members)} member(s) of the batch {batch_dir} "
                         f"failed: " + "; ".join(f"{r['name']} (see {r.get('log')})"
                                                 for r in failed)
                         + "; rerun the same command to retry them (finished members are kept)")
    return result
