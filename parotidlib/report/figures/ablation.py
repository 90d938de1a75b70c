"""The channel ablation figure: test accuracy per input composition beside the paper's Table 3."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_ablation(members: pd.DataFrame, summary: pd.DataFrame, title: str | None = None) -> Figure:
    """Per composition: each seed's test accuracy with its Wilson 95% CI, the seeds' mean,
    and the paper's accuracy (Xia et al. 2021, Table 3) as a marker.

    Parameters
    ----------
    members : DataFrame
        ``ablation_results.read_members`` output (one row per composition and seed).
    summary : DataFrame
        ``ablation_results.summary_table`` output (one row per composition, in table order).
    """
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    labels = list(summary["composition"])
    for i, comp in enumerate(labels):
        g = members[members["composition"] == comp.replace(" + ", "+")]
        offsets = np.linspace(-0.15, 0.15, len(g)) if len(g) > 1 else np.zeros(1)
        ax.errorbar(i + offsets, g["accuracy"],
                    yerr=[g["accuracy"] - g["ci_low"], g["ci_high"] - g["accuracy"]],
                    fmt="o", color="tab:blue", ecolor="tab:blue", alpha=0.7, capsize=3,
                    label="this run (seed, 95% Wilson CI)" if i == 0 else None)
        ax.hlines(g["accuracy"].mean(), i - 0.25, i + 0.25, color="tab:blue", lw=2,
                  label="this run, mean over seeds" if i == 0 else None)
    paper = summary["paper accuracy"].to_numpy(dtype=float)
    if np.isfinite(paper).any():  # another study than the paper's has no Table 3 values
        ax.scatter(np.arange(len(labels)), paper, marker="D", color="tab:red", zorder=3,
                   label="paper (Table 3)")
    ax.set_xticks(np.arange(len(labels)),
                  [f"({r}) {c}" if r else c for r, c in zip(summary["row"], labels, strict=True)],
                  rotation=30, ha="right")
    ax.set_ylabel("Test slice accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "Input channel composition (Table 3)")
    return fig
