"""What every study notebook does first, in one call: :func:`start`.

A notebook's ``parameters`` cell declares every key it uses (papermill injects the run's values
after it); :func:`start` validates them through :mod:`parotidlib.params`, sets the display
options, finds the run folder and the cohort, and shows whether the results are synthetic.
Light on purpose (no torch, no figures): every stage imports it, and a stage's cache key
covers the modules it imports (docs/design.md, "Stage cache").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parotidlib import params as P
from parotidlib.data import sources
from parotidlib.io import write_text_atomic
from parotidlib.paths import PROJECT_ROOT


def synthetic_note(document: str = "report") -> str:
    """The one note that labels a document made from the kit's synthetic cohort.

    Parameters
    ----------
    document : {"report", "checklist"}
        What it heads; the checklist's adds that its answers from the run describe the
        synthetic cohort and that it is no clinical study's report.
    """
    note = (f"**Synthetic data.** Every number and figure in this {document} comes from the "
            f"kit's physics-based synthetic cohort, not from patients. It checks that the "
            f"pipeline works and shows what it measures; it says nothing about clinical "
            f"performance.")
    if document == "checklist":
        note += (" Every answer marked *from the run* describes that cohort and the kit's "
                 "code, and this checklist is not the report of a clinical study.")
    return note


SYNTHETIC_NOTE = synthetic_note("report")


@dataclass(frozen=True)
class Session:
    """A notebook's run: its folder, its resolved params and whether the cohort is synthetic."""

    run_dir: Path
    params: dict[str, Any]
    synthetic: bool
    #: The cohort's manifest.csv (resolved only by the notebook that curates).
    manifest: Path | None = None

    def section(self, cls: type) -> Any:
        """The run's settings as one config dataclass of :mod:`parotidlib.config`."""
        return P.section(self.params, cls)


def start(namespace: Mapping[str, Any], *, cohort: bool = False, params_file: bool = False,
          requires: Mapping[str, str] | None = None, show: bool = True) -> Session:
    """Set up a study notebook from its namespace (the ``parameters`` cell's variables).

    Parameters
    ----------
    namespace : mapping
        The notebook's ``globals()``; ``run_dir`` and the params keys are read from it.
    cohort : bool
        Resolve the cohort manifest (generating the built-in synthetic cohort on first use)
        and record it in the run's ``cohort.json``; the curation notebook does, the others
        read the run's ``cohort.json``.
    params_file : bool
        Take the params from the run's ``params.yaml`` (the report shows the whole run's).
    requires : mapping, optional
        Run-folder file -> what writes it (e.g. ``"notebooks/10-curate.ipynb"``). A missing
        file stops the notebook at once, naming what to run first (a notebook run by hand).
    show : bool
        Display the synthetic-data note (or the cohort's name) as Markdown.

    Notes
    -----
    Keys the notebook does not declare take the run's ``params.yaml`` values (the defaults
    without one), so that a stage given ``channels`` is checked against the run's ``series``.
    The params a notebook runs with are merged into the run's ``params.yaml`` when they
    differ from it (or it is absent), so the report of notebooks run by hand shows the values
    they ran with. Under the pipeline they agree with it and nothing is written.

    Raises
    ------
    FileNotFoundError
        A required input of the run folder is missing (names the notebook to run first).
    """
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)
    run_dir = Path(namespace["run_dir"])
    for rel, made_by in (requires or {}).items():
        if not (run_dir / rel).exists():
            raise FileNotFoundError(f"{run_dir / rel} not found: run {made_by} into this run "
                                    f"folder (run_dir = {str(run_dir)!r}) first")
    if params_file:
        path = run_dir / "params.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run the stage notebooks (10-curate to "
                                    f"40-statistics) into this run folder first")
        params = P.load_params(path)
    else:
        # keys the notebook does not declare (a training stage gets channels, not series)
        # take the run's values, so that they are checked together with the declared ones
        params = P.from_namespace({**_run_params(run_dir), **namespace})
        _record_params(run_dir, params, [k for k in P.valid_keys() if k in namespace])
    manifest = sources.manifest_path(params) if cohort else None
    if manifest is not None:
        _record_cohort(run_dir, manifest)
    synthetic = (sources.is_synthetic(manifest) if manifest is not None
                 else sources.run_is_synthetic(run_dir))
    if show:
        from IPython.display import Markdown, display

        text = SYNTHETIC_NOTE if synthetic else f"Cohort: {cohort_label(run_dir)}."
        display(Markdown(text))
    return Session(run_dir=run_dir, params=params, synthetic=synthetic, manifest=manifest)


def _run_params(run_dir: Path) -> dict[str, Any]:
    """The run's ``params.yaml`` resolved; the defaults when it is absent or invalid."""
    path = run_dir / "params.yaml"
    try:
        return P.load_params(path) if path.is_file() else P.defaults()
    except P.ParamsError:
        return P.defaults()


def _record_params(run_dir: Path, params: Mapping[str, Any], declared: list[str]) -> None:
    path = run_dir / "params.yaml"
    current = _run_params(run_dir)
    merged = {**current, **{k: params[k] for k in declared}}
    if merged != current or not path.is_file():
        write_text_atomic(path, P.to_yaml(merged))


def _record_cohort(run_dir: Path, manifest: Path) -> None:
    path = run_dir / "cohort.json"
    try:
        if Path(json.loads(path.read_text())["manifest"]) == manifest:
            return  # the pipeline's record, with the cohort's fingerprint
    except (OSError, ValueError, KeyError, TypeError):
        pass
    write_text_atomic(path, json.dumps({"manifest": str(manifest), "fingerprint": None},
                                       indent=2))


def manifest_label(manifest: str | Path | None) -> str:
    """A cohort as a report or checklist names it: its manifest relative to the project when
    inside it, else ``<folder>/manifest.csv`` (an absolute path names the user's folders)."""
    if not manifest:
        return "unknown cohort"
    path = Path(manifest)
    try:
        return f"`{path.resolve().relative_to(PROJECT_ROOT)}`"
    except (ValueError, OSError):
        return f"`{path.parent.name}/{path.name}`"


def cohort_label(run_dir: str | Path) -> str:
    """The run's cohort as a report shows it (:func:`manifest_label` of its manifest)."""
    try:
        manifest = sources.run_manifest(run_dir)
    except (OSError, ValueError, KeyError):
        return "unknown (the run folder was not curated)"
    return manifest_label(manifest)


