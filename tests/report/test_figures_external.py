"""External-validation figures build, carry the expected axes, legends and data, and save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from parotidlib.constants import CLASSES
from parotidlib.evaluation.calibration import (
    REASON_SEPARATION,
    calibration_summary,
    net_benefit,
)
from parotidlib.report.figures.external import (
    plot_decision_curve,
    plot_patient_strip,
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


def _image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.images]


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


def _patient(rng: np.random.Generator, n: int, c: int, h: int = 24, w: int = 24):
    images = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    return images, rng.dirichlet(np.ones(len(CLASSES)), n)


def test_patient_strip_subsampled_unvalidated(tmp_path):
    rng = np.random.default_rng(2)
    images, probs = _patient(rng, 23, 4)
    probs[5] = [0.05, 0.05, 0.1, 0.8]  # slice 6: malignant
    labels = ["free"] * 10 + ["malignant"] * 8 + [None] * 5
    fig = plot_patient_strip(images, probs, ("t1", "t2", "stir", "gland"), "EXT-007",
                             "malignant", 5, 2, slice_labels=labels, max_slices=10)
    assert len(_image_axes(fig)) == 4 * 10
    assert len(fig.axes) == 5 * 10  # plus one probability bar per column
    title = fig.get_suptitle()
    assert "Patient EXT-007: predicted Malignant — 5 slice(s) predicted malignant, " \
           "threshold > 2" in title
    assert "unvalidated" in title and "10 of 23 slices shown" in title
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() and ax.images] == \
        ["T1", "T2", "STIR", "Gland"]
    columns = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("Slice")]
    shown = [int(t.split()[1]) for t in columns]
    assert shown == sorted(set(shown)) and len(shown) == 10
    assert shown[0] <= 3 and shown[-1] >= 21  # spread over the stack
    bar_titles = [ax.get_title() for ax in fig.axes if not ax.images]
    assert "Malignant 0.80" in bar_titles
    assert "true: unknown" in [ax.get_xlabel() for ax in fig.axes]
    _renders(fig, tmp_path / "strip.png")


def test_patient_strip_single_slice_single_channel(tmp_path):
    rng = np.random.default_rng(3)
    images, probs = _patient(rng, 1, 1, 20, 30)
    fig = plot_patient_strip(images, probs, ["t1"], "P1", "pleomorphic_adenoma", 0, 2,
                             true_histology="pleomorphic_adenoma")
    assert len(_image_axes(fig)) == 1
    title = fig.get_suptitle()
    assert "histology: Pleomorphic adenoma" in title and "unvalidated" not in title
    assert "shown" not in title
    _renders(fig, tmp_path / "strip_single.png")


@pytest.mark.parametrize("channels", [("t1",), ("t1", "gland"), ("t1", "ce_t1", "t2"),
                                      ("t1", "ce_t1", "t2", "gland")])
def test_patient_strip_channels(channels):
    rng = np.random.default_rng(4)
    images, probs = _patient(rng, 3, len(channels))
    fig = plot_patient_strip(images, probs, channels, "P2", "benign", 1, 2, max_slices=10)
    assert len(_image_axes(fig)) == 3 * len(channels)


@pytest.mark.parametrize("change, match", [
    (dict(images=np.zeros((2, 1, 8, 8), np.float32)), "images"),
    (dict(images=np.zeros((1, 8, 8), np.uint8)), "images"),
    (dict(images=np.zeros((0, 1, 8, 8), np.uint8)), "images"),
    (dict(probabilities=np.full((3, 4), 0.25)), "probabilities"),
    (dict(probabilities=np.full((2, 3), 0.25)), "probabilities"),
    (dict(probabilities=np.full((2, 4), 1.5)), "probabilities"),
    (dict(channels=("t1", "t2")), "channels"),
    (dict(channels="t1"), "channels"),
    (dict(slice_labels=["free"]), "slice_labels"),
    (dict(slice_labels=["free", "benign"]), "slice_labels"),
    (dict(max_slices=0), "max_slices"),
    (dict(n_malignant=-1), "n_malignant"),
    (dict(threshold=1.5), "threshold"),
])
def test_patient_strip_bad_input(change, match):
    args = dict(images=np.zeros((2, 1, 8, 8), np.uint8), probabilities=np.full((2, 4), 0.25),
                channels=("t1",), patient_id="P", predicted="benign", n_malignant=0,
                threshold=2)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        plot_patient_strip(**args)
