"""How long ``make report`` takes now against a baseline commit, on this machine, in one run.

Each commit is checked out into a temporary git worktree and runs the default study
(``python -m parotidlib run --params params/default.yaml``) from scratch into its own empty
reports folder, on the same built-in synthetic cohort (``PAROTIDLIB_DATA_DIR``, generated
first if absent so that neither side pays for it), with the same virtual environment: the
worktree's ``parotidlib`` comes first on ``PYTHONPATH``, ahead of the editable install. The
two sides alternate ``--rounds`` times (baseline first) so that load from other processes hits
both alike; the stage times of each run come from its ``timing.json``. The last line is
``ratio_now_over_baseline=...x`` (median of the rounds; target: at most 1.0 plus noise).

    python bench/bench_make_report.py [--baseline 0c7dbce] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from bench_explore import cpu_model  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]


def worktree(rev: str, folder: Path) -> Path:
    """A detached worktree of ``rev`` at ``folder``."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(folder),
                    rev], check=True)
    return folder


def run_study(tree: Path, reports: Path, data: Path) -> tuple[float, dict[str, float]]:
    """Seconds of one default run from scratch, and its stage times."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PAROTIDLIB_DATA_DIR": str(data),
           "PAROTIDLIB_PROGRESS": "text"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "parotidlib", "run", "--params",
                    str(tree / "params" / "default.yaml"), "--name", "bench", "--reports-dir",
                    str(reports)], check=True, cwd=tree, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads((reports / "bench" / "timing.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="0c7dbce", help="commit to compare with")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data", type=Path, default=ROOT / "data",
                        help="PAROTIDLIB_DATA_DIR holding (or to hold) the built-in cohort")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {version('torch')}, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"baseline {args.baseline} against HEAD {head} (with the working tree's changes: "
          f"no; both from their commits)")
    subprocess.run([sys.executable, "-m", "parotidlib", "synth", "--out",
                    str(args.data / "synthetic"), "--patients", "233", "--seed", "0"],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ,
                                                               "PAROTIDLIB_PROGRESS": "text"})
    times: dict[str, list[float]] = {"baseline": [], "now": []}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        base = Path(tmp)
        trees = {"baseline": worktree(args.baseline, base / "baseline"),
                 "now": worktree("HEAD", base / "now")}
        try:
            for r in range(args.rounds):
                for side, tree in trees.items():
                    reports = base / f"reports-{side}-{r}"
                    seconds, stages = run_study(tree, reports, args.data)
                    times[side].append(seconds)
                    detail = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
                    print(f"round {r} {side:<8} {seconds:6.1f} s ({detail})", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=False)
    now, baseline = statistics.median(times["now"]), statistics.median(times["baseline"])
    print(f"median: baseline {baseline:.1f} s, now {now:.1f} s; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"ratio_now_over_baseline={now / baseline:.2f}x")


if __name__ == "__main__":
    main()
