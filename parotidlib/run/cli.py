"""Command line: ``python -m parotidlib {synth,import-dicom,run,ablation,batch,cv,predict,
external}``."""

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
    if args.format == "dicom":
        from parotidlib.synth.dicom import write_dicom_cohort

        out = write_dicom_cohort(args.out, n_patients=args.patients, seed=args.seed,
                                 oblique_deg=args.oblique_deg, anisotropic=args.anisotropic,
                                 shuffle=args.shuffle, contours_on=args.contours_on,
                                 jobs=args.jobs, diffusion=args.diffusion)
        print(f"synthetic cohort as DICOM: {args.patients} patients (seed {args.seed}) -> {out} "
              f"(clinical table: {Path(out) / 'clinical.csv'})")
        return 0
    from parotidlib.synth import EXTERNAL_SHIFT, generate_cohort

    mixes = dict(EXTERNAL_SHIFT) if args.external_shift else {}
    for key in ("scanners", "histologies"):
        if getattr(args, key):
            mixes[key] = _parse_mix(getattr(args, key), f"--{key}")
    manifest = generate_cohort(args.out, n_patients=args.patients, seed=args.seed,
                               jobs=args.jobs, diffusion=args.diffusion, **mixes)
    shift = f", shifted: {mixes}" if mixes else ""
    print(f"synthetic cohort: {args.patients} patients (seed {args.seed}{shift}) -> {manifest}")
    return 0


def _parse_mix(text: str, option: str) -> dict[str, float]:
    """``"warthin=0.5,malignant=0.5"`` -> ``{"warthin": 0.5, "malignant": 0.5}``."""
    mix = {}
    for part in text.split(","):
        name, sep, weight = part.rpartition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise ValueError(f"{option} must be NAME=WEIGHT[,NAME=WEIGHT...], got {text!r}")
    return mix


def _import_dicom(args: argparse.Namespace) -> int:
    from parotidlib.dicom.importer import import_dicom

    result = import_dicom(args.src, args.out, clinical=args.clinical, rules=args.rules,
                          key_file=args.key_file, pseudonymise=not args.keep_patient_ids)
    print(f"imported {len(result.imported)} patient(s), {len(result.resumed)} from an earlier "
          f"run, refused {len(result.refused)} -> {result.manifest}")
    for pid, problems in result.refused.items():
        print(f"  refused {pid}: " + "; ".join(problems))
    if result.not_in_dicom:
        print(f"  {len(result.not_in_dicom)} row(s) of the clinical table have no DICOM data")
    print(f"import report: {result.report}")
    if result.identities is not None:
        print(f"pseudonyms: key {result.key_file}; pseudonym -> PatientID table "
              f"{result.identities} (both outside the cohort folder: keep them private)")
    return 0 if result.imported or result.resumed else 1


def _run(args: argparse.Namespace) -> int:
    from parotidlib.params import load_params
    from parotidlib.run.estimate import describe_profile
    from parotidlib.run.pipeline import run_study

    print(describe_profile(load_params(args.params), args.params), flush=True)
    result = run_study(args.params, name=args.name, force=args.force,
                       reports_dir=args.reports_dir)
    _print_result(result)
    return 0


def _print_result(result) -> None:
    for stage, seconds in result.timing_s.items():
        note = (f" (reused from {Path(result.reused[stage]).name})" if stage in result.reused
                else " (unchanged, not rerun)" if stage in result.skipped
                else " (resumed from its checkpoints)" if stage in result.resumed else "")
        print(f"  {stage:<11} {seconds:8.1f} s{note}")
    print(f"report: {result.report}")


def _predict(args: argparse.Namespace) -> int:
    from parotidlib.run.predict import run_predict

    result = run_predict(args.model, args.cohort, name=args.name, params_path=args.params,
                         force=args.force, reports_dir=args.reports_dir)
    _print_result(result)
    return 0


def _external(args: argparse.Namespace) -> int:
    from parotidlib.run.predict import run_external

    result = run_external(args.params, reports_dir=args.reports_dir, force=args.force)
    _print_result(result)
    return 0


def _cluster(args: argparse.Namespace) -> dict | None:
    """The cluster settings of the params file, overridden by the flags given."""
    from parotidlib.params import load_params

    flags = {key: getattr(args, key) for key in CLUSTER_FLAGS
             if getattr(args, key, None) is not None}
    if not flags:
        return None
    return {**load_params(args.params)["cluster"], **flags}


def _ablation(args: argparse.Namespace) -> int:
    from parotidlib.params import load_params
    from parotidlib.run.ablation import run_ablation
    from parotidlib.run.estimate import describe_profile

    print(describe_profile(load_params(args.params), args.params), flush=True)
    result = run_ablation(args.params, name=args.name, jobs=args.jobs, force=args.force,
                          reports_dir=args.reports_dir, executor=args.executor,
                          cluster=_cluster(args), folds=args.folds)
    print(f"ablation report: {result}")
    return 0


def _batch(args: argparse.Namespace) -> int:
    import yaml

    from parotidlib.run.batch import run_batch

    grid = None
    if args.grid is not None:
        grid = yaml.safe_load(args.grid.read_text())
        grid = grid.get("grid", grid) if isinstance(grid, dict) else grid
    result = run_batch(args.params, grid, name=args.name, executor=args.executor,
                       jobs=args.jobs, cluster=_cluster(args), force=args.force,
                       reports_dir=args.reports_dir)
    print(f"batch {result.batch_dir}: {len(result.members)} member(s), "
          f"{len(result.skipped)} finished before")
    return 0


def _cv(args: argparse.Namespace) -> int:
    from parotidlib.params import load_params
    from parotidlib.run.cv import run_cv
    from parotidlib.run.estimate import describe_profile

    print(describe_profile(load_params(args.params), args.params), flush=True)
    result = run_cv(args.params, folds=args.folds, seeds=args.seeds, name=args.name,
                    executor=args.executor, jobs=args.jobs, cluster=_cluster(args),
                    force=args.force, reports_dir=args.reports_dir, group_by=args.group_by)
    print(f"cross-validation report: {result}")
    return 0


#: Flags overriding the params file's ``cluster:`` settings (config.CLUSTER_KEYS).
CLUSTER_FLAGS = ("partition", "time_min", "gpus_per_member", "cpus_per_member", "mem_gb",
                 "account", "array_parallelism", "max_requeues", "signal_delay_s")


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default=None,
                   help="where members run (default: the params' executor, local)")
    p.add_argument("--jobs", type=int, default=None,
                   help="members at once on this machine (local executor)")
    for key in CLUSTER_FLAGS:
        kind = float if key == "mem_gb" else str if key in ("partition", "account") else int
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, default=None,
                       help=f"SLURM: cluster.{key}")


#: Help of ``--force`` for the commands that run stages, and for those that run members.
STAGES_FORCE = "rerun stages even if unchanged"
MEMBERS_FORCE = "rerun finished members"
#: Help of ``--name`` for the commands that write one run folder.
RUN_NAME = "run folder name (default: date_params_commit)"
DEFAULT_PARAMS = Path("params/default.yaml")


def _folder_options(force: str, name: str | None = None, params: Path | None = DEFAULT_PARAMS,
                    params_help: str | None = None) -> argparse.ArgumentParser:
    """A parent parser (argparse ``parents=``) of the options shared by the commands that write
    run folders: ``--params``, ``--name`` (when ``name``, its help, is given), ``--force``
    (``force``: its help) and ``--reports-dir``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--params", type=Path, default=params, help=params_help)
    if name is not None:
        parent.add_argument("--name", default=None, help=name)
    parent.add_argument("--force", action="store_true", help=force)
    parent.add_argument("--reports-dir", type=Path, default=None,
                        help="where run folders go (default: $PAROTIDLIB_REPORTS_DIR or "
                             "reports/)")
    return parent


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
    p.add_argument("--external-shift", action="store_true",
                   help="the shifted cohort of a second hospital (synth.EXTERNAL_SHIFT: one "
                        "3 T scanner, more Warthin tumours); use another --seed")
    p.add_argument("--scanners", default=None,
                   help="scanner mix, e.g. 'Siemens Skyra 3T=1' (default: the paper's Table 2)")
    p.add_argument("--histologies", default=None,
                   help="case mix, e.g. 'warthin=0.5,malignant=0.5' (default: Table 1); may "
                        "add basal_cell_adenoma and mucoepidermoid_carcinoma")
    p.add_argument("--diffusion", action="store_true",
                   help="also a DWI (b = 800) and an ADC series from the same anatomy")
    p.add_argument("--format", choices=("nifti", "dicom"), default="nifti",
                   help="dicom: MR series, one RTSTRUCT per series and clinical.csv")
    p.add_argument("--oblique-deg", type=float, default=0.0,
                   help="dicom: tilt the geometry by this angle (the awkward case)")
    p.add_argument("--anisotropic", action="store_true", help="dicom: anisotropic pixels")
    p.add_argument("--shuffle", action="store_true",
                   help="dicom: shuffled file names and instance numbers")
    p.add_argument("--contours-on", choices=("all", "t1"), default="all",
                   help="dicom: contours on every series or on T1 only")
    p.set_defaults(func=_synth)

    p = sub.add_parser("import-dicom", help="import a DICOM export (MR + RTSTRUCT/SEG) into a "
                       "cohort folder (manifest.csv + NIfTI)")
    p.add_argument("src", type=Path, help="the DICOM export (any folder layout, or a DICOMDIR)")
    p.add_argument("--out", type=Path, required=True, help="the cohort folder to write")
    p.add_argument("--clinical", type=Path, required=True,
                   help="CSV: patient_id (DICOM PatientID) or accession_number, histology"
                        "[, tumor_side, age, sex]")
    p.add_argument("--rules", type=Path, default=None,
                   help="YAML rules merged over the defaults (series roles, ROI names, pins)")
    p.add_argument("--key-file", type=Path, default=None,
                   help="pseudonymisation key (default: <out>.key beside the cohort)")
    p.add_argument("--keep-patient-ids", action="store_true",
                   help="use the DICOM PatientID as patient_id (already pseudonymised exports)")
    p.set_defaults(func=_import_dicom)

    p = sub.add_parser("run", help="run the study notebooks and build reports/<run>/report.html",
                       parents=[_folder_options(STAGES_FORCE, name=RUN_NAME)])
    p.set_defaults(func=_run)

    p = sub.add_parser("ablation",
                       help="run the channel ablation (Table 3) -> reports/<run>/ablation.html",
                       parents=[_folder_options(STAGES_FORCE, name=RUN_NAME)])
    _add_executor_args(p)
    p.set_defaults(jobs=1)
    p.add_argument("--folds", type=int, default=0,
                   help="cross-validate every composition over K folds (Table 3 on all "
                        "patients)")
    p.set_defaults(func=_ablation)

    p = sub.add_parser("batch", help="run a grid of params, one run folder per member",
                       parents=[_folder_options(MEMBERS_FORCE,
                                                name="batch folder (default: <params>_batch)")])
    p.add_argument("--grid", type=Path, default=None,
                   help="YAML grid (key: [values]); default: the params' grid")
    _add_executor_args(p)
    p.set_defaults(func=_batch)

    p = sub.add_parser("cv", help="cross-validation over all patients -> reports/<run>/cv.html",
                       parents=[_folder_options(MEMBERS_FORCE, name="batch folder (default: "
                                                "<params>_cv<k> or <params>_by-<column>)")])
    p.add_argument("--folds", type=int, default=None, help="k (default 5; with --group-by: "
                   "one fold per group, another number is refused)")
    p.add_argument("--group-by", default=None, metavar="COLUMN", help="leave-one-group-out: "
                   "one fold per value of this manifest column, e.g. scanner")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    _add_executor_args(p)
    p.set_defaults(func=_cv)

    p = sub.add_parser("predict", help="apply a trained model to another cohort (external "
                       "validation, new patients) -> reports/<name>/report.html",
                       parents=[_folder_options(
                           STAGES_FORCE, name="run folder name (default: "
                           "date_predict_<cohort>_commit)", params=None,
                           params_help="prediction settings (device, bootstrap, bins; default "
                                       "params/default.yaml); curation settings come from the "
                                       "bundle")])
    p.add_argument("--model", type=Path, required=True,
                   help="a model bundle (bundle.pt) or the run folder holding one")
    p.add_argument("--cohort", type=Path, required=True,
                   help="the cohort's manifest.csv or folder (e.g. import-dicom's output); "
                        "empty histology cells: predicted, not scored")
    p.set_defaults(func=_predict)

    p = sub.add_parser("external", help="make external: the newest run's model applied to "
                       "the shifted synthetic cohort (a second hospital)",
                       parents=[_folder_options(
                           STAGES_FORCE, params_help="the profile whose newest run is applied "
                                                     "(run first if none)")])
    p.set_defaults(func=_external)
    return parser


def _on_signal(signum, frame) -> None:
    """SIGTERM (timeout, SLURM preemption, docker stop) or SIGINT (Ctrl-C): stop every process
    of the run, say so in one line and exit at once.

    Exiting from the handler (rather than raising into papermill's event loop) keeps the
    kernel's and the event loop's tracebacks off the console. While a batch waits on
    submitit jobs (SLURM), its own handler replaces this one: it cancels the jobs, waits for
    them to leave the queue and records them (``run.batch.BatchInterrupted``). Finished
    stages are on disk, a running stage's stamp stays pending, so the same command resumes.
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
    from parotidlib.processes import descendants, kill

    pids = descendants()
    kill(pids)
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
    from parotidlib.run.batch import BatchInterrupted
    from parotidlib.run.pipeline import StageError

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return args.func(args)
    except BatchInterrupted as exc:  # submitted jobs cancelled, and the batch says which
        print(str(exc), file=sys.stderr, flush=True)
        return 128 + exc.signum
    except (ParamsError, StageError, OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ParamsError) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
