"""The cohort explorer without a browser: set the widgets as a user would and check what is
shown: the right patient, each series at the slider's world position, the contour pixels of
each label in its colour, radiological orientation, carried-over labels dashed, the table's
filter and sort, and nothing written into the cohort; and the study definition: an ADC study
(its physical window and caption), every histology with its class, the excluded ones marked,
labels_from's labels carried over, the paper's study as before."""

import io
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from parotidlib.constants import SERIES
from parotidlib.explore.cases import LABEL_COLOURS, CohortData, boundary
from parotidlib.explore.cohort_app import CohortExplorer
from parotidlib.study import Study, class_scheme


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


# ---------------------------------------------------------------------- the study definition

#: A class scheme that keeps the paper's classes, puts mucoepidermoid carcinoma with the
#: malignant ones and leaves basal cell adenoma out.
EXCLUDING = {"pleomorphic_adenoma": "pleomorphic_adenoma", "warthin": "warthin",
             "malignant": "malignant", "mucoepidermoid_carcinoma": "malignant",
             "exclude": ["basal_cell_adenoma"]}


def test_the_paper_study_looks_as_before(explorer):
    assert tuple(explorer.panels) == SERIES
    assert "class" not in explorer.filtered().columns and explorer.scheme.value == ""
    assert all(label == value for label, value in explorer.histology.options)
    assert "series" not in explorer.widget.children[0].value  # the paper's: not spelled out
    for series in SERIES:
        assert "TR/TE" in explorer.infos[series].value and "×10" not in \
            explorer.infos[series].value


def test_an_adc_study_shows_the_adc_in_its_physical_window(study_cohort):
    from parotidlib.explore import cohort_explorer

    explorer = cohort_explorer(str(study_cohort), series=["t1", "t2", "adc"], classes=EXCLUDING)
    assert tuple(explorer.panels) == ("t1", "t2", "adc")
    assert "series t1, t2, adc" in explorer.widget.children[0].value
    assert re.search(r"<b>ADC</b> slice \d+/\d+", explorer.titles["adc"].value)
    info = explorer.infos["adc"].value
    assert "ADC ×10⁻³ mm²/s: black 0.00, white 3.00" in info
    assert "TR/TE" not in info  # the manifest records no adc_tr_ms: omitted, not "?"
    assert "TR/TE" in explorer.infos["t2"].value and "ce_t1" not in explorer.panels
    # the grey values: stored value x adc_scale_mm2_s over 0..3.0e-3 mm²/s
    explorer.contours.value = False
    view = explorer._case.series["adc"]
    image, _ = view.plane(view.slice_at(explorer.z_mm.value))
    scale = float(explorer.data.row(explorer.patient.value)["adc_scale_mm2_s"])
    expected = (np.clip(image * scale / 3.0e-3, 0, 1) * 255).astype(np.uint8)
    shown = decoded(explorer.panels["adc"].value)
    factor = shown.shape[0] // image.shape[0]
    difference = shown[::factor, ::factor, 0].astype(int) - expected
    assert np.abs(difference).max() <= 1  # float32 rounding at a grey level's edge
    explorer.width.value = 50  # the caption follows the window
    assert "black 0.75, white 2.25" in explorer.infos["adc"].value
    # its own label map's contours, in their colours
    explorer.contours.value = True
    _, labels = view.plane(view.slice_at(explorer.z_mm.value))
    shown = decoded(explorer.panels["adc"].value)[::factor, ::factor]
    edge = boundary(labels == 3)
    assert edge.any() and (shown[edge] == [0xD5, 0x5E, 0x00]).all()


def test_every_histology_is_offered_and_the_excluded_ones_marked(study_cohort):
    explorer = CohortExplorer(study_cohort, study=Study(("t1", "t2", "adc")),
                              scheme=class_scheme(EXCLUDING))
    manifest = pd.read_csv(study_cohort, dtype=str)
    assert {v for _, v in explorer.histology.options} - {"(all)"} == set(manifest["histology"])
    labels = dict((v, label) for label, v in explorer.histology.options)
    assert labels["basal_cell_adenoma"] == "basal_cell_adenoma (excluded)"
    assert labels["mucoepidermoid_carcinoma"] == "mucoepidermoid_carcinoma"
    table = explorer.filtered()
    classes = dict(zip(table["histology"], table["class"], strict=False))
    assert classes["mucoepidermoid_carcinoma"] == "malignant"
    assert classes["basal_cell_adenoma"] == "excluded"
    assert classes["warthin"] == "warthin"
    count = int((manifest["histology"] == "basal_cell_adenoma").sum())
    assert f"basal_cell_adenoma ({count} patient(s))" in explorer.scheme.value
    assert "malignant (malignant: malignant, mucoepidermoid_carcinoma)" in explorer.scheme.value
    excluded = manifest.loc[manifest["histology"] == "basal_cell_adenoma", "patient_id"].iloc[0]
    assert re.search(f'<tr style="color:#888"><td>{excluded}</td>', explorer.table.value)
    explorer.histology.value = "basal_cell_adenoma"  # the filter takes any histology
    assert list(explorer.patient.options) == [excluded]
    assert explorer._case.patient_id == excluded
    paper = CohortExplorer(study_cohort)  # the paper's scheme gives these two no class
    assert "no class in the scheme" in paper.scheme.value
    assert set(paper.filtered()["class"]) >= {"no class in the scheme", "warthin"}


def test_labels_from_carries_t1s_labels_onto_the_adc_grid(study_cohort):
    explorer = CohortExplorer(study_cohort, study=Study(("t1", "t2", "adc"), "t1"))
    assert "carried over from t1" in explorer.titles["adc"].value
    assert "(labels" not in explorer.titles["t1"].value
    assert "every label map from t1" in explorer.widget.children[0].value
    row = explorer.data.row(explorer.patient.value)
    t1 = nib.as_closest_canonical(nib.load(str(study_cohort.parent / row["t1_labels"])))
    adc = explorer._case.series["adc"]
    assert adc.labels.shape == adc.image.shape and (adc.labels == 3).any()
    # each ADC voxel holds the T1 label of the T1 voxel nearest its centre (0 outside T1)
    ijk = np.argwhere(np.ones(adc.labels.shape, bool))[::37]
    source = np.rint(nib.affines.apply_affine(np.linalg.inv(t1.affine) @ adc.affine, ijk))
    inside = np.all((source >= 0) & (source < np.asarray(t1.shape)), axis=1)
    data = np.asarray(t1.dataobj)
    expected = np.zeros(len(ijk), np.uint8)
    expected[inside] = data[tuple(source[inside].astype(int).T)]
    assert (adc.labels[tuple(ijk.T)] == expected).mean() > 0.99  # rounding ties aside
    explorer.volume_series.value = "adc"
    pytest.importorskip("ipyniivue")
    explorer.volume_button.click()
    viewer = explorer.volume_view.children[-1]
    assert [v.path for v in viewer.volumes][1] == str(study_cohort.parent / row["t1_labels"])


def test_series_the_manifest_lacks_are_named(tiny_cohort):
    explorer = CohortExplorer(tiny_cohort, study=Study(("t1", "t2", "adc")))
    header = explorer.widget.children[0].value
    assert "no column adc, adc_labels, adc_scale_mm2_s" in header and "--diffusion" in header
    assert "ADC</b>: not in the manifest" in explorer.titles["adc"].value
    assert "slice" in explorer.titles["t1"].value


def test_the_notebook_helper_checks_the_params_as_the_pipeline(tiny_cohort):
    from parotidlib.checks import ParamsError
    from parotidlib.explore import cohort_explorer

    with pytest.raises(ParamsError, match="t1"):
        cohort_explorer(str(tiny_cohort), series=["t2", "adc"])
    with pytest.raises(ParamsError, match="classes"):
        cohort_explorer(str(tiny_cohort), classes="three_classes")
