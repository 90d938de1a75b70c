"""A trained model applied to another cohort: the predict chain, and the external demo.

:func:`run_predict` runs notebooks 70-72 (:data:`parotidlib.run.stages.PREDICT_STAGES`) with
:func:`parotidlib.run.pipeline.run_study` into ``reports/<name>/``, so the predict chain has
the study's stage cache, resumption and provenance. The bundle and the cohort are checked
before any folder is made. :func:`run_external` is ``make external``: the newest run of a
params profile (made first when there is none) applied to the shifted synthetic cohort
(:data:`parotidlib.synth.EXTERNAL_SHIFT`, another seed), which stands for a second hospital.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parotidlib.paths import PARAMS_DIR, data_dir
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.run.pipeline import RunResult, run_study
from parotidlib.run.provenance import check_run_name, git_commit
from parotidlib.run.stages import PREDICT_STAGES

logger = logging.getLogger(__name__)

__all__ = ["EXTERNAL_DEMO", "newest_run", "resolve_cohort", "run_external", "run_predict"]

#: The external demo cohort of ``make external``: patients, seed, folder under data/.
EXTERNAL_DEMO = {"n_patients": 100, "seed": 1, "folder": "synthetic_external_shift"}


def resolve_cohort(cohort: str | Path) -> Path:
    """The manifest of a cohort given as its manifest.csv or its folder (absolute)."""
    path = Path(cohort).expanduser().resolve()
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"cohort {str(cohort)!r}: no manifest at {path} (give the "
                                f"cohort's manifest.csv, e.g. the output of import-dicom)")
    return path


def run_predict(model: str | Path, cohort: str | Path, name: str | None = None,
                params_path: str | Path | None = None, force: bool = False,
                reports_dir: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> RunResult:
    """Apply a model bundle to a cohort: curation, predictions, diagnoses, report.

    Parameters
    ----------
    model : path
        A model bundle (``bundle.pt``) or a run folder holding one.
    cohort : path
        The cohort's manifest.csv or its folder (e.g. an ``import-dicom`` output); histology
        may be empty (then the patients are predicted, not scored).
    name : str, optional
        Run folder name, one plain folder name; default
        ``<date>_predict_<cohort folder>_<commit>``.
    params_path : path, optional
        Params file for the prediction settings (device, batch size, bootstrap, calibration
        bins, strips; default params/default.yaml). Curation settings come from the bundle.

    Raises
    ------
    parotidlib.learn.bundle.BundleError
        No bundle, an unknown format, or a cohort that cannot supply the model's channels;
        raised before any run folder is made.
    FileNotFoundError
        No manifest.
    ValueError
        ``name`` is not one plain folder name.
    """
    from parotidlib.learn.apply import check_cohort
    from parotidlib.learn.bundle import BUNDLE_NAME, load_bundle

    if name is not None:
        check_run_name(name)  # before the bundle is read or anything made
    bundle_path = Path(model).expanduser().resolve()
    if bundle_path.is_dir():
        bundle_path = bundle_path / BUNDLE_NAME
    bundle = load_bundle(bundle_path)
    manifest = resolve_cohort(cohort)
    check_cohort(bundle, manifest)
    name = name or (f"{_dt.date.today():%Y-%m-%d}_predict_{manifest.parent.name}_"
                    f"{git_commit()}")
    return run_study(params_path or PARAMS_DIR / "default.yaml", name=name, force=force,
                     reports_dir=reports_dir, stages=PREDICT_STAGES,
                     overrides={**dict(overrides or {}), "model": str(bundle_path),
                                "cohort_manifest": str(manifest)})


def newest_run(reports_dir: str | Path, profile: str) -> Path | None:
    """The newest run folder of a params profile (``<date>_<profile>_<commit>``) whose
    statistics stage wrote its model bundle; None when there is none."""
    from parotidlib.learn.bundle import BUNDLE_NAME

    found = [p for p in Path(reports_dir).glob(f"*_{profile}_*")
             if (p / BUNDLE_NAME).is_file() and (p / "report.html").is_file()]
    return max(found, key=lambda p: (p / BUNDLE_NAME).stat().st_mtime, default=None)


def run_external(params_path: str | Path = PARAMS_DIR / "default.yaml",
                 reports_dir: str | Path | None = None, force: bool = False,
                 n_patients: int = EXTERNAL_DEMO["n_patients"],
                 seed: int = EXTERNAL_DEMO["seed"]) -> RunResult:
    """``make external``: the newest run of ``params_path``'s profile applied to the shifted
    synthetic cohort (generated on first use), into ``reports/<run>_external``.

    Trains nothing when a run with a bundle exists; otherwise runs the study first.
    """
    from parotidlib.synth import EXTERNAL_SHIFT, generate_cohort

    reports = Path(reports_dir or default_reports_dir()).resolve()
    profile = Path(params_path).stem
    run = newest_run(reports, profile)
    if run is None:
        logger.info("no %s run with a model bundle in %s: running the study first", profile,
                    reports)
        run = run_study(params_path, reports_dir=reports).run_dir
    logger.info("model: the run %s", run.name)
    folder = data_dir() / (EXTERNAL_DEMO["folder"] if (n_patients, seed) == (
        EXTERNAL_DEMO["n_patients"], EXTERNAL_DEMO["seed"])
        else f"{EXTERNAL_DEMO['folder']}_n{n_patients}_s{seed}")
    manifest = generate_cohort(folder, n_patients=n_patients, seed=seed, **EXTERNAL_SHIFT)
    return run_predict(run, manifest, name=f"{run.name}_external", params_path=params_path,
                       force=force, reports_dir=reports)
