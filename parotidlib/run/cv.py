"""Cross-validation over all patients: one batch (:mod:`.batch`) over folds and seeds, the
out-of-fold predictions pooled, and its report (``cv.html``, notebook 80-cv).

Each member ``<run>/folds/fold<f>__seed<s>/`` trains on the patients of the other folds
(its validation patients drawn from those, as in a single run) and predicts the patients of
fold ``f``: the folds are :class:`sklearn.model_selection.StratifiedGroupKFold` over patients,
stratified by histology and shuffled with ``split_seed`` (``data.split.split_patients`` with
``cv_folds``). The members' test predictions together are ``cv_predictions.csv``: the
columns of predictions.csv plus ``fold`` and ``seed``, every slice exactly once per seed.
With ``radiomics: true`` every member's evaluate stage also wrote the radiomics baseline's
predictions (``radiomics_predictions.csv``, fitted on the member's training patients), and
their test rows are pooled the same way into ``cv_radiomics_predictions.csv``, so that 80-cv
compares the two models on the same out-of-fold slices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.io import atomic_path
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.report.cv_report import SINGLE_SPLIT_METRICS
from parotidlib.run.stages import CV_REPORT

logger = logging.getLogger(__name__)

__all__ = ["CV_PREDICTIONS", "CV_RADIOMICS_PREDICTIONS", "pool_predictions", "run_cv"]

#: The pooled out-of-fold predictions of a cross-validation batch.
CV_PREDICTIONS = "cv_predictions.csv"
#: The radiomics baseline's pooled out-of-fold predictions (``radiomics: true``).
CV_RADIOMICS_PREDICTIONS = "cv_radiomics_predictions.csv"


def pool_predictions(batch_dir: str | Path, members: Sequence[Mapping[str, Any]],
                     members_dir: str = "folds", filename: str = "predictions.csv"
                     ) -> pd.DataFrame:
    """The test (out-of-fold) rows of every member's predictions, with fold and seed.

    Parameters
    ----------
    batch_dir : path
        The batch folder.
    members : sequence of mapping
        ``members.json``'s records (``run_dir``, ``overrides`` with ``fold`` and ``seed``).
    members_dir : str
        The members' subfolder.
    filename : str
        The predictions file of each member: ``predictions.csv`` (the CNN) or
        ``radiomics_predictions.csv`` (the radiomics baseline).

    Raises
    ------
    FileNotFoundError
        A member has no such file (the message names the member).
    ValueError
        A slice is out of fold twice, or never, for a seed (the folds do not partition the
        patients): the message names the seed and an example slice.
    """
    from parotidlib.evaluation.results import read_predictions

    batch_dir = Path(batch_dir)
    frames = []
    for m in members:
        path = batch_dir / members_dir / m["run_dir"] / filename
        if not path.is_file():
            raise FileNotFoundError(f"member {m['run_dir']} has no {filename} ({path}); its "
                                    f"evaluate stage did not write it")
        preds = read_predictions(path)
        all_slices = preds[["patient_id", "slice_index", "side"]]
        test = preds[preds["split"] == "test"].copy()
        test.insert(len(test.columns), "fold", int(m["overrides"]["fold"]))
        test.insert(len(test.columns), "seed", int(m["overrides"].get("seed", 0)))
        frames.append((test, all_slices))
    pooled = pd.concat([f for f, _ in frames], ignore_index=True)
    keys = ["seed", "patient_id", "slice_index", "side"]
    twice = pooled[pooled.duplicated(keys, keep=False)]
    if len(twice):
        row = twice.iloc[0]
        raise ValueError(f"seed {row['seed']}: slice {row['patient_id']}/{row['slice_index']} "
                         f"is out of fold in more than one fold")
    everything = frames[0][1]
    for seed, part in pooled.groupby("seed"):
        if len(part) != len(everything):
            raise ValueError(f"seed {seed}: {len(part)} out-of-fold slices, but the cohort has "
                             f"{len(everything)}: some fold is missing")
    return pooled.sort_values(keys, kind="stable").reset_index(drop=True)


def _pool_radiomics(params_path: Path, folds: int, batch_dir: Path,
                    members: Sequence[Mapping[str, Any]]) -> None:
    """Pool the members' radiomics predictions (``radiomics: true``); else remove a stale
    pooled file, so that 80-cv shows no radiomics section."""
    from parotidlib.params import load_params

    path = batch_dir / CV_RADIOMICS_PREDICTIONS
    if not load_params(params_path, {"cv_folds": folds})["radiomics"]:
        path.unlink(missing_ok=True)
        return
    pooled = pool_predictions(batch_dir, members, filename="radiomics_predictions.csv")
    with atomic_path(path) as tmp:
        pooled.to_csv(tmp, index=False)
    logger.info("pooled the radiomics baseline's %d out-of-fold slices into %s", len(pooled),
                path)


def _copy_single_split(reports: Path, profile: str, batch_dir: Path) -> None:
    import json

    from parotidlib.io import write_text_atomic
    from parotidlib.run.predict import newest_run

    run = newest_run(reports, profile)
    target = batch_dir / SINGLE_SPLIT_METRICS
    if run is None or not (run / "metrics.json").is_file():
        target.unlink(missing_ok=True)
        return
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["run"] = run.name
    write_text_atomic(target, json.dumps(metrics, indent=2))


def run_cv(params_path: str | Path, folds: int = 5, seeds: Sequence[int] = (0,),
           name: str | None = None, executor: str | None = None, jobs: int | None = None,
           cluster: Mapping[str, Any] | None = None, force: bool = False,
           reports_dir: str | Path | None = None, notebooks_dir: Path = NOTEBOOKS_DIR
           ) -> Path:
    """Cross-validate a params profile over all patients; returns ``<run>/cv.html``.

    Parameters
    ----------
    folds : int
        k of the k-fold split (>= 2).
    seeds : sequence of int
        Training seeds; each seed trains every fold (the folds stay the same: they follow
        ``split_seed``).
    name : str, optional
        Batch folder, one plain folder name (default ``<params name>_cv<k>``; reruns resume
        it); locked while the cross-validation runs.

    The newest single-split run of the same profile (``reports/<date>_<params name>_*``),
    when there is one, is the comparison of the report's interval widths: its metrics.json
    is copied to ``single_split_metrics.json``.
    """
    from parotidlib.report.html import export_html
    from parotidlib.run.batch import run_batch
    from parotidlib.run.pipeline import execute_stage, run_folder
    from parotidlib.run.provenance import check_run_name

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    params_path = Path(params_path)
    reports = Path(reports_dir or default_reports_dir()).resolve()
    batch_name = check_run_name(name if name is not None else f"{params_path.stem}_cv{folds}",
                                "batch name")
    grid = {"fold": list(range(folds)), "seed": list(seeds)}
    # the batch folder stays locked from the members to the report
    with run_folder(reports / batch_name, "batch", "the batch folder"):
        result = run_batch(params_path, grid, name=batch_name, members_dir="folds",
                           overrides={"cv_folds": folds}, executor=executor, jobs=jobs,
                           cluster=cluster, force=force, reports_dir=reports,
                           notebooks_dir=notebooks_dir)
        pooled = pool_predictions(result.batch_dir, result.members)
        path = result.batch_dir / CV_PREDICTIONS
        with atomic_path(path) as tmp:
            pooled.to_csv(tmp, index=False)
        logger.info("pooled %d out-of-fold slices of %d patients (%d seed(s)) into %s",
                    len(pooled), pooled["patient_id"].nunique(), pooled["seed"].nunique(), path)
        _pool_radiomics(params_path, folds, result.batch_dir, result.members)
        _copy_single_split(reports, params_path.stem, result.batch_dir)
        stage = CV_REPORT
        execute_stage(stage, result.batch_dir, {"run_dir": str(result.batch_dir)},
                      notebooks_dir)
        return export_html(result.batch_dir / stage.notebook, result.batch_dir / stage.output)
