"""The report's words and table for saliency.json: made from its numbers and flags."""

from __future__ import annotations

import pandas as pd
import pytest

from parotidlib.report import saliency_text as text

CHECK = {"test": "model-parameter randomisation (Adebayo et al. 2018)",
         "saliency_method": "gradcam", "reference": "randomised", "seed": 3, "threshold": 0.5,
         "n_slices": 10, "n_undefined": 0, "mean_spearman": 0.34, "median_spearman": 0.3,
         "informative": True}


@pytest.mark.parametrize(("check", "says"), [
    (CHECK, "depend on the learned weights: mean Spearman correlation 0.34"),
    ({**CHECK, "mean_spearman": 0.71, "informative": False},
     "are not informative: they change little when the network's weights are randomised "
     "(mean Spearman correlation 0.71 >= 0.5)"),
    ({**CHECK, "mean_spearman": None, "informative": False},
     "undefined (no slice with two non-constant maps)"),
])
def test_the_verdict_follows_the_numbers(check, says):
    assert says in text.randomisation_verdict(check, "Grad-CAM")


def test_the_method_names_the_reference_seed_and_threshold():
    words = text.randomisation_method(CHECK, "Grad-CAM++")
    assert "Adebayo et al. 2018" in words and "Grad-CAM++ maps" in words
    assert "all layers re-initialised" in words and "seed 3" in words and "below 0.5" in words
    assert "the given reference network" in text.randomisation_method(
        {**CHECK, "reference": "given"}, "Grad-CAM")


@pytest.mark.parametrize(("summary", "warnings"), [
    ({"mask_background": True, "median_roi_area": 0.3}, []),
    ({"mask_background": False, "median_roi_area": 1.0}, [text.NO_MASK_TEXT]),
    ({"mask_background": True, "median_roi_area": 0.995}, ["cover nearly every pixel"]),
    ({"warnings": ["an older run's own sentence"]}, ["an older run's own sentence"]),
])
def test_warnings(summary, warnings):
    got = text.saliency_warnings(summary)
    assert len(got) == len(warnings)
    for g, w in zip(got, warnings, strict=True):
        assert w in g


def test_the_table_gives_each_class_its_share_and_the_even_spread_ratio():
    summary = {"mask_fraction": {"per_class": {
        "free": {"n_slices": 4, "n_undefined": 0, "mean": 0.6, "mean_roi_area": 0.2},
        "malignant": {"n_slices": 2, "n_undefined": 2, "mean": None, "mean_roi_area": 0.1},
    }}}
    assert list(text.saliency_table(summary).index) == ["free", "malignant"]  # the run's
    table = text.saliency_table(summary, ["free", "pleomorphic_adenoma", "warthin", "malignant"])
    assert list(table.index) == ["free", "pleomorphic_adenoma", "warthin", "malignant"]
    assert table.loc["free", "ratio"] == pytest.approx(3.0)
    assert table.loc["free", "test slices"] == 4
    assert pd.isna(table.loc["malignant", "ratio"])
    assert table.loc["pleomorphic_adenoma", "test slices"] == 0


def test_the_table_has_the_classes_of_the_runs_scheme():
    per_class = {name: {"n_slices": 1, "n_undefined": 0, "mean": 0.5, "mean_roi_area": 0.25}
                 for name in ("free", "benign", "malignant")}
    table = text.saliency_table({"mask_fraction": {"per_class": per_class}})
    assert list(table.index) == ["free", "benign", "malignant"]
    assert (table["ratio"] == 2.0).all()
