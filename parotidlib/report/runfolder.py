"""What a report reads from a run folder and prints: metrics, the curated cohort and its
skipped patients, the training device, the stage cache's record, the cohort and the params.

Each function reads the files the pipeline's stages wrote (``metrics.json``, ``cohort.json``,
``data/dataset.json``, ``model/checkpoints/last.pt``, ``.stages/``) and returns plain data or
a pandas table for the report notebooks (50-report, 72-predict-report, 80-cv); nothing here
writes into the run folder. The HTML export is :mod:`parotidlib.report.html`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.data.manifest import read_manifest_table
from parotidlib.data.sources import run_manifest
from parotidlib.notebook import cohort_label
from parotidlib.paths import PROJECT_ROOT


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    """Read a run's metrics.json."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def curated_manifest(run_dir: str | Path) -> pd.DataFrame:
    """The run's cohort manifest without the patients curation skipped (as in 10-curate).

    Reads ``cohort.json`` (written by the pipeline) and ``data/dataset.json``; patient ids
    stay text.
    """
    run_dir = Path(run_dir)
    manifest = run_manifest(run_dir)
    frame = read_manifest_table(manifest)
    meta = json.loads((run_dir / "data" / "dataset.json").read_text())
    skipped = {str(p["patient_id"]) for p in meta.get("skipped_patients", [])}
    return frame[~frame["patient_id"].isin(skipped)].reset_index(drop=True)


def training_device(run_dir: str | Path) -> dict[str, str]:
    """Device and mixed-precision dtype the run's model was trained with (from last.pt)."""
    from parotidlib.learn.checkpoint import read_checkpoint

    path = Path(run_dir) / "model" / "checkpoints" / "last.pt"
    if not path.is_file():
        return {"training device": "n/a (no checkpoint)"}
    ckpt = read_checkpoint(path)
    info = {"training device": str(ckpt.get("device", "unknown")),
            "mixed precision": str(ckpt.get("amp_dtype") or "off (float32)")}
    if info["mixed precision"] in ("None", ""):
        info["mixed precision"] = "off (float32)"
    if info["training device"].startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            info["GPU"] = torch.cuda.get_device_name()
    return info


def stage_table(run_dir: str | Path) -> pd.DataFrame:
    """How each stage of the run was obtained (the stage cache's record, ``.stages/``):
    run here (fresh or resumed from checkpoints) or reused from another run folder, with
    its seconds and the first digits of its cache key."""
    rows = []
    for path in sorted((Path(run_dir) / ".stages").glob("*.json")):
        try:
            stamp = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        how = ("reused from " + Path(stamp["reused_from"]).name if stamp.get("reused_from")
               else "resumed from its checkpoints" if stamp.get("resumed")
               else "run" if stamp.get("complete") else "running or interrupted")
        rows.append({"stage": path.stem, "how": how, "seconds": stamp.get("seconds"),
                     "key": str(stamp.get("key", ""))[:12]})
    order = {name: i for i, name in enumerate(
        ("curate", "train", "evaluate", "statistics", "report"))}
    rows.sort(key=lambda r: order.get(r["stage"], len(order)))
    return pd.DataFrame(rows, columns=["stage", "how", "seconds", "key"]).set_index("stage")


def cohort_frame(run_dir: str | Path) -> pd.DataFrame:
    """The run's cohort for the report: where it lies (relative to the project, or its folder
    name: never the absolute path, which names the user's home folder) and its fingerprint."""
    try:
        info = json.loads((Path(run_dir) / "cohort.json").read_text())
    except (OSError, ValueError):
        info = {}
    return pd.Series({"cohort": cohort_label(run_dir).strip("`"),
                      "fingerprint (SHA-256)": info.get("fingerprint") or "n/a"},
                     name="cohort").to_frame()


def params_frame(params: Mapping[str, Any]) -> pd.DataFrame:
    """The run's resolved params as a table (a cohort path outside the project shortened to
    its folder and file name)."""
    shown = {}
    for key, value in params.items():
        if key == "cohort_manifest" and value and Path(str(value)).is_absolute():
            path = Path(str(value))
            try:
                value = str(path.resolve().relative_to(PROJECT_ROOT))
            except ValueError:
                value = f"{path.parent.name}/{path.name}"
        shown[key] = str(value)
    return pd.Series(shown, name="value").to_frame()


def skipped_patients_frame(run_dir: str | Path) -> pd.DataFrame:
    """The patients curation skipped as invalid (``skip_invalid_patients``), with the problems
    that made it skip them; empty when none was."""
    meta = json.loads((Path(run_dir) / "data" / "dataset.json").read_text())
    rows = [{"patient": entry["patient_id"], "problem": problem}
            for entry in meta.get("skipped_patients", []) for problem in entry["problems"]]
    return pd.DataFrame(rows, columns=["patient", "problem"])
