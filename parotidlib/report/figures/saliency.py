"""Where the network looks: example slices with their Grad-CAM maps overlaid.

The maps come from :func:`parotidlib.learn.saliency.saliency_summary` (or
:func:`~parotidlib.learn.saliency.gradcam`); this module draws them and does not import torch.
The function returns a ``matplotlib.figure.Figure`` built without pyplot, as the other figure
modules do; save it with ``fig.savefig`` or :func:`parotidlib.report.figures.save_figure`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from parotidlib.constants import CLASSES
from parotidlib.report.figures.inputs import channel_title
from parotidlib.report.figures.style import FIGURE_RC, pretty_name

__all__ = ["plot_saliency_examples"]

#: Colour map of the heat maps (perceptually uniform, readable in grey scale).
SALIENCY_CMAP = "inferno"
#: Class names in a row label: the paper's anywhere, any class name (a scheme's) where the
#: label names the true class (after "<slice>: ") or the predicted one ("(predicted <class>)").
_CLASS_WORD = re.compile(r"\b(" + "|".join(CLASSES) + r")\b"
                         r"|(?<=:\n)[a-z][a-z0-9_]*(?=\n|$)|(?<=\(predicted )[a-z][a-z0-9_]*(?=\))")


def _raw_channel(channels: Sequence[str]) -> int:
    """Index of the channel shown without overlay: T1, else the first channel."""
    return list(channels).index("t1") if "t1" in channels else 0


def plot_saliency_examples(images: np.ndarray, maps: np.ndarray, channels: Sequence[str],
                           titles: Sequence[str], alpha: float = 0.5,
                           method_name: str = "Grad-CAM", title: str | None = None) -> Figure:
    """One row per example: the raw T1 slice, then every input channel with the map overlaid.

    Parameters
    ----------
    images : ndarray, shape (N, C, H, W)
        The examples' input slices (uint8 0..255, or float in [0, 1]).
    maps : ndarray, shape (N, H, W)
        Their non-negative heat maps at the input resolution (e.g. ``summary["maps"]``).
    channels : sequence of str, length C
        Channel names of ``images`` (column titles: T1, CE-T1, T2, Gland).
    titles : sequence of str, length N
        Row labels (e.g. the examples' ``title`` of the summary: index, true and predicted
        class, share of the map in the ROI); class names are pretty-printed.
    alpha : float
        Opacity of the heat map over the grey image.
    method_name : str
        Named in the colour bar's label.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        ``N x (C + 1)`` image axes (first column the raw T1, or the first channel when T1 is
        not an input; then each channel with the map) and one colour bar axes. Each map is
        drawn relative to its own maximum (the colour bar's 0-1); an all-zero map is drawn as
        zero. Without examples, one axes saying so.

    Raises
    ------
    ValueError
        If the shapes, channels or titles disagree.
    """
    images = np.asarray(images)
    maps = np.asarray(maps, dtype=float)
    channels = list(channels)
    titles = list(titles)
    if images.ndim != 4 or images.shape[1] != len(channels):
        raise ValueError(f"images must be N x C x H x W with C = len(channels) = {len(channels)}, "
                         f"got shape {images.shape}")
    n = images.shape[0]
    if maps.shape != (n, *images.shape[2:]):
        raise ValueError(f"maps must have shape {(n, *images.shape[2:])}, got {maps.shape}")
    if len(titles) != n:
        raise ValueError(f"titles must have one entry per example ({n}), got {len(titles)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    vmax = 255.0 if images.dtype == np.uint8 else 1.0
    raw = _raw_channel(channels)
    with mpl.rc_context(FIGURE_RC):
        if n == 0:
            fig = Figure(figsize=(4.0, 1.5), layout="constrained")
            ax = fig.add_subplot()
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no examples", ha="center", va="center", transform=ax.transAxes)
            if title:
                fig.suptitle(title)
            return fig
        n_cols = len(channels) + 1
        fig = Figure(figsize=(1.9 * n_cols + 4.0, 1.9 * n + 0.6), layout="constrained")
        axes = fig.subplots(n, n_cols, squeeze=False)
        name = channel_title(channels[raw])
        col_titles = [name] + [f"{channel_title(c)} + map" for c in channels]
        for r in range(n):
            peak = float(maps[r].max()) if maps[r].size else 0.0
            heat = maps[r] / peak if peak > 0 else np.zeros_like(maps[r])
            for col in range(n_cols):
                ax = axes[r, col]
                ax.set_xticks([])
                ax.set_yticks([])
                channel = raw if col == 0 else col - 1
                ax.imshow(images[r, channel], cmap="gray", vmin=0, vmax=vmax,
                          interpolation="nearest")
                if col > 0:
                    ax.imshow(heat, cmap=SALIENCY_CMAP, vmin=0, vmax=1, alpha=alpha,
                              interpolation="bilinear")
                if r == 0:
                    ax.set_title(col_titles[col])
            # horizontal, left of the row: a rotated label longer than the row is clipped
            axes[r, 0].set_ylabel(_pretty_title(titles[r]), fontsize=8, rotation=0,
                                  ha="right", va="center", labelpad=6)
        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=SALIENCY_CMAP), ax=axes,
                     shrink=1.0 if n == 1 else min(0.8, 2.5 / n),
                     label=f"{method_name} (fraction of the row's maximum)")
        if title:
            fig.suptitle(title)
    return fig


def _pretty_title(text: str) -> str:
    """Row label with class names pretty-printed, one clause a line (after ": ", ", " and
    before "(predicted")."""
    words = str(text).replace(": ", ":\n", 1).replace(", ", "\n").replace(" (predicted",
                                                                          "\n(predicted")
    return _CLASS_WORD.sub(lambda m: pretty_name(m.group(0)), words)
