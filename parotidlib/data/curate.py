"""Curating a cohort into a run folder's ``data/`` (the dataset format: :mod:`.dataset`).

:func:`curate_cohort` turns every patient's volumes into the paper's four-channel slices
(:func:`parotidlib.data.preprocess.preprocess_patient`), in parallel over patients, assigns the
patient-level split (:func:`parotidlib.data.split.split_patients`) and writes the dataset.
Everything is written into a hidden temporary sibling folder (``.<name>.tmp-XXXXXXXX``, owned
by this process: :func:`parotidlib.io.make_temp_dir`) that is renamed into place at the end,
so an interrupted curation never leaves a half-written dataset; the next curation into the
same folder removes such leftovers of dead runs. The same cohort and config
give byte-identical files (no timestamps; patients in patient_id order, whatever the
parallelism).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import warnings
from concurrent.futures import as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.config import CurationConfig
from parotidlib.constants import HISTOLOGIES, MANIFEST_COLUMNS
from parotidlib.data.align import AlignmentError
from parotidlib.data.cohort import (
    CohortError,
    Problem,
    check_patient_data,
    load_patient,
    scan_manifest,
    skip_patients,
)
from parotidlib.data.dataset import DATASET_FORMAT, CuratedDataset, load_dataset
from parotidlib.data.manifest import image_sha256
from parotidlib.data.preprocess import preprocess_patient
from parotidlib.data.split import EXTERNAL, SPLITS, check_no_leakage, split_patients
from parotidlib.data.tables import histology_order
from parotidlib.io import (
    make_temp_dir,
    release_temp_dir,
    remove_stale_temp_dirs,
    sha256_file,
    sha256_text,
)
from parotidlib.processes import worker_pool
from parotidlib.progress import tqdm  # a widget in a notebook, plain text in a run
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- workers


def _curate_one(index: int, row: dict, config: CurationConfig, parts_dir: str) -> dict:
    """Worker: one patient -> parts_dir/<index>.npy and its slice rows, warnings, problems."""
    pid = row["patient_id"]
    result = {"index": index, "patient_id": pid, "slices": None, "no_free": False,
              "warnings": [], "problems": [], "files_sha256": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            volumes = load_patient(row, study=config.study)
            problems = check_patient_data(volumes)
            if not problems:
                patient = preprocess_patient(volumes, config)
        except CohortError as exc:
            problems = exc.problems
        except AlignmentError as exc:
            col = exc.series or "t1"
            problems = [Problem(pid, col, row.get(col), str(exc))]
        except Exception as exc:  # a bug or an unforeseen input: say which patient
            raise RuntimeError(f"curation failed for patient {pid}: {type(exc).__name__}: "
                               f"{exc}") from exc
    result["warnings"] = [str(w.message) for w in caught]
    result["problems"] = problems
    if problems:
        return result
    np.save(Path(parts_dir) / f"{index:06d}.npy", patient.images)
    result["slices"] = patient.slices
    result["no_free"] = patient.no_free_slices
    result["files_sha256"] = {c: image_sha256(row[c]) for c in config.study.file_columns}
    return result


def _n_jobs(config: CurationConfig, n_patients: int) -> int:
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")  # Linux only
             else os.cpu_count() or 1)
    jobs = config.curate_jobs or cores
    return max(1, min(jobs, n_patients))


def _run_patients(rows: list[dict], config: CurationConfig, parts_dir: Path,
                  progress: bool) -> list[dict]:
    jobs = _n_jobs(config, len(rows))
    bar = tqdm(total=len(rows), desc="curate", unit="patient", disable=None if progress else True)
    results: dict[int, dict] = {}
    try:
        if jobs == 1:
            for i, row in enumerate(rows):
                results[i] = _curate_one(i, row, config, str(parts_dir))
                bar.update()
        else:
            # fork (where available): workers start at once and user scripts need no
            # `if __name__ == "__main__"` guard (spawn/forkserver re-import __main__). The
            # workers use only numpy/scipy/nibabel, not torch's thread pools. They die with
            # this process (a killed run leaves none behind: parotidlib.processes).
            methods = multiprocessing.get_all_start_methods()
            with worker_pool(jobs, "fork" if "fork" in methods else None) as pool:
                futures = [pool.submit(_curate_one, i, row, config, str(parts_dir))
                           for i, row in enumerate(rows)]
                try:
                    for future in as_completed(futures):
                        result = future.result()
                        results[result["index"]] = result
                        bar.update()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return [results[i] for i in range(len(rows))]


# --------------------------------------------------------------------------- assembling


def _slices_table(results: list[dict], manifest: pd.DataFrame, split: pd.Series,
                  config: CurationConfig) -> pd.DataFrame:
    frames = [r["slices"] for r in results if r["slices"] is not None and len(r["slices"])]
    slices = pd.concat(frames, ignore_index=True)
    clinical = manifest.set_index("patient_id")
    # the files read (absolute paths here) stay out; other columns are carried through
    read = {*MANIFEST_COLUMNS, *config.study.file_columns}
    extras = [c for c in clinical.columns if c not in read]
    for col in ("histology", "tumor_side", "scanner", "age", "sex", *extras):
        slices[col] = slices["patient_id"].map(clinical[col])
    slices["split"] = slices["patient_id"].map(split)
    order = ["patient_id", "slice_index", "z_mm", "label", "label_index", "side", "histology",
             "tumor_side", "scanner", "age", "sex", "tumor_area_mm2", "split", *extras]
    return slices[order]


def _counted_histologies(patients: pd.DataFrame, scheme: ClassScheme) -> list[str]:
    """The histologies dataset.json counts patients of: those of the paper the scheme maps
    (always, 0 or not: the paper's scheme gives today's three), then every other histology
    of the patients (:func:`parotidlib.data.tables.histology_order`)."""
    present = set(patients["histology"])
    return [h for h in histology_order(present)
            if h in present or (h in HISTOLOGIES and h in scheme.histologies)]


def _counts(slices: pd.DataFrame, patients: pd.DataFrame, split: pd.Series,
            external: bool = False, scheme: ClassScheme = PAPER_CLASSES) -> dict:
    names = (EXTERNAL, "total") if external else (*SPLITS, "total")
    histologies = _counted_histologies(patients, scheme)
    counts = {}
    for name in names:
        part = slices if name == "total" else slices[slices["split"] == name]
        counts[name] = {c: int((part["label"] == c).sum()) for c in scheme.classes}
        if external:  # lesion slices of patients without histology
            counts[name]["unknown"] = int((part["label"] == "").sum())
    per_patient = {}
    for name in names:
        ids = split.index if name == "total" else split.index[split == name]
        hist = patients.set_index("patient_id").loc[list(ids), "histology"]
        per_patient[name] = {h: int((hist == h).sum()) for h in histologies}
        if external:
            per_patient[name]["unknown"] = int((hist == "").sum())
        per_patient[name]["all"] = len(ids)
    return {"slices": counts, "patients": per_patient}


def _write(tmp: Path, results: list[dict], config: CurationConfig, slices: pd.DataFrame,
           meta: dict) -> None:
    shape = (len(slices), len(config.channels), config.image_size, config.image_size)
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=shape)
    start = 0
    for result in results:
        part_path = tmp / "parts" / f"{result['index']:06d}.npy"
        if result["slices"] is None:
            continue
        part = np.load(part_path)
        images[start:start + len(part)] = part
        start += len(part)
    images.flush()
    del images
    shutil.rmtree(tmp / "parts")
    slices.to_csv(tmp / "slices.csv", index=False, lineterminator="\n")
    meta["images"] = {"file": "images.npy", "shape": list(shape), "dtype": "uint8",
                      "sha256": sha256_file(tmp / "images.npy")}
    meta["slices_file"] = {"file": "slices.csv", "sha256": sha256_file(tmp / "slices.csv")}
    # dataset.json last: its presence marks a complete dataset
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


def _temp_prefixes(out_dir: Path) -> tuple[str, str]:
    """Name prefixes of the temporary siblings of ``out_dir``: the dataset being built, and
    the previous dataset being replaced."""
    return f".{out_dir.name}.tmp-", f".{out_dir.name}.old-"


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        trash = make_temp_dir(out_dir.parent, _temp_prefixes(out_dir)[1])
        os.replace(out_dir, trash / out_dir.name)
        release_temp_dir(tmp)  # the owner file must not end up in the dataset
        os.replace(tmp, out_dir)
        shutil.rmtree(trash)
    else:
        release_temp_dir(tmp)
        os.replace(tmp, out_dir)


def curate_cohort(manifest_path: str | Path, out_dir: str | Path,
                  config: CurationConfig | None = None, progress: bool = True,
                  external: bool = False) -> CuratedDataset:
    """Curate a cohort into ``out_dir`` (images.npy, slices.csv, dataset.json).

    Parameters
    ----------
    manifest_path : path
        The cohort's manifest.csv (docs/cohort-format.md).
    out_dir : path
        The dataset folder (e.g. ``reports/<run>/data``). It must be absent, empty or a
        previous dataset (then it is replaced, atomically). It gets the permissions of an
        ordinary new folder (0o777 less the umask). Temporary siblings left by curations
        that died (``.<name>.tmp-*``, ``.<name>.old-*``) are removed first
        (:func:`parotidlib.io.remove_stale_temp_dirs`); those of live runs are kept.
    config : CurationConfig, optional
        Defaults reproduce the paper's inputs (224 px, four channels). Its class scheme
        (``config.class_scheme``) says which histologies are allowed, the class of each
        patient's lesion slices (``free`` for the contralateral gland's) and the strata of
        the split; patients of a histology it excludes are left out and counted in
        dataset.json (``excluded_histologies``).
    progress : bool
        Show a tqdm bar over patients.
    external : bool
        Curate for a trained model (external validation, new patients): no split, every
        patient's split is ``"external"``, and patients without histology (an empty cell) are
        allowed; their lesion slices get an empty label and label_index -1. dataset.json
        then counts ``external`` and ``total``, with ``unknown`` for those patients.

    Returns
    -------
    CuratedDataset
        As :func:`load_dataset` returns it.

    Raises
    ------
    CohortError
        Every invalid patient (header, data or alignment problems, a histology the class
        scheme does not cover, or a tumour on another side than the manifest's
        ``tumor_side``) at once, unless
        ``config.skip_invalid_patients``; then they are skipped, warned about and listed in
        dataset.json.
    ValueError
        ``out_dir`` is a non-empty folder that is not a dataset; no slice at all.

    Examples
    --------
    >>> ds = curate_cohort("data/synthetic/manifest.csv", "reports/run1/data",
    ...                    CurationConfig(image_size=64))  # doctest: +SKIP
    >>> ds.images.shape, ds.slices.groupby(["split", "label"]).size()  # doctest: +SKIP
    """
    config = config or CurationConfig()
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "dataset.json").is_file():
        raise ValueError(f"out_dir {out_dir} is a non-empty folder without dataset.json; "
                         f"refusing to replace it (choose an empty or new folder)")
    scheme = config.class_scheme
    cohort, problems = scan_manifest(manifest_path, check_data=False,
                                     unknown_histology=external, study=config.study,
                                     scheme=scheme)
    manifest = cohort.manifest.sort_values("patient_id", kind="stable").reset_index(drop=True)
    rows = [row.to_dict() for _, row in manifest.iterrows()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for prefix in _temp_prefixes(out_dir):  # leftovers of curations that died
        remove_stale_temp_dirs(out_dir.parent, prefix)
    tmp = make_temp_dir(out_dir.parent, _temp_prefixes(out_dir)[0])
    try:
        (tmp / "parts").mkdir()
        results = _run_patients(rows, config, tmp / "parts", progress) if rows else []
        problems += [p for r in results for p in r["problems"]]
        if problems and not config.skip_invalid_patients:
            raise CohortError(problems, cohort.manifest_path)
        for message in (m for r in results for m in r["warnings"]):
            # re-raised in the parent (workers' warnings do not reach the caller's filters)
            logger.debug(message)
            warnings.warn(message, stacklevel=2)
        if problems:
            cohort = skip_patients(cohort, problems)
        good = [r for r in results if not r["problems"]]
        patients = manifest[manifest["patient_id"].isin([r["patient_id"] for r in good])]
        if not any(r["slices"] is not None and len(r["slices"]) for r in good):
            raise ValueError(f"no slice with an ROI of >= {config.min_tumor_area_mm2} mm^2 in "
                             f"the cohort {cohort.manifest_path}; nothing to curate")
        if external:
            split = pd.Series(EXTERNAL, index=pd.Index(sorted(patients["patient_id"]),
                                                        name="patient_id"), name="split")
        else:
            split = split_patients(patients, config.test_fraction, config.split_seed,
                                   config.cv_folds, config.fold, config.cv_group_by, scheme)
        slices = _slices_table(good, manifest, split, config)
        check_no_leakage(slices)
        cohort_hash = sha256_text("".join(
            f"{r['patient_id']}\t{col}\t{digest}\n"
            for r in good for col, digest in sorted(r["files_sha256"].items())))
        meta = {
            "format": DATASET_FORMAT,
            **({"external": True} if external else {}),
            "channels": list(config.channels),
            "image_size": config.image_size,
            "classes": list(scheme.classes),
            "class_scheme": scheme.record(),
            "n_slices": len(slices),
            # curate_jobs changes nothing in the output, so it is left out of the record
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in asdict(config).items() if k != "curate_jobs"},
            "manifest": str(cohort.manifest_path),
            "manifest_sha256": sha256_file(cohort.manifest_path),
            "cohort_sha256": cohort_hash,
            "counts": _counts(slices, patients, split, external, scheme),
            # patients left out by the scheme, per excluded histology (no ids)
            "excluded_histologies": cohort.excluded_counts,
            "patients_without_free_slices": [r["patient_id"] for r in good if r["no_free"]],
            "patients_without_lesion_slices": sorted(
                set(patients["patient_id"]) - set(slices.loc[slices.label != "free",
                                                             "patient_id"])),
            "skipped_patients": [
                {"patient_id": pid, "problems": [str(p) for p in problems
                                                 if p.patient_id == pid]}
                for pid in sorted({p.patient_id for p in problems}, key=str)],
            "warnings": [m for r in results for m in r["warnings"]],
        }
        _write(tmp, results, config, slices, meta)
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("curated %d slices of %d patients into %s", len(slices), len(patients), out_dir)
    return load_dataset(out_dir)




#: Split settings a derived dataset (:func:`resplit_dataset`) may change.
SPLIT_SETTINGS = ("test_fraction", "split_seed", "cv_folds", "fold", "cv_group_by")


def resplit_dataset(source: str | Path, out_dir: str | Path, config: CurationConfig
                    ) -> CuratedDataset:
    """The curated dataset ``source`` with another patient split, e.g. one cross-validation
    fold, in ``out_dir``, without curating again.

    ``out_dir/images.npy`` is a relative symbolic link to the source's images (read-only to
    whoever trains on it); ``slices.csv`` is the source's with the ``split`` column of
    :func:`parotidlib.data.split.split_patients` under ``config``'s split settings
    (:data:`SPLIT_SETTINGS`), and ``dataset.json`` records them, the new counts and the
    source (``derived_from``). Written atomically, and not rewritten when unchanged (a
    resumed batch leaves finished members' data alone).

    Raises
    ------
    ValueError
        ``source`` is not a complete dataset, or ``out_dir`` a folder that is not a dataset.
    """
    source, out_dir = Path(source).resolve(), Path(out_dir).resolve()
    src = load_dataset(source)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "dataset.json").is_file():
        raise ValueError(f"out_dir {out_dir} is a non-empty folder without dataset.json; "
                         f"refusing to replace it")
    group = [config.cv_group_by] if config.cv_group_by else []
    patients = src.slices.drop_duplicates("patient_id")[["patient_id", "histology", *group]]
    scheme = src.class_scheme
    split = split_patients(patients, config.test_fraction, config.split_seed, config.cv_folds,
                           config.fold, config.cv_group_by, scheme)
    slices = src.slices.copy()
    slices["split"] = slices["patient_id"].map(split)
    check_no_leakage(slices)
    text = slices.to_csv(index=False, lineterminator="\n")
    meta = json.loads(json.dumps(src.meta))
    meta["config"].update({k: getattr(config, k) for k in SPLIT_SETTINGS})
    meta["counts"] = _counts(slices, patients, split, scheme=scheme)
    meta["slices_file"] = {"file": "slices.csv", "sha256": sha256_text(text)}
    meta["derived_from"] = {"dataset": os.path.relpath(source, out_dir.parent),
                            "slices_sha256": src.meta["slices_file"]["sha256"]}
    meta_text = json.dumps(meta, indent=2) + "\n"
    try:
        if ((out_dir / "dataset.json").read_text() == meta_text
                and (out_dir / "slices.csv").read_text() == text):
            return load_dataset(out_dir)
    except OSError:
        pass
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for prefix in _temp_prefixes(out_dir):
        remove_stale_temp_dirs(out_dir.parent, prefix)
    tmp = make_temp_dir(out_dir.parent, _temp_prefixes(out_dir)[0])
    try:
        os.symlink(os.path.relpath(source / meta["images"]["file"], out_dir),
                   tmp / meta["images"]["file"])
        (tmp / "slices.csv").write_text(text)
        (tmp / "dataset.json").write_text(meta_text)
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_dataset(out_dir)
