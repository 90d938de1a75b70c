"""What a batch asks SLURM about its jobs, and what it concludes (:mod:`.batch`).

submitit alone waits on ``sacct``: a job array task cancelled while PENDING never appears
there, and on a cluster without accounting (``sacct`` answers "accounting storage is
disabled") a job that dies without writing its result is never noticed. So the batch reads
the queue itself, once per poll for all its jobs:

- ``squeue --states=all`` (:func:`read_squeue`): queued and running jobs, and those that
  ended within the controller's ``MinJobAge`` (default 300 s), with their state and reason;
- ``sacct`` (:func:`read_sacct`), only for jobs that squeue no longer lists and only on a
  cluster that keeps accounting: the state of jobs that ended earlier, with who cancelled
  them (``CANCELLED by 1000``).

:func:`verdict` is the liveness rule over what they show: a job that is listed as queued or
running is alive; one PENDING for a reason that cannot resolve (:data:`NEVER_RESOLVES`, or
``ReqNodeNotAvail`` for more CPUs or memory than any node of its partition has) is stuck; a
job in an end state (``CANCELLED``, ``FAILED``, ``TIMEOUT``, ``NODE_FAIL``...) or absent
from both squeue and sacct has ended. The batch gives an ended job ``grace_s`` seconds to
show its result (a shared file system may lag, a preempted job may be requeued) before it
records the member as failed, or cancelled, with that state in its ``.err``.

:func:`unshared_paths` is the check at submission: the paths every job needs (the venv's
Python, the checkout, the batch folder) must be seen by the nodes, so paths under ``/tmp``
and the like are named when the partition has nodes other than this machine.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["ACTIVE_STATES", "END_STATES", "NEVER_RESOLVES", "Seen", "Verdict",
           "read_sacct", "read_squeue", "unshared_paths", "verdict"]

#: Job states of a job that is still queued, running or on its way out (it may still write
#: its result or be requeued).
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED",
    "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE",
})
#: Job states of a job that has ended.
END_STATES = frozenset({
    "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "OUT_OF_MEMORY", "REVOKED",
})
#: Reasons a job stays PENDING that no amount of waiting resolves: the request breaks a limit
#: of its partition, account or QOS, or a dependency failed. (``ReqNodeNotAvail`` resolves
#: when the nodes come back, unless the request is larger than any node: see :func:`verdict`.)
NEVER_RESOLVES = frozenset({
    "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
    "DependencyNeverSatisfied", "InvalidAccount", "InvalidQOS", "AccountNotAllowed",
    "QOSNotAllowed",
})
#: Folders that are usually local to each node.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run/user")


@dataclass(frozen=True)
class Seen:
    """One job as SLURM shows it now: in squeue (``state`` None: not listed) and in sacct
    (``acct_state`` None: not listed, or the cluster keeps no accounting)."""

    state: str | None = None
    reason: str = ""
    acct_state: str | None = None
    #: The job asks for more CPUs or memory than any node of its partition has.
    impossible: bool = False


@dataclass(frozen=True)
class Verdict:
    """What the liveness rule concludes about one job.

    ``kind``: ``"alive"`` (queued or running), ``"stuck"`` (PENDING for a reason that never
    resolves: cancel it), ``"ended"`` (ended without a result so far), ``"absent"`` (listed
    neither by squeue nor by sacct; ended once that has lasted the grace period).
    ``state`` is SLURM's word for it (``CANCELLED``, ``PENDING``...), ``message`` says it in
    a sentence for the member's ``.err``.
    """

    kind: str
    state: str = ""
    message: str = ""

    @property
    def cancelled(self) -> bool:
        return self.state.startswith("CANCELLED")


def _user(uid: str) -> str:
    try:
        return f"{pwd.getpwuid(int(uid)).pw_name} (uid {uid})"
    except (KeyError, ValueError):
        return f"uid {uid}"


def describe_state(state: str) -> str:
    """``CANCELLED by 1000`` -> ``CANCELLED by alice (uid 1000)``; others unchanged."""
    m = re.fullmatch(r"(\w+) by (\d+)", state.strip())
    return f"{m.group(1)} by {_user(m.group(2))}" if m else state.strip()


def verdict(job_id: str, seen: Seen, *, last: Seen | None = None) -> Verdict:
    """The liveness rule for one job.

    Parameters
    ----------
    job_id : str
        The job (``123_4`` for an array task), for the message.
    seen : Seen
        What squeue and sacct show now.
    last : Seen, optional
        What squeue showed the last time it listed the job (for a job now absent: a job
        that vanishes while PENDING was cancelled before it ran; a job array task does).

    Returns
    -------
    Verdict
    """
    state = (seen.state or "").split(" ")[0]
    if state in ACTIVE_STATES:
        if state == "PENDING" and (seen.reason in NEVER_RESOLVES or seen.impossible):
            why = ("it asks for more CPUs or memory than any node of its partition has"
                   if seen.impossible else "a reason that never resolves (the request breaks "
                   "a limit of its partition, account or QOS, or a dependency failed)")
            return Verdict("stuck", "PENDING", (
                f"job {job_id} was PENDING with the reason {seen.reason!r}: {why}. The batch "
                f"cancelled it; change the cluster settings (partition, time_min, "
                f"cpus_per_member, mem_gb, account) and rerun"))
        return Verdict("alive", state)
    # squeue lists a job that ended within MinJobAge; sacct (asked only for a job that squeue
    # no longer lists) knows it for longer, and says who cancelled it
    shown, source = ((seen.state, "squeue") if seen.state is not None
                     else (seen.acct_state, "sacct") if seen.acct_state else (None, ""))
    if shown is not None:
        head = shown.split(" ")[0]
        if head in ACTIVE_STATES:  # sacct lags behind a job that squeue no longer lists
            return Verdict("alive", head)
        how = {"CANCELLED": "was cancelled", "TIMEOUT": "hit its time limit",
               "OUT_OF_MEMORY": "ran out of memory", "NODE_FAIL": "lost its node",
               "PREEMPTED": "was preempted", "FAILED": "failed"}.get(head, "ended")
        reason = f", reason {seen.reason}" if seen.reason not in ("", "None") else ""
        return Verdict("ended", head, (
            f"job {job_id} {how} without returning the member's result (state from "
            f"{source}: {describe_state(shown)}{reason})"))
    before = (last.state or "").split(" ")[0] if last is not None else ""
    if before == "PENDING":
        return Verdict("absent", "CANCELLED", (
            f"job {job_id} left the queue while PENDING, before it ran, and neither squeue nor "
            f"sacct knows it any more: it was cancelled while pending (scancel, or an "
            f"administrator; state from SLURM: absent after PENDING"
            + (f" with the reason {last.reason}" if last is not None and last.reason
               and last.reason != "None" else "") + ")"))
    return Verdict("absent", before or "UNKNOWN", (
        f"job {job_id} is listed neither by squeue nor by sacct and returned no result"
        + (f" (last seen {before})" if before else " (never seen in the queue)")
        + ": it ended without a trace (cancelled, or a cluster without accounting that "
          "forgot it)"))


# --------------------------------------------------------------------------- reading


def _run(command: Sequence[str], timeout_s: float = 60) -> tuple[int, str]:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def parse_squeue(text: str) -> dict[str, dict[str, str]]:
    """``squeue -h -r -o %i|%T|%r|%P|%C|%m|%o`` -> job id -> state, reason, partition, cpus,
    memory, command."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        keys = ("state", "reason", "partition", "cpus", "memory", "command")
        out[parts[0]] = dict(zip(keys, parts[1:], strict=False))
    return out


def read_squeue(array_ids: Iterable[str]) -> dict[str, dict[str, str]] | None:
    """The batch's jobs in the queue, including those ended within ``MinJobAge``: job id (an
    array task as ``123_4``) -> fields of :func:`parse_squeue`; None when squeue fails."""
    ids = sorted(set(array_ids))
    if not ids:
        return {}
    code, text = _run(["squeue", "-h", "-r", "--states=all", "-j", ",".join(ids),
                       "-o", "%i|%T|%r|%P|%C|%m|%o"])
    if code != 0:
        if "Invalid job id" in text:  # every id has left the controller's memory
            return {}
        logger.warning("squeue failed (%s); the batch asks again at its next poll",
                       text.strip()[:200])
        return None
    return parse_squeue(text)


#: sacct's answer on a cluster that keeps no accounting.
NO_ACCOUNTING = re.compile(r"accounting storage is disabled|not running a supported "
                           r"accounting_storage plugin|Problem talking to the database",
                           re.IGNORECASE)


def parse_sacct(text: str) -> dict[str, str]:
    """``sacct -n -P -X -o JobID,State`` -> job id -> state (``CANCELLED by 1000``)."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] and "." not in parts[0]:
            out[parts[0]] = parts[1]
    return out


def read_sacct(job_ids: Iterable[str]) -> dict[str, str] | None:
    """States from accounting: job id -> state; None when the cluster keeps no accounting
    (or sacct is missing), so that the caller stops asking."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    code, text = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ids)])
    if code != 0:
        if NO_ACCOUNTING.search(text) or "No such file" in text:
            return None
        logger.warning("sacct failed (%s)", text.strip()[:200])
        return {}
    return parse_sacct(text)


def parse_sinfo_nodes(text: str) -> list[dict[str, str]]:
    """``sinfo -h -N -o %N|%o|%c|%m|%P`` -> one dict per node and partition: name, address,
    cpus, memory (MB), partition (a default partition is marked ``*`` by sinfo)."""
    rows = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 5:
            rows.append(dict(zip(("name", "address", "cpus", "memory", "partition"),
                                 [p.strip() for p in parts[:5]], strict=True)))
    return rows


def read_sinfo_nodes() -> list[dict[str, str]] | None:
    code, text = _run(["sinfo", "-h", "-N", "-o", "%N|%o|%c|%m|%P"])
    return parse_sinfo_nodes(text) if code == 0 else None


def _number(text: str) -> float:
    m = re.match(r"([\d.]+)\s*([KMGT]?)", str(text).strip())
    if not m:
        return 0.0
    scale = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}[m.group(2)]
    return float(m.group(1)) * scale


def impossible_request(partition: str, cpus: str, memory: str,
                       nodes: Sequence[Mapping[str, str]]) -> bool:
    """Whether a job asking ``cpus`` CPUs and ``memory`` (squeue's ``%m``: ``4G``, ``500M``)
    in ``partition`` asks for more than every node of that partition has."""
    own = [n for n in nodes if n["partition"].rstrip("*") == partition]
    if not own:
        return False
    need_cpus, need_mem = _number(cpus), _number(memory)
    return all(need_cpus > _number(n["cpus"]) or need_mem > _number(n["memory"])
               for n in own)


# --------------------------------------------------------------------------- submission


def _this_host() -> set[str]:
    names = {"localhost", "127.0.0.1", "::1"}
    for name in (socket.gethostname(), socket.getfqdn()):
        names |= {name, name.split(".")[0]}
    return names


def nodes_are_this_machine(nodes: Sequence[Mapping[str, str]], partition: str | None
                           ) -> bool:
    """Whether every node of the partition (default: the default one) is this machine."""
    default = partition is None
    own = [n for n in nodes if (n["partition"].endswith("*") if default
                                else n["partition"].rstrip("*") == partition)]
    here = _this_host()
    return bool(own) and all(n["name"] in here or n["address"] in here for n in own)


def unshared_paths(paths: Mapping[str, str | os.PathLike]) -> list[str]:
    """The paths (what -> path) that the nodes of a cluster may not see: relative ones, and
    those under a node-local folder (:data:`NODE_LOCAL`); one line each, naming what it is."""
    out = []
    for what, path in paths.items():
        text = str(path)
        if not Path(text).is_absolute():
            out.append(f"{what}: {text} (a relative path: a job resolves it in its own "
                       f"working folder)")
            continue
        resolved = str(Path(text).resolve())
        for local in NODE_LOCAL:
            if resolved == local or resolved.startswith(local + "/") \
                    or text.startswith(local + "/"):
                out.append(f"{what}: {text} (under {local}, which is local to each node)")
                break
    return out


#: The lines slurmstepd writes into a job's stderr when it ends the job.
STEPD_LINE = re.compile(r"^.*\*\*\* (?:JOB|STEP) \S+ ON \S+ .*\*\*\*\s*$", re.MULTILINE)


def stepd_lines(stderr: str) -> list[str]:
    """slurmstepd's own lines in a job's stderr (``*** JOB 12 ON node CANCELLED AT ... ***``):
    what SLURM did to the job, and when."""
    return [m.group(0).strip() for m in STEPD_LINE.finditer(stderr or "")]
