"""Training of the reduced ResNet18 with checkpoint/resume, and prediction.

The loop is written out (nanoGPT practice): seed, epoch, batch step, validate, checkpoint.
The protocol is the paper's (Xia et al. 2021, "Deep-Learning Network Structure"): images in
[0, 1], batch 32, cross-entropy, Adam, lr 1e-6 for 600 epochs then x0.8 every 100 epochs,
1200 epochs, random flips, contrast, colour jitter and affine transforms. The paper selected no
model on the test set; here the weights of the best epoch on a validation set carved from the
TRAINING patients (grouped by patient, stratified by histology) are kept as ``best.pt``.

Speed: the whole training set stays in memory as one tensor (uint8 stays uint8 until a batch is
drawn), on the training device; batches are indexed there, augmented there in one pass
(:mod:`parotidlib.learn.augment`), fed in channels_last layout (the layout cuDNN/oneDNN convolutions
prefer) and optionally under autocast. No DataLoader, no per-slice Python. With
``config.compile`` the training steps run the network through ``torch.compile`` (validation and
checkpoints use the plain module, whose ``state_dict`` has no ``_orig_mod.`` prefix).

Example
-------
>>> cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-3, model_widths=(8, 16))
>>> result = train_model(images, labels, patient_ids, cfg, "run/model")  # doctest: +SKIP
>>> model, meta = load_model(result.best_checkpoint)  # doctest: +SKIP
>>> proba = predict_proba(model, test_images)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from parotidlib.config import TrainConfig
from parotidlib.constants import CHANNELS, CLASSES
from parotidlib.data.split import split_validation_patients
from parotidlib.io import atomic_path, write_text_atomic
from parotidlib.learn.augment import BatchAugment
from parotidlib.learn.checkpoint import (
    FORMAT_VERSION,
    capture_rng,
    check_resumable,
    clear_checkpoints,
    cpu_copy,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
)
from parotidlib.learn.device import resolve_amp_dtype, resolve_device, torch_settings
from parotidlib.learn.model import ReducedResNet
from parotidlib.learn.predict import check_images, predict_logits, to_unit_float
from parotidlib.learn.schedule import build_optimizer, build_scheduler
from parotidlib.progress import tqdm  # a widget in a notebook, plain text in a run

__all__ = ["HISTORY_COLUMNS", "LOSS_SETTINGS", "SAMPLER", "TRAINING_RECORD", "TrainResult",
           "compile_for_training", "epoch_order", "split_validation_patients", "train_model",
           "train_step", "training_method"]

logger = logging.getLogger(__name__)

HISTORY_COLUMNS: tuple[str, ...] = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds",
)
#: The keyword arguments of the loss, ``torch.nn.functional.cross_entropy``, in every training
#: step and validation: no class weights, no label smoothing (the paper's plain cross-entropy).
LOSS_SETTINGS: dict[str, Any] = {"weight": None, "label_smoothing": 0.0}
#: How :func:`epoch_order` draws an epoch's training slices.
SAMPLER = "permutation"
#: The file beside ``history.csv`` that records the loss and the sampling
#: (:func:`training_method`); the TRIPOD+AI checklist (items 12c, 13) reads it.
TRAINING_RECORD = "training.json"
TRAINING_FORMAT = "parotidlib.training-method/1"


def training_method() -> dict[str, Any]:
    """What :func:`train_model` records in ``training.json``: the loss, its class weights
    (None: unweighted) and label smoothing, and the sampling of training slices
    (``"permutation"``: :func:`epoch_order`). Taken from :data:`LOSS_SETTINGS` and
    :data:`SAMPLER`, which the training steps use, so the record cannot drift from them."""
    weight = LOSS_SETTINGS["weight"]
    return {"format": TRAINING_FORMAT, "loss": "cross_entropy",
            "class_weights": None if weight is None else [float(w) for w in weight],
            "label_smoothing": float(LOSS_SETTINGS["label_smoothing"]), "sampler": SAMPLER}


def epoch_order(n: int, generator: torch.Generator) -> Tensor:
    """The order of the ``n`` training slices in an epoch: a uniform random permutation
    (every slice once, no class re-sampling; :data:`SAMPLER`)."""
    return torch.randperm(n, generator=generator)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train_model` returns.

    Attributes
    ----------
    best_checkpoint, last_checkpoint : Path
        ``out_dir/checkpoints/best.pt`` (best validation epoch) and ``last.pt``.
    history : DataFrame
        One row per epoch, columns :data:`HISTORY_COLUMNS` (``epoch`` counts from 1).
    val_patient_ids : ndarray
        Patients held out for validation (sorted).
    device : str
        Device the training ran on.
    seconds : float
        Wall time of this call.
    best_epoch : int
        Epoch (from 1) whose weights are in ``best.pt``.
    resumed_from : int
        Epochs already done in ``last.pt`` when this call started (0 for a fresh run).
    """

    best_checkpoint: Path
    last_checkpoint: Path
    history: pd.DataFrame
    val_patient_ids: np.ndarray
    device: str
    seconds: float
    best_epoch: int = 0
    resumed_from: int = 0


# ----------------------------------------------------------------------------- steps

def train_step(
    model: nn.Module,
    xb: Tensor,
    yb: Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    augment: BatchAugment,
    generator: torch.Generator | None,
    amp_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """One optimisation step on a raw batch already on the model's device.

    Parameters
    ----------
    model : nn.Module
        In train mode, channels_last.
    xb : Tensor, shape (B, C, H, W), uint8 or float in [0, 1]
    yb : Tensor, shape (B,), int64 class indices
    optimizer, scaler : the run's optimiser and GradScaler (disabled unless float16).
    augment : BatchAugment
    generator : torch.Generator
        Augmentation randomness (on the device of ``xb``).
    amp_dtype : torch.dtype, optional
        Autocast dtype; None trains in float32.

    Returns
    -------
    loss_sum, correct : Tensor (0-d, on the device)
        Summed cross-entropy and number of correct predictions of the batch, left on the
        device so that the loop never waits for the GPU inside an epoch.
    """
    x = augment(to_unit_float(xb), generator).contiguous(memory_format=torch.channels_last)
    autocast = (torch.autocast(device_type=x.device.type, dtype=amp_dtype)
                if amp_dtype is not None else contextlib.nullcontext())
    with autocast:
        logits = model(x)
        loss = F.cross_entropy(logits, yb, **LOSS_SETTINGS)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad():
        correct = (logits.argmax(dim=1) == yb).sum()
    return loss.detach().float() * yb.shape[0], correct


def _evaluate(model: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y); NaN for an empty set."""
    if x.shape[0] == 0:
        return math.nan, math.nan
    logits = predict_logits(model, x, 256, device)
    loss = F.cross_entropy(logits, y, **LOSS_SETTINGS).item()
    acc = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, acc


# ----------------------------------------------------------------------------- the loop

def compile_for_training(model: nn.Module, mode: str | None = None) -> nn.Module:
    """``torch.compile(model, mode=mode)`` for the training steps (``config.compile``).

    Static shapes: a full batch and the epoch's last, smaller one give two graphs. The result
    shares ``model``'s parameters; ``model`` itself stays the plain module (its ``state_dict``
    is what checkpoints hold; the compiled one's keys carry an ``_orig_mod.`` prefix).
    """
    return torch.compile(model, mode=mode, dynamic=False)


def _check_classes(classes: Sequence[str] | None) -> list[str]:
    """The class names (default :data:`~parotidlib.constants.CLASSES`): at least 2,
    distinct strings."""
    if classes is None:
        return list(CLASSES)
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"classes must be a sequence of class names, got {classes!r}")
    names = list(classes)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"classes must name at least 2 distinct classes (a dataset's "
                         f"classes), got {names}")
    return names


def _validate_inputs(
    images: np.ndarray, labels: np.ndarray, patient_ids: np.ndarray,
    config: TrainConfig, channels: Sequence[str] | None, classes: list[str],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_images(images)
    n, c = images.shape[:2]
    if n == 0:
        raise ValueError("images must hold at least one slice, got 0")
    labels = np.asarray(labels)
    patient_ids = np.asarray(patient_ids)
    if labels.shape != (n,) or patient_ids.shape != (n,):
        raise ValueError(
            f"labels and patient_ids must have one entry per slice ({n}), got shapes "
            f"{labels.shape} and {patient_ids.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= len(
        classes
    ):
        raise ValueError(
            f"labels must be integers 0..{len(classes) - 1} (indices into classes {classes}), "
            f"got dtype {labels.dtype}, values {np.unique(labels)[:10].tolist()}"
        )
    missing = [classes[k] for k in range(len(classes)) if not np.any(labels == k)]
    if missing:
        warnings.warn(f"labels: no training slice of class {missing}", stacklevel=3)
    if channels is None:
        channels = list(CHANNELS) if c == len(CHANNELS) else [f"channel{i}" for i in range(c)]
    else:
        channels = [str(ch) for ch in channels]
        if len(channels) != c:
            raise ValueError(
                f"channels names {len(channels)} channels {channels} but images has {c} "
                f"(images.shape[1]); the model's in_channels comes from images.shape[1]"
            )
    return labels.astype(np.int64), patient_ids, channels


def _save_history(history: dict[str, list], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(history, columns=list(HISTORY_COLUMNS))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def train_model(
    images: np.ndarray,
    labels: np.ndarray,
    patient_ids: np.ndarray,
    config: TrainConfig,
    out_dir: str | PathLike,
    channels: Sequence[str] | None = None,
    resume: bool = True,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[int, Mapping[str, float]], None] | None = None,
    classes: Sequence[str] | None = None,
) -> TrainResult:
    """Train the reduced ResNet18 on the TRAINING slices; checkpoint, resume, keep the best.

    Parameters
    ----------
    images : ndarray, shape (N, C, H, W)
        Training-split slices only, uint8 0..255 (or float in [0, 1]). The model's
        ``in_channels`` is C. The test patients must never be passed here.
    labels : ndarray of int, shape (N,)
        Class indices into ``classes``.
    patient_ids : ndarray, shape (N,)
        Patient of each slice; validation patients (``config.val_fraction``) are drawn from
        these, whole patients, stratified by the patient's tumour class.
    config : TrainConfig
    out_dir : path
        Receives ``training.json`` (:func:`training_method`), ``history.csv`` (rewritten
        every epoch) and ``checkpoints/``:
        ``epoch_XXXX.pt`` every ``checkpoint_every`` epochs and at the end, ``last.pt`` (the
        latest of them) and ``best.pt`` (the epoch with the best ``select_metric`` so far,
        written with ``last.pt`` so the two always belong to the same moment of the run).
    channels : sequence of str, optional
        Channel names stored in the checkpoints; length must be C. Default ``CHANNELS`` for
        C = 4, else ``channel0``...
    resume : bool
        Continue from ``checkpoints/last.pt`` if present (its config must match except
        ``RESUME_MAY_DIFFER``: epochs, checkpoint_every, num_threads, device, compile); the
        result is bit-identical on CPU to an uninterrupted run. False starts over.
    progress : bool
        Show a tqdm bar over epochs.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, row)`` after each epoch's checkpointing (``epoch`` from 1,
        ``row`` the history row). An exception raised there stops training cleanly: the
        files on disk are those of a run killed at that moment.
    classes : sequence of str, optional
        The slice classes in model-output order (a dataset's ``classes``, from its class
        scheme); the network has one output per class, and the checkpoints record them.
        Default :data:`~parotidlib.constants.CLASSES` (the paper's four).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad inputs (shapes, dtypes, labels outside the classes, channels vs images.shape[1]),
        unavailable device, or a ``last.pt`` from an incompatible run (other classes among
        them).
    """
    t_start = time.perf_counter()
    classes = _check_classes(classes)
    labels, patient_ids, channels = _validate_inputs(images, labels, patient_ids, config,
                                                     channels, classes)
    device = resolve_device(config.device)
    amp_dtype = resolve_amp_dtype(config.mixed_precision, device)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    write_text_atomic(out_dir / TRAINING_RECORD, json.dumps(training_method(), indent=2) + "\n")

    val_patients = split_validation_patients(labels, patient_ids, config.val_fraction,
                                             config.seed)
    is_val = np.isin(patient_ids, val_patients)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    val_list = val_patients.tolist()
    logger.info("training on %s: %d slices (%d patients), validation %d slices (%d patients), "
                "autocast %s", device, len(train_idx), len(np.unique(patient_ids[train_idx])),
                len(val_idx), len(val_patients), amp_dtype)

    with torch_settings(device, config.num_threads):
        torch.manual_seed(config.seed)  # model initialisation
        model = ReducedResNet(images.shape[1], len(classes), config.model_widths)
        model.to(device=device, memory_format=torch.channels_last)
        optimizer = build_optimizer(model.parameters(), config.optimizer, config.lr,
                                    config.weight_decay, fused=device.type == "cuda")
        scheduler = build_scheduler(optimizer, config.lr_decay_start, config.lr_decay_every,
                                    config.lr_decay_factor)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        generators = {
            "shuffle": torch.Generator().manual_seed(config.seed),
            "augment": torch.Generator(device=device).manual_seed(config.seed + 1),
        }
        augment = BatchAugment(config)
        history: dict[str, list] = {c: [] for c in HISTORY_COLUMNS}
        best_metric, best_epoch, start_epoch = math.nan, 0, 0

        if resume and last_path.is_file():
            # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest.
            ckpt = read_checkpoint(last_path, map_location="cpu")
            check_resumable(ckpt, config.to_dict(), channels, val_list, last_path, classes)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            for group in optimizer.param_groups:  # a run moved between devices
                if "fused" in group:
                    group["fused"] = device.type == "cuda" or None
            # The scheduler's position (last_epoch); the schedule is the config's, which
            # check_resumable accepted (learn.schedule.build_scheduler).
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            restore_rng(ckpt["rng"], generators)
            history = {c: list(ckpt["history"][c]) for c in HISTORY_COLUMNS}
            best_metric, best_epoch = float(ckpt["best_metric"]), int(ckpt["best_epoch"])
            start_epoch = int(ckpt["epoch"])
            logger.info("resuming from %s at epoch %d", last_path, start_epoch)
            if start_epoch > config.epochs:
                warnings.warn(
                    f"epochs={config.epochs} but {last_path} already holds {start_epoch} "
                    "epochs; returning that run unchanged (resume=False retrains)", stacklevel=2,
                )
        elif not resume:
            clear_checkpoints(ckpt_dir)
        # The network the training steps run; ``model`` (the plain module, sharing its
        # parameters) is what validation and the checkpoints see.
        step_model = compile_for_training(model) if config.compile else model

        # The data, once, on the device; uint8 stays uint8 until a batch is drawn.
        x_train = torch.from_numpy(np.ascontiguousarray(images[train_idx])).to(device)
        y_train = torch.from_numpy(labels[train_idx]).to(device)
        x_val = torch.from_numpy(np.ascontiguousarray(images[val_idx])).to(device)
        y_val = torch.from_numpy(labels[val_idx]).to(device)
        n_train = x_train.shape[0]
        best_ckpt: dict[str, Any] | None = None
        higher_is_better = config.select_metric.endswith("accuracy")

        def checkpoint(epoch: int) -> dict[str, Any]:
            return {
                "format_version": FORMAT_VERSION, "epoch": epoch,
                "model": model.state_dict(),
                "model_args": {"in_channels": model.in_channels,
                               "num_classes": model.num_classes,
                               "widths": list(model.widths),
                               "blocks_per_stage": list(model.blocks_per_stage)},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": capture_rng(generators),
                "best_metric": best_metric, "best_epoch": best_epoch,
                "select_metric": config.select_metric, "config": config.to_dict(),
                "channels": channels, "classes": classes, "val_patient_ids": val_list,
                "history": history, "device": str(device), "amp_dtype": str(amp_dtype),
            }

        bar = tqdm(range(start_epoch, config.epochs), initial=start_epoch, total=config.epochs,
                   desc="train", unit="epoch", disable=not progress)
        for e in bar:  # e: 0-based index of the epoch being run; a tqdm iterator closes itself
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            perm = epoch_order(n_train, generators["shuffle"]).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for i in range(0, n_train, config.batch_size):
                idx = perm[i:i + config.batch_size]
                batch_loss, batch_correct = train_step(
                    step_model, x_train[idx], y_train[idx], optimizer, scaler, augment,
                    generators["augment"], amp_dtype,
                )
                loss_sum += batch_loss
                correct += batch_correct
            scheduler.step()
            val_loss, val_acc = _evaluate(model, x_val, y_val, device)
            row = {"epoch": e + 1, "train_loss": loss_sum.item() / n_train,
                   "train_accuracy": correct.item() / n_train, "val_loss": val_loss,
                   "val_accuracy": val_acc, "lr": lr, "seconds": time.perf_counter() - t0}
            for k in HISTORY_COLUMNS:
                history[k].append(row[k])

            # Model selection on the validation patients; without any, best.pt = last.pt.
            # The best epoch's checkpoint is kept in memory and written together with
            # last.pt, so that the files on disk always belong to one moment of the run.
            done = e + 1 == config.epochs
            periodic = (e + 1) % config.checkpoint_every == 0 or done
            metric = row[config.select_metric]
            if x_val.shape[0] == 0:
                improved = periodic
            elif math.isnan(best_metric):
                improved = True
            else:
                improved = metric > best_metric if higher_is_better else metric < best_metric
            if improved:
                best_metric, best_epoch = metric, e + 1
                best_ckpt = cpu_copy(checkpoint(e + 1))
            if periodic:
                ckpt = checkpoint(e + 1)
                save_checkpoint(ckpt, ckpt_dir / f"epoch_{e + 1:04d}.pt")
                if best_ckpt is not None:
                    save_checkpoint(best_ckpt, best_path)
                    best_ckpt = None
                save_checkpoint(ckpt, last_path)
            _save_history(history, out_dir / "history.csv")
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_accuracy']:.3f}",
                            val_acc=f"{val_acc:.3f}")
            logger.debug("epoch %d: %s", e + 1, row)
            if on_epoch_end is not None:
                on_epoch_end(e + 1, row)

    frame = _save_history(history, out_dir / "history.csv")
    seconds = time.perf_counter() - t_start
    logger.info("training done: %d epochs, best %s=%.4f at epoch %d, %.1f s",
                len(frame), config.select_metric, best_metric, best_epoch, seconds)
    return TrainResult(best_checkpoint=best_path, last_checkpoint=last_path, history=frame,
                       val_patient_ids=val_patients, device=str(device), seconds=seconds,
                       best_epoch=best_epoch, resumed_from=start_epoch)
