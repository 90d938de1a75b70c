"""The model bundle: one self-describing file that applies a run's model to new patients."""

import json
import warnings

import numpy as np
import pytest
import torch

from parotidlib.config import CurationConfig, TrainConfig
from parotidlib.data.curate import curate_cohort
from parotidlib.learn.bundle import BUNDLE_FORMAT, BundleError, load_bundle, write_bundle
from parotidlib.learn.checkpoint import load_model
from parotidlib.learn.predict import predict_proba
from parotidlib.learn.train import train_model
from parotidlib.synth import generate_cohort

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("bundle")
    manifest = generate_cohort(base / "cohort", n_patients=6, seed=3, jobs=1, pixel_scale=4)
    run = base / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = curate_cohort(manifest, run / "data", CurationConfig(
            image_size=16, channels=("t1", "ce_t1", "gland"), test_fraction=0.34,
            curate_jobs=1), progress=False)
    train = ds.indices("train")
    train_model(np.asarray(ds.images)[train], ds.labels[train],
                ds.slices["patient_id"].to_numpy()[train],
                TrainConfig(epochs=1, batch_size=8, lr=1e-3, model_widths=(4, 8),
                            val_fraction=0.0, checkpoint_every=1),
                run / "model", channels=ds.channels, progress=False)
    (run / "cohort.json").write_text(json.dumps({"manifest": str(manifest),
                                                 "fingerprint": "f" * 64}))
    return run


def test_a_bundle_holds_what_new_patients_need_and_predicts_like_the_checkpoint(run_dir):
    path = write_bundle(run_dir, checkpoint="best", malignant_threshold=3, git_commit="abc1234")
    assert path == run_dir / "bundle.pt"
    raw = torch.load(path, weights_only=True)  # the safe unpickler reads it
    assert raw["format"] == BUNDLE_FORMAT and raw["git_commit"] == "abc1234"
    bundle = load_bundle(run_dir)
    assert bundle.channels == ("t1", "ce_t1", "gland")
    assert bundle.curation.image_size == 16 and bundle.curation.channels == bundle.channels
    dataset = json.loads((run_dir / "data" / "dataset.json").read_text())
    for key in ("crop_margin_mm", "mask_background", "min_tumor_area_mm2", "normalisation",
                "percentile_low", "percentile_high"):
        assert getattr(bundle.curation, key) == dataset["config"][key], key
    assert bundle.malignant_threshold == 3 and bundle.classes[0] == "free"
    assert bundle.meta["training_cohort_fingerprint"] == "f" * 64
    images = np.load(run_dir / "data" / "images.npy")
    model, _ = load_model(run_dir / "model" / "checkpoints" / "best.pt")
    np.testing.assert_allclose(predict_proba(bundle.model, images),
                               predict_proba(model, images), atol=1e-6)


def test_a_bundle_refuses_a_cohort_that_lacks_its_channels(run_dir):
    bundle = load_bundle(write_bundle(run_dir))
    bundle.require_channels(["t1", "ce_t1", "t2", "gland"])
    with pytest.raises(BundleError, match=r"cannot supply \['ce_t1'\]"):
        bundle.require_channels(["t1", "t2", "gland"], where="cohort X")


def test_unknown_formats_and_other_files_are_refused(run_dir, tmp_path):
    with pytest.raises(BundleError, match="no model bundle"):
        load_bundle(tmp_path)
    other = tmp_path / "bundle.pt"
    torch.save({"format": "someone-else/9"}, other)
    with pytest.raises(BundleError, match="someone-else/9"):
        load_bundle(other)
    other.write_text("not a torch file")
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(other)
