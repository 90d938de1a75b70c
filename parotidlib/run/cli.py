"""Command line: ``python -m parotidlib {synth,run,ablation}``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

logger = logging.getLogger("parotidlib")


def _synth(args: argparse.Namespace) -> int:
    from parotidlib.synth import generate_cohort

    manifest = generate_cohort(args.out, n_patients=args.patients, seed=args.seed, jobs=args.jobs)
    print(f"synthetic cohort: {args.patients} patients (seed {args.seed}) -> {manifest}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from parotidlib.params import load_params
    from parotidlib.run.pipeline import run_study
    from parotidlib.run.profile import describe_profile

    print(describe_profile(load_params(args.params), args.params), flush=True)
    result = run_study(args.params, name=args.name, force=args.force,
                       reports_dir=args.reports_dir)
    for stage, seconds in result.timing_s.items():
        note = (f" (reused from {Path(result.reused[stage]).name})" if stage in result.reused
                else " (unchanged, not rerun)" if stage in result.skipped
                else " (resumed from its checkpoints)" if stage in result.resumed else "")
        print(f"  {stage:<11} {seconds:8.1f} s{note}")
    print(f"report: {result.report}")
    return 0


def _ablation(args: argparse.Namespace) -> int:
    from parotidlib.params import load_params
    from parotidlib.run.ablation import run_ablation
    from parotidlib.run.profile import describe_profile

    print(describe_profile(load_params(args.params), args.params), flush=True)
    result = run_ablation(args.params, name=args.name, jobs=args.jobs, force=args.force,
                          reports_dir=args.reports_dir)
    print(f"ablation report: {result}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (one subcommand per job)."""
    parser = argparse.ArgumentParser(prog="python -m parotidlib", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the built-in synthetic cohort (NIfTI + manifest.csv)")
    p.add_argument("--out", type=Path, default=Path("data/synthetic"))
    p.add_argument("--patients", type=int, default=233)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=_synth)

    for name, func, helptext in (
        ("run", _run, "run the study notebooks and build reports/<run>/report.html"),
        ("ablation", _ablation,
         "run the channel ablation (Table 3) -> reports/<run>/ablation.html"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--params", type=Path, default=Path("params/default.yaml"))
        p.add_argument("--name", default=None, help="run folder name (default: date_params_commit)")
        p.add_argument("--force", action="store_true", help="rerun stages even if unchanged")
        p.add_argument("--reports-dir", type=Path, default=None,
                       help="where run folders go (default: $PAROTIDLIB_REPORTS_DIR or reports/)")
        if name == "ablation":
            p.add_argument("--jobs", type=int, default=1, help="compositions run in parallel")
        p.set_defaults(func=func)
    return parser


def _on_signal(signum, frame) -> None:
    """SIGTERM (timeout, SLURM preemption, docker stop) or SIGINT (Ctrl-C): stop every process
    of the run, say so in one line and exit at once.

    Exiting from the handler (rather than raising into papermill's event loop) keeps the
    kernel's and the event loop's tracebacks off the console. Finished stages are on disk, a
    running stage's stamp stays pending, so the same command resumes.
    """
    _stop_descendants()
    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    print(f"{what}: the run stopped and took its processes with it; rerun the same command to "
          f"resume (finished stages are kept, training resumes from its last checkpoint)",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)


def _stop_descendants(grace_s: float = 5.0) -> None:
    """End every process this run started, at once (SIGKILL: they hold nothing to save; what
    they leave half-written is cleaned up by the next run). Notebook kernels run in sessions
    of their own, so a signal to this process group would miss them and their workers."""
    from parotidlib.processes import descendants

    pids = descendants()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while set(pids) & set(descendants()) and time.monotonic() < deadline:
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (non-zero with a one-line error on failure)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from parotidlib.params import ParamsError
    from parotidlib.run.pipeline import StageError

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return args.func(args)
    except (ParamsError, StageError, OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ParamsError) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
