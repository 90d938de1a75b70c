"""Worker processes that never outlive the process that started them.

A run killed by ``timeout``, SLURM preemption, ``docker stop`` or the OOM killer must take its
worker processes with it; a forked worker of a multi-threaded parent (a Jupyter kernel) that
loses its parent otherwise stays blocked on a lock or a pipe, owned by PID 1, forever.
:func:`worker_pool` gives a ``ProcessPoolExecutor`` whose workers die with their parent:

* on Linux through ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (prctl(2)): the kernel kills the
  worker the moment the thread that forked it exits, whatever killed the parent;
* elsewhere through a daemon thread in the worker that polls ``os.getppid()`` (the approach
  of ipykernel's ``ParentPollerUnix``).

:func:`descendants` lists a process's children, for tests and for the CLI's cleanup;
:func:`kill` ends a list of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _poll_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent is gone: nothing can collect this worker's result
        time.sleep(interval_s)


def die_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Make the calling process exit when ``parent_pid`` (its parent) dies.

    Meant as a process pool's ``initializer``; exits at once if the parent is already gone.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): polling the parent",
                           ctypes.get_errno())
            threading.Thread(target=_poll_parent, args=(parent_pid, interval_s),
                             daemon=True).start()
    else:
        threading.Thread(target=_poll_parent, args=(parent_pid, interval_s),
                         daemon=True).start()
    if os.getppid() != parent_pid:  # died between the fork and the prctl call
        os._exit(1)


def worker_pool(max_workers: int, start_method: str | None = None) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` whose workers die with this process (:func:`die_with_parent`).

    Parameters
    ----------
    max_workers : int
    start_method : str, optional
        ``"fork"``, ``"spawn"`` or ``"forkserver"``; default: the platform's default. With
        ``forkserver`` the workers' parent is the server, not this process, so it is refused.
    """
    if start_method == "forkserver":
        raise ValueError("start_method 'forkserver' is not supported: the workers' parent "
                         "would be the fork server, which outlives this process")
    context = multiprocessing.get_context(start_method)
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=context,
                               initializer=functools.partial(die_with_parent, os.getpid()))


def descendants(pid: int | None = None) -> list[int]:
    """Process ids of every living descendant of ``pid`` (default: this process).

    Reads ``/proc`` (Linux); an empty list elsewhere.
    """
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":  # a zombie is dead, only not yet collected
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children.get(child, []))
    return sorted(out)


def kill(pids: Sequence[int]) -> None:
    """SIGKILL each of ``pids``; those already gone are passed over."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
