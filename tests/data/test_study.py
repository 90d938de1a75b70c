"""The study's series in the data layer: which manifest columns are read, refused, hashed and
curated (parotidlib.study, data.cohort, data.curate, data.sources)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parotidlib.config import CurationConfig
from parotidlib.data import sources
from parotidlib.data.cohort import CohortError, read_manifest
from parotidlib.data.curate import curate_cohort
from parotidlib.study import DEFAULT_STUDY, Study
from parotidlib.synth import generate_cohort

SMALL = dict(image_size=32, test_fraction=0.5, curate_jobs=1)
DIFFUSION = ("t1", "t2", "adc")
#: SHA-256 of images.npy and slices.csv of the default curation of the cohort below, as the
#: kit wrote them before the series became a param (the default must stay byte-identical).
DEFAULT_DIGESTS = {
    "images.npy": "b3569783c10fd69544ecdf7b873fce314f7b87925bdcfd0a6d955026eeb19aad",
    "slices.csv": "b1fa4db95e3fd647e364a90c6ca1200aa6551d31b8db1c0a0ca2050faa730b0d",
}


@pytest.fixture(scope="module")
def diffusion_cohort(tmp_path_factory) -> Path:
    """Four synthetic patients with DWI and ADC, on coarse grids (a few seconds)."""
    return generate_cohort(tmp_path_factory.mktemp("cohort") / "c", n_patients=4, seed=3,
                           jobs=1, pixel_scale=3.0, diffusion=True)


def curate(manifest: Path, out: Path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curate_cohort(manifest, out, CurationConfig(**{**SMALL, **kwargs}),
                             progress=False)


def test_study_columns():
    assert DEFAULT_STUDY.required_columns == (
        "patient_id", "histology", "tumor_side", "age", "sex", "scanner",
        "t1", "ce_t1", "t2", "t1_labels", "ce_t1_labels", "t2_labels")
    study = Study(DIFFUSION, "t1")
    assert study.file_columns == ("t1", "t2", "adc", "t1_labels")
    assert study.scale_columns == ("adc_scale_mm2_s",)
    assert [study.labels_of(s) for s in DIFFUSION] == ["t1"] * 3
    assert Study(DIFFUSION).labels_of("adc") == "adc"


def test_default_curation_is_byte_identical_to_before(tmp_path):
    manifest = generate_cohort(tmp_path / "c", n_patients=4, seed=3, jobs=1, pixel_scale=3.0)
    ds = curate(manifest, tmp_path / "data")
    digests = {name: hashlib.sha256((ds.path / name).read_bytes()).hexdigest()
               for name in DEFAULT_DIGESTS}
    assert digests == DEFAULT_DIGESTS
    # the paper's classes as a mapping: the same labels and strata, so the same files
    same = curate(manifest, tmp_path / "mapped", classes={
        "pleomorphic_adenoma": "pleomorphic_adenoma", "warthin": "warthin",
        "malignant": "malignant"})
    assert same.meta["class_scheme"]["name"] == "custom"
    assert {name: hashlib.sha256((same.path / name).read_bytes()).hexdigest()
            for name in DEFAULT_DIGESTS} == DEFAULT_DIGESTS


def test_a_manifest_without_a_series_column_is_refused_naming_column_and_manifest(
        diffusion_cohort, tmp_path):
    table = pd.read_csv(diffusion_cohort, dtype=str, keep_default_na=False)
    manifest = tmp_path / "manifest.csv"
    table.drop(columns=["adc"]).to_csv(manifest, index=False)
    study = Study(DIFFUSION)
    with pytest.raises(CohortError, match=rf"invalid cohort {manifest}(.|\n)*file {manifest}: "
                                          r"missing column\(s\) \['adc'\] \(the series param "
                                          r"is \['t1', 't2', 'adc'\]"):
        read_manifest(manifest, check_data=False, study=study)
    # the default study does not read the diffusion columns
    assert len(read_manifest(diffusion_cohort, check_data=False)) == 4


def test_a_quantitative_series_needs_its_scale(diffusion_cohort, tmp_path):
    table = pd.read_csv(diffusion_cohort, dtype=str, keep_default_na=False)
    table.loc[1, "adc_scale_mm2_s"] = "0"
    for col in ("t1", "t2", "adc", "t1_labels", "t2_labels", "adc_labels"):
        table[col] = [str(diffusion_cohort.parent / p) for p in table[col]]
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)
    with pytest.raises(CohortError, match=rf"patient {table.patient_id[1]}, column "
                                          r"adc_scale_mm2_s, .*must be a number > 0.*got 0.0"):
        read_manifest(manifest, check_data=False, study=Study(DIFFUSION))


def test_diffusion_series_are_curated_as_channels(diffusion_cohort, tmp_path):
    default = curate(diffusion_cohort, tmp_path / "default")
    ds = curate(diffusion_cohort, tmp_path / "adc", series=DIFFUSION,
                channels=("t1", "t2", "adc", "gland"))
    assert ds.channels == ("t1", "t2", "adc", "gland") and ds.meta["config"]["series"] == [
        "t1", "t2", "adc"]
    # the same slices; T1, T2 and gland the default's, the ADC a channel of its own
    pd.testing.assert_frame_equal(ds.slices[default.slices.columns[:13]],
                                  default.slices[default.slices.columns[:13]])
    np.testing.assert_array_equal(ds.images[:, [0, 1, 3]], default.images[:, [0, 2, 3]])
    adc = ds.images[:, 2]
    assert adc.any() and not np.array_equal(adc, ds.images[:, 1])
    # labels_from t1: every series' ROIs from the T1 label map, the same slices
    shared = curate(diffusion_cohort, tmp_path / "t1-labels", series=DIFFUSION,
                    channels=DIFFUSION, labels_from="t1")
    assert shared.channels == DIFFUSION and len(shared.slices) == len(ds.slices)
    np.testing.assert_array_equal(shared.images[:, 0], ds.images[:, 0])


def test_the_fingerprint_covers_every_series_file(diffusion_cohort, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(diffusion_cohort.parent, copy)
    manifest = copy / diffusion_cohort.name
    before = sources.cohort_fingerprint(manifest)
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    dwi = copy / table["dwi"][0]
    dwi.write_bytes(dwi.read_bytes() + b"\x00")
    assert sources.cohort_fingerprint(manifest) != before
