"""Figure 3 of Xia et al. 2021: example four-channel inputs, one row per class."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from parotidlib.config import check_int
from parotidlib.constants import CLASSES

#: Column titles of the channels, as in the paper's Figure 3.
CHANNEL_TITLES = {"t1": "T1", "ce_t1": "CE-T1", "t2": "T2", "gland": "Gland"}
CLASS_TITLES = {"free": "Free of tumour", "pleomorphic_adenoma": "Pleomorphic adenoma",
                "warthin": "Warthin tumour", "malignant": "Malignant"}


def plot_example_inputs(dataset, per_class: int = 1, seed: int = 0,
                        split: str | None = None) -> Figure:
    """Grid of example inputs: rows are classes (``per_class`` rows each), columns channels.

    Parameters
    ----------
    dataset : parotidlib.data.dataset.CuratedDataset
        ``images`` (N, C, H, W) uint8 and ``slices`` with a ``label`` column.
    per_class : int
        Examples per class (>= 1), drawn at random without replacement.
    seed : int
        Seed of the draw (numpy Generator).
    split : {"train", "test"}, optional
        Draw only from this split.

    Returns
    -------
    matplotlib.figure.Figure
        Gray colour map on the uint8 range 0-255; a class without slices gets an empty row
        saying so.
    """
    check_int("per_class", per_class, 1)
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    slices = dataset.slices
    pool = np.ones(len(slices), bool) if split is None else (slices["split"] == split).to_numpy()
    channels = list(dataset.channels)
    rng = np.random.default_rng(seed)
    n_rows, n_cols = len(CLASSES) * per_class, len(channels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 1.2, 1.9 * n_rows),
                             squeeze=False)
    for c, name in enumerate(CLASSES):
        candidates = np.flatnonzero(pool & (slices["label"] == name).to_numpy())
        chosen = rng.choice(candidates, size=min(per_class, len(candidates)), replace=False) \
            if len(candidates) else []
        for r in range(per_class):
            row = c * per_class + r
            for col, channel in enumerate(channels):
                ax = axes[row, col]
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(CHANNEL_TITLES[channel])
                if col == 0:
                    ax.set_ylabel(CLASS_TITLES[name] if r == 0 else "", fontsize=9)
                if r < len(chosen):
                    ax.imshow(dataset.images[chosen[r], col], cmap="gray", vmin=0, vmax=255,
                              interpolation="nearest")
                    if col == n_cols - 1:
                        info = slices.iloc[chosen[r]]
                        ax.text(1.04, 0.5, f"{info['patient_id']}\nslice {info['slice_index']}",
                                transform=ax.transAxes, fontsize=7, va="center")
                elif col == 0:
                    ax.text(0.5, 0.5, "no slices", ha="center", va="center",
                            transform=ax.transAxes, fontsize=8)
    fig.suptitle("Four-channel inputs (Xia et al. 2021, Figure 3)")
    fig.tight_layout()
    return fig
