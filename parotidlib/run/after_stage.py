"""Steps that run after a stage's notebook has succeeded (:attr:`.stages.Stage.after`).

Each step takes the stage and its run folder. A step that fails raises an error whose
message names what failed; the pipeline reports it as the stage's failure
(:class:`parotidlib.run.pipeline.StageError`), with the finished stages kept.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class Stage(Protocol):
    """What a step reads of its stage (:class:`parotidlib.run.stages.Stage`, which imports
    this module: the protocol keeps the import graph acyclic)."""

    name: str
    notebook: str
    output: str


class AfterStageError(RuntimeError):
    """A step after a stage's notebook failed; the message names the step and its files."""


def export_html(stage: Stage, run_dir: Path) -> None:
    """Export a report stage's executed notebook to its HTML file (``stage.output``).

    Raises
    ------
    AfterStageError
        The export failed (a full disk: with the hint to free space and rerun).
    """
    from parotidlib.report.html import export_html as export

    notebook, html = run_dir / stage.notebook, run_dir / stage.output
    try:
        export(notebook, html)
    except OSError as exc:
        hint = (": free some space and rerun the same command (the finished stages are kept)"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "")
        raise AfterStageError(f"exporting the executed notebook {notebook} to {html} failed: "
                              f"{exc}{hint}") from exc


def log_skipped_patients(stage: Stage, run_dir: Path) -> None:
    """Say on the console which patients curation skipped (``skip_invalid_patients``) and
    why: the kernel's own warnings stay in the executed notebook."""
    try:
        meta = json.loads((run_dir / "data" / "dataset.json").read_text())
    except (OSError, ValueError):
        return
    for entry in meta.get("skipped_patients", []):
        logger.warning("curation skipped patient %s: %s", entry["patient_id"],
                       "; ".join(entry.get("problems", [])))
