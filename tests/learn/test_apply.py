"""Applying a model bundle to another cohort (learn/apply.py)."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from parotidlib.config import CurationConfig
from parotidlib.constants import CLASSES
from parotidlib.data.curate import curate_cohort
from parotidlib.data.manifest import FILE_COLUMNS
from parotidlib.learn import apply
from parotidlib.learn.bundle import Bundle, BundleError, load_bundle, write_bundle
from parotidlib.learn.predict import predict_proba
from parotidlib.study import Study


@pytest.fixture(scope="module")
def bundle(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("apply") / "run"
    folder.mkdir()
    for name in ("data", "model", "cohort.json"):
        src = run_dir / name
        (folder / name).symlink_to(src, target_is_directory=src.is_dir())
    return load_bundle(write_bundle(folder, malignant_threshold=1))


def _manifest(run_dir, out, **blank) -> str:
    manifest = json.loads((run_dir / "cohort.json").read_text())["manifest"]
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for col in FILE_COLUMNS:
        table[col] = [str((pd.io.common.Path(manifest).parent / p).resolve())
                      for p in table[col]]
    for col in blank:
        table[col] = ""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "manifest.csv", index=False)
    return str(out / "manifest.csv")


def test_check_cohort_names_the_missing_channel_and_ignores_unused_series(
        bundle, run_dir, tmp_path):
    apply.check_cohort(bundle, _manifest(run_dir, tmp_path / "t2", t2=True))  # t2 unused
    with pytest.raises(BundleError, match=r"cannot supply \['ce_t1'\].*'ce_t1' empty for 6"):
        apply.check_cohort(bundle, _manifest(run_dir, tmp_path / "ce", ce_t1=True))
    with pytest.raises(BundleError, match=r"\['t1', 'gland'\]"):  # the gland comes from T1
        apply.check_cohort(bundle, _manifest(run_dir, tmp_path / "t1", t1_labels=True))


def test_curation_takes_the_bundle_settings(bundle):
    config = apply.curation_for(bundle, curate_jobs=2, skip_invalid_patients=True)
    assert config.image_size == 16 and config.channels == ("t1", "ce_t1", "gland")
    assert config.curate_jobs == 2 and config.skip_invalid_patients


def _curate(manifest, out, config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curate_cohort(manifest, out / "data", config, progress=False, external=True)


def test_predict_cohort_predicts_every_slice_with_the_bundle_model(bundle, run_dir, tmp_path):
    manifest = _manifest(run_dir, tmp_path / "cohort")
    ds = _curate(manifest, tmp_path, apply.curation_for(bundle, curate_jobs=1))
    predictions = apply.predict_cohort(bundle, tmp_path)
    assert len(predictions) == len(ds.slices) and set(predictions["split"]) == {"external"}
    expected = predict_proba(bundle.model, np.asarray(ds.images))
    np.testing.assert_allclose(predictions[[f"prob_{c}" for c in CLASSES]].to_numpy(),
                               expected, atol=1e-6)
    # a dataset curated with other input settings is refused, naming the setting
    _curate(manifest, tmp_path / "other", CurationConfig(image_size=8, channels=bundle.channels,
                                                         curate_jobs=1))
    with pytest.raises(BundleError, match="image_size"):
        apply.predict_cohort(bundle, tmp_path / "other")


def test_bundle_record_and_frame(bundle):
    record = apply.model_record(bundle)
    assert record["channels"] == ["t1", "ce_t1", "gland"] and record["malignant_threshold"] == 1
    frame = apply.bundle_frame(bundle)
    assert frame.loc["input: image_size", "value"] == "16"
    assert "weights" not in " ".join(frame.index)


def test_cohort_columns_follow_the_bundles_study():
    study = Study(("t1", "t2", "adc"), labels_from="t2")
    assert apply.cohort_columns(study, "adc") == ("adc", "t2_labels", "adc_scale_mm2_s")
    assert apply.cohort_columns(study, "gland") == ("t1", "t2_labels")
    assert apply.cohort_columns(Study(), "ce_t1") == ("ce_t1", "ce_t1_labels")


def test_check_cohort_with_labels_from_needs_only_that_label_map(tmp_path):
    curation = CurationConfig(series=("t1", "t2"), labels_from="t2", channels=("t1", "gland"))
    bundle = Bundle(path=tmp_path / "bundle.pt", model=None, channels=curation.channels,
                    curation=curation, classes=CLASSES, malignant_threshold=2, meta={})
    table = pd.DataFrame({"patient_id": ["p1", "p2"], "t1": ["a", "b"], "t2": ["c", "d"],
                          "t2_labels": ["e", "f"]})
    table.to_csv(tmp_path / "manifest.csv", index=False)
    apply.check_cohort(bundle, tmp_path / "manifest.csv")  # no t1_labels column needed
    table["t2_labels"] = ["e", ""]
    table.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(BundleError, match=r"'t2_labels' empty for 1 patient\(s\): p2"):
        apply.check_cohort(bundle, tmp_path / "manifest.csv")
