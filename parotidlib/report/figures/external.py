"""External-validation figures: reliability diagrams and decision curves.

- :func:`plot_reliability`: reliability diagrams (observed frequency against mean predicted
  probability per bin, with Wilson intervals and the number of items per bin), one panel per
  task, one series per cohort (e.g. internal test and external), from
  :func:`parotidlib.evaluation.calibration.calibration_summary`;
- :func:`plot_decision_curve`: the decision curve of Vickers & Elkin (2006), net benefit of
  the model against treat-all and treat-none, one pair of curves per cohort, from
  :func:`parotidlib.evaluation.calibration.net_benefit`.

One patient's input crops with their predictions (the predict report's strips) are an input
figure: :func:`parotidlib.report.figures.inputs.plot_patient_strip`.

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
from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation

from parotidlib.evaluation.calibration import NET_BENEFIT_COLUMNS, RELIABILITY_COLUMNS
from parotidlib.evaluation.text import block_text, number_text
from parotidlib.report.figures.style import FIGURE_RC

logger = logging.getLogger(__name__)

__all__ = [
    "NOT_AVAILABLE",
    "plot_decision_curve",
    "plot_reliability",
    "reliability_legend",
]

#: How a cohort without data (None) is named in a legend.
NOT_AVAILABLE = "not available"
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
    with mpl.rc_context(FIGURE_RC):
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
    with mpl.rc_context(FIGURE_RC):
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
