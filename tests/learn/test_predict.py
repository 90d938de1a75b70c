"""Predictions of a trained model over a curated run folder (predictions.csv)."""

import numpy as np
import pandas as pd
import pytest

from parotidlib.config import EvaluationConfig
from parotidlib.constants import CLASSES
from parotidlib.learn.predict import predict_run, predictions_frame


@pytest.fixture(scope="module")
def run_dir(make_tiny_run):
    return make_tiny_run()


def test_predict_run_scores_every_slice_of_both_splits(run_dir):
    pred = predict_run(run_dir, device="cpu")
    slices = pd.read_csv(run_dir / "data" / "slices.csv", dtype={"patient_id": str})
    assert len(pred) == len(slices) and set(pred["split"]) == {"train", "test"}
    probs = pred[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (pred["predicted_label"] == np.asarray(CLASSES)[probs.argmax(axis=1)]).all()
    assert (pred["true_label"].to_numpy() == slices["label"].to_numpy()).all()


def test_predict_run_refuses_other_channels_and_missing_checkpoints(run_dir):
    with pytest.raises(ValueError, match="trained on"):
        predict_run(run_dir, channels=("t1", "t2"), device="cpu")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        predict_run(run_dir / "nowhere", device="cpu")


def test_predictions_frame_checks_the_shape():
    slices = pd.DataFrame({"patient_id": ["a", "b"], "label": ["free", "warthin"],
                           "split": ["train", "test"]})
    frame = predictions_frame(slices, np.full((2, 4), 0.25))
    assert list(frame["true_label"]) == ["free", "warthin"]
    with pytest.raises(ValueError, match="shape"):
        predictions_frame(slices, np.ones((3, 4)) / 4)


@pytest.mark.parametrize("bad", [{"malignant_threshold": -1}, {"checkpoint": "middle"},
                                 {"bootstrap_resamples": -5}, {"predict_batch_size": 0}])
def test_evaluation_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        EvaluationConfig(**bad)
