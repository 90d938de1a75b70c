"""How many threads the kit's processes use, and how they wait: set before torch loads.

On a machine shared with other work (a cluster node, a lab workstation, CI), OpenMP's default
wait policy keeps idle threads spinning for a while after each parallel region, so a training
process beside busy processes loses most of its time slices to its own spinning threads; and
torch's default thread count is the machine's core count, not the CPUs this process may use
(the affinity mask of ``srun -c``/``taskset``, or ``SLURM_CPUS_PER_TASK``). Measured on a
2-core machine (bench/bench_contention.py) the default step beside three busy processes took
several times its time alone; with ``OMP_WAIT_POLICY=PASSIVE`` and the thread count set to the
CPUs allowed it stays near a fair share.

:func:`thread_environment` gives the variables; :func:`apply` puts them into ``os.environ``
where the user has not set them (a user's own ``OMP_NUM_THREADS`` or ``OMP_WAIT_POLICY``
wins). ``parotidlib`` applies them when it is imported, before torch is, so every kernel,
batch member and SLURM job the kit starts (they import parotidlib first and inherit the
environment) gets them; OpenMP reads them when the library loads, so they must be in place
before ``import torch``.

References
----------
OpenMP Architecture Review Board, OpenMP API 5.2, section 6.3 (``OMP_WAIT_POLICY``) and 6.2
(``OMP_NUM_THREADS``); GNU libgomp manual, "OMP_WAIT_POLICY" and "GOMP_SPINCOUNT".
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: The variables set, besides the thread counts.
WAIT_POLICY = "PASSIVE"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Marks thread counts the kit set itself (not the user): a child process with another CPU
#: budget (a SLURM job with its own SLURM_CPUS_PER_TASK) recomputes them.
MARKER = "PAROTIDLIB_THREADS"


def cpu_budget(environ: MutableMapping[str, str] | None = None) -> int:
    """The CPUs this process may use: ``SLURM_CPUS_PER_TASK`` inside a SLURM job, else the
    affinity mask (``os.sched_getaffinity``), else ``os.cpu_count()``; at least 1."""
    environ = os.environ if environ is None else environ
    value = str(environ.get("SLURM_CPUS_PER_TASK", "")).strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_environment(cpus: int | None = None,
                       environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` = ``cpus`` (default :func:`cpu_budget` of
    ``environ``) and ``OMP_WAIT_POLICY=PASSIVE``."""
    n = int(cpus) if cpus else cpu_budget(environ)
    if n < 1:
        raise ValueError(f"cpus must be >= 1, got {cpus!r}")
    return {**dict.fromkeys(THREAD_VARIABLES, str(n)), "OMP_WAIT_POLICY": WAIT_POLICY}


def apply(environ: MutableMapping[str, str] | None = None, cpus: int | None = None
          ) -> dict[str, str]:
    """Put :func:`thread_environment` into ``environ`` (default ``os.environ``) where the user
    has not set a variable; return what was set. Thread counts that the kit set in a parent
    process (marked by :data:`MARKER`) are recomputed for this process's CPU budget."""
    environ = os.environ if environ is None else environ
    wanted = thread_environment(cpus, environ)
    ours = environ.get(MARKER) == "kit"
    if "OMP_NUM_THREADS" in environ and not ours:  # the user's thread count decides both
        wanted.pop("OMP_NUM_THREADS")
        wanted.pop("MKL_NUM_THREADS", None)
    set_now = {k: v for k, v in wanted.items()
               if k not in environ or (ours and k in THREAD_VARIABLES)}
    environ.update(set_now)
    if "OMP_NUM_THREADS" in set_now:
        environ[MARKER] = "kit"
    return set_now
