"""Tests of parotidlib.learn.train (with schedule.py and checkpoint.py): config, schedule, loop,
checkpoint/resume, determinism, prediction. Tiny synthetic data: 32 px, widths (8, 16)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from parotidlib.config import TrainConfig
from parotidlib.constants import CLASSES
from parotidlib.learn.augment import BatchAugment
from parotidlib.learn.checkpoint import load_model
from parotidlib.learn.model import ReducedResNet
from parotidlib.learn.predict import predict_proba, to_unit_float
from parotidlib.learn.schedule import build_optimizer, build_scheduler, paper_lr
from parotidlib.learn.train import (
    HISTORY_COLUMNS,
    LOSS_SETTINGS,
    TRAINING_RECORD,
    epoch_order,
    split_validation_patients,
    train_model,
    train_step,
    training_method,
)


def make_dataset(n_patients=12, slices=6, size=32, channels=4, seed=0):
    """Class-dependent blobs: a tumour class k lights up a disc of radius 3 + 2k in channel
    k - 1 (mod channels); the first two slices of each patient are tumour-free."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels, pids = [], [], []
    for p in range(n_patients):
        histology = 1 + p % 3
        for s in range(slices):
            label = 0 if s < 2 else histology
            img = rng.normal(0.2, 0.05, (channels, size, size))
            if label:
                cy, cx = rng.integers(size // 2 - 3, size // 2 + 4, 2)
                img[(label - 1) % channels] += 0.6 * (((yy - cy) ** 2 + (xx - cx) ** 2)
                                                     < (3 + 2 * label) ** 2)
            images.append(img)
            labels.append(label)
            pids.append(f"P{p:03d}")
    images = (np.clip(np.array(images), 0, 1) * 255).astype(np.uint8)
    return images, np.array(labels), np.array(pids)


DATA = make_dataset()
# One thread: tiny models gain nothing from two, and a shared, loaded machine stalls them.
SMALL = {"batch_size": 16, "lr": 1e-2, "model_widths": (8, 16), "val_fraction": 0.25,
         "num_threads": 1}


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, **SMALL, **kw})


def run(tmp_path, name="run", data=DATA, **kw):
    return train_model(*data, cfg(**kw), tmp_path / name, progress=False)


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize(
    ("key", "value"),
    [("epochs", -1), ("epochs", 0), ("epochs", 2.5), ("batch_size", 0), ("lr", 0.0),
     ("lr", float("nan")), ("optimizer", "rmsprop"), ("weight_decay", -1e-4),
     ("lr_decay_factor", 1.5), ("lr_decay_every", 0), ("model_widths", ()),
     ("model_widths", (8, 0)), ("val_fraction", 1.0), ("val_fraction", -0.1),
     ("select_metric", "test_accuracy"), ("device", "gpu"), ("mixed_precision", "maybe"),
     ("checkpoint_every", 0), ("num_threads", -1), ("augment", "yes"),
     ("aug_rotate_deg", -5.0), ("aug_translate", 0.9), ("seed", -1)],
)
def test_bad_config_names_key_and_value(key, value):
    with pytest.raises(ValueError, match=rf"{key} must be .*got {re.escape(repr(value))}"):
        TrainConfig(**{"epochs": 3, key: value})


def test_config_normalises_yaml_values_and_round_trips():
    c = TrainConfig.from_params({"epochs": 5, "model_widths": [8, 16], "mixed_precision": True,
                                 "unrelated_key": 1})
    assert c.model_widths == (8, 16) and c.mixed_precision == "true"
    assert TrainConfig(**{**c.to_dict(), "model_widths": (8, 16)}) == c
    assert TrainConfig(epochs=1, mixed_precision="False").mixed_precision == "false"


# ----------------------------------------------------------------------------- schedule

PAPER_LR = [(0, 1e-6), (599, 1e-6), (600, 8e-7), (699, 8e-7), (700, 6.4e-7),
            (1199, 1e-6 * 0.8 ** 6)]


@pytest.mark.parametrize(("epoch", "expected"), PAPER_LR)
def test_paper_schedule(epoch, expected):
    assert paper_lr(epoch) == pytest.approx(expected, rel=1e-12)


def test_scheduler_stepped_per_epoch_follows_the_paper():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "adam", lr=1e-6)
    sched = build_scheduler(opt, start=600, every=100, factor=0.8)
    seen = {}
    for epoch in range(1200):
        seen[epoch] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    for epoch, expected in PAPER_LR:
        assert seen[epoch] == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- inputs

def test_channel_count_mismatch_raises(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        train_model(*DATA, cfg(), tmp_path, channels=["t1", "ce_t1", "t2"], progress=False)


def test_bad_inputs_raise(tmp_path):
    images, labels, pids = DATA
    with pytest.raises(ValueError, match="labels"):
        train_model(images, labels + 4, pids, cfg(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="patient_ids"):
        train_model(images, labels, pids[:-1], cfg(), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_model(images.astype(np.float32), labels, pids, cfg(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="images"):
        train_model(images[:, 0], labels, pids, cfg(), tmp_path, progress=False)


def test_validation_patients_are_disjoint_whole_and_stratified():
    images, labels, pids = make_dataset(n_patients=30, slices=4)
    val = split_validation_patients(labels, pids, 0.2, seed=0)
    assert len(val) == 6
    train = np.setdiff1d(np.unique(pids), val)
    assert not set(val) & set(train) and len(train) + len(val) == 30
    histology = {p: labels[pids == p].max() for p in np.unique(pids)}
    assert sorted(histology[p] for p in val) == [1, 1, 2, 2, 3, 3]
    assert np.array_equal(val, split_validation_patients(labels, pids, 0.2, seed=0))
    assert not np.array_equal(val, split_validation_patients(labels, pids, 0.2, seed=1))
    assert len(split_validation_patients(labels, pids, 0.0)) == 0


def test_unstratifiable_split_warns_and_still_splits():
    labels = np.array([0, 1, 0, 2, 0, 3, 0, 3])
    pids = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])
    with pytest.warns(UserWarning, match="not stratified"):
        val = split_validation_patients(labels, pids, 0.25, seed=0)
    assert len(val) == 1


# ----------------------------------------------------------------------------- the loop

def test_training_writes_history_and_safe_checkpoints(tmp_path):
    res = run(tmp_path, epochs=3, checkpoint_every=2)
    out = tmp_path / "run"
    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == list(HISTORY_COLUMNS)
    assert list(hist["epoch"]) == [1, 2, 3] and len(res.history) == 3
    files = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert files == ["best.pt", "epoch_0002.pt", "epoch_0003.pt", "last.pt"]
    for name in files:
        ckpt = torch.load(out / "checkpoints" / name, weights_only=True)
        assert ckpt["classes"] == list(CLASSES)
        assert ckpt["channels"] == ["t1", "ce_t1", "t2", "gland"]
        assert ckpt["config"]["model_widths"] == [8, 16]
        assert set(ckpt["rng"]) >= {"torch", "numpy", "python", "generators"}
    assert torch.load(res.last_checkpoint, weights_only=True)["epoch"] == 3
    best = torch.load(res.best_checkpoint, weights_only=True)
    assert best["epoch"] == res.best_epoch
    assert best["best_metric"] == hist["val_accuracy"].max()
    assert hist["val_accuracy"].iloc[res.best_epoch - 1] == hist["val_accuracy"].max()
    assert res.device == "cpu" and res.seconds > 0


def test_training_records_the_loss_and_sampling_its_steps_use(tmp_path):
    """training.json (read by the TRIPOD+AI checklist, items 12c and 13) holds the loss
    settings train_step minimises and the sampling of epoch_order."""
    run(tmp_path, epochs=1)
    record = json.loads((tmp_path / "run" / TRAINING_RECORD).read_text())
    assert record == training_method()
    assert record["loss"] == "cross_entropy" and record["sampler"] == "permutation"
    assert record["class_weights"] is None and record["label_smoothing"] == 0.0
    torch.manual_seed(0)
    model = ReducedResNet(4, len(CLASSES), (8, 16)).to(memory_format=torch.channels_last)
    model.train()
    x, y = torch.from_numpy(DATA[0][:16]), torch.from_numpy(DATA[1][:16]).long()
    logits = model(to_unit_float(x).contiguous(memory_format=torch.channels_last))
    recorded = torch.nn.functional.cross_entropy(logits, y, **LOSS_SETTINGS)
    weighted = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1., 2, 2, 3]))
    optimizer = build_optimizer(model.parameters(), "sgd", lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss_sum, _ = train_step(model, x, y, optimizer, scaler, BatchAugment(cfg(augment=False)),
                             None)
    assert loss_sum.item() / 16 == pytest.approx(recorded.item(), rel=1e-6)
    assert abs(recorded.item() - weighted.item()) > 1e-4  # the settings matter
    order = epoch_order(50, torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(50))  # every slice once, no re-sampling
    assert order.tolist() != list(range(50))


def test_validation_patients_never_trained_on(tmp_path):
    res = run(tmp_path, epochs=1)
    ckpt = torch.load(res.last_checkpoint, weights_only=True)
    pids = DATA[2]
    assert ckpt["val_patient_ids"] == res.val_patient_ids.tolist()
    assert 0 < len(res.val_patient_ids) < len(np.unique(pids))


def test_learns_the_blobs_and_predicts(tmp_path):
    res = run(tmp_path, epochs=8)
    assert res.history["train_loss"].iloc[-1] < res.history["train_loss"].iloc[0]
    model, meta = load_model(res.best_checkpoint)
    assert meta["epoch"] == res.best_epoch and "optimizer" not in meta
    images, labels, pids = DATA
    val = np.isin(pids, res.val_patient_ids)
    proba = predict_proba(model, images[val], batch_size=5)
    assert proba.shape == (val.sum(), len(CLASSES)) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    accuracy = (proba.argmax(1) == labels[val]).mean()
    assert accuracy == pytest.approx(meta["best_metric"])
    assert accuracy >= 0.5
    np.testing.assert_allclose(predict_proba(model, images[val] / np.float32(255)), proba,
                               atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        predict_proba(model, images[:, :3])


def test_same_seed_same_history_and_weights(tmp_path):
    a = run(tmp_path, "a", epochs=2, seed=3)
    b = run(tmp_path, "b", epochs=2, seed=3)
    c = run(tmp_path, "c", epochs=2, seed=4)
    cols = [c_ for c_ in HISTORY_COLUMNS if c_ != "seconds"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])
    assert_same_weights(weights(a.last_checkpoint), weights(b.last_checkpoint))
    assert not a.history[cols].equals(c.history[cols])


def test_resume_after_extending_epochs_equals_straight_run(tmp_path):
    straight = run(tmp_path, "straight", epochs=4, checkpoint_every=2)
    run(tmp_path, "resumed", epochs=2, checkpoint_every=2)
    resumed = run(tmp_path, "resumed", epochs=4, checkpoint_every=2)
    assert resumed.resumed_from == 2
    assert_same_weights(weights(straight.last_checkpoint), weights(resumed.last_checkpoint))
    assert_same_weights(weights(straight.best_checkpoint), weights(resumed.best_checkpoint))
    cols = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(straight.history[cols], resumed.history[cols])


def test_resume_accepts_a_schedule_that_changes_only_after_the_checkpoint(tmp_path):
    """Decay moved from epoch 3 to epoch 4 after 2 epochs: same lr so far, so it resumes, and
    the result equals a straight run under the new schedule; a change that would have
    altered an epoch already trained is refused."""
    new = dict(lr_decay_start=4, lr_decay_every=1, lr_decay_factor=0.5)
    straight = run(tmp_path, "straight", epochs=5, checkpoint_every=2, **new)
    run(tmp_path, "resumed", epochs=2, checkpoint_every=2, lr_decay_start=3, lr_decay_every=1,
        lr_decay_factor=0.5)
    resumed = run(tmp_path, "resumed", epochs=5, checkpoint_every=2, **new)
    assert resumed.resumed_from == 2
    assert_same_weights(weights(straight.last_checkpoint), weights(resumed.last_checkpoint))
    np.testing.assert_allclose(resumed.history["lr"], straight.history["lr"])
    with pytest.raises(ValueError, match="lr_decay_start"):
        run(tmp_path, "resumed", epochs=6, checkpoint_every=2, lr_decay_start=1,
            lr_decay_every=1, lr_decay_factor=0.5)


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    """Killed after epoch 3 with the last checkpoint at epoch 2: epoch 3 is redone."""
    straight = run(tmp_path, "straight", epochs=5, checkpoint_every=2)

    def stop_after_3(epoch, row):
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_model(*DATA, cfg(epochs=5, checkpoint_every=2), tmp_path / "killed",
                    progress=False, on_epoch_end=stop_after_3)
    assert len(pd.read_csv(tmp_path / "killed" / "history.csv")) == 3
    assert torch.load(tmp_path / "killed/checkpoints/last.pt", weights_only=True)["epoch"] == 2
    resumed = run(tmp_path, "killed", epochs=5, checkpoint_every=2)
    assert resumed.resumed_from == 2
    assert_same_weights(weights(straight.last_checkpoint), weights(resumed.last_checkpoint))
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4, 5]
    ckpt_s = torch.load(straight.last_checkpoint, weights_only=True)
    ckpt_r = torch.load(resumed.last_checkpoint, weights_only=True)
    for a, b in zip(ckpt_s["optimizer"]["state"].values(), ckpt_r["optimizer"]["state"].values(),
                    strict=True):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_resume_refuses_a_different_run_and_resume_false_restarts(tmp_path):
    run(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="lr"):
        run(tmp_path, epochs=2, lr=1e-3)
    res = train_model(*DATA, dataclasses.replace(cfg(epochs=1), lr=1e-3), tmp_path / "run",
                      resume=False, progress=False)
    assert res.resumed_from == 0
    assert torch.load(res.last_checkpoint, weights_only=True)["config"]["lr"] == 1e-3


def test_no_validation_keeps_last_epoch_as_best(tmp_path):
    res = run(tmp_path, epochs=2, val_fraction=0.0, augment=False, optimizer="sgd")
    assert len(res.val_patient_ids) == 0 and res.best_epoch == 2
    assert res.history["val_accuracy"].isna().all()
    assert_same_weights(weights(res.best_checkpoint), weights(res.last_checkpoint))


def test_channel_subset_and_names(tmp_path):
    images, labels, pids = DATA
    res = train_model(images[:, [0, 2]], labels, pids, cfg(epochs=1), tmp_path,
                      channels=["t1", "t2"], progress=False)
    model, meta = load_model(res.last_checkpoint)
    assert model.in_channels == 2 and meta["channels"] == ["t1", "t2"]


def test_bf16_autocast_on_cpu_is_deterministic(tmp_path):
    a = run(tmp_path, "a", epochs=1, mixed_precision="true")
    b = run(tmp_path, "b", epochs=1, mixed_precision=True)
    assert torch.load(a.last_checkpoint, weights_only=True)["amp_dtype"] == "torch.bfloat16"
    assert_same_weights(weights(a.last_checkpoint), weights(b.last_checkpoint))


def test_select_on_val_loss(tmp_path):
    res = run(tmp_path, epochs=4, select_metric="val_loss", checkpoint_every=3)
    hist = res.history
    assert res.best_epoch == int(hist.loc[hist["val_loss"].idxmin(), "epoch"])
    assert torch.load(res.best_checkpoint, weights_only=True)["epoch"] == res.best_epoch


def test_history_lr_follows_the_schedule(tmp_path):
    res = run(tmp_path, epochs=4, lr=1e-2, lr_decay_start=2, lr_decay_every=1,
              lr_decay_factor=0.5, checkpoint_every=2)
    np.testing.assert_allclose(res.history["lr"], [1e-2, 1e-2, 5e-3, 2.5e-3], rtol=1e-12)


def test_float16_images_in_unit_range_train_like_uint8(tmp_path):
    images, labels, pids = DATA
    a = train_model((images / 255).astype(np.float16), labels, pids, cfg(epochs=1), tmp_path / "a",
                    progress=False)
    assert len(a.history) == 1 and np.isfinite(a.history["train_loss"]).all()
