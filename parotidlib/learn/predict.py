"""Prediction: softmax probabilities of a trained network for slices, and predictions.csv.

:func:`predict_proba` runs a model over N x C x H x W slices; :func:`predict_run` predicts every
slice of a run's curated dataset with its selected checkpoint. The statistics on these
predictions live in :mod:`parotidlib.evaluation`, which does not import torch.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from parotidlib.constants import CLASSES
from parotidlib.data.dataset import load_dataset
from parotidlib.learn.checkpoint import load_model
from parotidlib.learn.device import resolve_device

logger = logging.getLogger(__name__)


def check_images(images: np.ndarray, name: str = "images") -> None:
    """Raise ValueError unless ``images`` is N x C x H x W, uint8 or float in [0, 1]."""
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(
            f"{name} must be a NumPy array N x C x H x W, got "
            f"{type(images).__name__} of shape {getattr(images, 'shape', None)}"
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    if np.issubdtype(images.dtype, np.floating) and images.size:
        lo, hi = float(images.min()), float(images.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"{name} of dtype {images.dtype} must hold values in [0, 1], got [{lo}, {hi}] "
                "(uint8 arrays hold 0..255)"
            )


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 0..255 -> float32 [0, 1]; float16/32 in [0, 1] -> float32."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


@torch.inference_mode()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """Float32 logits (N, K) on ``device`` for images ``x`` (N, C, H, W) on any device.

    The model runs in eval mode (BatchNorm running statistics) and is put back in the mode
    it had.
    """
    was_training = model.training
    model.eval()
    try:
        out = [
            model(to_unit_float(x[i:i + batch_size].to(device, non_blocking=True))
                  .contiguous(memory_format=torch.channels_last)).float()
            for i in range(0, x.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.fc.out_features, device=device)


def predict_proba(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Softmax class probabilities for every slice.

    Parameters
    ----------
    model : ReducedResNet
        E.g. from :func:`load_model`.
    images : ndarray, shape (N, C, H, W)
        uint8 (0..255) or float in [0, 1]; C must equal the model's ``in_channels``.
    batch_size : int
        Slices per forward pass.
    device : str or torch.device, optional
        Defaults to the device of the model's weights (the model is moved otherwise).

    Returns
    -------
    ndarray, shape (N, num_classes), float32
        Rows sum to 1; columns in the order of the classes the model was trained on (the
        checkpoint's ``classes``).

    Example
    -------
    >>> model, meta = load_model("run/model/checkpoints/best.pt")  # doctest: +SKIP
    >>> proba = predict_proba(model, images)  # doctest: +SKIP
    """
    check_images(images)
    in_channels = getattr(model, "in_channels", images.shape[1])
    if images.shape[1] != in_channels:
        raise ValueError(
            f"images has {images.shape[1]} channels but the model expects {in_channels}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    with warnings.catch_warnings():
        # A read-only memmap (load_dataset) is only read here: no copy of the whole dataset.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.from_numpy(np.ascontiguousarray(images))
    logits = predict_logits(model, x, batch_size, dev)
    return torch.softmax(logits, dim=1).cpu().numpy()


def probability_columns(classes: Sequence[str] = CLASSES) -> list[str]:
    """Names of the per-class probability columns of predictions.csv (``prob_<class>``), in
    the order of ``classes`` (default the paper's :data:`~parotidlib.constants.CLASSES`)."""
    return [f"prob_{c}" for c in classes]


def predictions_frame(slices: pd.DataFrame, probabilities: np.ndarray,
                      classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Assemble predictions.csv: one row per slice with true label, probabilities, prediction.

    Parameters
    ----------
    slices : DataFrame
        The curated slices table (patient_id, slice_index, label, split, ...), N rows.
    probabilities : ndarray, shape (N, K)
        Softmax outputs, columns in ``classes`` order.
    classes : sequence of str, optional
        The model's classes in output order (a dataset's ``classes``), K of them: the
        columns ``prob_<class>`` in this order, and ``predicted_label`` among them. Default
        the paper's four (:data:`~parotidlib.constants.CLASSES`).
    """
    classes = list(CLASSES if classes is None else classes)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(slices), len(classes)):
        raise ValueError(
            f"probabilities must have shape ({len(slices)}, {len(classes)}) (slices x the "
            f"classes {classes}), got {probabilities.shape}"
        )
    keep = [c for c in ("patient_id", "slice_index", "z_mm", "side", "histology", "split")
            if c in slices]
    out = slices[keep].reset_index(drop=True).copy()
    out.insert(2, "true_label", slices["label"].to_numpy())
    for j, col in enumerate(probability_columns(classes)):
        out[col] = probabilities[:, j]
    out["predicted_label"] = np.asarray(classes)[probabilities.argmax(axis=1)]
    return out


def load_run_model(run_dir: str | Path, checkpoint: str = "best", device: str = "auto"
                   ) -> tuple[torch.nn.Module, dict, torch.device]:
    """A run's trained network from ``model/checkpoints/<checkpoint>.pt``, in eval mode on the
    resolved ``device``: ``(model, meta, device)`` (FileNotFoundError naming the file)."""
    ckpt = Path(run_dir) / "model" / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint!r} not found: {ckpt}")
    dev = resolve_device(device)
    model, meta = load_model(ckpt, device=dev)
    return model, meta, dev


def predict_run(run_dir: str | Path, channels=None, checkpoint: str = "best",
                batch_size: int = 256, device: str = "auto") -> pd.DataFrame:
    """Predict every slice (train and test splits) of a run with its trained model.

    Parameters
    ----------
    run_dir : path
        Run folder holding ``data/`` (curated) and ``model/checkpoints/{best,last}.pt``.
    channels : sequence of str, optional
        Channels the model was trained on (default: those stored in the checkpoint).

    Returns
    -------
    pandas.DataFrame
        predictions.csv, with ``prob_<class>`` in the dataset's class order.

    Raises
    ------
    ValueError
        The channels, or the classes, of the checkpoint and of the dataset differ (a
        checkpoint without classes has the paper's four).
    """
    run_dir = Path(run_dir)
    model, meta, dev = load_run_model(run_dir, checkpoint, device)
    ckpt = run_dir / "model" / "checkpoints" / f"{checkpoint}.pt"
    trained_on = tuple(meta.get("channels") or ())
    channels = tuple(channels or trained_on)
    if trained_on and channels != trained_on:
        raise ValueError(f"channels {list(channels)} differ from the channels the model in "
                         f"{ckpt} was trained on: {list(trained_on)}")
    dataset = load_dataset(run_dir / "data", channels=channels or None)
    trained_classes = tuple(meta.get("classes") or CLASSES)
    if trained_classes != dataset.classes:
        raise ValueError(f"the model in {ckpt} was trained on the classes "
                         f"{list(trained_classes)}, but the dataset {dataset.path} has the "
                         f"classes {list(dataset.classes)} (class scheme "
                         f"{dataset.class_scheme.name!r}); train again on this dataset")
    logger.info("predicting %d slices with %s on %s", len(dataset.slices), ckpt.name, dev)
    probs = predict_proba(model, np.asarray(dataset.images), batch_size=batch_size, device=dev)
    return predictions_frame(dataset.slices, probs, dataset.classes)
