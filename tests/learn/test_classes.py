"""The class scheme on the learning side: the network's outputs, the checkpoints, the
predictions and the bundle follow the dataset's classes (params ``classes``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from parotidlib.config import CurationConfig, TrainConfig
from parotidlib.constants import CLASSES
from parotidlib.data.curate import curate_cohort
from parotidlib.data.dataset import load_dataset
from parotidlib.learn import apply
from parotidlib.learn.bundle import load_bundle, write_bundle
from parotidlib.learn.checkpoint import load_model
from parotidlib.learn.predict import predict_run, predictions_frame
from parotidlib.learn.train import train_model
from parotidlib.study import class_scheme
from parotidlib.synth import generate_cohort

pytestmark = pytest.mark.usefixtures("one_thread")

THREE = ("free", "benign", "malignant")
TRAIN = TrainConfig(epochs=1, batch_size=8, lr=1e-3, model_widths=(4, 8), val_fraction=0.0,
                    checkpoint_every=1, device="cpu")


def _train(run: Path, classes=None, resume: bool = True):
    ds = load_dataset(run / "data")
    rows = ds.indices("train")
    return train_model(np.asarray(ds.images)[rows], ds.labels[rows],
                       ds.slices["patient_id"].to_numpy()[rows], TRAIN, run / "model",
                       channels=ds.channels, progress=False, resume=resume,
                       classes=classes)


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory) -> Path:
    """A run folder trained one epoch on six tiny patients of four histologies, curated
    under the benign_malignant scheme (three classes)."""
    base = tmp_path_factory.mktemp("three")
    manifest = generate_cohort(base / "cohort", n_patients=6, seed=3, jobs=1, pixel_scale=4.0,
                               histologies={"pleomorphic_adenoma": 1.0, "warthin": 1.0,
                                            "basal_cell_adenoma": 1.0,
                                            "mucoepidermoid_carcinoma": 1.0})
    run = base / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = curate_cohort(manifest, run / "data", CurationConfig(
            image_size=16, classes="benign_malignant", test_fraction=0.34, curate_jobs=1),
            progress=False)
    _train(run, ds.classes)
    return run


def test_the_network_has_one_output_per_class_of_the_dataset(three_class_run):
    model, meta = load_model(three_class_run / "model" / "checkpoints" / "last.pt")
    assert model.num_classes == 3 and model.fc.out_features == 3
    assert meta["classes"] == list(THREE)


def test_predictions_have_a_probability_per_class_in_the_datasets_order(three_class_run):
    pred = predict_run(three_class_run, device="cpu")
    probs = [c for c in pred.columns if c.startswith("prob_")]
    assert probs == ["prob_free", "prob_benign", "prob_malignant"]
    np.testing.assert_allclose(pred[probs].sum(axis=1), 1.0, atol=1e-5)
    assert set(pred["predicted_label"]) <= set(THREE)
    assert set(pred["true_label"]) <= set(THREE)
    assert (pred["predicted_label"] == np.asarray(THREE)[pred[probs].to_numpy().argmax(1)]).all()


def test_a_model_of_other_classes_is_refused(three_class_run, tmp_path):
    other = tmp_path / "run"
    other.mkdir()
    os.symlink(three_class_run / "data", other / "data")
    with pytest.warns(UserWarning, match=r"no training slice of class \['malignant'\]"):
        _train(other)  # the paper's four classes (the labels 0-2 fit them)
    with pytest.raises(ValueError, match=r"trained on the classes \['free', "
                                         r"'pleomorphic_adenoma', 'warthin', 'malignant'\], but "
                                         r"the dataset .* has the classes \['free', 'benign', "
                                         r"'malignant'\] \(class scheme 'benign_malignant'\)"):
        predict_run(other, device="cpu")
    with pytest.raises(ValueError, match=r"cannot resume .* classes: \['free', "
                                         r"'pleomorphic_adenoma', 'warthin', 'malignant'\] -> "
                                         r"\['free', 'benign', 'malignant'\]"):
        _train(other, THREE)


def test_labels_and_classes_are_checked(tmp_path):
    images = np.zeros((4, 2, 8, 8), np.uint8)
    pids = np.array(["a", "a", "b", "b"])
    with pytest.raises(ValueError, match=r"labels must be integers 0\.\.2 \(indices into "
                                         r"classes \['free', 'benign', 'malignant'\]\)"):
        train_model(images, np.array([0, 1, 2, 3]), pids, TRAIN, tmp_path, progress=False,
                    classes=THREE)
    with pytest.raises(ValueError, match="at least 2 distinct classes"):
        train_model(images, np.array([0, 1, 1, 0]), pids, TRAIN, tmp_path, progress=False,
                    classes=["free", "free"])
    slices = pd.DataFrame({"patient_id": ["a", "b"], "slice_index": [3, 4],
                           "label": ["free", "benign"], "split": ["train", "test"]})
    frame = predictions_frame(slices, np.array([[0.2, 0.7, 0.1], [0.5, 0.2, 0.3]]), THREE)
    assert list(frame["predicted_label"]) == ["benign", "free"]
    with pytest.raises(ValueError, match=r"\(2, 4\) \(slices x the classes \['free', "
                                         r"'pleomorphic_adenoma'"):
        predictions_frame(slices, np.full((2, 3), 1 / 3))  # the default: the paper's four


def test_the_bundle_records_the_classes_and_the_scheme(three_class_run):
    predict_run(three_class_run, device="cpu").to_csv(three_class_run / "predictions.csv",
                                                      index=False)
    path = write_bundle(three_class_run)
    raw = torch.load(path, weights_only=True)
    scheme = class_scheme("benign_malignant")
    assert raw["classes"] == list(THREE) and raw["class_scheme"] == scheme.record()
    assert raw["curation"]["classes"] == "benign_malignant"
    internal = raw["internal_test"]["predictions"]
    assert [c for c in internal if c.startswith("prob_")] == [f"prob_{c}" for c in THREE]
    bundle = load_bundle(path)
    assert bundle.classes == THREE and bundle.class_scheme == scheme
    assert bundle.model.num_classes == 3
    # a cohort the model is applied to is mapped with the model's scheme
    assert apply.curation_for(bundle).class_scheme == scheme


def test_a_bundle_of_the_paper_classes_records_the_paper_scheme(run_dir):
    bundle = load_bundle(write_bundle(run_dir))
    assert bundle.classes == CLASSES and bundle.class_scheme.name == "paper"
    assert bundle.curation.classes == "paper"
