"""The study run: papermill executes the stage notebooks in order into one run folder.

Each stage (:mod:`.stages`) is a notebook. Its cache key (:func:`stage_key`) is the SHA-256 of
its notebook, its own params, the source of the ``parotidlib`` modules its notebook imports
(followed transitively, :mod:`.imports`), the cohort fingerprint (curation) and the key of the
stage before it. Before a stage runs, the pipeline looks for its key:

1. in the run folder's own stamp (``.stages/<stage>.json``): a complete stage is skipped;
2. in the other run folders beside it (a previous commit's run): a complete stage with the
   same key is reused, its outputs copied in (large binaries that are only ever replaced by
   rename, hard-linked: :data:`HARDLINK_SUFFIXES`) and the source recorded;
3. for a stage that can resume (training), a stamp whose key differs only in resumable params
   (``epochs``, ``checkpoint_every``, or a learning-rate schedule that agrees on every epoch
   already trained) keeps, or brings in, the checkpoints and the stage resumes from them.

Anything else reruns the stage from scratch. ``force=True`` reruns all. A stamp that cannot
be read or has the wrong form is named in a warning, and its stage's outputs are moved into
``.stages/aside-<stage>-<time>/`` (removed once the stage has run again). A run claims its
folder (:func:`run_folder`: one plain folder name, a folder the kit made, an exclusive lock)
before it writes anything there. See docs/design.md, "Stage cache" and "Run folder".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parotidlib.config import SECTIONS, section
from parotidlib.io import (
    FolderLockedError,
    folder_lock,
    sha256_file,
    sha256_json,
    sha256_text,
    write_text_atomic,
)
from parotidlib.params import load_params, to_yaml
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.run.after_stage import AfterStageError
from parotidlib.run.imports import PACKAGE_DIR, source_fingerprint, stage_modules
from parotidlib.run.provenance import (
    ForeignFolderError,
    check_run_name,
    claim_folder,
    default_run_name,
    is_kit_folder,
    library_versions,
)
from parotidlib.run.stages import SPEED_KEYS, STAGES, Stage

logger = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage failed; names the stage and the executed notebook that holds the error (or,
    ``notebook`` None, what failed around the notebook: the HTML export, bringing outputs
    in from another run folder)."""

    def __init__(self, stage: str, notebook: Path | None, cause: str) -> None:
        super().__init__(f"stage {stage!r} failed; see the executed notebook {notebook}: {cause}"
                         if notebook is not None else f"stage {stage!r} failed: {cause}")
        self.stage, self.notebook, self.cause = stage, notebook, cause

    def __reduce__(self):  # picklable across the ablation's worker processes
        return (StageError, (self.stage, self.notebook, self.cause))


@dataclass
class RunResult:
    """What a run produced: folder, report and the per-stage timings (seconds)."""

    run_dir: Path
    report: Path
    timing_s: dict[str, float] = field(default_factory=dict)
    #: Stages not executed: unchanged in this folder, or reused from another one.
    skipped: list[str] = field(default_factory=list)
    #: Stage -> the run folder whose outputs it reused.
    reused: dict[str, str] = field(default_factory=dict)
    #: Stages that resumed from earlier checkpoints instead of starting afresh.
    resumed: list[str] = field(default_factory=list)
    #: Cache key of every stage (what a later partial chain passes as ``upstream``).
    keys: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- keys


def stage_params(stage: Stage, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params a stage declares, minus the speed-only ones (``stages.SPEED_KEYS``)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in params.items() if k in stage.keys and k not in SPEED_KEYS}


def stage_key(stage: Stage, params: Mapping[str, Any], upstream: str, extra: str = "",
              notebooks_dir: Path = NOTEBOOKS_DIR, package_dir: Path = PACKAGE_DIR,
              leave_out: Sequence[str] = ()) -> str:
    """Cache key of a stage: its notebook, its params (less ``leave_out``), the source of the
    library modules the notebook runs, the versions of the libraries results depend on
    (:func:`parotidlib.run.provenance.library_versions`, the same for every stage), the
    upstream stage's key and ``extra``."""
    notebook = Path(notebooks_dir) / stage.notebook
    own = {k: v for k, v in stage_params(stage, params).items() if k not in leave_out}
    return sha256_text([stage.name, sha256_file(notebook), sha256_json(own),
                        source_fingerprint(stage_modules(notebook, package_dir), package_dir),
                        sha256_json(library_versions()), upstream, extra])


def chain_keys(params: Mapping[str, Any], stages: Sequence[Stage], upstream: str = "",
               cohort_fp: str | None = None, notebooks_dir: Path = NOTEBOOKS_DIR,
               package_dir: Path = PACKAGE_DIR) -> dict[str, tuple[str, str | None]]:
    """Stage name -> (cache key, resume key or None) of a chain, as :func:`run_study` computes
    them: each key covers the one before it, the curate key the cohort fingerprint; the
    manifest's path is left out and a model bundle's path replaced by its file's SHA-256."""
    key_params = {k: v for k, v in params.items() if k != "cohort_manifest"}
    if key_params.get("model"):
        key_params["model"] = sha256_file(key_params["model"])
    out: dict[str, tuple[str, str | None]] = {}
    for stage in stages:
        extra = (cohort_fp or "") if stage.cohort_in_key else ""
        key = stage_key(stage, key_params, upstream, extra, notebooks_dir, package_dir)
        rkey = (resume_key(stage, key_params, upstream, extra, notebooks_dir, package_dir)
                if stage.can_resume else None)
        out[stage.name] = (key, rkey)
        upstream = key
    return out


def chain_complete(run_dir: str | Path, stages: Sequence[Stage],
                   keys: Mapping[str, tuple[str, str | None]]) -> bool:
    """Whether every stage of a chain is complete in ``run_dir`` under ``keys``
    (:func:`chain_keys`): what a batch checks before it submits a member again."""
    run_dir = Path(run_dir)
    return all(_complete(run_dir, stage, read_stamp(run_dir, stage), keys[stage.name][0])
               for stage in stages)


def resume_key(stage: Stage, params: Mapping[str, Any], upstream: str, extra: str = "",
               notebooks_dir: Path = NOTEBOOKS_DIR, package_dir: Path = PACKAGE_DIR) -> str:
    """The key without the params a stage can resume across (``Stage.resumable`` and
    ``Stage.resume_checked``, the latter checked separately by ``Stage.resume_agrees``)."""
    leave_out = (*stage.resumable, *stage.resume_checked)
    return stage_key(stage, params, upstream, extra, notebooks_dir, package_dir, leave_out)


# --------------------------------------------------------------------------- stamps

#: Types of a stamp's entries (``key`` and ``complete`` are required, the others optional).
_STAMP_TYPES: dict[str, tuple[type, ...]] = {
    "key": (str,), "complete": (bool,), "resume_key": (str, type(None)),
    "params": (dict, type(None)), "seconds": (int, float), "resumed": (bool,),
    "reused_from": (str,), "seconds_when_run": (int, float, type(None)),
}
#: Prefix of the folder (in ``.stages/``) that keeps a stage's outputs while a stage whose
#: stamp was unreadable reruns: ``aside-<stage>-<time>``.
ASIDE_PREFIX = "aside-"


def _stamp_path(run_dir: Path, stage: Stage) -> Path:
    return run_dir / ".stages" / f"{stage.name}.json"


def stamp_problem(stamp: Any, stage: Stage) -> str | None:
    """What is wrong with a stamp's content (None: nothing): not a JSON object, ``key`` or
    ``complete`` missing, an entry of the wrong type, or (a stage that can resume) params
    that the config refuses."""
    if not isinstance(stamp, dict):
        return f"it holds a JSON {type(stamp).__name__}, not an object"
    for name in ("key", "complete"):
        if name not in stamp:
            return f"it has no {name!r}"
    for name, types in _STAMP_TYPES.items():
        value = stamp.get(name)
        if name in stamp and (not isinstance(value, types)
                              or (isinstance(value, bool) and bool not in types)):
            return (f"its {name!r} is {type(value).__name__} {value!r:.40}, not "
                    + " or ".join("null" if t is type(None) else t.__name__ for t in types))
    if stage.can_resume and stamp.get("params") is not None:
        try:
            for config in SECTIONS.values():
                section(stamp["params"], config)
        except (ValueError, TypeError) as exc:
            return f"its params are invalid ({exc})"
    return None


def _load_stamp(run_dir: Path, stage: Stage) -> tuple[dict[str, Any] | None, str | None]:
    """``(stamp, problem)``: the stamp (None when absent or unusable) and, for a stamp that
    exists but cannot be used, what is wrong with it."""
    path = _stamp_path(run_dir, stage)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    try:
        stamp = json.loads(text)
    except ValueError as exc:
        what = "it is empty" if not text.strip() else f"it is not valid JSON ({exc})"
        return None, what + (", perhaps cut short by a full disk or a crash"
                             if text.strip() else "")
    problem = stamp_problem(stamp, stage)
    return (None, problem) if problem else (stamp, None)


def read_stamp(run_dir: Path, stage: Stage) -> dict[str, Any] | None:
    """A stage's stamp in ``run_dir`` (None when absent, unreadable or malformed)."""
    return _load_stamp(Path(run_dir), stage)[0]


def _write_stamp(run_dir: Path, stage: Stage, stamp: Mapping[str, Any]) -> None:
    path = _stamp_path(run_dir, stage)
    try:
        write_text_atomic(path, json.dumps(dict(stamp), indent=2))
    except OSError as exc:
        raise StageError(stage.name, None, f"writing its stamp {path} failed: {exc}") from exc


def _set_aside(run_dir: Path, stage: Stage, problem: str) -> Path:
    """Move an unusable stamp and its stage's outputs into ``.stages/aside-<stage>-<time>/``
    (kept, not deleted, until the stage succeeds again: :func:`_drop_aside`)."""
    stamp_path = _stamp_path(run_dir, stage)
    base = run_dir / ".stages" / f"{ASIDE_PREFIX}{stage.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = base, 1
    while aside.exists():
        aside, n = base.with_name(f"{base.name}-{n}"), n + 1
    aside.mkdir(parents=True)
    moved = []
    for rel in (*stage.written, stamp_path.relative_to(run_dir).as_posix()):
        src = run_dir / rel
        if src.exists() or src.is_symlink():
            dst = aside / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append(rel)
    logger.warning("the stamp %s of stage %r is unusable: %s. The stage reruns; its earlier "
                   "outputs (%s) are kept in %s until it has succeeded", stamp_path,
                   stage.name, problem, ", ".join(moved) or "none", aside)
    return aside


def _drop_aside(run_dir: Path, stage: Stage) -> None:
    """Remove what :func:`_set_aside` kept of ``stage``, now that the stage has succeeded."""
    for aside in sorted((run_dir / ".stages").glob(f"{ASIDE_PREFIX}{stage.name}-*")):
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
            logger.info("stage %-10s succeeded: removed the outputs kept aside in %s",
                        stage.name, aside.name)


def _can_resume(stage: Stage, stamp: Mapping[str, Any] | None, rkey: str,
                params: Mapping[str, Any], run_dir: Path) -> bool:
    return bool(stamp and stamp.get("resume_key") == rkey and stamp.get("params") is not None
                and (stage.resume_agrees is None
                     or stage.resume_agrees(stamp["params"], params, run_dir)))


def _complete(run_dir: Path, stage: Stage, stamp: Mapping[str, Any] | None, key: str) -> bool:
    return bool(stamp and stamp.get("complete") and stamp.get("key") == key
                and (run_dir / stage.output).exists())


def _siblings(run_dir: Path) -> list[Path]:
    """Other run folders beside ``run_dir``, newest first."""
    try:
        found = [p for p in run_dir.parent.iterdir()
                 if p.is_dir() and p != run_dir and (p / ".stages").is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


#: Suffixes of the files that reuse hard-links instead of copying: large binaries that every
#: writer of the kit replaces by rename, never edits in place (checkpoints and bundle.pt:
#: ``atomic_path`` in learn/checkpoint.py and learn/bundle.py; images.npy: curation builds
#: the whole ``data/`` folder aside and renames it into place; saliency_maps.npz:
#: ``atomic_path`` in learn/explain.py). A later write in either folder then gives that
#: folder a new file and leaves the other's alone. Everything else (the executed notebooks,
#: which papermill rewrites in place; tables, figures, JSON) is copied.
HARDLINK_SUFFIXES = (".pt", ".npy", ".npz")


def _link_tree(src: Path, dst: Path) -> None:
    """Bring ``src`` to ``dst`` (a file or a folder tree) so that neither run folder can change
    the other's files: large binaries written only by rename (:data:`HARDLINK_SUFFIXES`) are
    hard-linked (copied across file systems), every other file is copied; symlinks stay
    symlinks. Whatever ``dst`` held is removed first."""
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.is_dir():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        dst.mkdir()
        for child in sorted(src.iterdir()):
            _link_tree(child, dst / child.name)
        shutil.copystat(src, dst)
    else:
        _link_file(src, dst)


def _link_file(src: str | Path, dst: str | Path) -> None:
    if Path(src).suffix in HARDLINK_SUFFIXES:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copy2(src, dst)


def _bring_outputs(stage: Stage, source: Path, run_dir: Path) -> None:
    """Bring a stage's outputs in from another run folder (:func:`_link_tree`)."""
    for rel in stage.written:
        if (source / rel).exists() or (source / rel).is_symlink():
            try:
                _link_tree(source / rel, run_dir / rel)
            except OSError as exc:
                raise StageError(stage.name, None, (
                    f"bringing {rel} in from the run folder {source} failed"
                    + (f" at {exc.filename}" if exc.filename else "")
                    + f": {exc.strerror or exc}")) from exc


# --------------------------------------------------------------------------- running


def execute_stage(stage: Stage, run_dir: Path, parameters: Mapping[str, Any],
                  notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Execute one notebook with papermill into ``run_dir`` (kept even when it fails)."""
    import papermill as pm

    out = run_dir / stage.notebook
    try:
        pm.execute_notebook(
            str(Path(notebooks_dir) / stage.notebook), str(out), parameters=dict(parameters),
            cwd=str(run_dir), kernel_name="python3", progress_bar=False, log_output=False,
        )
    except pm.PapermillExecutionError as exc:
        raise StageError(stage.name, out, f"{exc.ename}: {exc.evalue}") from None
    except Exception as exc:  # kernel died, notebook unreadable, ...
        raise StageError(stage.name, out, f"{type(exc).__name__}: {exc}") from exc


def notebook_parameters(stage: Stage, params: Mapping[str, Any], run_dir: Path
                        ) -> dict[str, Any]:
    """What papermill injects into a stage's notebook: ``run_dir`` and the stage's own keys."""
    out: dict[str, Any] = {"run_dir": str(run_dir)}
    for key in stage.keys:
        value = params[key]
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


@contextlib.contextmanager
def run_folder(folder: str | Path, kind: str = "run", what: str = "the run folder"
               ) -> Iterator[Path]:
    """Claim a run (or batch) folder and hold its lock while the block runs.

    The folder is made, or checked to be the kit's and marked
    (:func:`parotidlib.run.provenance.claim_folder`: a folder the kit did not make is
    refused, never written into or cleaned), then locked
    (:func:`parotidlib.io.folder_lock`: a second run on the same folder stops at once,
    naming the first one's process). Re-entrant within a process.

    Raises
    ------
    parotidlib.run.provenance.ForeignFolderError
        The folder exists with content and was not made by the kit.
    parotidlib.io.FolderLockedError
        Another process holds the folder.
    """
    folder = claim_folder(folder, kind, what)
    with folder_lock(folder, what):
        yield folder


def run_study(params_path: str | Path, name: str | None = None, force: bool = False,
              reports_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
              stages: Sequence[Stage] = STAGES, notebooks_dir: Path = NOTEBOOKS_DIR,
              upstream: str = "", package_dir: Path = PACKAGE_DIR,
              cohort: Mapping[str, Any] | None = None) -> RunResult:
    """Run the study notebooks into ``reports_dir/<name>`` and build its report.html.

    Parameters
    ----------
    params_path : path
        Flat YAML params profile (e.g. params/default.yaml); validated before anything runs.
    name : str, optional
        Run folder name, one plain folder name (no ``/``, not ``.`` or ``..``, not absolute);
        default ``<date>_<params name>_<git commit>``.
    force : bool
        Rerun every stage even when its cache key is unchanged (and reuse nothing).
    overrides : mapping, optional
        Params overriding the file (e.g. ``channels`` for an ablation member).
    stages : sequence of Stage
        The stages to run (default: the whole chain).
    upstream : str
        Cache key of the stage before ``stages[0]`` when the chain starts later (an ablation
        member starts at training on a dataset curated once).
    package_dir : path
        The library source the stage keys are computed from (tests point it at a copy).
    cohort : mapping, optional
        For a chain that does not curate (a batch member): the cohort record of the run that
        curated its data (its ``cohort.json``: ``manifest``, ``fingerprint``, ``synthetic``),
        written as this run's ``cohort.json``. The cohort itself is then not looked for: a
        member on a node that cannot see it (or whose ``PAROTIDLIB_DATA_DIR`` is another
        folder) runs on the curated data it was given.

    Returns
    -------
    RunResult

    Raises
    ------
    parotidlib.params.ParamsError
        Invalid params (before any stage runs).
    ValueError
        ``name`` is not one plain folder name (before anything is made).
    parotidlib.run.provenance.ForeignFolderError
        The run folder exists with content and was not made by the kit.
    parotidlib.io.FolderLockedError
        Another process runs in the same folder (its pid is named).
    StageError
        A notebook failed; its executed copy with the traceback stays in the run folder.
        Also a failure around a notebook (the HTML export, a stamp, outputs brought in from
        another run folder), naming the stage and the file.
    """
    from parotidlib.data.sources import cohort_fingerprint, is_synthetic, manifest_path

    params_path = Path(params_path)
    params = load_params(params_path, overrides)
    run_name = check_run_name(name if name is not None else default_run_name(params_path))
    curates = any(s.cohort_in_key for s in stages)
    if cohort is not None and not curates:
        record = {"manifest": str(cohort["manifest"]), "fingerprint": cohort.get("fingerprint"),
                  "synthetic": cohort.get("synthetic")}
        cohort_fp = None
    else:
        # The cohort is found (or the built-in one generated) before the run folder is made:
        # a wrong cohort_manifest leaves no empty folder behind.
        manifest = manifest_path(params)
        # Hashing the cohort reads every volume: only a chain that curates needs it (an
        # ablation member starts at training on the batch's shared, fingerprinted dataset).
        cohort_fp = cohort_fingerprint(manifest) if curates else None
        record = {"manifest": str(manifest), "fingerprint": cohort_fp,
                  "synthetic": is_synthetic(manifest)}
    keys = chain_keys(params, stages, upstream, cohort_fp, notebooks_dir, package_dir)
    run_dir = Path(reports_dir or default_reports_dir()).resolve() / run_name
    with run_folder(run_dir):
        _write_if_changed(run_dir / "params.yaml", to_yaml(params))
        _write_if_changed(run_dir / "cohort.json", json.dumps(record, indent=2))
        return _run_stages(run_dir, params, stages, keys, force, notebooks_dir)


def _run_stages(run_dir: Path, params: Mapping[str, Any], stages: Sequence[Stage],
                keys: Mapping[str, tuple[str, str | None]], force: bool,
                notebooks_dir: Path) -> RunResult:
    """The stage loop of :func:`run_study`, in a claimed and locked run folder."""
    result = RunResult(run_dir=run_dir, report=run_dir / "report.html", keys={})
    timing_path = run_dir / "timing.json"
    for stage in stages:
        key, rkey = keys[stage.name]
        own = stage_params(stage, params)
        result.keys[stage.name] = key
        stamp, problem = _load_stamp(run_dir, stage)
        if problem is not None:
            _set_aside(run_dir, stage, problem)
        if not force and _complete(run_dir, stage, stamp, key):
            logger.info("stage %-10s unchanged, not rerun (%.1f s when it ran)",
                        stage.name, stamp.get("seconds", 0.0))
            result.timing_s[stage.name] = float(stamp.get("seconds", 0.0))
            result.skipped.append(stage.name)
            continue
        resuming = False
        if not force:
            reused = _reuse(stage, run_dir, key)
            if reused is not None:
                source, old = reused
                _write_stamp(run_dir, stage, {**old, "reused_from": str(source), "seconds": 0.0,
                                              "seconds_when_run": old.get("seconds")})
                _drop_aside(run_dir, stage)
                logger.info("stage %-10s reused from the run folder %s", stage.name,
                            source.name)
                result.timing_s[stage.name] = 0.0
                result.skipped.append(stage.name)
                result.reused[stage.name] = str(source)
                continue
            if stamp and stamp.get("key") == key:
                resuming = True  # this stage was interrupted: resume from its checkpoints
            elif rkey is not None and _can_resume(stage, stamp, rkey, own, run_dir):
                resuming = True
            elif rkey is not None:
                source = _resume_from_elsewhere(stage, run_dir, rkey, own)
                if source is not None:
                    resuming = True
                    logger.info("stage %-10s resumes from the checkpoints of the run folder %s",
                                stage.name, source.name)
        if not resuming:
            for rel in stage.stale:
                _remove_stale(run_dir, rel)
        elif stage.resumable:
            result.resumed.append(stage.name)
        _write_stamp(run_dir, stage, {"key": key, "resume_key": rkey, "params": own,
                                      "complete": False})
        logger.info("stage %-10s running %s", stage.name, stage.notebook)
        start = time.perf_counter()
        execute_stage(stage, run_dir, notebook_parameters(stage, params, run_dir), notebooks_dir)
        for step in stage.after:
            try:
                step(stage, run_dir)
            except AfterStageError as exc:
                raise StageError(stage.name, None, str(exc)) from exc
        seconds = round(time.perf_counter() - start, 2)
        result.timing_s[stage.name] = seconds
        logger.info("stage %-10s done in %.1f s", stage.name, seconds)
        _write_stamp(run_dir, stage, {"key": key, "resume_key": rkey, "params": own,
                                      "complete": True, "seconds": seconds,
                                      "resumed": resuming})
        _drop_aside(run_dir, stage)
        write_text_atomic(timing_path, json.dumps(result.timing_s, indent=2))
    _write_if_changed(timing_path, json.dumps(result.timing_s, indent=2))
    _merge_timing(run_dir, result.timing_s)
    return result


def _remove_stale(run_dir: Path, rel: str) -> None:
    """Remove a stale output of a stage that reruns from scratch, in a run folder the kit
    made (never in another: checked again here, before anything is deleted)."""
    if not is_kit_folder(run_dir):
        raise ForeignFolderError(f"not removing {rel} in {run_dir}: the folder was not made by "
                                 f"this kit")
    shutil.rmtree(run_dir / rel, ignore_errors=True)


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` atomically unless the file holds it already (so that a complete run in
    a read-only reports folder can be looked up again)."""
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    write_text_atomic(path, text)


def _reuse(stage: Stage, run_dir: Path, key: str) -> tuple[Path, dict[str, Any]] | None:
    """Bring in the outputs of a run folder beside ``run_dir`` that holds this stage complete
    under the same key; return it and its stamp (None when there is none).

    The source is locked while its outputs are brought in, so that a rerun there cannot
    change them halfway; a source in use by another process is passed over.
    """
    for other in _siblings(run_dir):
        if not _complete(other, stage, read_stamp(other, stage), key):
            continue
        try:
            with folder_lock(other, "the run folder"):
                old = read_stamp(other, stage)
                if not (_complete(other, stage, old, key)
                        and all((other / rel).exists() for rel in stage.written)):
                    continue
                _bring_outputs(stage, other, run_dir)
                return other, old
        except FolderLockedError as exc:
            logger.info("stage %-10s not reused from %s: %s", stage.name, other.name, exc)
    return None


def _resume_from_elsewhere(stage: Stage, run_dir: Path, rkey: str,
                           params: Mapping[str, Any]) -> Path | None:
    """Bring in the checkpoints of a run folder beside ``run_dir`` that this stage can resume
    from (locked meanwhile, as in :func:`_reuse`); return it, or None."""
    def usable(other: Path) -> bool:
        stamp = read_stamp(other, stage)
        return bool(stamp and stamp.get("complete")
                    and _can_resume(stage, stamp, rkey, params, other))

    for other in _siblings(run_dir):
        if not usable(other):
            continue
        try:
            with folder_lock(other, "the run folder"):
                if not usable(other):
                    continue
                _bring_outputs(stage, other, run_dir)
                return other
        except FolderLockedError as exc:
            logger.info("stage %-10s not resumed from %s: %s", stage.name, other.name, exc)
    return None


def _merge_timing(run_dir: Path, timing: Mapping[str, float]) -> None:
    """Record the stage times in metrics.json (``timing_s``), rewriting it atomically."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        return
    metrics = json.loads(metrics_path.read_text())
    metrics["timing_s"] = {**dict(timing), "total": round(sum(timing.values()), 2)}
    _write_if_changed(metrics_path, json.dumps(metrics, indent=2))
