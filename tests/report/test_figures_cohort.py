"""Tests of parotidlib.report.figures.cohort (the paper's Figure 2)."""

from __future__ import annotations

import io

import matplotlib.colors as mcolors
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from parotidlib.report.figures.cohort import plot_patient_series
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
