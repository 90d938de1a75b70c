"""Tests of parotidlib.report.figures.cohort (the paper's Figure 2)."""

from __future__ import annotations

import io

import matplotlib.colors as mcolors
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from parotidlib.report.figures.cohort import _labels_on, plot_patient_series, series_title
from parotidlib.study import Study
from parotidlib.synth import generate_cohort


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig2") / "cohort"
    return generate_cohort(out, n_patients=3, seed=1, jobs=1, pixel_scale=4.0)


def _contour_colours(ax) -> set[str]:
    colours = set()
    for coll in ax.collections:
        for rgba in np.atleast_2d(coll.get_edgecolor()):
            colours.add(mcolors.to_hex(rgba))
    return colours


def test_figure_has_three_panels_with_gland_and_tumour_contours(manifest):
    fig = plot_patient_series(manifest, "SYN0001")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert [t[:3] for t in titles] == ["(A)", "(B)", "(C)"]
    assert "T1" in titles[0] and "CE-T1" in titles[1] and "T2" in titles[2]
    for ax in fig.axes:
        assert len(ax.get_images()) == 1
        assert {mcolors.to_hex("tab:blue"), mcolors.to_hex("tab:green")} <= _contour_colours(ax)
    fig.savefig(io.BytesIO(), format="png")  # renders without pyplot


def test_default_slice_has_the_largest_tumour_area_and_series_match_in_z(manifest):
    row = pd.read_csv(manifest, dtype=str).iloc[1]
    lab = nib.as_closest_canonical(nib.load(manifest.parent / row["t1_labels"]))
    area = (np.asarray(lab.dataobj) == 3).sum(axis=(0, 1))
    k = int(np.argmax(area))
    z_expected = (lab.affine @ [0, 0, k, 1])[2]
    # a manifest row with a base folder works like the manifest path
    fig = plot_patient_series(row, base_dir=manifest.parent)
    z = [float(ax.get_title(loc="left").split("z = ")[1].split(" mm")[0]) for ax in fig.axes]
    assert z[0] == pytest.approx(z_expected, abs=0.06)
    t2_thickness = float(row["t2_slice_thickness_mm"])
    assert abs(z[2] - z[0]) <= t2_thickness / 2 + 0.06  # nearest T2 slice in world z
    # an explicit z picks the nearest slice of every series
    fig = plot_patient_series(manifest, row["patient_id"], slice_z_mm=z_expected + 100.0)
    top = [float(ax.get_title(loc="left").split("z = ")[1].split(" mm")[0]) for ax in fig.axes]
    assert top[0] > z[0]


def test_errors_name_the_patient_and_file(manifest, tmp_path):
    with pytest.raises(ValueError, match="SYN9999"):
        plot_patient_series(manifest, "SYN9999")
    with pytest.raises(ValueError, match="patient_id is required"):
        plot_patient_series(manifest)
    row = pd.read_csv(manifest, dtype=str).iloc[0].to_dict()
    row["t2"] = "missing/t2.nii.gz"
    with pytest.raises(FileNotFoundError, match="missing/t2.nii.gz"):
        plot_patient_series(row, base_dir=manifest.parent)
    with pytest.raises(FileNotFoundError, match="manifest"):
        plot_patient_series(tmp_path / "none.csv", "SYN0001")


def test_the_figure_draws_the_studys_series_with_carried_over_labels(manifest):
    row = pd.read_csv(manifest, dtype=str).iloc[0].to_dict()
    row["flair"] = row["t2"]  # a series the paper has not, on T2's grid
    study = Study(("t1", "t2", "flair"), labels_from="t1")
    del row["t2_labels"], row["ce_t1_labels"]  # only labels_from's label map is read
    fig = plot_patient_series(row, base_dir=manifest.parent, study=study)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert [t.split(",")[0] for t in titles] == ["(A) T1-weighted", "(B) T2-weighted",
                                                 "(C) FLAIR"]
    assert fig.get_size_inches() == pytest.approx((11.0, 4.0))
    for ax in fig.axes:
        assert {mcolors.to_hex("tab:blue"), mcolors.to_hex("tab:green")} <= _contour_colours(ax)
    assert series_title("adc") == "ADC map" and series_title("ce_t2") == "CE-T2"
    assert len(plot_patient_series(row, base_dir=manifest.parent,
                                   study=Study(("t1",))).axes) == 1


def test_a_label_map_carried_onto_another_grid_matches_that_grids_own(manifest):
    row = pd.read_csv(manifest, dtype=str).iloc[0]
    load = lambda column: nib.as_closest_canonical(  # noqa: E731
        nib.load(manifest.parent / row[column]))
    t2, t2_labels, t1_labels = load("t2"), load("t2_labels"), load("t1_labels")
    own = np.asarray(t2_labels.dataobj)
    k = int(np.argmax((own == 3).sum(axis=(0, 1))))
    carried = _labels_on(t2, t1_labels, k)
    assert carried.shape == own.shape[:2]
    np.testing.assert_array_equal(_labels_on(t2, t2_labels, k), own[:, :, k])
    mine, theirs = carried > 0, own[:, :, k] > 0
    assert (mine & theirs).sum() / (mine | theirs).sum() > 0.7  # the same anatomy
