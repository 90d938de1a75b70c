"""Benchmark: generate the built-in 233-patient synthetic cohort.

Generates the cohort (default 233 patients, seed 0, all cores) into a temporary folder and
prints seconds, patients/s, the disk size and the per-patient CPU time, then the time spent
per stage for a few patients in this process. The last line is the total generation time in
seconds. Targets: under 90 s and under 1 GB on a 2-core machine.

Usage: python bench/bench_synth.py [--patients N] [--seed S] [--jobs J] [--profile K]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from parotidlib.synth import draw_patients, generate_cohort
from parotidlib.synth import patient as patient_module


def _disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _stages(n: int, seed: int) -> dict[str, float]:
    """Mean seconds per patient of each stage, for the first ``n`` patients, in-process."""
    totals: dict[str, float] = {}
    originals = {name: getattr(patient_module, name)
                 for name in ("build_phantom", "render_series", "acquire")}

    def timed(name, func):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    try:
        for name, func in originals.items():
            setattr(patient_module, name, timed(name, func))
        start = time.perf_counter()
        with threadpool_limits(1):
            for spec in draw_patients(233, seed)[:n]:
                patient_module.simulate_patient(spec, seed)
        totals["total (no writing)"] = time.perf_counter() - start
    finally:
        for name, func in originals.items():
            setattr(patient_module, name, func)
    return {k: v / n for k, v in totals.items()}


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=233)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    parser.add_argument("--profile", type=int, default=5, help="patients timed per stage")
    args = parser.parse_args()
    jobs = args.jobs or os.cpu_count() or 1
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cohort"
        start = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        generate_cohort(out, n_patients=args.patients, seed=args.seed, jobs=jobs)
        seconds = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        disk = _disk_mb(out)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(f"generate: {args.patients} patients in {seconds:.1f} s "
          f"({args.patients / seconds:.2f} patients/s), {jobs} jobs, {os.cpu_count()} cores, "
          f"load average before {load:.1f}")
    print(f"disk: {disk:.0f} MB ({disk / args.patients:.2f} MB/patient)")
    if jobs > 1:
        print(f"worker CPU: {cpu:.1f} s ({cpu / args.patients:.3f} s/patient)")
    if args.profile:
        stages = _stages(args.profile, args.seed)
        print("per patient, in-process: " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))
    print(f"{seconds:.2f}")
    return seconds


if __name__ == "__main__":
    main()
