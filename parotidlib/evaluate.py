"""Slice predictions of a trained model over a curated dataset (the torch side of evaluation).

The statistics on these predictions live in ``metrics``/``stats``/``decision``, which do not
import torch (DESIGN.md, Boundaries).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.constants import CLASSES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation and statistics settings."""

    # Figure 5's rule: more than this many malignant slices make a patient malignant.
    malignant_threshold: int = 2
    # Patient-clustered bootstrap of the micro-AUC: resamples and seed.
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0
    # Which checkpoint is evaluated: "best" (validation-selected) or "last".
    checkpoint: str = "best"
    # Slices per forward pass at prediction time.
    predict_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.malignant_threshold < 0:
            raise ValueError(f"malignant_threshold must be >= 0, got {self.malignant_threshold!r}")
        if self.bootstrap_resamples < 0:
            raise ValueError(f"bootstrap_resamples must be >= 0, got {self.bootstrap_resamples!r}")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got {self.checkpoint!r}")
        if self.predict_batch_size < 1:
            raise ValueError(f"predict_batch_size must be >= 1, got {self.predict_batch_size!r}")


def probability_columns() -> list[str]:
    """Names of the per-class probability columns of predictions.csv, in CLASSES order."""
    return [f"prob_{c}" for c in CLASSES]


def predictions_frame(slices: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """Assemble predictions.csv: one row per slice with true label, probabilities, prediction.

    Parameters
    ----------
    slices : DataFrame
        The curated slices table (patient_id, slice_index, label, split, ...), N rows.
    probabilities : ndarray, shape (N, 4)
        Softmax outputs in CLASSES order.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(slices), len(CLASSES)):
        raise ValueError(
            f"probabilities must have shape ({len(slices)}, {len(CLASSES)}), "
            f"got {probabilities.shape}"
        )
    keep = [c for c in ("patient_id", "slice_index", "z_mm", "side", "histology", "split")
            if c in slices]
    out = slices[keep].reset_index(drop=True).copy()
    out.insert(2, "true_label", slices["label"].to_numpy())
    for j, col in enumerate(probability_columns()):
        out[col] = probabilities[:, j]
    out["predicted_label"] = np.asarray(CLASSES)[probabilities.argmax(axis=1)]
    return out


def predict_run(run_dir: str | Path, channels=None, checkpoint: str = "best",
                batch_size: int = 256, device: str = "auto") -> pd.DataFrame:
    """Predict every slice (train and test splits) of a run with its trained model.

    Parameters
    ----------
    run_dir : path
        Run folder holding ``data/`` (curated) and ``model/checkpoints/{best,last}.pt``.
    channels : sequence of str, optional
        Channels the model was trained on (default: those stored in the checkpoint).
    """
    from parotidlib.dataset import load_dataset
    from parotidlib.train import load_model, predict_proba, resolve_device

    run_dir = Path(run_dir)
    ckpt = run_dir / "model" / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint!r} not found: {ckpt}")
    dev = resolve_device(device)
    model, meta = load_model(ckpt, device=dev)
    trained_on = tuple(meta.get("channels") or ())
    channels = tuple(channels or trained_on)
    if trained_on and channels != trained_on:
        raise ValueError(f"channels {list(channels)} differ from the channels the model in "
                         f"{ckpt} was trained on: {list(trained_on)}")
    dataset = load_dataset(run_dir / "data", channels=channels or None)
    logger.info("predicting %d slices with %s on %s", len(dataset.slices), ckpt.name, dev)
    probs = predict_proba(model, np.asarray(dataset.images), batch_size=batch_size, device=dev)
    return predictions_frame(dataset.slices, probs)
