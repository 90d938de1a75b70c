"""The saliency of a run (parotidlib.learn.explain): its test slices explained, stored, read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from parotidlib.data.dataset import load_dataset
from parotidlib.learn.explain import (
    SALIENCY_JSON,
    SALIENCY_MAPS,
    model_channels,
    read_saliency,
    run_saliency,
    saliency_unavailable,
    write_saliency,
)
from parotidlib.learn.predict import predict_run
from parotidlib.learn.saliency import gradcam


@pytest.fixture(scope="module")
def predictions(run_dir):
    return predict_run(run_dir, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def summary(run_dir, predictions):
    return run_saliency(run_dir, predictions, per_class=1, seed=0, device="cpu")


def test_every_test_slice_is_explained_with_the_dataset_image_of_its_prediction_row(
        run_dir, predictions, summary):
    test = predictions[predictions["split"] == "test"]
    assert summary["n_slices"] == len(test)
    assert summary["channels"] == ["t1", "ce_t1", "gland"]
    assert summary["checkpoint"] == "best"
    dataset = load_dataset(run_dir / "data")
    images = np.asarray(dataset.images)
    assert summary["examples"]
    for example, image in zip(summary["examples"], summary["images"], strict=True):
        row = test.iloc[example["index"]]
        assert (example["patient_id"], example["slice_index"], example["side"]) == (
            row["patient_id"], row["slice_index"], row["side"])
        assert example["true_label"] == row["true_label"]
        assert example["predicted_label"] == row["predicted_label"]
        at = dataset.slices.index[(dataset.slices["patient_id"] == row["patient_id"])
                                  & (dataset.slices["slice_index"] == row["slice_index"])
                                  & (dataset.slices["side"] == row["side"])]
        np.testing.assert_array_equal(image, images[at[0]])


def test_the_maps_are_the_true_class_maps_of_the_trained_network(run_dir, summary):
    from parotidlib.constants import CLASSES
    from parotidlib.learn.checkpoint import load_model

    model, _ = load_model(run_dir / "model" / "checkpoints" / "best.pt")
    targets = [CLASSES.index(e["true_label"]) for e in summary["examples"]]
    expected = gradcam(model, summary["images"], np.array(targets))
    np.testing.assert_allclose(summary["maps"], expected, rtol=1e-5, atol=1e-7)


def test_filtered_predictions_explain_only_their_slices(run_dir, predictions):
    test = predictions[predictions["split"] == "test"]
    kept = predictions[(predictions["split"] != "test")
                       | (predictions["patient_id"] == test["patient_id"].iloc[0])]
    out = run_saliency(run_dir, kept, per_class=0, device="cpu")
    assert out["n_slices"] == int((test["patient_id"] == test["patient_id"].iloc[0]).sum())
    assert out["examples"] == [] and out["images"].shape[0] == 0


def test_predictions_of_another_run_are_refused(run_dir, predictions):
    other = predictions.copy()
    test = other["split"] == "test"
    other.loc[test, "patient_id"] = "ELSEWHERE-" + other.loc[test, "patient_id"]
    with pytest.raises(ValueError, match="not in the curated dataset"):
        run_saliency(run_dir, other, device="cpu")
    doubled = pd.concat([predictions, predictions[predictions["split"] == "test"].iloc[:1]])
    with pytest.raises(ValueError, match="more than once"):
        run_saliency(run_dir, doubled, device="cpu")
    relabelled = predictions.copy()
    first = relabelled.index[relabelled["split"] == "test"][0]
    relabelled.loc[first, "true_label"] = ("malignant" if relabelled.loc[first, "true_label"]
                                           != "malignant" else "free")
    with pytest.raises(ValueError, match="another label"):
        run_saliency(run_dir, relabelled, device="cpu")


def test_bad_method_and_missing_checkpoint_are_refused(run_dir, predictions):
    with pytest.raises(ValueError, match="saliency_method"):
        run_saliency(run_dir, predictions, method="lime", device="cpu")
    with pytest.raises(FileNotFoundError, match="epoch_9999"):
        run_saliency(run_dir, predictions, checkpoint="epoch_9999", device="cpu")


def test_written_files_read_back_the_same(tmp_path, summary):
    write_saliency(tmp_path, summary, synthetic=True)
    record, arrays = read_saliency(tmp_path)
    assert record["computed"] and record["synthetic"] and record["n_examples"] == len(
        summary["examples"])
    json.dumps(record)  # JSON-able as written
    np.testing.assert_array_equal(arrays["images"], summary["images"])
    np.testing.assert_array_equal(arrays["maps"], summary["maps"].astype(np.float32))
    assert list(arrays["channels"]) == summary["channels"]
    assert record["randomisation"] == summary["randomisation"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [SALIENCY_JSON, SALIENCY_MAPS]


def test_saliency_off_records_it_and_removes_old_maps(tmp_path, summary):
    write_saliency(tmp_path, summary, synthetic=False)
    write_saliency(tmp_path, None, synthetic=False)
    record, arrays = read_saliency(tmp_path)
    assert record == {"computed": False, "reason": "saliency: false", "synthetic": False}
    assert arrays == {}
    assert not (tmp_path / SALIENCY_MAPS).exists()
    assert read_saliency(tmp_path / "nowhere") is None


def test_inconsistent_files_are_refused(tmp_path, summary):
    write_saliency(tmp_path, summary, synthetic=True)
    (tmp_path / SALIENCY_MAPS).unlink()
    with pytest.raises(FileNotFoundError, match="saliency_maps.npz"):
        read_saliency(tmp_path)
    write_saliency(tmp_path, summary, synthetic=True)
    record = json.loads((tmp_path / SALIENCY_JSON).read_text())
    record["examples"] = record["examples"][:-1] + record["examples"][-1:] * 2
    (tmp_path / SALIENCY_JSON).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="examples"):
        read_saliency(tmp_path)


def test_a_model_without_an_mr_series_channel_gets_a_reason_not_a_crash(make_tiny_run,
                                                                         tmp_path):
    run = make_tiny_run(("gland",))
    reason = saliency_unavailable(model_channels(run))
    assert reason and "no MR series" in reason and "['gland']" in reason
    with pytest.raises(ValueError, match="no MR series"):
        run_saliency(run, predict_run(run, device="cpu"), device="cpu")
    write_saliency(tmp_path, None, synthetic=True, reason=reason)
    record, arrays = read_saliency(tmp_path)
    assert record["reason"] == reason and not record["computed"] and arrays == {}
    assert saliency_unavailable(("ce_t1", "gland")) is None
    assert saliency_unavailable(("adc",)) is None  # any series of the study gives the ROI


def test_without_t1_the_roi_is_read_off_the_first_series_channel(make_tiny_run):
    run = make_tiny_run(("ce_t1", "t2"))
    summary = run_saliency(run, predict_run(run, device="cpu"), per_class=1, device="cpu")
    assert summary["roi_channel"] == "ce_t1" and summary["channels"] == ["ce_t1", "t2"]
    assert summary["images"].shape[1] == 2
    assert summary["mask_background"] is True


def test_a_dataset_curated_without_mask_background_is_warned_about(run_dir, predictions,
                                                                    tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "data" / "dataset.json").read_text())
    meta["config"]["mask_background"] = False
    (copy / "data" / "dataset.json").write_text(json.dumps(meta))
    summary = run_saliency(copy, predictions, per_class=0, device="cpu")
    assert summary["mask_background"] is False  # the report warns (report/saliency_text.py)
