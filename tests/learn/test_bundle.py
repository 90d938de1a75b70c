"""The model bundle: one self-describing file that applies a run's model to new patients."""

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from parotidlib.learn.bundle import (
    BUNDLE_FORMAT,
    BundleError,
    bundle_metadata,
    load_bundle,
    write_bundle,
)
from parotidlib.learn.checkpoint import load_model
from parotidlib.learn.predict import predict_proba

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_a_bundle_carries_the_internal_test_predictions(run_dir, tmp_path):
    import pandas as pd

    assert load_bundle(write_bundle(run_dir)).internal_predictions() is None  # none yet
    run = tmp_path / "run"
    run.mkdir()
    for name in ("data", "model", "cohort.json"):
        (run / name).symlink_to(run_dir / name, target_is_directory=name != "cohort.json")
    table = pd.DataFrame({"patient_id": ["007", "007", "008"], "slice_index": [1, 2, 1],
                          "true_label": ["free", "warthin", "free"],
                          "histology": ["warthin", "warthin", "malignant"],
                          "split": ["test", "test", "train"],
                          "prob_free": [0.7, 0.1, 0.9], "prob_pleomorphic_adenoma": [0.1] * 3,
                          "prob_warthin": [0.1, 0.7, 0.0], "prob_malignant": [0.1, 0.1, 0.0],
                          "predicted_label": ["free", "warthin", "free"]})
    table.to_csv(run / "predictions.csv", index=False)
    internal = load_bundle(write_bundle(run)).internal_predictions()
    assert list(internal["patient_id"]) == ["007", "007"]  # the test split, ids as text
    assert internal["prob_warthin"].tolist() == [0.1, 0.7]


class _NotAllowed:
    """A class the safe unpickler refuses (stands for any code a file could smuggle in)."""


def test_a_truncated_or_unsafe_bundle_is_named_as_such(run_dir, tmp_path):
    """Issue 21: a truncated bundle said "OSError: [Errno 22] Invalid argument", and torch's
    hint to load a refused file with weights_only=False reached the user."""
    data = write_bundle(run_dir).read_bytes()
    cut = tmp_path / "bundle.pt"
    for size in (0, 10, len(data) // 2, len(data) - 30):
        cut.write_bytes(data[:size])
        with pytest.raises(BundleError) as err:
            load_bundle(cut)
        message = str(err.value)
        assert str(cut) in message and "truncated or corrupt" in message, message
        assert "Errno" not in message and "miniz" not in message
    import collections

    torch.save({"format": BUNDLE_FORMAT, "x": collections.OrderedDict(), "y": _NotAllowed()},
               cut)
    with pytest.raises(BundleError) as err:
        load_bundle(cut)
    message = str(err.value)
    assert str(cut) in message and "refuses" in message and "_NotAllowed" in message
    assert "weights_only" not in message and "safe_globals" not in message
    from parotidlib.learn.checkpoint import read_checkpoint

    with pytest.raises(ValueError) as err:
        read_checkpoint(cut)
    assert "weights_only" not in str(err.value) and str(cut) in str(err.value)


def test_bundle_metadata_is_read_without_running_code(run_dir, tmp_path):
    """The metadata a report or the checklist shows: everything but the weights, read with
    the safe unpickler; None for a file that is absent, unsafe or not a bundle's dict."""
    meta = bundle_metadata(write_bundle(run_dir, malignant_threshold=3, git_commit="abc1234"))
    assert meta["git_commit"] == "abc1234" and meta["malignant_threshold"] == 3
    assert "model" not in meta and meta["channels"] == ["t1", "ce_t1", "gland"]
    internal = tmp_path / "internal.pt"
    torch.save({"format": BUNDLE_FORMAT, "model": {}, "internal_test": {
        "run": "dev-run", "synthetic": True, "predictions": {"prob_free": [0.5]}}}, internal)
    assert bundle_metadata(internal)["internal_test"] == {"run": "dev-run", "synthetic": True}
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"format": Evil()}))
    assert bundle_metadata(evil) is None and not marker.exists()
    assert bundle_metadata(tmp_path / "absent.pt") is None
    torch.save([1, 2], tmp_path / "list.pt")
    assert bundle_metadata(tmp_path / "list.pt") is None
