"""The channel ablation of the paper's Table 3 as a papermill batch.

The dataset is curated once with all four channels (``reports/<run>/data``); each input
composition and seed is then its own run folder ``reports/<run>/ablation/<composition>__seed<k>``
whose ``data`` links to the shared dataset and whose training, evaluation and statistics
notebooks get ``channels`` (the composition) and ``seed`` as params. Finished members are
not rerun (the pipeline's stage cache), so an interrupted batch resumes where it stopped.
``ablation.html`` is the executed ``notebooks/60-ablation.ipynb``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from parotidlib.config import composition_channels
from parotidlib.constants import CHANNELS
from parotidlib.io import write_text_atomic
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.processes import worker_pool
from parotidlib.run.stages import ABLATION_REPORT, STAGES

logger = logging.getLogger(__name__)


def member_name(composition: str, seed: int) -> str:
    """Folder name of one ablation member, e.g. ``t1+t2__seed0``."""
    return f"{composition}__seed{seed}"


def _link_data(member_dir: Path, data_dir: Path) -> None:
    member_dir.mkdir(parents=True, exist_ok=True)
    link = member_dir / "data"
    if link.is_symlink() or link.exists():
        if link.resolve() == data_dir.resolve():
            return
        raise FileExistsError(f"{link} exists and is not a link to the shared dataset {data_dir}")
    os.symlink(os.path.relpath(data_dir, member_dir), link, target_is_directory=True)


def run_ablation(params_path: str | Path, name: str | None = None, jobs: int = 1,
                 force: bool = False, reports_dir: str | Path | None = None,
                 notebooks_dir: Path = NOTEBOOKS_DIR) -> Path:
    """Run the Table 3 ablation and build ``reports/<run>/ablation.html``.

    Parameters
    ----------
    params_path : path
        Params profile; ``compositions`` and ``seeds`` choose the members.
    jobs : int
        Members trained in parallel; the cores are divided between them (``num_threads``).
    force : bool
        Rerun finished members (and curation).

    Returns
    -------
    Path
        The ablation.html file.
    """
    from parotidlib.params import load_params
    from parotidlib.report.html import export_html
    from parotidlib.run.pipeline import execute_stage, run_study

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    params_path = Path(params_path)
    params = load_params(params_path)
    # No date or commit in the default name: an interrupted batch resumes in the same folder
    # (the stage keys, which hold the library's code, decide what reruns).
    run_name = name or f"{params_path.stem}_ablation"
    reports_dir = Path(reports_dir or default_reports_dir()).resolve()
    logger.info("ablation batch in %s", reports_dir / run_name)
    # Curate once, with every channel, into the batch's own run folder.
    curated = run_study(params_path, name=run_name, force=force, reports_dir=reports_dir,
                        overrides={"channels": list(CHANNELS)}, stages=STAGES[:1],
                        notebooks_dir=notebooks_dir)
    run_dir, data_key = curated.run_dir, curated.keys["curate"]
    members = [(c, s) for c in params["compositions"] for s in params["seeds"]]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    tasks = [dict(params_path=str(params_path), run_dir=str(run_dir), composition=c, seed=s,
                  threads=threads, force=force, notebooks_dir=str(notebooks_dir),
                  data_key=data_key) for c, s in members]
    if jobs == 1:
        done = [_run_member(t) for t in tasks]
    else:  # separate processes: each drives its own papermill kernels
        with worker_pool(jobs, "spawn") as pool:  # members die with the batch
            done = list(pool.map(_run_member, tasks))
    write_text_atomic(run_dir / "ablation" / "members.json", json.dumps(done, indent=2))
    stage = ABLATION_REPORT
    execute_stage(stage, run_dir, {"run_dir": str(run_dir)}, notebooks_dir)
    return export_html(run_dir / stage.notebook, run_dir / stage.output)


def _run_member(task: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate and analyse one (composition, seed) member on the shared dataset."""
    from parotidlib.run.pipeline import run_study

    if not logging.getLogger().handlers:  # a spawned worker: log like the parent CLI
        logging.basicConfig(level=logging.INFO, datefmt="%H:%M:%S",
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir, composition, seed = Path(task["run_dir"]), task["composition"], task["seed"]
    member_dir = run_dir / "ablation" / member_name(composition, seed)
    _link_data(member_dir, run_dir / "data")
    result = run_study(task["params_path"], name=member_dir.name, force=task["force"],
                       reports_dir=member_dir.parent, stages=STAGES[1:4],
                       notebooks_dir=Path(task["notebooks_dir"]), upstream=task["data_key"],
                       overrides={"channels": list(composition_channels(composition)),
                                  "seed": seed, "num_threads": task["threads"]})
    logger.info("ablation member %s: %s", member_dir.name,
                "unchanged, not rerun" if len(result.skipped) == 3 else "done")
    return {"composition": composition, "seed": seed, "run_dir": member_dir.name,
            "timing_s": result.timing_s, "skipped": result.skipped}
