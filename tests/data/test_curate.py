"""Curating a cohort into data/ and loading it back (parotidlib.data.dataset)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from test_cohort import (
    LEFT_X,
    RIGHT_X,
    T2_GRID,
    folder_digest,
    make_affine,
    small_cohort,
    write_manifest,
    write_patient,
)

import parotidlib.data.curate as dataset_module
import parotidlib.io
from parotidlib.config import CurationConfig
from parotidlib.constants import CLASSES
from parotidlib.data.cohort import CohortError
from parotidlib.data.curate import curate_cohort
from parotidlib.data.dataset import load_dataset
from parotidlib.data.split import LeakageError

SMALL = dict(image_size=32, test_fraction=0.34, curate_jobs=1)
# the hand-made T2 grid (5 mm slices) misses the glands' end slices: expected fallbacks
pytestmark = [pytest.mark.filterwarnings("ignore:.*aligned label map:UserWarning"),
              pytest.mark.filterwarnings("ignore:cannot stratify:UserWarning")]


def curate(manifest, out, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curate_cohort(manifest, out, CurationConfig(**{**SMALL, **kwargs}), progress=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return small_cohort(tmp_path_factory.mktemp("cohort"), 6)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_curate_writes_consistent_dataset(cohort, tmp_path):
    before = folder_digest(cohort.parent)
    ds = curate(cohort, tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == \
        ["dataset.json", "images.npy", "slices.csv"]
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]  # no temporary folder left
    n = len(ds.slices)
    assert ds.images.shape == (n, 4, 32, 32) and ds.images.dtype == np.uint8
    assert ds.channels == ("t1", "ce_t1", "t2", "gland")
    for col in ("patient_id", "slice_index", "z_mm", "label", "label_index", "side",
                "histology", "scanner", "tumor_area_mm2", "split", "age", "sex"):
        assert col in ds.slices.columns
    assert (ds.slices["label_index"] == ds.slices["label"].map(CLASSES.index)).all()
    assert ds.slices["patient_id"].is_monotonic_increasing
    # 4 one-sided patients x (4 lesion + 8 free) + 2 'both' patients x (4 slices x 2 sides)
    assert n == 4 * 12 + 2 * 8
    meta = json.loads((tmp_path / "data" / "dataset.json").read_text())
    counts = meta["counts"]["slices"]
    assert sum(counts["total"].values()) == n
    assert counts["total"]["free"] == 32
    for split in ("train", "test"):
        part = ds.slices[ds.slices["split"] == split]
        assert counts[split] == {c: int((part["label"] == c).sum()) for c in CLASSES}
    assert meta["patients_without_free_slices"] == [] and meta["skipped_patients"] == []
    assert meta["manifest"] == str(cohort.resolve())
    assert "curate_jobs" not in meta["config"]
    # a patient's free slices stay with it
    assert (ds.slices.groupby("patient_id")["split"].nunique() == 1).all()
    assert folder_digest(cohort.parent) == before  # the cohort is never written


def test_rerun_is_byte_identical_whatever_the_jobs(cohort, tmp_path):
    curate(cohort, tmp_path / "a", curate_jobs=1)
    curate(cohort, tmp_path / "b", curate_jobs=2)
    first = files(tmp_path / "a")
    assert first == files(tmp_path / "b")
    curate(cohort, tmp_path / "a", curate_jobs=1)  # replaces the previous dataset in place
    assert files(tmp_path / "a") == first


def test_channel_selection_at_load(cohort, tmp_path):
    full = curate(cohort, tmp_path / "d")
    for channels in (("t1",), ("t1", "ce_t1", "t2"), ("t1", "gland"), ("ce_t1", "gland")):
        sub = load_dataset(tmp_path / "d", channels=channels)
        assert sub.channels == channels and sub.images.shape[1] == len(channels)
        idx = [("t1", "ce_t1", "t2", "gland").index(c) for c in channels]
        np.testing.assert_array_equal(sub.images, np.asarray(full.images)[:, idx])
    assert isinstance(load_dataset(tmp_path / "d", ["t1", "ce_t1"]).images, np.memmap)
    with pytest.raises(ValueError, match="canonical order"):
        load_dataset(tmp_path / "d", channels=("gland", "t1"))
    curate(cohort, tmp_path / "e", channels=("t1", "t2"))
    with pytest.raises(ValueError, match=r"curated channels \['t1', 't2'\].*gland"):
        load_dataset(tmp_path / "e", channels=("t1", "gland"))


def test_load_refuses_incomplete_and_leaky(cohort, tmp_path):
    (tmp_path / "half").mkdir()
    np.save(tmp_path / "half" / "images.npy", np.zeros((1, 4, 8, 8), np.uint8))
    with pytest.raises(FileNotFoundError, match="no dataset.json"):
        load_dataset(tmp_path / "half")
    with pytest.raises(ValueError, match="non-empty folder without dataset.json"):
        curate(cohort, tmp_path / "half")
    curate(cohort, tmp_path / "d")
    slices = pd.read_csv(tmp_path / "d" / "slices.csv", dtype=str)
    slices.loc[0, "split"] = "test" if slices.loc[0, "split"] == "train" else "train"
    slices.to_csv(tmp_path / "d" / "slices.csv", index=False)
    with pytest.raises(LeakageError, match=slices.loc[0, "patient_id"]):
        load_dataset(tmp_path / "d")
    with pytest.raises(ValueError, match="SHA-256"):
        load_dataset(tmp_path / "d", verify=True)


@pytest.mark.parametrize("where", ["preprocess", "write"])
def test_interrupted_curation_leaves_nothing(cohort, tmp_path, monkeypatch, where):
    out = tmp_path / "data"
    if where == "preprocess":
        real, calls = dataset_module.preprocess_patient, []

        def flaky(volumes, config):
            calls.append(volumes.patient_id)
            if len(calls) == 3:
                raise KeyboardInterrupt  # e.g. the user stops the notebook
            return real(volumes, config)

        monkeypatch.setattr(dataset_module, "preprocess_patient", flaky)
    else:
        def broken_json(tmp, *args):
            np.save(tmp / "images.npy", np.zeros(3, np.uint8))
            raise OSError("disk full")

        monkeypatch.setattr(dataset_module, "_write", broken_json)
    with pytest.raises((KeyboardInterrupt, OSError)):
        curate(cohort, out)
    assert list(tmp_path.iterdir()) == []  # neither out_dir nor a temporary sibling
    with pytest.raises(FileNotFoundError):
        load_dataset(out)


def test_interrupted_rerun_keeps_previous_dataset(cohort, tmp_path, monkeypatch):
    out = tmp_path / "data"
    curate(cohort, out)
    before = files(out)
    monkeypatch.setattr(dataset_module, "_write", lambda *a: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        curate(cohort, out, image_size=16)
    assert files(out) == before and sorted(tmp_path.iterdir()) == [out]


@pytest.fixture()
def broken_cohort(tmp_path) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    rows = [write_patient(folder, f"G{i}", h, s) for i, (h, s) in enumerate(
        [("warthin", "right"), ("malignant", "left"), ("pleomorphic_adenoma", "right"),
         ("warthin", "left"), ("malignant", "right"), ("pleomorphic_adenoma", "left")])]
    rows.append(write_patient(folder, "NAN", "warthin", "right"))
    img = nib.load(folder / "NAN_t1.nii.gz")
    data = np.asanyarray(img.dataobj).copy()
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), folder / "NAN_t1.nii.gz")
    rows.append(write_patient(folder, "GONE", "malignant", "left"))
    rows[-1]["ce_t1"] = "missing.nii.gz"
    rows.append(write_patient(folder, "FAR", "warthin", "left"))
    far = make_affine(T2_GRID[1], (966.3, -25.9, -19.3))  # T2 data with a wrong affine
    for name in ("FAR_t2.nii.gz", "FAR_t2_labels.nii.gz"):
        img = nib.load(folder / name)
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), far), folder / name)
    return write_manifest(folder, rows)


def test_invalid_patients_all_listed_or_skipped(broken_cohort, tmp_path):
    before = folder_digest(broken_cohort.parent)
    with pytest.raises(CohortError) as info:
        curate(broken_cohort, tmp_path / "data")
    assert {(p.patient_id, p.column) for p in info.value.problems} == \
        {("NAN", "t1"), ("GONE", "ce_t1"), ("FAR", "t2")}
    assert "does not overlap the T1 grid" in str(info.value)
    assert not (tmp_path / "data").exists()
    with pytest.warns(UserWarning, match="skipping patient FAR"):
        ds = curate_cohort(broken_cohort, tmp_path / "data",
                           CurationConfig(**SMALL, skip_invalid_patients=True), progress=False)
    assert sorted(ds.slices["patient_id"].unique()) == [f"G{i}" for i in range(6)]
    skipped = {s["patient_id"]: s["problems"] for s in ds.meta["skipped_patients"]}
    assert sorted(skipped) == ["FAR", "GONE", "NAN"]
    assert "NaN/inf" in skipped["NAN"][0]
    assert folder_digest(broken_cohort.parent) == before


def test_patient_without_free_slices_recorded(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    rows = [write_patient(folder, f"F{i}", h, "right") for i, h in
            enumerate(["warthin", "malignant", "pleomorphic_adenoma"])]
    for series in ("t1", "ce_t1", "t2"):  # F0's contralateral (left) gland is absent
        path = folder / f"F0_{series}_labels.nii.gz"
        img = nib.load(path)
        lab = np.asanyarray(img.dataobj).copy()
        lab[lab == 2] = 0
        nib.save(nib.Nifti1Image(lab, img.affine), path)
    manifest = write_manifest(folder, rows)
    with pytest.warns(UserWarning, match="F0.*contralateral"):
        ds = curate_cohort(manifest, tmp_path / "d", CurationConfig(**SMALL), progress=False)
    assert ds.meta["patients_without_free_slices"] == ["F0"]
    assert set(ds.slices.loc[ds.slices.patient_id == "F0", "label"]) == {"warthin"}
    assert "patient F0: no slice" in " ".join(ds.meta["warnings"])


def test_cv_fold_split(cohort, tmp_path):
    ds = curate(cohort, tmp_path / "d", cv_folds=2, fold=1)
    assert set(ds.slices["split"]) == {"train", "test"}
    assert ds.meta["config"]["cv_folds"] == 2
    assert len(ds.indices("train")) + len(ds.indices("test")) == len(ds.slices)


@pytest.mark.parametrize("key, value", [
    ("image_size", 4), ("crop_margin_mm", -1.0), ("normalisation", "zscore"),
    ("percentile_low", 99.6), ("test_fraction", 1.0), ("cv_folds", 1), ("fold", 2),
    ("curate_jobs", -1), ("mask_background", "yes"), ("split_seed", 1.5)])
def test_config_validation_names_key(key, value):
    with pytest.raises(ValueError, match=key):
        CurationConfig(**{key: value})


def test_config_from_params_converts_lists():
    config = CurationConfig.from_params({"channels": ["t1", "t2"], "image_size": 64,
                                         "lr": 0.1})
    assert config.channels == ("t1", "t2") and config.image_size == 64


@pytest.fixture()
def side_cohort(tmp_path) -> Path:
    """Four good patients, one whose tumour lies in the other gland than tumor_side says, and
    one 'both' patient with a tumour on one side only."""
    folder = tmp_path / "sides"
    folder.mkdir()
    rows = [write_patient(folder, f"G{i}", h, s) for i, (h, s) in enumerate(
        [("warthin", "right"), ("malignant", "left"), ("pleomorphic_adenoma", "right"),
         ("warthin", "left")])]
    rows.append(write_patient(folder, "WRONG", "malignant", "right",
                              tumour_centre=(LEFT_X, 1.0, 0.0)))
    rows.append(write_patient(folder, "HALF", "warthin", "both",
                              tumour_centre=(RIGHT_X, 1.0, 0.0)))
    return write_manifest(folder, rows)


def test_tumour_side_conflict_stops_curation_or_skips_the_patient(side_cohort, tmp_path):
    with pytest.raises(CohortError) as info:
        curate(side_cohort, tmp_path / "data")
    assert {(p.patient_id, p.column) for p in info.value.problems} == \
        {("WRONG", "tumor_side"), ("HALF", "tumor_side")}
    message = str(info.value)
    assert "patient WRONG, column tumor_side" in message
    assert "manifest tumor_side is 'right' but the tumour (label 3) lies on the left side, " \
           "in or next to the left gland (label 2)" in message
    assert "patient HALF, column tumor_side" in message
    assert "manifest tumor_side is 'both' but the tumour (label 3) lies only on the right " \
           "side" in message and "the left side has no tumour" in message
    assert sorted(tmp_path.iterdir()) == [side_cohort.parent]  # no dataset, no temporary
    with pytest.warns(UserWarning, match="skipping patient WRONG: manifest tumor_side is 'right'"):
        ds = curate_cohort(side_cohort, tmp_path / "data",
                           CurationConfig(**SMALL, skip_invalid_patients=True), progress=False)
    assert sorted(ds.slices["patient_id"].unique()) == ["G0", "G1", "G2", "G3"]
    skipped = {s["patient_id"]: s["problems"] for s in ds.meta["skipped_patients"]}
    assert sorted(skipped) == ["HALF", "WRONG"]
    assert skipped["WRONG"] == [str(p) for p in info.value.problems if p.patient_id == "WRONG"]
    assert "lies on the left side" in skipped["WRONG"][0]
    assert "the left side has no tumour" in skipped["HALF"][0]


@pytest.mark.parametrize("mask, folder_mode, file_mode", [(0o022, 0o755, 0o644),
                                                          (0o027, 0o750, 0o640)])
def test_dataset_permissions_follow_the_umask(cohort, tmp_path, umask, mask, folder_mode,
                                              file_mode):
    umask(mask)
    curate(cohort, tmp_path / "data")
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == folder_mode
    for path in (tmp_path / "data").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path.name
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == \
        ["dataset.json", "images.npy", "slices.csv"]  # no owner file left in the dataset


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftover(folder: Path, owner_pid: int | None = None, age_s: float = 0.0) -> Path:
    """A temporary folder as a run leaves it: some content, an owner file unless None."""
    folder.mkdir()
    (folder / "images.npy").write_bytes(b"half")
    if owner_pid is not None:
        record = {**parotidlib.io._owner_record(), "pid": owner_pid, "start": None}
        (folder / parotidlib.io.OWNER_FILE).write_text(json.dumps(record))
    if age_s:
        then = time.time() - age_s
        for path in (*folder.iterdir(), folder):
            os.utime(path, (then, then))
    return folder


def test_curation_removes_what_dead_runs_left(cohort, tmp_path):
    dead = dead_pid()
    gone = [leftover(tmp_path / ".data.tmp-deadbeef", dead),
            leftover(tmp_path / ".data.old-0dead000", dead),
            leftover(tmp_path / ".data.tmp-noowner0", None, age_s=2 * 86400)]  # old, no owner
    kept = [leftover(tmp_path / ".data.tmp-live0000", os.getpid()),  # a live run's
            leftover(tmp_path / ".data.tmp-young000", None, age_s=60),  # no owner, recent
            leftover(tmp_path / ".data.tmp-deadbeef-mine", dead),  # not a temporary name
            leftover(tmp_path / ".other.tmp-deadbeef", dead)]  # another folder's
    curate(cohort, tmp_path / "data")
    assert sorted(tmp_path.iterdir()) == sorted([tmp_path / "data", *kept])
    assert all((p / "images.npy").read_bytes() == b"half" for p in kept)
    assert not any(p.exists() for p in gone)


def test_external_curation_without_split_and_histology(cohort, tmp_path):
    """A cohort curated for a trained model: no split, patients without histology allowed."""
    table = pd.read_csv(cohort, dtype=str, keep_default_na=False)
    table.loc[table.index[:2], "histology"] = ""
    unlabelled = tmp_path / "cohort" / "manifest.csv"
    unlabelled.parent.mkdir()
    for col in [c for c in table.columns if c.startswith(("t1", "ce_t1", "t2"))]:
        table[col] = [str((cohort.parent / p).resolve()) for p in table[col]]
    table.to_csv(unlabelled, index=False)
    with pytest.raises(CohortError, match="unknown histology"):
        curate(unlabelled, tmp_path / "refused")  # training needs every histology
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = curate_cohort(unlabelled, tmp_path / "data", CurationConfig(**SMALL),
                           progress=False, external=True)
    assert set(ds.slices["split"]) == {"external"}
    assert len(ds.indices("external")) == len(ds.slices)
    unknown = ds.slices[ds.slices["patient_id"].isin(table["patient_id"][:2])]
    lesion = unknown[unknown["label"].isna()]
    assert len(lesion) and (lesion["label_index"] == -1).all()
    assert set(unknown["label"].dropna()) <= {"free"}
    counts = ds.meta["counts"]
    assert ds.meta["external"] is True and set(counts["patients"]) == {"external", "total"}
    assert counts["patients"]["external"]["unknown"] == 2
    assert counts["slices"]["external"]["unknown"] == len(lesion)


def test_resplit_dataset_makes_a_fold_without_curating_again(cohort, tmp_path):
    from parotidlib.data.curate import resplit_dataset

    base = curate(cohort, tmp_path / "data")
    before = files(tmp_path / "data")
    folds = []
    for fold in range(2):
        ds = resplit_dataset(tmp_path / "data", tmp_path / f"fold{fold}" / "data",
                             CurationConfig(**{**SMALL, "cv_folds": 2, "fold": fold}))
        assert (tmp_path / f"fold{fold}" / "data" / "images.npy").is_symlink()
        np.testing.assert_array_equal(ds.images, base.images)
        assert ds.meta["config"]["fold"] == fold and ds.meta["counts"]["patients"]["test"]["all"]
        load_dataset(ds.path, verify=True)  # the recorded SHA-256 match the files
        folds.append(set(ds.slices.loc[ds.slices["split"] == "test", "patient_id"]))
    assert set().union(*folds) == set(base.slices["patient_id"])  # every patient out once
    assert sum(len(f) for f in folds) == base.slices["patient_id"].nunique()
    assert files(tmp_path / "data") == before  # the source is left alone
    mtime = (tmp_path / "fold0" / "data" / "dataset.json").stat().st_mtime_ns
    resplit_dataset(tmp_path / "data", tmp_path / "fold0" / "data",
                    CurationConfig(**{**SMALL, "cv_folds": 2, "fold": 0}))
    assert (tmp_path / "fold0" / "data" / "dataset.json").stat().st_mtime_ns == mtime
