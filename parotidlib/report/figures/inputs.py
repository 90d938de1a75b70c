"""Input figures: the model's input crops, as the network sees them.

- :func:`plot_example_inputs`: Figure 3 of Xia et al. 2021, example inputs (the paper's four
  channels, or the run's), one row per class of the run's class scheme;
- :func:`plot_patient_strip`: the input crops of one patient, one column per slice and one
  row per channel, with each slice's predicted class and probability, titled with the
  patient-level diagnosis of the paper's rule (Xia et al. 2021, Figure 5).

Classes beyond the paper's four (a ``classes`` param, :class:`parotidlib.study.ClassScheme`)
take their names and colours from :mod:`~parotidlib.report.figures.style`; channels beyond
the paper's are titled from their names (``adc`` -> "ADC").

References
----------
Xia X, Feng B, Wang J, et al. Deep learning for differentiating benign from malignant
    parotid lesions on MR images. Front Oncol 2021; 11:632104.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from parotidlib.config import check_int
from parotidlib.constants import CLASSES
from parotidlib.report.figures.style import FIGURE_RC, class_colours, pretty_name
from parotidlib.study import PAPER_CLASSES, ClassScheme

__all__ = ["CHANNEL_TITLES", "CLASS_TITLES", "channel_title", "plot_example_inputs",
           "plot_patient_strip"]

#: Titles of the input channels, as in the paper's Figure 3 (others are upper-cased).
CHANNEL_TITLES = {"t1": "T1", "ce_t1": "CE-T1", "t2": "T2", "stir": "STIR", "gland": "Gland"}
CLASS_TITLES = {"free": "Free of tumour", "pleomorphic_adenoma": "Pleomorphic adenoma",
                "warthin": "Warthin tumour", "malignant": "Malignant"}
#: Short class names, for the narrow columns of the patient strip (the legend spells them out).
_SHORT_NAMES = {"free": "Free", "pleomorphic_adenoma": "PA", "warthin": "Warthin",
                "malignant": "Malignant"}
_COUNT_WORDS = ("One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight")


def channel_title(channel: str) -> str:
    """A channel's title: the paper's Figure 3 for its channels, else the name in capitals
    with hyphens (``adc`` -> "ADC", ``ce_t2`` -> "CE-T2")."""
    return CHANNEL_TITLES.get(channel) or channel.upper().replace("_", "-")


def _class_title(name: str) -> str:
    return CLASS_TITLES.get(name) or pretty_name(name)


def _short_name(name: str) -> str:
    return _SHORT_NAMES.get(name) or pretty_name(name)


def plot_example_inputs(dataset, per_class: int = 1, seed: int = 0,
                        split: str | None = None) -> Figure:
    """Grid of example inputs: rows are classes (``per_class`` rows each), columns channels.

    Parameters
    ----------
    dataset : parotidlib.data.dataset.CuratedDataset
        ``images`` (N, C, H, W) uint8, ``slices`` with a ``label`` column and ``classes``
        (the rows, in order; the paper's four for an object without them).
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
    classes = tuple(getattr(dataset, "classes", None) or CLASSES)
    rng = np.random.default_rng(seed)
    n_rows, n_cols = len(classes) * per_class, len(channels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols + 1.2, 1.9 * n_rows),
                             squeeze=False)
    for c, name in enumerate(classes):
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
                    ax.set_title(channel_title(channel))
                if col == 0:
                    ax.set_ylabel(_class_title(name) if r == 0 else "", fontsize=9)
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
    count = (_COUNT_WORDS[n_cols - 1] if n_cols <= len(_COUNT_WORDS) else str(n_cols))
    fig.suptitle(f"{count}-channel inputs (Xia et al. 2021, Figure 3)")
    fig.tight_layout()
    return fig


def _check_strip_args(images: Any, probabilities: Any, channels: Any, slice_labels: Any,
                      max_slices: Any, n_malignant: Any, threshold: Any,
                      classes: tuple[str, ...] = CLASSES
                      ) -> tuple[np.ndarray, np.ndarray, list[str], list[str | None] | None]:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.dtype != np.uint8:
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", type(images).__name__)
        raise ValueError(f"images must be a uint8 array of shape (n_slices, C, H, W), got "
                         f"shape {shape}, dtype {dtype}")
    n, c = images.shape[:2]
    if n == 0 or c == 0 or 0 in images.shape[2:]:
        raise ValueError(f"images must hold at least one slice, channel and pixel, got shape "
                         f"{images.shape}")
    if isinstance(channels, str) or not isinstance(channels, Sequence):
        raise ValueError(f"channels must be a sequence of channel names, got {channels!r}")
    names = [str(ch) for ch in channels]
    if len(names) != c:
        raise ValueError(f"channels must name the {c} channels of images (shape "
                         f"{images.shape}), got {names!r}")
    prob = np.asarray(probabilities)
    if prob.shape != (n, len(classes)) or prob.dtype == bool or not np.issubdtype(
            prob.dtype, np.number):
        raise ValueError(f"probabilities must be a numeric array of shape (n_slices, "
                         f"{len(classes)}) = ({n}, {len(classes)}) in the order of the classes "
                         f"{list(classes)}, got shape {prob.shape}, dtype {prob.dtype}")
    prob = prob.astype(np.float64)
    bad = ~(np.isfinite(prob) & (prob >= 0.0) & (prob <= 1.0))
    if np.any(bad):
        raise ValueError(f"probabilities must lie in [0, 1], got value {prob[bad][0].item()!r}")
    labels = None
    if slice_labels is not None:
        if isinstance(slice_labels, str) or len(slice_labels) != n:
            raise ValueError(f"slice_labels must give one label per slice ({n}), got "
                             f"{slice_labels!r:.80}")
        labels = []
        for i, label in enumerate(slice_labels):
            if label is None or (isinstance(label, float) and math.isnan(label)):
                labels.append(None)
            elif isinstance(label, str) and label in classes:
                labels.append(label)
            else:
                raise ValueError(f"slice_labels[{i}] must be one of {list(classes)} or None, "
                                 f"got {label!r}")
    for name, value, low in (("max_slices", max_slices, 1), ("n_malignant", n_malignant, 0),
                             ("threshold", threshold, 0)):
        check_int(name, value, low)
    return images, prob, names, labels


def _strip_title(patient_id: str, predicted: str, n_malignant: int, threshold: int,
                 true_histology: str | None, shown: int, n: int, width_in: float) -> str:
    head = f"Patient {patient_id}: predicted {pretty_name(predicted)}"
    rule = f"{n_malignant} slice(s) predicted malignant, threshold > {threshold}"
    truth = (f"histology: {pretty_name(true_histology)}" if true_histology
             else "no histology (unvalidated)")
    tail = truth if shown == n else f"{truth}; {shown} of {n} slices shown"
    budget = int(width_in * 10)  # characters per line at the title's 12 pt, roughly
    if len(head) + 3 + len(rule) <= budget:
        return f"{head} — {rule}\n{tail}"
    return f"{head} —\n{rule}\n{tail}"


def plot_patient_strip(images: np.ndarray, probabilities: np.ndarray, channels: Sequence[str],
                       patient_id: str, predicted: str, n_malignant: int, threshold: int,
                       true_histology: str | None = None,
                       slice_labels: Sequence[str | None] | None = None,
                       max_slices: int = 10, scheme: ClassScheme = PAPER_CLASSES) -> Figure:
    """One patient's model inputs, slice by slice, with each slice's prediction.

    Parameters
    ----------
    images : numpy.ndarray of uint8, shape (n_slices, C, H, W)
        The model's input crops of one patient, channels in ``channels`` order.
    probabilities : array-like of float in [0, 1], shape (n_slices, n_classes)
        Predicted class probabilities per slice, columns in ``scheme.classes`` order; the
        predicted class is the largest.
    channels : sequence of str, length C
        Channel names (e.g. ``("t1", "t2", "stir", "gland")``), shown on the rows.
    patient_id : str
    predicted : str
        The patient-level diagnosis (a histology, or ``"malignant"``/``"benign"``).
    n_malignant : int
        Slices predicted malignant (all the patient's slices, not only those shown).
    threshold : int
        The rule's threshold: malignant if more than ``threshold`` slices are predicted
        malignant (the paper's rule: 2).
    true_histology : str, optional
        The patient's histology; None for a patient without one (the title then says
        ``no histology (unvalidated)``).
    slice_labels : sequence of (str or None), optional
        The true label of each slice (a class of ``scheme``; None or NaN where unknown),
        written under its column.
    max_slices : int
        At most this many columns (>= 1): with more slices, ``max_slices`` evenly spaced
        ones are shown and the title says ``k of n slices shown``.
    scheme : ClassScheme
        The model's classes (the paper's four by default) and which are malignant.

    Returns
    -------
    matplotlib.figure.Figure
        A grid of ``C + 1`` rows and one column per shown slice: C rows of grey images (0-255,
        channel name on the row) and a row of horizontal stacked bars of the class
        probabilities (colours of the class, explained in the figure's legend), with the
        predicted class and its probability above the bar and, with ``slice_labels``, the
        true label under it. The images of a slice predicted in a malignant class are framed
        in that class' colour. Title: ``Patient <id>: predicted <diagnosis> — <n_malignant>
        slice(s) predicted malignant, threshold > <threshold>`` and ``histology: <...>`` or
        ``no histology (unvalidated)``.

    Raises
    ------
    ValueError
        If ``images`` is not uint8 of shape (n, C, H, W) with n, C >= 1, ``channels`` does
        not name C channels, ``probabilities`` is not (n, classes) in [0, 1], ``slice_labels`` is
        not n known labels, or ``max_slices``, ``n_malignant`` or ``threshold`` is not a
        non-negative integer (``max_slices`` >= 1).

    References
    ----------
    Xia X et al. Front Oncol 2021; 11:632104 (Figure 3, inputs; Figure 5, the rule).
    """
    classes = scheme.classes
    colours = class_colours(classes)
    images, prob, names, labels = _check_strip_args(images, probabilities, channels,
                                                    slice_labels, max_slices, n_malignant,
                                                    threshold, classes)
    n, c = images.shape[:2]
    k = min(n, int(max_slices))
    # Evenly spaced: the slice at the middle of each of k equal stretches of the stack.
    shown = np.floor((np.arange(k) + 0.5) * n / k).astype(int)
    predicted_idx = prob.argmax(axis=1)
    malignant = [classes.index(name) for name in scheme.malignant]
    aspect = images.shape[2] / images.shape[3]
    col_w = 1.15
    width = max(col_w * k + 0.8, 4.2)
    height = col_w * aspect * c + 1.25 + 1.0
    title_text = _strip_title(str(patient_id), str(predicted), int(n_malignant),
                              int(threshold), true_histology, k, n, width)
    with mpl.rc_context(FIGURE_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        # A figure widened for its title and legend keeps its columns narrow: the extra width
        # goes to empty columns on both sides.
        side = (width - 0.8 - col_w * k) / 2
        ratios = [side] + [col_w] * k + [side] if side > 0.05 else [col_w] * k
        grid = fig.add_gridspec(c + 1, len(ratios), width_ratios=ratios,
                                height_ratios=[col_w * aspect] * c + [0.75])
        first = 1 if len(ratios) > k else 0
        for j, s in enumerate(shown):
            best = classes[predicted_idx[s]]
            is_malignant = predicted_idx[s] in malignant
            for r, channel in enumerate(names):
                ax = fig.add_subplot(grid[r, first + j])
                ax.imshow(images[s, r], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if is_malignant:
                    for spine in ax.spines.values():
                        spine.set(color=colours[best], linewidth=2.2)
                if r == 0:
                    ax.set_title(f"Slice {s + 1}", fontsize=10)
                if j == 0:
                    ax.set_ylabel(channel_title(channel))
            bar = fig.add_subplot(grid[c, first + j])
            left = 0.0
            for q, name in enumerate(classes):
                bar.barh(0, prob[s, q], left=left, height=0.8, color=colours[name], lw=0)
                left += prob[s, q]
            bar.set(xlim=(0, max(1.0, left)), ylim=(-0.5, 0.5))
            bar.set_xticks([])
            bar.set_yticks([])
            for spine in bar.spines.values():
                spine.set_visible(False)
            bar.set_title(f"{_short_name(best)} {prob[s, predicted_idx[s]]:.2f}", fontsize=9,
                          color=colours[best], fontweight="bold", pad=2)
            if labels is not None:
                truth = _short_name(labels[s]) if labels[s] is not None else "unknown"
                bar.set_xlabel(f"true: {truth}", fontsize=8, labelpad=2)
            if j == 0:
                bar.set_ylabel("P(class)", fontsize=8)
        handles = [Patch(color=colours[name], label=pretty_name(name)) for name in classes]
        legend = ("Predicted class (PA: pleomorphic adenoma)"
                  if "pleomorphic_adenoma" in classes else "Predicted class")
        fig.legend(handles=handles, loc="outside lower center", ncol=2 if k < 4 else 4,
                   frameon=False, fontsize=8, title=legend, title_fontsize=8)
        fig.suptitle(title_text, fontsize=11)
    return fig
