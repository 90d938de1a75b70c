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

Grouped by a manifest column (``group_by``, ``python -m parotidlib cv --group-by scanner``):
one fold per value of the column (:func:`parotidlib.data.split.group_table`, checked before
anything runs), fold ``f`` holding out the patients of the ``f``-th value, so that each
scanner (or centre) is predicted by a model trained on the others: the internal-external
cross-validation of Steyerberg & Harrell (2016) that TRIPOD+AI (Collins et al. 2024)
recommends for multicentre data. The members get the params ``cv_folds`` (the number of
groups) and ``cv_group_by``; the batch folder is ``<params name>_by-<column>`` and records
the groups in ``cv_groups.json``, from which 80-cv adds the per-group table. The seeds retrain
every fold as for k folds; the held-out groups stay the same.

The classes are those of the members' curated data (the ``classes`` param the batch curated
with; :func:`members_scheme`, the same for every member or refused): the pooled tables'
``prob_<class>`` columns are the members' own, and the scheme is recorded in
``cv_class_scheme.json`` (:data:`parotidlib.report.cv_report.CV_SCHEME`), which 80-cv reads
for the pooled metrics and the report.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.data.split import MIN_GROUP_PATIENTS
from parotidlib.io import atomic_path, write_text_atomic
from parotidlib.paths import NOTEBOOKS_DIR
from parotidlib.paths import reports_dir as default_reports_dir
from parotidlib.report.cv_report import CV_SCHEME, SINGLE_SPLIT_METRICS, scheme_record
from parotidlib.run.stages import CV_REPORT
from parotidlib.study import ClassScheme

logger = logging.getLogger(__name__)

__all__ = ["CV_PREDICTIONS", "CV_RADIOMICS_PREDICTIONS", "GROUP_KEY", "check_grouped_folds",
           "grouped_folds", "members_scheme", "pool_predictions", "run_cv"]

#: The pooled out-of-fold predictions of a cross-validation batch.
CV_PREDICTIONS = "cv_predictions.csv"
#: The radiomics baseline's pooled out-of-fold predictions (``radiomics: true``).
CV_RADIOMICS_PREDICTIONS = "cv_radiomics_predictions.csv"
#: The curation params key naming the grouping column of the members' split
#: (``data.split.split_patients``'s ``group_by``).
GROUP_KEY = "cv_group_by"
#: Default number of folds without a grouping.
DEFAULT_FOLDS = 5


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


def members_scheme(batch_dir: str | Path, members: Sequence[Mapping[str, Any]],
                   members_dir: str = "folds") -> ClassScheme:
    """The class scheme of the members' curated data (each member's ``data/dataset.json``;
    the paper's for data curated before the scheme existed).

    Raises
    ------
    ValueError
        No members, or members whose data differ in their class scheme (names two of them
        and their schemes).
    """
    from parotidlib.evaluation.classes import run_scheme

    if not members:
        raise ValueError(f"the batch {batch_dir} has no members")
    root = Path(batch_dir) / members_dir
    schemes = {m["run_dir"]: run_scheme(root / m["run_dir"]) for m in members}
    (first, scheme), *others = schemes.items()
    for name, other in others:
        if other != scheme:
            raise ValueError(f"the members' data differ in their class scheme: {first} has "
                             f"{scheme.name} {list(scheme.classes)}, {name} has {other.name} "
                             f"{list(other.classes)}")
    return scheme


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
    from parotidlib.run.predict import newest_run

    run = newest_run(reports, profile)
    target = batch_dir / SINGLE_SPLIT_METRICS
    if run is None or not (run / "metrics.json").is_file():
        target.unlink(missing_ok=True)
        return
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["run"] = run.name
    write_text_atomic(target, json.dumps(metrics, indent=2))


def grouped_folds(params_path: str | Path, column: str,
                  min_patients: int = MIN_GROUP_PATIENTS) -> tuple[pd.DataFrame, pd.Series]:
    """The groups of a leave-one-``column``-out cross-validation of the profile's cohort.

    Returns
    -------
    (DataFrame, Series)
        :func:`parotidlib.data.split.group_table` of the cohort's manifest (the built-in
        synthetic cohort is generated if absent, as the curation would), and every patient's
        group (:func:`parotidlib.data.split.patient_groups`).

    Raises
    ------
    ValueError
        The grouping is refused (missing column, missing values, a small group, a group
        without some class of the profile's class scheme: the message says which).
    """
    from parotidlib.data.manifest import read_manifest_table
    from parotidlib.data.sources import manifest_path
    from parotidlib.data.split import group_table, patient_groups
    from parotidlib.params import load_params
    from parotidlib.study import class_scheme

    params = load_params(params_path)
    scheme = class_scheme(params.get("classes", "paper"))
    manifest = read_manifest_table(manifest_path(params))
    manifest = manifest[~manifest["histology"].isin(scheme.exclude)]
    return (group_table(manifest, column, min_patients, scheme),
            patient_groups(manifest, column))


def check_grouped_folds(pooled: pd.DataFrame, table: pd.DataFrame, groups: pd.Series
                        ) -> None:
    """Every pooled patient lies in the fold of its own group.

    Raises
    ------
    ValueError
        A member held out patients of another group (its split did not follow the grouping):
        names the fold and how many patients.
    """
    fold_group = dict(zip(table["fold"].astype(int), table["group"], strict=True))
    per_patient = pooled.drop_duplicates(["seed", "patient_id"])
    wrong = per_patient[per_patient["fold"].astype(int).map(fold_group)
                        != per_patient["patient_id"].map(groups)]
    if len(wrong):
        f = int(wrong["fold"].iloc[0])
        raise ValueError(f"fold {f} ({fold_group.get(f)!r}) held out "
                         f"{int((wrong['fold'] == f).sum())} patient(s) of another group: "
                         f"the members' split did not follow the grouping")


def _group_settings(params_path: Path, folds: int | None, group_by: str,
                    min_patients: int) -> tuple[int, pd.DataFrame, pd.Series]:
    from parotidlib.params import valid_keys

    table, groups = grouped_folds(params_path, group_by, min_patients)
    if folds is not None and folds != len(table):
        raise ValueError(f"--folds {folds} does not match the {len(table)} values of "
                         f"{group_by!r} ({', '.join(map(repr, table['group']))}): with "
                         f"--group-by there is one fold per value; leave --folds out")
    if GROUP_KEY not in valid_keys():
        raise ValueError(f"--group-by needs the curation params key {GROUP_KEY!r} (the "
                         f"members' grouped split), which this version of parotidlib.config "
                         f"does not have")
    return len(table), table, groups


def run_cv(params_path: str | Path, folds: int | None = None, seeds: Sequence[int] = (0,),
           name: str | None = None, executor: str | None = None, jobs: int | None = None,
           cluster: Mapping[str, Any] | None = None, force: bool = False,
           reports_dir: str | Path | None = None, notebooks_dir: Path = NOTEBOOKS_DIR,
           group_by: str | None = None, min_group_patients: int = MIN_GROUP_PATIENTS
           ) -> Path:
    """Cross-validate a params profile over all patients; returns ``<run>/cv.html``.

    Parameters
    ----------
    folds : int, optional
        k of the k-fold split (>= 2; default 5). With ``group_by``: the number of groups, or
        None; another number is refused.
    seeds : sequence of int
        Training seeds; each seed trains every fold (the folds stay the same: they follow
        ``split_seed``).
    name : str, optional
        Batch folder, one plain folder name (default ``<params name>_cv<k>``, with
        ``group_by`` ``<params name>_by-<column>``; reruns resume it); locked while the
        cross-validation runs.
    group_by : str, optional
        A manifest column (e.g. ``scanner``): one fold per value, each held out once
        (leave-one-group-out; :func:`grouped_folds` refuses a grouping that cannot be
        validated before anything runs).
    min_group_patients : int
        Fewest patients a group may have.

    The newest single-split run of the same profile (``reports/<date>_<params name>_*``),
    when there is one, is the comparison of the report's interval widths: its metrics.json
    is copied to ``single_split_metrics.json``.
    """
    from parotidlib.evaluation.cv import CV_GROUPS, write_cv_groups
    from parotidlib.report.html import export_html
    from parotidlib.run.batch import run_batch
    from parotidlib.run.pipeline import execute_stage, run_folder
    from parotidlib.run.provenance import check_run_name

    params_path = Path(params_path)
    overrides: dict[str, Any] = {}
    if group_by is not None:
        folds, table, groups = _group_settings(params_path, folds, group_by,
                                               min_group_patients)
        overrides[GROUP_KEY] = group_by
        default_name = f"{params_path.stem}_by-{re.sub(r'[^A-Za-z0-9._-]', '_', group_by)}"
    else:
        folds = DEFAULT_FOLDS if folds is None else folds
        default_name = f"{params_path.stem}_cv{folds}"
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    reports = Path(reports_dir or default_reports_dir()).resolve()
    batch_name = check_run_name(name if name is not None else default_name, "batch name")
    grid = {"fold": list(range(folds)), "seed": list(seeds)}
    # the batch folder stays locked from the members to the report
    with run_folder(reports / batch_name, "batch", "the batch folder"):
        result = run_batch(params_path, grid, name=batch_name, members_dir="folds",
                           overrides={"cv_folds": folds, **overrides}, executor=executor,
                           jobs=jobs, cluster=cluster, force=force, reports_dir=reports,
                           notebooks_dir=notebooks_dir)
        pooled = pool_predictions(result.batch_dir, result.members)
        scheme = members_scheme(result.batch_dir, result.members)
        write_text_atomic(result.batch_dir / CV_SCHEME,
                          json.dumps(scheme_record(scheme), indent=2))
        if group_by is not None:
            check_grouped_folds(pooled, table, groups)
            write_cv_groups(result.batch_dir, group_by, table)
        else:
            (result.batch_dir / CV_GROUPS).unlink(missing_ok=True)
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
