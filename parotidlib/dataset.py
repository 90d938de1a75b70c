"""Curating a cohort into the run folder's ``data/`` and loading it back (DESIGN.md, "Run folder").

:func:`curate_cohort` turns every patient's volumes into the paper's four-channel slices
(:func:`parotidlib.preprocess.preprocess_patient`), assigns the patient-level split
(:func:`parotidlib.split.split_patients`) and writes

* ``images.npy``   uint8, shape (N, C, H, W), channels in ``dataset.json["channels"]`` order;
* ``slices.csv``   one row per image: patient_id, slice_index, z_mm, label, label_index, side,
  histology, tumor_side, scanner, age, sex, tumor_area_mm2, split, optional manifest columns;
* ``dataset.json`` channels, image size, classes, config, manifest and its fingerprint, counts
  per split and class, patients without free slices, skipped patients, warnings, and the
  SHA-256 of the two other files. Written last: it marks a complete dataset.

Everything is written into a hidden temporary sibling folder that is renamed into place at the
end, so an interrupted curation never leaves a half-written dataset; :func:`load_dataset`
refuses a folder without a valid ``dataset.json``. The same cohort and config give
byte-identical files (no timestamps; patients in patient_id order, whatever the parallelism).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm  # plain text bars: ipywidgets is not a dependency

from parotidlib.align import AlignmentError
from parotidlib.cohort import (
    CohortError,
    Problem,
    check_patient_data,
    load_patient,
    scan_manifest,
    skip_patients,
)
from parotidlib.constants import (
    CHANNELS,
    CLASSES,
    HISTOLOGIES,
    IMAGE_COLUMNS,
    LABEL_COLUMNS,
    MANIFEST_COLUMNS,
)
from parotidlib.preprocess import preprocess_patient
from parotidlib.split import SPLITS, check_no_leakage, split_patients

logger = logging.getLogger(__name__)

#: Format tag of dataset.json; load_dataset refuses other formats.
DATASET_FORMAT = "parotidlib.curated/1"
NORMALISATIONS = ("percentile", "minmax")
_TEXT = ("patient_id", "label", "side", "histology", "tumor_side", "scanner", "sex", "split")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool) and np.isfinite(value)


@dataclass(frozen=True)
class CurationConfig:
    """Parameters of curation; field names are the flat params keys.

    What each step does with them is described in :mod:`parotidlib.preprocess` (crops,
    normalisation, masking) and :mod:`parotidlib.split` (the patient split). Raises ValueError
    naming the key for an invalid value; ``channels`` must be in the canonical order
    t1, ce_t1, t2, gland (a YAML list is accepted and stored as a tuple).
    """

    image_size: int = 224  # side (px) of every channel after resizing; the paper's 224
    channels: tuple[str, ...] = CHANNELS  # channels curated, a subset of CHANNELS in its order
    crop_margin_mm: float = 5.0  # margin around the ROI's bounding box (mm) before squaring
    mask_background: bool = True  # zero pixels outside the ROI (tumour or gland) mask
    min_tumor_area_mm2: float = 20.0  # smallest ROI area (mm^2) for a lesion or free slice
    normalisation: str = "percentile"  # "percentile": per-series window; "minmax": per crop
    percentile_low: float = 0.5  # lower percentile (of body voxels) mapped to 0
    percentile_high: float = 99.5  # upper percentile mapped to 1
    test_fraction: float = 0.1  # fraction of patients in the test set (paper: 21/233)
    split_seed: int = 0  # random state of the patient split
    cv_folds: int = 0  # 0: single random split; k >= 2: k patient-grouped folds
    fold: int = 0  # test fold when cv_folds >= 2
    curate_jobs: int = 0  # worker processes over patients; 0 = all cores
    skip_invalid_patients: bool = False  # skip (and list) invalid patients instead of raising

    def __post_init__(self) -> None:
        channels = self.channels
        if isinstance(channels, str):
            channels = (channels,)
        if not isinstance(channels, (list, tuple)):
            raise ValueError(f"channels must be a list of channel names, got {channels!r}")
        channels = tuple(channels)
        object.__setattr__(self, "channels", channels)
        unknown = [c for c in channels if c not in CHANNELS]
        if not channels or unknown or len(set(channels)) != len(channels):
            raise ValueError(f"channels must be a non-empty subset of {list(CHANNELS)} without "
                             f"duplicates, got {list(channels)!r}")
        canonical = tuple(c for c in CHANNELS if c in channels)
        if channels != canonical:
            raise ValueError(f"channels must be in the canonical order {list(CHANNELS)}, got "
                             f"{list(channels)}; use {list(canonical)}")
        if not _is_int(self.image_size) or self.image_size < 8:
            raise ValueError(f"image_size must be an integer >= 8 (px), got {self.image_size!r}")
        for key in ("crop_margin_mm", "min_tumor_area_mm2"):
            value = getattr(self, key)
            if not _is_real(value) or value < 0:
                raise ValueError(f"{key} must be a number >= 0, got {value!r}")
        for key in ("mask_background", "skip_invalid_patients"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {list(NORMALISATIONS)}, got "
                             f"{self.normalisation!r}")
        low, high = self.percentile_low, self.percentile_high
        if not (_is_real(low) and _is_real(high) and 0 <= low < high <= 100):
            raise ValueError(f"percentile_low and percentile_high must satisfy 0 <= low < high "
                             f"<= 100, got percentile_low={low!r}, percentile_high={high!r}")
        if not _is_real(self.test_fraction) or not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if not _is_int(self.split_seed) or self.split_seed < 0:
            raise ValueError(f"split_seed must be an integer >= 0, got {self.split_seed!r}")
        if not _is_int(self.cv_folds) or self.cv_folds < 0 or self.cv_folds == 1:
            raise ValueError(f"cv_folds must be 0 or an integer >= 2, got {self.cv_folds!r}")
        if not _is_int(self.fold) or not 0 <= self.fold < max(self.cv_folds, 1):
            raise ValueError(f"fold must be an integer in [0, {max(self.cv_folds, 1)}) for "
                             f"cv_folds={self.cv_folds}, got {self.fold!r}")
        if not _is_int(self.curate_jobs) or self.curate_jobs < 0:
            raise ValueError(f"curate_jobs must be an integer >= 0 (0 = all cores), got "
                             f"{self.curate_jobs!r}")

    @classmethod
    def from_params(cls, params: dict) -> CurationConfig:
        """Build from a flat params dict, taking only this config's keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == "channels" else v) for k, v in params.items()
                      if k in names})


@dataclass
class CuratedDataset:
    """A curated dataset as loaded (or just written).

    Attributes
    ----------
    path : Path
        The dataset folder.
    images : ndarray of uint8, shape (N, C, H, W)
        Read-only memmap when all curated channels (or a contiguous run of them) are selected,
        an in-memory copy otherwise.
    slices : pandas.DataFrame
        slices.csv, row i describing ``images[i]``.
    meta : dict
        dataset.json.
    channels : tuple of str
        The selected channels, in ``images``' channel order.
    """

    path: Path
    images: np.ndarray
    slices: pd.DataFrame
    meta: dict
    channels: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        """Class index (CLASSES order) of every image, shape (N,)."""
        return self.slices["label_index"].to_numpy()

    def indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` ("train" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return np.flatnonzero(self.slices["split"].to_numpy() == split)


# --------------------------------------------------------------------------- workers


def _sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _curate_one(index: int, row: dict, config: CurationConfig, parts_dir: str) -> dict:
    """Worker: one patient -> parts_dir/<index>.npy and its slice rows, warnings, problems."""
    pid = row["patient_id"]
    result = {"index": index, "patient_id": pid, "slices": None, "no_free": False,
              "warnings": [], "problems": [], "files_sha256": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            volumes = load_patient(row)
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
    result["files_sha256"] = {c: _sha256(row[c]) for c in (*IMAGE_COLUMNS, *LABEL_COLUMNS)}
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
            # workers use only numpy/scipy/nibabel, not torch's thread pools.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
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


def _slices_table(results: list[dict], manifest: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    frames = [r["slices"] for r in results if r["slices"] is not None and len(r["slices"])]
    slices = pd.concat(frames, ignore_index=True)
    clinical = manifest.set_index("patient_id")
    extras = [c for c in clinical.columns if c not in MANIFEST_COLUMNS]
    for col in ("histology", "tumor_side", "scanner", "age", "sex", *extras):
        slices[col] = slices["patient_id"].map(clinical[col])
    slices["split"] = slices["patient_id"].map(split)
    order = ["patient_id", "slice_index", "z_mm", "label", "label_index", "side", "histology",
             "tumor_side", "scanner", "age", "sex", "tumor_area_mm2", "split", *extras]
    return slices[order]


def _counts(slices: pd.DataFrame, patients: pd.DataFrame, split: pd.Series) -> dict:
    counts = {}
    for name in (*SPLITS, "total"):
        part = slices if name == "total" else slices[slices["split"] == name]
        counts[name] = {c: int((part["label"] == c).sum()) for c in CLASSES}
    per_patient = {}
    for name in (*SPLITS, "total"):
        ids = split.index if name == "total" else split.index[split == name]
        hist = patients.set_index("patient_id").loc[list(ids), "histology"]
        per_patient[name] = {h: int((hist == h).sum()) for h in HISTOLOGIES}
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
                      "sha256": _sha256(tmp / "images.npy")}
    meta["slices_file"] = {"file": "slices.csv", "sha256": _sha256(tmp / "slices.csv")}
    # dataset.json last: its presence marks a complete dataset
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, trash / out_dir.name)
        os.replace(tmp, out_dir)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, out_dir)


def curate_cohort(manifest_path: str | Path, out_dir: str | Path,
                  config: CurationConfig | None = None, progress: bool = True
                  ) -> CuratedDataset:
    """Curate a cohort into ``out_dir`` (images.npy, slices.csv, dataset.json).

    Parameters
    ----------
    manifest_path : path
        The cohort's manifest.csv (DESIGN.md, "Cohort format").
    out_dir : path
        The dataset folder (e.g. ``reports/<run>/data``). It must be absent, empty or a
        previous dataset (then it is replaced, atomically).
    config : CurationConfig, optional
        Defaults reproduce the paper's inputs (224 px, four channels).
    progress : bool
        Show a tqdm bar over patients.

    Returns
    -------
    CuratedDataset
        As :func:`load_dataset` returns it.

    Raises
    ------
    CohortError
        Every invalid patient (header, data or alignment problems) at once, unless
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
    cohort, problems = scan_manifest(manifest_path, check_data=False)
    manifest = cohort.manifest.sort_values("patient_id", kind="stable").reset_index(drop=True)
    rows = [row.to_dict() for _, row in manifest.iterrows()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
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
        split = split_patients(patients, config.test_fraction, config.split_seed,
                               config.cv_folds, config.fold)
        slices = _slices_table(good, manifest, split)
        check_no_leakage(slices)
        cohort_hash = hashlib.sha256()
        for r in good:
            for col, digest in sorted(r["files_sha256"].items()):
                cohort_hash.update(f"{r['patient_id']}\t{col}\t{digest}\n".encode())
        meta = {
            "format": DATASET_FORMAT,
            "channels": list(config.channels),
            "image_size": config.image_size,
            "classes": list(CLASSES),
            "n_slices": len(slices),
            # curate_jobs changes nothing in the output, so it is left out of the record
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in asdict(config).items() if k != "curate_jobs"},
            "manifest": str(cohort.manifest_path),
            "manifest_sha256": _sha256(cohort.manifest_path),
            "cohort_sha256": cohort_hash.hexdigest(),
            "counts": _counts(slices, patients, split),
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


# --------------------------------------------------------------------------- loading


def load_dataset(out_dir: str | Path, channels: tuple[str, ...] | list[str] | None = None,
                 verify: bool = False) -> CuratedDataset:
    """Load a curated dataset written by :func:`curate_cohort`.

    Parameters
    ----------
    out_dir : path
        The dataset folder.
    channels : sequence of str, optional
        Channels to select (a subset of the curated ones, in canonical order); default all.
        The channel ablation curates once with all four and selects here.
    verify : bool
        Recompute the SHA-256 of images.npy and slices.csv and compare with dataset.json.

    Returns
    -------
    CuratedDataset

    Raises
    ------
    FileNotFoundError
        No dataset.json (curation absent or incomplete).
    ValueError
        dataset.json invalid or inconsistent with the files; a channel not curated; a
        patient in two splits (:class:`parotidlib.split.LeakageError`).

    Examples
    --------
    >>> ds = load_dataset("reports/run1/data", channels=("t1", "gland"))  # doctest: +SKIP
    >>> x_train = ds.images[ds.indices("train")]  # doctest: +SKIP
    """
    path = Path(out_dir)
    marker = path / "dataset.json"
    if not marker.is_file():
        raise FileNotFoundError(f"{path} is not a curated dataset (no dataset.json): curation "
                                f"is missing or was interrupted; run curate_cohort again")
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{marker} is not valid JSON: {exc}") from None
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != DATASET_FORMAT:
        raise ValueError(f"{marker} has format {found!r}, expected {DATASET_FORMAT!r}")
    images = np.load(path / meta["images"]["file"], mmap_mode="r")
    if list(images.shape) != meta["images"]["shape"] or images.dtype != np.uint8:
        raise ValueError(f"{path}/images.npy has shape {images.shape} and dtype {images.dtype}; "
                         f"dataset.json says {meta['images']['shape']} uint8")
    text = {c: str for c in _TEXT}
    slices = pd.read_csv(path / meta["slices_file"]["file"], dtype=text, keep_default_na=False,
                         na_values=[""])
    if len(slices) != images.shape[0]:
        raise ValueError(f"{path}/slices.csv has {len(slices)} rows but images.npy "
                         f"{images.shape[0]} images")
    if verify:
        for key, name in (("images", "images.npy"), ("slices_file", "slices.csv")):
            if _sha256(path / name) != meta[key]["sha256"]:
                raise ValueError(f"{path / name} does not match its SHA-256 in dataset.json")
    curated = tuple(meta["channels"])
    channels = curated if channels is None else tuple(channels)
    missing = [c for c in channels if c not in curated]
    if not channels or missing or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be a non-empty subset of the curated channels "
                         f"{list(curated)} without duplicates, got {list(channels)}")
    if channels != tuple(c for c in CHANNELS if c in channels):
        raise ValueError(f"channels must be in the canonical order {list(CHANNELS)}, got "
                         f"{list(channels)}")
    idx = [curated.index(c) for c in channels]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        images = images[:, idx[0]:idx[0] + len(idx)]  # a view: stays memory-mapped
    else:
        images = np.ascontiguousarray(images[:, idx])
    check_no_leakage(slices)
    return CuratedDataset(path.resolve(), images, slices, meta, channels)
