"""The cohort explorer without a browser: set the widgets as a user would and check what is
shown: the right patient, each series at the slider's world position, the contour pixels of
each label in its colour, radiological orientation, carried-over labels dashed, the table's
filter and sort, and nothing written into the cohort."""

import io
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from parotidlib.constants import SERIES
from parotidlib.explore.cases import LABEL_COLOURS, CohortData, boundary
from parotidlib.explore.cohort_app import CohortExplorer


def decoded(png_bytes):
    return np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


@pytest.fixture
def explorer(tiny_cohort):
    return CohortExplorer(tiny_cohort)


def test_each_series_is_shown_at_the_sliders_world_position(explorer, tiny_cohort):
    manifest = pd.read_csv(tiny_cohort, dtype=str)
    explorer.patient.value = manifest.loc[2, "patient_id"]
    explorer.z_mm.value = round(explorer.z_mm.min + 0.6 * (explorer.z_mm.max - explorer.z_mm.min),
                                1)
    z = explorer.z_mm.value
    for series in SERIES:
        # the slice of the file on disk whose centre lies nearest to z, computed here
        image = nib.load(str(tiny_cohort.parent / manifest.loc[2, series]))
        ni, nj, nk = image.shape
        centres = [float(nib.affines.apply_affine(image.affine, [(ni - 1) / 2, (nj - 1) / 2, k])[2])
                   for k in range(nk)]
        nearest = int(np.argmin(np.abs(np.asarray(centres) - z)))
        canonical = nib.as_closest_canonical(image)
        flipped = np.sign(canonical.affine[2, 2]) != np.sign(image.affine[2, 2])
        k = nk - 1 - nearest if flipped else nearest
        assert f"slice {k + 1}/{nk}" in explorer.titles[series].value, series
        view = explorer._case.series[series]
        assert abs(float((view.affine @ [(ni - 1) / 2, (nj - 1) / 2, k, 1])[2]) - z) <= \
            abs(view.affine[2, 2]) / 2 + 1e-6


def test_contours_have_their_colours_and_the_right_gland_is_on_the_images_left(explorer):
    explorer.patient.value = explorer.patient.options[0]
    case = explorer._case
    for series in SERIES:
        view = case.series[series]
        k = view.slice_at(explorer.z_mm.value)
        shown = decoded(explorer.panels[series].value)
        _, labels = view.plane(k)
        factor = shown.shape[0] // labels.shape[0]
        small = shown[::factor, ::factor]
        assert small.shape[:2] == labels.shape
        for value, colour in LABEL_COLOURS.items():
            edge = boundary(labels == value)
            rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
            if edge.any():
                assert (small[edge] == rgb).all(), (series, value)
        right = labels == 1
        if right.any() and (labels == 2).any():  # radiological: the right gland on the left
            assert np.nonzero(right)[1].mean() < np.nonzero(labels == 2)[1].mean()
    explorer.contours.value = False
    plain = decoded(explorer.panels["t1"].value)
    assert (plain[..., 0] == plain[..., 1]).all()  # grey only: no contour drawn


def test_carried_over_labels_are_dashed(tiny_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, cohort)
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    manifest["t1_labels_source"] = "drawn"
    manifest["t2_labels_source"] = "carried over from t1"
    manifest.to_csv(cohort / "manifest.csv", index=False)
    explorer = CohortExplorer(cohort / "manifest.csv")
    assert "carried over from t1" in explorer.titles["t2"].value
    view = explorer._case.series["t2"]
    _, labels = view.plane(view.slice_at(explorer.z_mm.value))
    shown = decoded(explorer.panels["t2"].value)
    small = shown[::shown.shape[0] // labels.shape[0], ::shown.shape[0] // labels.shape[0]]
    edge = boundary(labels == 1)
    coloured = (small[edge] == [0x00, 0x72, 0xB2]).all(axis=1)
    assert 0.2 < coloured.mean() < 0.8  # dashed: some contour pixels drawn, some not
    assert "carried over" in explorer.table.value


def test_filter_sort_and_next_patient(explorer):
    table = explorer.filtered()
    histology = table["histology"].iloc[0]
    explorer.histology.value = histology
    assert set(explorer.filtered()["histology"]) == {histology}
    assert all(explorer.data.row(p)["histology"] == histology for p in explorer.patient.options)
    explorer.histology.value = "(all)"
    explorer.sort_by.value = "age"
    ages = explorer.filtered()["age"].astype(float).tolist()
    assert ages == sorted(ages)
    first = explorer.patient.value
    explorer.next.click()
    assert explorer.patient.value != first
    explorer.previous.click()
    assert explorer.patient.value == first
    assert explorer.data.tumour_volume_ml(first) > 0  # read for the patient looked at
    assert "tumour_ml" in explorer.table.value


def test_window_level_changes_the_grey_values(explorer):
    before = decoded(explorer.panels["t1"].value)
    explorer.width.value = 50
    after = decoded(explorer.panels["t1"].value)
    assert (after != before).any()


def test_a_missing_file_is_named_and_nothing_is_written(tiny_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, cohort)
    manifest = pd.read_csv(cohort / "manifest.csv", dtype=str)
    victim = cohort / manifest.loc[1, "t2"]
    victim.unlink()
    before = snapshot(cohort)
    explorer = CohortExplorer(cohort / "manifest.csv", volumes=True)
    explorer.patient.value = manifest.loc[1, "patient_id"]
    assert str(victim) in explorer.message.value and "column t2" in explorer.message.value
    explorer.patient.value = manifest.loc[0, "patient_id"]
    assert explorer.message.value == ""
    assert snapshot(cohort) == before


def test_an_import_report_lists_refused_patients(tiny_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, cohort)
    pd.DataFrame([{"patient_id": "PX", "status": "refused", "problems": "t1: no series"},
                  {"patient_id": "PY", "status": "imported", "problems": ""}]).to_csv(
        cohort / "import_report.csv", index=False)
    data = CohortData(cohort / "manifest.csv")
    assert data.not_imported()["patient_id"].tolist() == ["PX"]
    explorer = CohortExplorer(cohort / "manifest.csv")
    assert "1 patient(s) or file(s) not imported" in explorer.excluded.value
    assert "t1: no series" in explorer.excluded.value


def test_the_volume_view_loads_the_series_and_its_labels(explorer, tiny_cohort):
    pytest.importorskip("ipyniivue")
    explorer.volume_series.value = "t2"
    explorer.volume_button.click()
    viewer = explorer.volume_view.children[-1]
    row = explorer.data.row(explorer.patient.value)
    assert [v.path for v in viewer.volumes] == [str(tiny_cohort.parent / row["t2"]),
                                                str(tiny_cohort.parent / row["t2_labels"])]


def test_an_imported_dicom_cohort_with_carried_over_labels(tmp_path):
    import warnings

    from parotidlib.dicom.importer import import_dicom
    from parotidlib.synth.dicom import write_dicom_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = write_dicom_cohort(tmp_path / "D", n_patients=1, seed=1, pixel_scale=4, jobs=1,
                                 contours_on="t1")
        result = import_dicom(src, tmp_path / "C", clinical=src / "clinical.csv",
                              progress=False)
    explorer = CohortExplorer(result.manifest)
    assert "carried over from t1" in explorer.titles["t2"].value
    assert "drawn" in explorer.titles["t1"].value
    assert "carried over from t1" in explorer.table.value
    assert "TR/TE" in explorer.infos["t2"].value and "?" not in explorer.infos["t2"].value
