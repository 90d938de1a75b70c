"""External-validation figures: reliability diagrams, decision curves and one patient's strip.

- :func:`plot_reliability`: reliability diagrams (observed frequency against mean predicted
  probability per bin, with Wilson intervals and the number of items per bin), one panel per
  task, one series per cohort (e.g. internal test and external), from
  :func:`parotidlib.evaluation.calibration.calibration_summary`;
- :func:`plot_decision_curve`: the decision curve of Vickers & Elkin (2006), net benefit of
  the model against treat-all and treat-none, one pair of curves per cohort, from
  :func:`parotidlib.evaluation.calibration.net_benefit`;
- :func:`plot_patient_strip`: the model's input crops of one patient, one column per slice
  and one row per channel, with each slice's predicted class and probability, titled with the
  patient-level diagnosis of the paper's rule (Xia et al. 2021, Figure 5).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global
figure state, nothing shown twice in notebooks); save it with ``fig.savefig`` or
:func:`parotidlib.report.figures.save_figure`. Undefined quantities follow docs/metrics.md
("Undefined quantities"): they are written ``undefined (<reason>)``, never dropped silently;
a cohort without data is named ``not available``. Invalid arguments raise ``ValueError``
naming the argument and the value.

References
----------
Xia X, Feng B, Wang J, et al. Deep learning for differentiating benign from malignant
    parotid lesions on MR images. Front Oncol 2021; 11:632104.
Niculescu-Mizil A, Caruana R. Predicting good probabilities with supervised learning.
    ICML 2005 (reliability diagrams).
Van Calster B, McLernon DJ, van Smeden M, Wynants L, Steyerberg EW. Calibration: the Achilles
    heel of predictive analytics. BMC Med 2019; 17:230.
Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction
    models. Med Decis Making 2006; 26:565-574.
Vickers AJ, Van Calster B, Steyerberg EW. Net benefit approaches to the evaluation of
    prediction models, molecular markers, and diagnostic tests. BMJ 2016; 352:i6.
Wilson EB. Probable inference, the law of succession, and statistical inference.
    J Am Stat Assoc 1927; 22:209-212.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation

from parotidlib.constants import CLASSES
from parotidlib.evaluation.calibration import NET_BENEFIT_COLUMNS, RELIABILITY_COLUMNS
from parotidlib.evaluation.text import block_text, number_text
from parotidlib.report.figures.evaluation import _COLOURS, _RC, pretty_name

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_NAMES",
    "NOT_AVAILABLE",
    "plot_decision_curve",
    "plot_patient_strip",
    "plot_reliability",
    "reliability_legend",
]

#: How a cohort without data (None) is named in a legend.
NOT_AVAILABLE = "not available"
#: Display names of input channels (others are upper-cased).
CHANNEL_NAMES: dict[str, str] = {"t1": "T1", "ce_t1": "CE-T1", "t2": "T2", "stir": "STIR",
                                 "gland": "Gland"}
#: Short class names, for the narrow columns of the patient strip (the legend spells them out).
_SHORT_NAMES = {"free": "Free", "pleomorphic_adenoma": "PA", "warthin": "Warthin",
                "malignant": "Malignant"}
#: One colour and marker per cohort, in the order the cohorts first appear (colour-blind-safe
#: palette, started after the four class colours so cohorts are not read as classes).
_COHORT_COLOURS = sns.color_palette("colorblind", 10).as_hex()
_COHORT_COLOURS = _COHORT_COLOURS[4:] + _COHORT_COLOURS[:4]
_MARKERS = ("o", "s", "D", "^", "v", "P", "X")
#: Panels per row of :func:`plot_reliability`, and legend characters per line in a panel.
_MAX_COLUMNS = 3
_LEGEND_WIDTH = 52


# --------------------------------------------------------------------------- helpers


def _cohort_style(index: int) -> tuple[str, str]:
    return _COHORT_COLOURS[index % len(_COHORT_COLOURS)], _MARKERS[index % len(_MARKERS)]


def _value_text(block: Any, digits: int) -> str:
    """A block's value (or a bare number) as :func:`~parotidlib.evaluation.frames.block_text`
    writes it, without interval and counts (a legend has no room for them)."""
    if isinstance(block, numbers.Real) and not isinstance(block, bool):
        block = {"value": float(block)}
    return block_text(block if isinstance(block, Mapping) else None, digits, interval=False,
                      counts=False)


def reliability_legend(summary: Mapping[str, Any] | None) -> str:
    """The legend text of one cohort's calibration: Brier score, ECE, slope and intercept.

    Parameters
    ----------
    summary : mapping or None
        From :func:`parotidlib.evaluation.calibration.calibration_summary` (or its JSON
        copy); None when the cohort has no data.

    Returns
    -------
    str
        ``"Brier 0.123, ECE 0.045, slope 0.91, intercept -0.12"`` (Brier score and ECE to
        three decimals, calibration slope and intercept to two); a quantity the data leave
        undefined reads ``undefined (<reason>)`` (e.g. ``slope undefined (perfect
        separation)``), one missing without a reason ``n/a``; ``"not available"`` for None.

    Raises
    ------
    ValueError
        If ``summary`` is neither None nor a mapping.

    References
    ----------
    Brier GW. Mon Weather Rev 1950; 78:1-3. Naeini MP, Cooper GF, Hauskrecht M. AAAI 2015
    (ECE). Cox DR. Biometrika 1958; 45:562-565 (slope). Van Calster B et al. BMC Med 2019.

    Examples
    --------
    >>> reliability_legend({"brier": 0.1234, "ece": 0.045, "slope": {"value": 0.914},
    ...                     "intercept": {"value": None, "undefined": "no positive case"}})
    'Brier 0.123, ECE 0.045, slope 0.91, intercept undefined (no positive case)'
    >>> reliability_legend(None)
    'not available'
    """
    if summary is None:
        return NOT_AVAILABLE
    return ", ".join(_legend_parts(summary))


def _legend_parts(summary: Any) -> tuple[str, str]:
    """The two halves of :func:`reliability_legend`: Brier and ECE; slope and intercept."""
    if not isinstance(summary, Mapping):
        raise ValueError(f"summary must be a calibration_summary mapping or None, got "
                         f"{type(summary).__name__}")
    return (f"Brier {number_text(summary, 'brier', 3)}, ECE {number_text(summary, 'ece', 3)}",
            f"slope {_value_text(summary.get('slope'), 2)}, "
            f"intercept {_value_text(summary.get('intercept'), 2)}")


def _reliability_frame(summary: Mapping[str, Any], where: str) -> pd.DataFrame:
    """The summary's reliability rows with n > 0 and a finite point, as floats."""
    if "reliability" not in summary:
        raise ValueError(f"{where} has no 'reliability' rows (keys {sorted(summary)}); pass a "
                         f"calibration_summary")
    rows = summary["reliability"]
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))
    if frame.empty:
        return pd.DataFrame(columns=list(RELIABILITY_COLUMNS), dtype=float)
    missing = [c for c in RELIABILITY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}['reliability'] is missing columns {missing} "
                         f"(see RELIABILITY_COLUMNS)")
    frame = frame[list(RELIABILITY_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    keep = (frame["n"] > 0) & np.isfinite(frame["mean_predicted"]) & np.isfinite(
        frame["observed"])
    return frame[keep].reset_index(drop=True)


def _check_panels(panels: Any) -> dict[str, dict[str, Mapping[str, Any] | None]]:
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError(f"panels must be a non-empty mapping panel title -> {{cohort: "
                         f"calibration_summary or None}}, got {panels!r:.80}")
    checked: dict[str, dict[str, Mapping[str, Any] | None]] = {}
    for title, cohorts in panels.items():
        if not isinstance(cohorts, Mapping) or not cohorts:
            raise ValueError(f"panels[{title!r}] must be a non-empty mapping cohort -> "
                             f"calibration_summary or None, got {cohorts!r:.80}")
        for cohort, summary in cohorts.items():
            if summary is not None and not isinstance(summary, Mapping):
                raise ValueError(f"panels[{title!r}][{cohort!r}] must be a calibration_summary "
                                 f"mapping or None, got {type(summary).__name__}")
        checked[str(title)] = {str(c): s for c, s in cohorts.items()}
    return checked


def _draw_reliability(ax: Axes, strip: Axes, cohorts: Mapping[str, Mapping[str, Any] | None],
                      styles: Mapping[str, tuple[str, str]], title: str) -> None:
    handles: list[Any] = [Line2D([0, 1], [0, 1], color="0.55", ls="--", lw=1)]
    labels = ["Perfect calibration"]
    ax.plot([0, 1], [0, 1], color="0.55", ls="--", lw=1, zorder=0)
    frames = {}
    for cohort, summary in cohorts.items():
        colour, marker = styles[cohort]
        if summary is None:
            handles.append(Line2D([], [], lw=0, marker=marker, color=colour, mfc="none"))
            labels.append(f"{cohort}: {NOT_AVAILABLE}")
            continue
        frame = _reliability_frame(summary, f"panels[{title!r}][{cohort!r}]")
        n = summary.get("n")
        head = f"{cohort} (n = {int(n)})" if isinstance(n, numbers.Integral) else cohort
        if frame.empty:
            handles.append(Line2D([], [], lw=0, marker=marker, color=colour, mfc="none"))
            labels.append(f"{head}: no non-empty bin")
            continue
        frames[cohort] = frame
        x, y = frame["mean_predicted"].to_numpy(), frame["observed"].to_numpy()
        lo, hi = frame["ci_low"].to_numpy(), frame["ci_high"].to_numpy()
        band = np.isfinite(lo) & np.isfinite(hi)
        yerr = np.vstack([np.where(band, np.clip(y - lo, 0, None), 0.0),
                          np.where(band, np.clip(hi - y, 0, None), 0.0)])
        container = ax.errorbar(x, y, yerr=yerr, color=colour, marker=marker, ms=5, lw=1.3,
                                elinewidth=1, capsize=2, mec="white", mew=0.6, zorder=3)
        handles.append(container)
        # Two lines (three if a reason is long), so the legend keeps to the panel's width.
        scores, recalibration = _legend_parts(summary)
        if len(recalibration) > _LEGEND_WIDTH:
            recalibration = recalibration.replace(", intercept", ",\nintercept")
        labels.append(f"{head}: {scores}\n{recalibration}")
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), ylabel="Observed frequency")
    ax.set_box_aspect(1)
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)
    ax.set_title(title)
    if not frames and all(s is None for s in cohorts.values()):
        ax.text(0.5, 0.5, NOT_AVAILABLE, transform=ax.transAxes, ha="center", va="center",
                color="0.35")

    # The strip: items per bin, one bar per cohort side by side within the bin.
    width_share = 1.0 / max(len(frames), 1)
    for i, (cohort, frame) in enumerate(frames.items()):
        low, high = frame["bin_low"].to_numpy(), frame["bin_high"].to_numpy()
        width = (high - low) * width_share
        strip.bar(low + i * width, frame["n"].to_numpy(), width=width, align="edge",
                  color=styles[cohort][0], alpha=0.85, lw=0)
    strip.set(xlim=(0, 1), xlabel="Predicted probability", ylabel="n")
    strip.set_box_aspect(0.25)
    strip.set_xticks(np.linspace(0, 1, 6))
    strip.yaxis.set_major_locator(mpl.ticker.MaxNLocator(2, integer=True))
    strip.grid(alpha=0.3, axis="x")
    # The legend sits under the strip's axis label (constrained layout makes room for it).
    below = strip.transAxes + ScaledTranslation(0, -0.5, strip.figure.dpi_scale_trans)
    strip.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                 bbox_transform=below, frameon=False, fontsize=8, handlelength=1.6,
                 borderaxespad=0)


# --------------------------------------------------------------------------- figures


def plot_reliability(panels: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
                     title: str | None = None) -> Figure:
    """Reliability diagrams, one panel per task and one series per cohort.

    Parameters
    ----------
    panels : mapping of str to mapping of str to (mapping or None)
        Panel title (e.g. ``"Slices: malignant vs benign"``, ``"Patients: malignant vs
        benign"``, ``"Pleomorphic adenoma (one-vs-rest)"``) -> cohort label (e.g.
        ``"Internal test"``, ``"External"``) -> the cohort's
        :func:`parotidlib.evaluation.calibration.calibration_summary` (its ``reliability``
        rows are drawn; rows with ``n == 0`` or a NaN point are skipped), or None where the
        cohort has no data for that task. A cohort keeps its colour and marker in every
        panel.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Panels in a grid of up to three per row, in the order of ``panels``. Each panel is two
        axes: a square reliability diagram (the diagonal is perfect calibration; points are
        the observed frequency against the mean predicted probability of each non-empty
        equal-width bin, with 95% Wilson intervals as error bars; axis "Observed frequency",
        0 to 1) and, under it, a strip with the number of items per bin (axis "Predicted
        probability", 0 to 1), whose legend gives per cohort ``<cohort> (n = N)`` and
        :func:`reliability_legend` (``undefined (<reason>)`` where the data leave a value
        undefined), or ``<cohort>: not available`` for None.

    Raises
    ------
    ValueError
        If ``panels`` is not a non-empty mapping of non-empty mappings, a cohort value is
        neither None nor a mapping, or a summary lacks its reliability rows.

    References
    ----------
    Niculescu-Mizil A, Caruana R. ICML 2005. Van Calster B et al. BMC Med 2019; 17:230.
    Wilson EB. J Am Stat Assoc 1927; 22:209-212.
    """
    checked = _check_panels(panels)
    cohorts: list[str] = []
    for panel in checked.values():
        cohorts.extend(c for c in panel if c not in cohorts)
    styles = {c: _cohort_style(i) for i, c in enumerate(cohorts)}
    n_cols = min(_MAX_COLUMNS, len(checked))
    n_rows = math.ceil(len(checked) / n_cols)
    n_entries = max(len(panel) for panel in checked.values())
    panel_height = 4.3 + 0.38 * n_entries
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(3.9 * n_cols, panel_height * n_rows + (0.3 if title else 0)),
                     layout="constrained")
        grid = fig.add_gridspec(n_rows, n_cols)
        for k, (panel_title, panel) in enumerate(checked.items()):
            cell = grid[k // n_cols, k % n_cols].subgridspec(2, 1, height_ratios=[4, 1])
            ax = fig.add_subplot(cell[0])
            strip = fig.add_subplot(cell[1], sharex=ax)
            _draw_reliability(ax, strip, panel, styles, panel_title)
        if title:
            fig.suptitle(title)
    return fig


def _check_curve(frame: Any, cohort: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"curves[{cohort!r}] must be a net_benefit DataFrame, got "
                         f"{type(frame).__name__}")
    missing = [c for c in NET_BENEFIT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"curves[{cohort!r}] is missing columns {missing} (see net_benefit)")
    if frame.empty:
        raise ValueError(f"curves[{cohort!r}] has no rows")
    values = frame[list(NET_BENEFIT_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    t = values["threshold"].to_numpy(dtype=float)
    if not np.all(np.isfinite(t) & (t > 0) & (t < 1)):
        raise ValueError(f"curves[{cohort!r}]['threshold'] must lie in (0, 1), got "
                         f"{frame['threshold'].tolist()[:5]!r}")
    return values


def plot_decision_curve(curves: Mapping[str, pd.DataFrame], title: str | None = None) -> Figure:
    """Decision curves: net benefit of the model, treat-all and treat-none, per cohort.

    Parameters
    ----------
    curves : mapping of str to pandas.DataFrame
        Cohort label -> :func:`parotidlib.evaluation.calibration.net_benefit` frame (columns
        ``threshold``, ``net_benefit_model``, ``net_benefit_treat_all``,
        ``net_benefit_treat_none``), e.g. ``{"Internal test": ..., "External": ...}``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes: per cohort the model's net benefit (solid) and treat-all (dashed, the same
        colour), and treat-none (black, at 0) once; x "Threshold probability (operate as
        malignant)", y "Net benefit". The view runs from a little below 0 to a little above
        the largest net benefit (at most the largest prevalence, treat-all's value at a
        threshold near 0); treat-all, very negative at high thresholds, leaves the view there
        but its data are drawn whole.

    Raises
    ------
    ValueError
        If ``curves`` is not a non-empty mapping of net_benefit frames with thresholds in
        (0, 1).

    References
    ----------
    Vickers AJ, Elkin EB. Med Decis Making 2006; 26:565-574. Vickers AJ, Van Calster B,
    Steyerberg EW. BMJ 2016; 352:i6.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves must be a non-empty mapping cohort -> net_benefit frame, got "
                         f"{curves!r:.80}")
    frames = {str(c): _check_curve(f, str(c)) for c, f in curves.items()}
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(6.0, 4.4), layout="constrained")
        ax = fig.add_subplot()
        tops, lows, x_lo, x_hi = [], [], [], []
        for i, (cohort, frame) in enumerate(frames.items()):
            colour, _ = _cohort_style(i)
            t = frame["threshold"].to_numpy(dtype=float)
            model = frame["net_benefit_model"].to_numpy(dtype=float)
            treat_all = frame["net_benefit_treat_all"].to_numpy(dtype=float)
            ax.plot(t, model, color=colour, lw=2, label=f"{cohort}: model")
            ax.plot(t, treat_all, color=colour, lw=1.2, ls="--", label=f"{cohort}: treat all")
            tops.extend(v[np.isfinite(v)].max(initial=0.0) for v in (model, treat_all))
            lows.append(model[np.isfinite(model)].min(initial=0.0))
            x_lo.append(t.min())
            x_hi.append(t.max())
        ax.axhline(0.0, color="black", lw=1.2, label="Treat none", zorder=1)
        top = max(max(tops), 0.0)
        pad = max(0.1 * top, 0.02)
        # Below 0: enough to see where a curve crosses treat-none, not the whole fall of
        # treat-all (or of a model near 0 events at high thresholds).
        bottom = max(min(min(lows), 0.0) - pad, -max(0.3 * top, 0.05))
        ax.set(xlim=(min(x_lo), max(x_hi)), ylim=(min(bottom, -pad), top + pad),
               xlabel="Threshold probability (operate as malignant)", ylabel="Net benefit")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", frameon=True)
        if title:
            ax.set_title(title)
    return fig


def _check_strip_args(images: Any, probabilities: Any, channels: Any, slice_labels: Any,
                      max_slices: Any, n_malignant: Any, threshold: Any
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
    if prob.shape != (n, len(CLASSES)) or prob.dtype == bool or not np.issubdtype(
            prob.dtype, np.number):
        raise ValueError(f"probabilities must be a numeric array of shape (n_slices, "
                         f"{len(CLASSES)}) = ({n}, {len(CLASSES)}) in CLASSES order, got "
                         f"shape {prob.shape}, dtype {prob.dtype}")
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
            elif isinstance(label, str) and label in CLASSES:
                labels.append(label)
            else:
                raise ValueError(f"slice_labels[{i}] must be one of {list(CLASSES)} or None, "
                                 f"got {label!r}")
    for name, value, low in (("max_slices", max_slices, 1), ("n_malignant", n_malignant, 0),
                             ("threshold", threshold, 0)):
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) \
                or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
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
                       max_slices: int = 10) -> Figure:
    """One patient's model inputs, slice by slice, with each slice's prediction.

    Parameters
    ----------
    images : numpy.ndarray of uint8, shape (n_slices, C, H, W)
        The model's input crops of one patient, channels in ``channels`` order.
    probabilities : array-like of float in [0, 1], shape (n_slices, 4)
        Predicted class probabilities per slice, columns in
        :data:`parotidlib.constants.CLASSES` order; the predicted class is the largest.
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
        The true label of each slice (``"free"`` or a histology, a class of CLASSES; None or
        NaN where unknown), written under its column.
    max_slices : int
        At most this many columns (>= 1): with more slices, ``max_slices`` evenly spaced
        ones are shown and the title says ``k of n slices shown``.

    Returns
    -------
    matplotlib.figure.Figure
        A grid of ``C + 1`` rows and one column per shown slice: C rows of grey images (0-255,
        channel name on the row) and a row of horizontal stacked bars of the four class
        probabilities (colours of the class, explained in the figure's legend), with the
        predicted class and its probability above the bar and, with ``slice_labels``, the
        true label under it. The images of a slice predicted malignant are framed in the
        malignant colour. Title: ``Patient <id>: predicted <diagnosis> — <n_malignant>
        slice(s) predicted malignant, threshold > <threshold>`` and ``histology: <...>`` or
        ``no histology (unvalidated)``.

    Raises
    ------
    ValueError
        If ``images`` is not uint8 of shape (n, C, H, W) with n, C >= 1, ``channels`` does
        not name C channels, ``probabilities`` is not (n, 4) in [0, 1], ``slice_labels`` is
        not n known labels, or ``max_slices``, ``n_malignant`` or ``threshold`` is not a
        non-negative integer (``max_slices`` >= 1).

    References
    ----------
    Xia X et al. Front Oncol 2021; 11:632104 (Figure 3, inputs; Figure 5, the rule).
    """
    images, prob, names, labels = _check_strip_args(images, probabilities, channels,
                                                    slice_labels, max_slices, n_malignant,
                                                    threshold)
    n, c = images.shape[:2]
    k = min(n, int(max_slices))
    # Evenly spaced: the slice at the middle of each of k equal stretches of the stack.
    shown = np.floor((np.arange(k) + 0.5) * n / k).astype(int)
    predicted_idx = prob.argmax(axis=1)
    malignant = CLASSES.index("malignant")
    aspect = images.shape[2] / images.shape[3]
    col_w = 1.15
    width = max(col_w * k + 0.8, 4.2)
    height = col_w * aspect * c + 1.25 + 1.0
    title_text = _strip_title(str(patient_id), str(predicted), int(n_malignant),
                              int(threshold), true_histology, k, n, width)
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        # A figure widened for its title and legend keeps its columns narrow: the extra width
        # goes to empty columns on both sides.
        side = (width - 0.8 - col_w * k) / 2
        ratios = [side] + [col_w] * k + [side] if side > 0.05 else [col_w] * k
        grid = fig.add_gridspec(c + 1, len(ratios), width_ratios=ratios,
                                height_ratios=[col_w * aspect] * c + [0.75])
        first = 1 if len(ratios) > k else 0
        for j, s in enumerate(shown):
            is_malignant = predicted_idx[s] == malignant
            for r, channel in enumerate(names):
                ax = fig.add_subplot(grid[r, first + j])
                ax.imshow(images[s, r], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if is_malignant:
                    for spine in ax.spines.values():
                        spine.set(color=_COLOURS["malignant"], linewidth=2.2)
                if r == 0:
                    ax.set_title(f"Slice {s + 1}", fontsize=10)
                if j == 0:
                    ax.set_ylabel(CHANNEL_NAMES.get(channel, channel.upper()))
            bar = fig.add_subplot(grid[c, first + j])
            left = 0.0
            for q, name in enumerate(CLASSES):
                bar.barh(0, prob[s, q], left=left, height=0.8, color=_COLOURS[name], lw=0)
                left += prob[s, q]
            best = CLASSES[predicted_idx[s]]
            bar.set(xlim=(0, max(1.0, left)), ylim=(-0.5, 0.5))
            bar.set_xticks([])
            bar.set_yticks([])
            for spine in bar.spines.values():
                spine.set_visible(False)
            bar.set_title(f"{_SHORT_NAMES[best]} {prob[s, predicted_idx[s]]:.2f}", fontsize=9,
                          color=_COLOURS[best], fontweight="bold", pad=2)
            if labels is not None:
                truth = _SHORT_NAMES[labels[s]] if labels[s] is not None else "unknown"
                bar.set_xlabel(f"true: {truth}", fontsize=8, labelpad=2)
            if j == 0:
                bar.set_ylabel("P(class)", fontsize=8)
        handles = [Patch(color=_COLOURS[name], label=pretty_name(name)) for name in CLASSES]
        fig.legend(handles=handles, loc="outside lower center", ncol=2 if k < 4 else 4,
                   frameon=False, fontsize=8, title="Predicted class (PA: pleomorphic adenoma)",
                   title_fontsize=8)
        fig.suptitle(title_text, fontsize=11)
    return fig
