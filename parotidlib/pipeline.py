"""The study run: papermill executes the notebooks in order into one run folder.

Each stage is a notebook (DESIGN.md data flow). A stage's cache key is the SHA-256 of its
notebook, the params its results depend on, the library's source, the cohort fingerprint (for
curation) and the key of the stage before it; a stage whose key matches the stamp left by its
last successful run is skipped, so a change to the report notebook or a rerun after a crash
does not retrain. A change to parotidlib's code reruns the chain (conservative: no stale
result is ever reused). ``force=True`` reruns all.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parotidlib.io import write_text_atomic
from parotidlib.params import config_classes, fingerprint, load_params, to_yaml
from parotidlib.paths import NOTEBOOKS_DIR, PROJECT_ROOT, REPORTS_DIR

logger = logging.getLogger(__name__)


class _QuietUnknownParameters(logging.Filter):
    """Every notebook gets the whole params set (one file for all stages); papermill warns
    about each key a notebook's parameters cell does not declare. Those keys still reach the
    notebook (``params.from_namespace``), so the warnings are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


logging.getLogger("papermill").addFilter(_QuietUnknownParameters())


@dataclass(frozen=True)
class Stage:
    """One notebook of the chain, the file whose presence marks it complete, and the params
    sections (``params.config_classes`` names) plus single keys its results depend on."""

    name: str
    notebook: str
    output: str
    sections: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    #: Run-folder paths removed before the stage reruns with changed inputs (or --force);
    #: kept after a crash, so that an interrupted training resumes from its checkpoint.
    stale: tuple[str, ...] = ()


STAGES: tuple[Stage, ...] = (
    Stage("curate", "10-curate.ipynb", "data/dataset.json", ("run", "curate")),
    Stage("train", "20-train.ipynb", "model/history.csv", ("train",), ("channels",), ("model",)),
    Stage("evaluate", "30-evaluate.ipynb", "predictions.csv", ("evaluate",), ("device",)),
    Stage("statistics", "40-statistics.ipynb", "metrics.json", ("evaluate",)),
    Stage("report", "50-report.ipynb", "report.html"),
)


class StageError(RuntimeError):
    """A stage failed; names the stage and the executed notebook that holds the error."""

    def __init__(self, stage: str, notebook: Path, cause: str) -> None:
        super().__init__(f"stage {stage!r} failed; see the executed notebook {notebook}: {cause}")
        self.stage, self.notebook, self.cause = stage, notebook, cause

    def __reduce__(self):  # picklable across the ablation's worker processes
        return (StageError, (self.stage, self.notebook, self.cause))


@dataclass
class RunResult:
    """What a run produced: folder, report and the per-stage timings (seconds)."""

    run_dir: Path
    report: Path
    timing_s: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    #: Cache key of every stage (what a later partial chain passes as ``upstream``).
    keys: dict[str, str] = field(default_factory=dict)


def git_commit(short: bool = True) -> str:
    """The project's git commit (``nogit`` outside a checkout), ``-dirty`` if modified."""
    try:
        args = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
        commit = subprocess.run(
            args, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def default_run_name(params_path: Path) -> str:
    """``<date>_<params name>_<git commit>``, e.g. ``2026-11-27_default_481a55d``."""
    return f"{_dt.date.today():%Y-%m-%d}_{Path(params_path).stem}_{git_commit()}"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stage_params(stage: Stage, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params a stage's results depend on (its sections' keys and its extra keys).

    A stage without sections depends on all params. Keys that change speed but not results
    (``params.RESULT_NEUTRAL_KEYS``) are left out, so e.g. ``--jobs`` does not invalidate.
    """
    if not stage.sections and not stage.keys:
        return dict(params)
    names = set(stage.keys)
    for section_name in stage.sections:
        names |= {f.name for f in dataclasses.fields(config_classes()[section_name])}
    return {k: v for k, v in params.items() if k in names}


def library_fingerprint() -> str:
    """SHA-256 over the source of every parotidlib module (part of every stage's key)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def stage_key(stage: Stage, params: Mapping[str, Any], upstream: str, extra: str = "",
              notebooks_dir: Path = NOTEBOOKS_DIR) -> str:
    """Cache key of a stage: its notebook, its params, the library's code, the upstream
    stage's key and ``extra``."""
    parts = [stage.name, _sha256_file(notebooks_dir / stage.notebook),
             fingerprint(stage_params(stage, params)), library_fingerprint(), upstream, extra]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _stamp_path(run_dir: Path, stage: Stage) -> Path:
    return run_dir / ".stages" / f"{stage.name}.json"


def _read_stamp(run_dir: Path, stage: Stage) -> dict[str, Any] | None:
    try:
        return json.loads(_stamp_path(run_dir, stage).read_text())
    except (OSError, ValueError):
        return None


def execute_stage(stage: Stage, run_dir: Path, parameters: Mapping[str, Any],
                  notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Execute one notebook with papermill into ``run_dir`` (kept even when it fails)."""
    import papermill as pm

    out = run_dir / stage.notebook
    try:
        pm.execute_notebook(
            str(notebooks_dir / stage.notebook), str(out), parameters=dict(parameters),
            cwd=str(run_dir), kernel_name="python3", progress_bar=False, log_output=False,
        )
    except pm.PapermillExecutionError as exc:
        raise StageError(stage.name, out, f"{exc.ename}: {exc.evalue}") from None
    except Exception as exc:  # kernel died, notebook unreadable, ...
        raise StageError(stage.name, out, f"{type(exc).__name__}: {exc}") from exc


def run_study(params_path: str | Path, name: str | None = None, force: bool = False,
              reports_dir: str | Path = REPORTS_DIR, overrides: Mapping[str, Any] | None = None,
              stages: Sequence[Stage] = STAGES, notebooks_dir: Path = NOTEBOOKS_DIR,
              upstream: str = "") -> RunResult:
    """Run the study notebooks into ``reports_dir/<name>`` and build its report.html.

    Parameters
    ----------
    params_path : path
        Flat YAML params profile (e.g. params/default.yaml); validated before anything runs.
    name : str, optional
        Run folder name; default ``<date>_<params name>_<git commit>``.
    force : bool
        Rerun every stage even when its cache key is unchanged.
    overrides : mapping, optional
        Params overriding the file (e.g. ``channels`` for an ablation member).
    stages : sequence of Stage
        The stages to run (default: the whole chain).
    upstream : str
        Cache key of the stage before ``stages[0]`` when the chain starts later (an ablation
        member starts at training on a dataset curated once).

    Returns
    -------
    RunResult

    Raises
    ------
    parotidlib.params.ParamsError
        Invalid params (before any stage runs).
    StageError
        A notebook failed; its executed copy with the traceback stays in the run folder.
    """
    from parotidlib.sources import cohort_fingerprint, manifest_path

    params_path = Path(params_path)
    params = load_params(params_path, overrides)
    run_dir = Path(reports_dir).resolve() / (name or default_run_name(params_path))
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_path(params)
    write_text_atomic(run_dir / "params.yaml", to_yaml(params))
    # Hashing the cohort reads every volume: only a chain that curates needs it (an ablation
    # member starts at training on the batch's shared, already fingerprinted dataset).
    cohort_fp = (cohort_fingerprint(manifest) if any(s.name == "curate" for s in stages)
                 else None)
    write_text_atomic(run_dir / "cohort.json", json.dumps(
        {"manifest": str(manifest), "fingerprint": cohort_fp}, indent=2))
    parameters = {**params, "run_dir": str(run_dir), "cohort_manifest": str(manifest)}
    parameters = {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()}

    result = RunResult(run_dir=run_dir, report=run_dir / "report.html", keys={})
    timing_path = run_dir / "timing.json"
    for stage in stages:
        key = stage_key(stage, params, upstream,
                        (cohort_fp or "") if stage.name == "curate" else "", notebooks_dir)
        upstream = result.keys[stage.name] = key
        stamp = _read_stamp(run_dir, stage)
        if (not force and stamp and stamp.get("complete", True) and stamp.get("key") == key
                and (run_dir / stage.output).exists()):
            logger.info("stage %-10s unchanged, skipped (%.1f s when it ran)",
                        stage.name, stamp.get("seconds", 0.0))
            result.timing_s[stage.name] = float(stamp.get("seconds", 0.0))
            result.skipped.append(stage.name)
            continue
        # Same key but not complete: that run was interrupted, and its outputs (a training
        # checkpoint) are resumed. Any other key (or --force): earlier outputs are stale.
        if force or (stamp and stamp.get("key") != key):
            for rel in stage.stale:
                shutil.rmtree(run_dir / rel, ignore_errors=True)
        write_text_atomic(_stamp_path(run_dir, stage), json.dumps({"key": key, "complete": False}))
        logger.info("stage %-10s running %s", stage.name, stage.notebook)
        start = time.perf_counter()
        execute_stage(stage, run_dir, parameters, notebooks_dir)
        if stage.name == "report":
            from parotidlib.report import export_html

            export_html(run_dir / stage.notebook, run_dir / stage.output)
        seconds = time.perf_counter() - start
        result.timing_s[stage.name] = round(seconds, 2)
        logger.info("stage %-10s done in %.1f s", stage.name, seconds)
        write_text_atomic(_stamp_path(run_dir, stage), json.dumps(
            {"key": key, "complete": True, "seconds": round(seconds, 2)}))
        write_text_atomic(timing_path, json.dumps(result.timing_s, indent=2))
    write_text_atomic(timing_path, json.dumps(result.timing_s, indent=2))
    _merge_timing(run_dir, result.timing_s)
    return result


def _merge_timing(run_dir: Path, timing: Mapping[str, float]) -> None:
    """Record the stage times in metrics.json (``timing_s``), rewriting it atomically."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        return
    metrics = json.loads(metrics_path.read_text())
    metrics["timing_s"] = {**dict(timing), "total": round(sum(timing.values()), 2)}
    write_text_atomic(metrics_path, json.dumps(metrics, indent=2))


def environment_summary() -> dict[str, str]:
    """Package versions, git commit, device and platform, for the report."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "git_commit": git_commit(), "cpu_count": str(os.cpu_count())}
    for pkg in ("parotidlib", "torch", "torchvision", "numpy", "scipy", "nibabel", "pandas",
                "scikit-learn", "statsmodels", "matplotlib", "seaborn", "papermill"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    return info
