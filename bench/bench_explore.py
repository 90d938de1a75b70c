"""Benchmark: the cohort and run explorers' response times, driving their widgets from Python.

Opens the cohort explorer (``parotidlib.explore.cohort_explorer``) on the built-in 233-patient
synthetic cohort (``parotidlib.data.sources.manifest_path`` with the defaults: generated under
data/ first if absent, not timed) or on ``--manifest``, then times, each the median of
``--repeats``:

* a slice change: the z slider set to another slice (all three series redrawn);
* a patient change: the "next" button pressed (a patient not in the cache: its volumes read);

and the run explorer (``parotidlib.explore.run_explorer``) on ``--run`` (default the newest run
under reports/, ``parotidlib.explore.newest_run``): opening it, and a threshold change (the
slider moved: patient table, Table 5, confusion matrix and the patient's plot redrawn).

An "open" is timed twice: the first in this process (imports of ipywidgets, matplotlib and the
explorer modules included; Voila adds the kernel's start, about 2 s) and a second one (median
of 3). The times are those of the Python side (what the kernel computes for one interaction);
the transfer to the browser and its drawing are not in them. Targets (issue 22) on the 2-core
machine: a change under 0.5 s, opening under 5 s. Prints each figure with its target, the
machine, and last the worst figure against its target; asserts nothing.

    python bench/bench_explore.py [--run reports/<run>] [--manifest PATH] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

CHANGE_S, OPEN_S = 0.5, 5.0


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        names = []
    return names[0].strip() if names else platform.processor() or "unknown"


def add_sources(parser: argparse.ArgumentParser) -> None:
    """The ``--manifest`` and ``--run`` options (also those of ``bench/screenshots.py``)."""
    parser.add_argument("--manifest", default="",
                        help="cohort manifest (default: the built-in 233-patient cohort)")
    parser.add_argument("--run", type=Path, default=None,
                        help="run folder (default: the newest run under reports/)")


def sources(args: argparse.Namespace) -> tuple[Path, Path]:
    """The cohort manifest (the built-in cohort generated under data/ first if absent) and the
    run folder the options name."""
    from parotidlib.data.sources import manifest_path
    from parotidlib.explore import newest_run

    manifest = (Path(args.manifest).resolve() if args.manifest else
                manifest_path({"cohort_manifest": "", "synth_patients": 233, "synth_seed": 0}))
    return manifest, (args.run or newest_run()).resolve()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(fns: list[Callable[[], object]]) -> tuple[float, float]:
    """Median and maximum seconds of the calls."""
    times = [timed(fn) for fn in fns]
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sources(parser)
    parser.add_argument("--repeats", type=int, default=20, help="changes timed (median)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    manifest, run = sources(args)
    from parotidlib.explore import cohort_explorer, run_explorer

    load = os.getloadavg()[0]
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {version('torch')}, "
          f"python {platform.python_version()}, load average {load:.2f}")
    print(f"cohort: {manifest}; run: {run}")
    figures: list[tuple[str, float, float]] = []

    def report(name: str, seconds: float, target: float, detail: str = "") -> None:
        figures.append((name, seconds, target))
        verdict = "ok" if seconds < target else "OVER"
        print(f"{name:<34} {seconds:7.3f} s  (target < {target:g} s: {verdict}){detail}")

    # ---------------------------------------------------------------- cohort explorer
    first = [None]

    def open_cohort() -> None:
        first[0] = cohort_explorer(str(manifest))

    report("cohort explorer, first open", timed(open_cohort), OPEN_S,
           "  (imports of ipywidgets and the explorer included)")
    opened, _ = median_of([open_cohort] * 3)
    report("cohort explorer, open again", opened, OPEN_S)
    explorer = first[0]
    n_patients = len(explorer.data.patient_ids)

    slider = explorer.z_mm
    positions = [slider.min + (slider.max - slider.min) * f
                 for f in (0.2, 0.8, 0.35, 0.65, 0.5)] * (args.repeats // 5 + 1)
    positions = [round(z, 1) for z in positions[:args.repeats]]

    def set_z(z: float) -> Callable[[], None]:
        return lambda: setattr(slider, "value", z)

    med, worst = median_of([set_z(z) for z in positions])
    report("slice change (z slider)", med, CHANGE_S,
           f"  (max {worst:.3f} s over {len(positions)})")

    med, worst = median_of([explorer.next.click] * args.repeats)
    report("patient change (next, uncached)", med, CHANGE_S,
           f"  (max {worst:.3f} s over {args.repeats} of {n_patients} patients)")
    med, worst = median_of([explorer.previous.click] * 3)
    report("patient change (previous, cached)", med, CHANGE_S, f"  (max {worst:.3f} s)")

    # ---------------------------------------------------------------- run explorer
    holder = [None]

    def open_run() -> None:
        holder[0] = run_explorer(str(run))

    report("run explorer, first open", timed(open_run), OPEN_S, "  (its imports included)")
    opened, _ = median_of([open_run] * 3)
    report("run explorer, open again", opened, OPEN_S)
    threshold = holder[0].threshold
    values = [(threshold.value + 1 + i) % (threshold.max + 1) for i in range(args.repeats)]

    def set_threshold(t: int) -> Callable[[], None]:
        return lambda: setattr(threshold, "value", t)

    med, worst = median_of([set_threshold(t) for t in values])
    report("threshold change (slider)", med, CHANGE_S,
           f"  (max {worst:.3f} s over {len(values)})")

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak_mb:.0f} MB; load average now "
          f"{os.getloadavg()[0]:.2f}")
    name, seconds, target = max(figures, key=lambda f: f[1] / f[2])
    print(f"worst against its target: {name} {seconds:.3f} s (target < {target:g} s, "
          f"{100 * seconds / target:.0f}% of it)")


if __name__ == "__main__":
    main()
