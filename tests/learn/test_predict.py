"""Predictions of a trained model over a curated run folder (predictions.csv)."""

import numpy as np
import pandas as pd
import pytest

from parotidlib.config import CurationConfig, EvaluationConfig, TrainConfig
from parotidlib.constants import CLASSES
from parotidlib.data.curate import curate_cohort
from parotidlib.learn.predict import predict_run, predictions_frame
from parotidlib.learn.train import train_model
from parotidlib.synth import generate_cohort


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    manifest = generate_cohort(base / "cohort", n_patients=6, seed=3, jobs=1, pixel_scale=4)
    run = base / "run"
    ds = curate_cohort(manifest, run / "data", CurationConfig(
        image_size=16, test_fraction=0.34, curate_jobs=1), progress=False)
    train = ds.indices("train")
    train_model(np.asarray(ds.images)[train], ds.labels[train],
                ds.slices["patient_id"].to_numpy()[train],
                TrainConfig(epochs=1, batch_size=8, lr=1e-3, model_widths=(4, 8),
                            val_fraction=0.0, checkpoint_every=1),
                run / "model", channels=ds.channels, progress=False)
    return run


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
