"""The channel ablation of the paper's Table 3: one batch (:mod:`.batch`) over channel
compositions and seeds.

The dataset is curated once with every channel of the study (its series and the gland;
``reports/<run>/data``); each input
composition and seed is then its own run folder ``reports/<run>/ablation/<composition>__seed<k>``
whose ``data`` links to the shared dataset and whose training, evaluation and statistics
notebooks get ``channels`` (the composition) and ``seed`` as params. Finished members are
not rerun, so an interrupted batch resumes where it stopped. ``ablation.html`` is the
executed ``notebooks/60-ablation.ipynb``.

The compositions are those the params name, checked against the study's series
(:func:`study_compositions`); params that name none compare
:func:`parotidlib.config.default_compositions` of the series: the paper's Table 3 for the
paper's series, else each series alone, all series, and all series with the gland.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parotidlib.config import composition_channels, default_compositions
from parotidlib.io import write_text_atomic
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.run.stages import ABLATION_REPORT

logger = logging.getLogger(__name__)


def run_ablation(params_path: str | Path, name: str | None = None, jobs: int = 1,
                 force: bool = False, reports_dir: str | Path | None = None,
                 notebooks_dir: Path = NOTEBOOKS_DIR, executor: str | None = None,
                 cluster: Mapping[str, Any] | None = None, folds: int = 0) -> Path:
    """Run the Table 3 ablation and build ``reports/<run>/ablation.html``.

    Parameters
    ----------
    params_path : path
        Params profile; ``compositions`` and ``seeds`` choose the members.
    jobs : int
        Members trained in parallel by the local executor; the cores are divided between
        them (``num_threads``).
    force : bool
        Rerun finished members (and curation).
    executor, cluster
        Where the members run (:func:`parotidlib.run.batch.run_batch`).
    folds : int
        0: each composition on the single split (the paper's Table 3). k >= 2: each
        composition cross-validated over k folds (members ``<composition>__fold<f>__seed<s>``),
        its out-of-fold predictions pooled per composition and seed into
        ``ablation/pooled/<composition>__seed<s>.csv``: Table 3 on all patients.

    Returns
    -------
    Path
        The ablation.html file.
    """
    from parotidlib.params import load_params
    from parotidlib.report.html import export_html
    from parotidlib.run.batch import run_batch
    from parotidlib.run.pipeline import execute_stage, run_folder
    from parotidlib.run.provenance import check_run_name

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    params_path = Path(params_path)
    params = load_params(params_path)
    # No date or commit in the default name: an interrupted batch resumes in the same folder
    # (the stage keys, which hold the library's code, decide what reruns).
    if folds and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise ValueError(f"folds must be 0 (single split) or an integer >= 2, got {folds!r}")
    run_name = check_run_name(
        name if name is not None
        else f"{params_path.stem}_ablation" + (f"_cv{folds}" if folds else ""), "batch name")
    reports_dir = Path(reports_dir or default_reports_dir()).resolve()
    logger.info("ablation batch in %s", reports_dir / run_name)
    series = tuple(params["series"])
    by_channels = {composition_channels(c, series): c
                   for c in study_compositions(params_path, params)}
    grid = {"channels": [list(c) for c in by_channels],
            **({"fold": list(range(folds))} if folds else {}), "seed": list(params["seeds"])}
    # the batch folder stays locked from the members to the report
    with run_folder(reports_dir / run_name, "batch", "the batch folder"):
        result = run_batch(params_path, grid, name=run_name, members_dir="ablation",
                           overrides={"cv_folds": folds} if folds else None,
                           executor=executor, jobs=jobs, cluster=cluster, force=force,
                           reports_dir=reports_dir, notebooks_dir=notebooks_dir)
        members = [{**record,
                    "composition": by_channels[tuple(record["overrides"]["channels"])],
                    "seed": record["overrides"]["seed"]} for record in result.members]
        run_dir = result.batch_dir
        if folds:
            members = _pool_compositions(run_dir, members)
        write_text_atomic(run_dir / "ablation" / "members.json",
                          json.dumps(members, indent=2))
        stage = ABLATION_REPORT
        execute_stage(stage, run_dir, {"run_dir": str(run_dir)}, notebooks_dir)
        return export_html(run_dir / stage.notebook, run_dir / stage.output)


def study_compositions(params_path: str | Path, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The compositions an ablation compares: the params file's ``compositions`` when it names
    them, else :func:`~parotidlib.config.default_compositions` of its ``series``.

    Raises
    ------
    parotidlib.config.ParamsError
        A composition that is not a subset of the series plus gland in their order (naming
        the composition and the channels).
    """
    from parotidlib.params import read_params_file

    series = tuple(params["series"])
    given = "compositions" in read_params_file(params_path)
    compositions = tuple(params["compositions"]) if given else default_compositions(series)
    for composition in compositions:
        composition_channels(composition, series)
    return compositions


def _pool_compositions(run_dir: Path, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pool each composition's and seed's out-of-fold predictions (cross-validated
    ablation); one record per composition and seed, pointing at its pooled table."""
    from parotidlib.io import atomic_path
    from parotidlib.run.batch import member_name
    from parotidlib.run.cv import pool_predictions

    pooled = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in members:
        groups.setdefault((m["composition"], m["seed"]), []).append(m)
    for (composition, seed), group in groups.items():
        frame = pool_predictions(run_dir, group, members_dir="ablation")
        name = member_name({"channels": composition.split("+"), "seed": seed})
        rel = f"pooled/{name}.csv"
        with atomic_path(run_dir / "ablation" / rel) as tmp:
            frame.to_csv(tmp, index=False)
        pooled.append({"composition": composition, "seed": seed, "pooled": rel,
                       "folds": [m["name"] for m in group],
                       "status": "done" if all(m.get("status") == "done" for m in group)
                       else "failed"})
    return pooled
