"""A curated dataset in the run folder's ``data/`` (docs/design.md, "Run folder"), and reading it.

Written by :func:`parotidlib.data.curate.curate_cohort`:

* ``images.npy``   uint8, shape (N, C, H, W), channels in ``dataset.json["channels"]`` order;
* ``slices.csv``   one row per image: patient_id, slice_index, z_mm, label, label_index, side,
  histology, tumor_side, scanner, age, sex, tumor_area_mm2, split, optional manifest columns
  (in a cohort curated for a trained model, ``curate_cohort(external=True)``, split is
  "external" and a patient without histology has lesion slices of empty label and
  label_index -1);
* ``dataset.json`` channels, image size, classes (model-output order), the class scheme
  (``class_scheme``: :meth:`parotidlib.study.ClassScheme.record`), config, manifest and its
  fingerprint, counts per split and class, patients left out per excluded histology
  (``excluded_histologies``), patients without free slices, skipped patients, warnings, and
  the SHA-256 of the two other files. Written last: it marks a complete dataset. A dataset
  written before the class scheme existed has the paper's classes.

:func:`load_dataset` refuses a folder without a valid ``dataset.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.config import check_channels
from parotidlib.constants import CLASSES
from parotidlib.data.split import EXTERNAL, SPLITS, check_no_leakage
from parotidlib.io import sha256_file
from parotidlib.study import PAPER_CLASSES, ClassScheme

#: Format tag of dataset.json; load_dataset refuses other formats.
DATASET_FORMAT = "parotidlib.curated/1"
#: Text columns of slices.csv (patient ids stay text: "007" is not 7).
TEXT_COLUMNS = ("patient_id", "label", "side", "histology", "tumor_side", "scanner", "sex", "split")


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
    def classes(self) -> tuple[str, ...]:
        """The slice classes in model-output order (``label_index`` indexes them)."""
        return tuple(self.meta.get("classes") or CLASSES)

    @property
    def class_scheme(self) -> ClassScheme:
        """How the cohort's histologies were mapped to :attr:`classes`."""
        record = self.meta.get("class_scheme")
        return ClassScheme.from_record(record) if record else PAPER_CLASSES

    @property
    def labels(self) -> np.ndarray:
        """Class index (:attr:`classes` order) of every image, shape (N,)."""
        return self.slices["label_index"].to_numpy()

    def indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` ("train", "test", or "external" for a cohort curated
        for a trained model)."""
        if split not in (*SPLITS, EXTERNAL):
            raise ValueError(f"split must be one of {[*SPLITS, EXTERNAL]}, got {split!r}")
        return np.flatnonzero(self.slices["split"].to_numpy() == split)


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
        patient in two splits (:class:`parotidlib.data.split.LeakageError`).

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
    text = {c: str for c in TEXT_COLUMNS}
    slices = pd.read_csv(path / meta["slices_file"]["file"], dtype=text, keep_default_na=False,
                         na_values=[""])
    if len(slices) != images.shape[0]:
        raise ValueError(f"{path}/slices.csv has {len(slices)} rows but images.npy "
                         f"{images.shape[0]} images")
    if verify:
        for key, name in (("images", "images.npy"), ("slices_file", "slices.csv")):
            if sha256_file(path / name) != meta[key]["sha256"]:
                raise ValueError(f"{path / name} does not match its SHA-256 in dataset.json")
    curated = tuple(meta["channels"])
    channels = curated if channels is None else tuple(channels)
    channels = check_channels(f"channels (curated channels {list(curated)} in {path})",
                              channels, curated)
    idx = [curated.index(c) for c in channels]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        images = images[:, idx[0]:idx[0] + len(idx)]  # a view: stays memory-mapped
    else:
        images = np.ascontiguousarray(images[:, idx])
    check_no_leakage(slices)
    return CuratedDataset(path.resolve(), images, slices, meta, channels)
