"""Thread count and OpenMP wait policy set before torch loads, the user's own settings kept,
a SLURM job's CPU budget taking over from its parent's."""

import subprocess
import sys

import pytest

from parotidlib.threads import MARKER, apply, cpu_budget, thread_environment


def test_budget_from_slurm_then_the_affinity_mask():
    assert cpu_budget({"SLURM_CPUS_PER_TASK": "3"}) == 3
    import os

    assert cpu_budget({}) == len(os.sched_getaffinity(0))
    assert thread_environment(2) == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
                                     "OMP_WAIT_POLICY": "PASSIVE"}
    with pytest.raises(ValueError, match="cpus must be >= 1"):
        thread_environment(-1)


def test_the_users_settings_win_and_the_kits_are_recomputed_in_a_slurm_job():
    user = {"OMP_NUM_THREADS": "7"}
    assert apply(user, cpus=2) == {"OMP_WAIT_POLICY": "PASSIVE"} and user["OMP_NUM_THREADS"] == "7"
    parent = {}
    apply(parent, cpus=2)
    assert parent["OMP_NUM_THREADS"] == "2" and parent[MARKER] == "kit"
    job = {**parent, "SLURM_CPUS_PER_TASK": "1"}
    apply(job)
    assert job["OMP_NUM_THREADS"] == "1" and job["MKL_NUM_THREADS"] == "1"


def test_importing_parotidlib_sets_them_before_torch_loads():
    code = ("import os, parotidlib, torch; "
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], "
            "torch.get_num_threads())")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", MARKER)}
    env["SLURM_CPUS_PER_TASK"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["PASSIVE", "1", "1"]
