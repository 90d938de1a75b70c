"""External-validation figures build, carry the expected axes, legends and data, and save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from parotidlib.evaluation.calibration import (
    REASON_SEPARATION,
    calibration_summary,
    net_benefit,
)
from parotidlib.report.figures.external import (
    plot_decision_curve,
    plot_reliability,
    reliability_legend,
)

THRESHOLDS = np.linspace(0.01, 0.99, 99)


def _cohort(rng: np.random.Generator, n: int, shift: float = 0.0):
    p = rng.beta(2, 3, n)
    y = (rng.random(n) < np.clip(p + shift, 0, 1)).astype(int)
    return y, p


@pytest.fixture
def summaries():
    rng = np.random.default_rng(0)
    internal = calibration_summary(*_cohort(rng, 300))
    external = calibration_summary(*_cohort(rng, 60, shift=0.15))
    separated = calibration_summary([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9])
    return internal, external, separated


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() is not None
            for t in ax.get_legend().get_texts()]


def _renders(fig: Figure, path) -> None:
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 1000


def test_reliability_legend_values(summaries):
    internal, _, separated = summaries
    text = reliability_legend(internal)
    assert text == (f"Brier {internal['brier']:.3f}, ECE {internal['ece']:.3f}, "
                    f"slope {internal['slope']['value']:.2f}, "
                    f"intercept {internal['intercept']['value']:.2f}")
    assert separated["slope"]["value"] is None
    assert f"slope undefined ({REASON_SEPARATION})" in reliability_legend(separated)
    assert reliability_legend(None) == "not available"
    no_reason = dict(internal, brier=None, slope={"value": None, "ci95": None})
    assert "Brier n/a" in reliability_legend(no_reason)
    assert "slope n/a" in reliability_legend(no_reason)
    assert "intercept 0.00" in reliability_legend(dict(internal, intercept={"value": -1e-4}))
    with pytest.raises(ValueError, match="summary"):
        reliability_legend([0.1, 0.2])


def test_reliability_panels_and_legends(summaries, tmp_path):
    internal, external, separated = summaries
    panels = {"Slices: malignant vs benign": {"Internal test": internal, "External": external},
              "Patients: malignant vs benign": {"Internal test": separated, "External": None},
              "Pleomorphic adenoma (one-vs-rest)": {"Internal test": external},
              "Warthin (one-vs-rest)": {"Internal test": internal, "External": external}}
    fig = plot_reliability(panels, title="Calibration")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * len(panels)  # reliability diagram + count strip per panel
    mains = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in mains] == list(panels)
    # Up to three panels per row: the fourth starts a second row.
    assert mains[3].get_position().y0 < mains[0].get_position().y0
    for ax in mains:
        assert ax.get_xlim() == (0.0, 1.0)
        assert ax.get_ylabel() == "Observed frequency"
    strips = [ax for ax in fig.axes if ax.get_xlabel() == "Predicted probability"]
    assert len(strips) == len(panels)
    texts = _legend_texts(fig)
    assert any(f"Brier {internal['brier']:.3f}" in t and "Internal test (n = 300)" in t
               for t in texts)
    assert any(f"Brier {external['brier']:.3f}" in t for t in texts)
    assert any("slope undefined" in t and REASON_SEPARATION in t for t in texts)
    assert "External: not available" in texts
    # Points are the non-empty bins' (mean predicted, observed).
    first = mains[0]
    bins = pd.DataFrame(internal["reliability"])
    line = first.lines[1]  # after the diagonal
    np.testing.assert_allclose(line.get_xdata(), bins["mean_predicted"])
    np.testing.assert_allclose(line.get_ydata(), bins["observed"])
    assert fig.get_suptitle() == "Calibration"
    _renders(fig, tmp_path / "reliability.png")


def test_reliability_skips_empty_bins_and_all_missing(summaries, tmp_path):
    internal, _, _ = summaries
    rows = [dict(r) for r in internal["reliability"]]
    rows.append({"bin_low": 0.9, "bin_high": 1.0, "n": 0, "mean_predicted": float("nan"),
                 "observed": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")})
    fig = plot_reliability({"One": {"Internal test": dict(internal, reliability=rows)},
                            "Two": {"External": None}})
    assert len(fig.axes) == 4
    assert len(fig.axes[0].lines[1].get_xdata()) == len(internal["reliability"])
    assert "not available" in [t.get_text() for t in fig.axes[2].texts]
    _renders(fig, tmp_path / "reliability_missing.png")


@pytest.mark.parametrize("panels", [
    {},
    {"A": {}},
    {"A": {"Internal": [0.1, 0.2]}},
    {"A": {"Internal": {"brier": 0.1}}},
    {"A": {"Internal": {"reliability": [{"n": 3}]}}},
    "not a mapping",
])
def test_reliability_bad_input(panels):
    with pytest.raises(ValueError, match="panels"):
        plot_reliability(panels)


def test_decision_curve(tmp_path):
    rng = np.random.default_rng(1)
    curves = {"Internal test": net_benefit(*_cohort(rng, 300), THRESHOLDS),
              "External": net_benefit(*_cohort(rng, 60, shift=0.15), THRESHOLDS)}
    fig = plot_decision_curve(curves, title="Decision curve")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Threshold probability (operate as malignant)"
    assert ax.get_ylabel() == "Net benefit"
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"Internal test: model", "Internal test: treat all", "External: model",
                          "External: treat all", "Treat none"}
    for cohort, frame in curves.items():
        model, treat_all = lines[f"{cohort}: model"], lines[f"{cohort}: treat all"]
        np.testing.assert_allclose(model.get_xdata(), frame["threshold"])
        np.testing.assert_allclose(model.get_ydata(), frame["net_benefit_model"])
        # The data are drawn whole (the view clips them), dashed in the model's colour.
        np.testing.assert_allclose(treat_all.get_ydata(), frame["net_benefit_treat_all"])
        assert treat_all.get_linestyle() == "--"
        assert treat_all.get_color() == model.get_color()
    np.testing.assert_allclose(lines["Treat none"].get_ydata(), 0.0)
    low, high = ax.get_ylim()
    top = max(f[["net_benefit_model", "net_benefit_treat_all"]].to_numpy().max()
              for f in curves.values())
    assert low < 0 < high
    assert top < high < top + 0.2
    assert low > -0.5 > min(f["net_benefit_treat_all"].min() for f in curves.values())
    _renders(fig, tmp_path / "decision.png")


@pytest.mark.parametrize("curves", [
    {},
    {"A": pd.DataFrame({"threshold": [0.1]})},
    {"A": pd.DataFrame(columns=["threshold", "net_benefit_model", "net_benefit_treat_all",
                                "net_benefit_treat_none"])},
    {"A": [0.1, 0.2]},
])
def test_decision_curve_bad_input(curves):
    with pytest.raises(ValueError, match="curves"):
        plot_decision_curve(curves)
