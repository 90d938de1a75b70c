"""The DICOM import end to end: the synthetic cohort written as DICOM (MR series, RTSTRUCT,
clinical.csv) and imported back is checked against the NIfTI cohort it was written from:
affines within 1e-3 mm, images equal, label maps with Dice >= 0.97 per structure."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from parotidlib.constants import SERIES
from parotidlib.data.cohort import read_manifest
from parotidlib.data.sources import is_synthetic
from parotidlib.dicom.importer import import_dicom
from parotidlib.synth.dicom import reference_manifest, write_dicom_cohort

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def compare(cohort_manifest, reference, drawn=SERIES, carried_min=None):
    imported = pd.read_csv(cohort_manifest, dtype=str)
    ref = pd.read_csv(reference, dtype=str).set_index("patient_id")
    identities = pd.read_csv(Path(cohort_manifest).parent.parent / (
        Path(cohort_manifest).parent.name + ".identities.csv"), dtype=str)
    to_dicom = dict(zip(identities["patient_id"], identities["dicom_patient_id"], strict=True))
    scores = []
    for _, row in imported.iterrows():
        original = ref.loc[to_dicom[row["patient_id"]]]
        for series in SERIES:
            got = nib.load(Path(cohort_manifest).parent / row[series])
            want = nib.load(Path(reference).parent / original[series])
            np.testing.assert_allclose(got.affine, want.affine, atol=1e-3)
            np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj))
            got_l = np.asarray(nib.load(Path(cohort_manifest).parent
                                        / row[f"{series}_labels"]).dataobj)
            want_l = np.asarray(nib.load(Path(reference).parent
                                         / original[f"{series}_labels"]).dataobj)
            for label in (1, 2, 3):
                if not (want_l == label).any():
                    continue
                score = dice(got_l == label, want_l == label)
                scores.append(score)
                limit = 0.97 if series in drawn else carried_min
                assert score >= limit, (row["patient_id"], series, label, score)
    return scores


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    base = tmp_path_factory.mktemp("dicom")
    out = write_dicom_cohort(base / "D", n_patients=3, seed=0, pixel_scale=4, jobs=1)
    return base, Path(out)


@pytest.fixture(scope="module")
def imported(export):
    base, src = export
    return import_dicom(src, base / "C", clinical=src / "clinical.csv", progress=False)


def test_round_trip_equals_the_nifti_cohort(export, imported):
    base, src = export
    assert len(imported.imported) == 3 and not imported.refused
    compare(imported.manifest, reference_manifest(src))
    cohort = read_manifest(imported.manifest, check_data=True)  # a valid cohort of the kit
    assert len(cohort.manifest) == 3
    assert is_synthetic(imported.manifest)  # its results will be labelled synthetic
    manifest = pd.read_csv(imported.manifest, dtype=str)
    assert set(manifest["t1_labels_source"]) == {"drawn"}
    assert manifest["t1_tr_ms"].notna().all() and manifest["scanner"].str.len().gt(0).all()


def test_no_personal_data_in_the_cohort(export, imported):
    base, src = export
    dicom_ids = pd.read_csv(src / "clinical.csv", dtype=str)["patient_id"].tolist()
    for path in imported.cohort_dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            data = gzip.decompress(data)[:352]  # the NIfTI header
        text = data.decode("latin-1")
        assert "SYNTHETIC^" not in text, path
        for pid in dicom_ids:
            assert pid not in text, (path, pid)
    assert imported.key_file.parent == imported.cohort_dir.parent
    assert imported.identities.is_file() and imported.key_file.is_file()


def test_a_rerun_resumes_and_gives_the_same_cohort(export, imported):
    base, src = export
    before = imported.manifest.read_text()
    again = import_dicom(src, base / "C", clinical=src / "clinical.csv", progress=False)
    assert sorted(again.resumed) == sorted(imported.imported) and not again.imported
    assert again.manifest.read_text() == before


def test_a_bad_patient_is_refused_and_the_others_imported(export, tmp_path):
    base, src = export
    copy = tmp_path / "D"
    shutil.copytree(src, copy)
    first = sorted(p for p in copy.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    shutil.rmtree(first / "t2")  # the T2 series of one patient is missing
    snapshot = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in copy.rglob("*")}
    result = import_dicom(copy, tmp_path / "C", clinical=copy / "clinical.csv",
                          progress=False)
    assert len(result.imported) == 2 and len(result.refused) == 1
    (problems,) = result.refused.values()
    assert any(p.startswith("t2: no series matches") for p in problems)
    report = pd.read_csv(result.report, dtype=str)
    assert (report["status"] == "refused").sum() == 1
    # the export is only read
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in copy.rglob("*")} == snapshot
    (copy / "SOURCE.json").unlink()  # not the kit's export any more: not labelled synthetic
    again = import_dicom(copy, tmp_path / "C2", clinical=copy / "clinical.csv", progress=False)
    assert not is_synthetic(again.manifest)


def test_awkward_export_oblique_anisotropic_shuffled_contours_on_t1(tmp_path):
    src = Path(write_dicom_cohort(tmp_path / "D", n_patients=2, seed=1, pixel_scale=4, jobs=1,
                                  oblique_deg=20.0, anisotropic=True, shuffle=True,
                                  contours_on="t1"))
    result = import_dicom(src, tmp_path / "C", clinical=src / "clinical.csv", progress=False)
    assert len(result.imported) == 2, result.refused
    scores = compare(result.manifest, reference_manifest(src), drawn=("t1",), carried_min=0.5)
    assert min(scores) >= 0.5
    manifest = pd.read_csv(result.manifest, dtype=str)
    assert set(manifest["t2_labels_source"]) == {"carried over from t1"}
    assert json.loads((src / "SOURCE.json").read_text())


@pytest.mark.parametrize(("histology", "ok"), [
    ("warthin", True), ("basal_cell_adenoma", True), ("lymphoma", True), ("", True),
    ("Pleomorphic adenoma", False), ("warthin tumour", False), ("PA", False),
])
def test_the_clinical_table_takes_any_histology_name_the_class_scheme_can_map(
        tmp_path, histology, ok):
    from parotidlib.dicom.importer import read_clinical

    path = tmp_path / "clinical.csv"
    path.write_text("patient_id,histology,tumor_side,age,sex\n"
                    f"P1,{histology},left,60,F\n")
    if ok:
        assert read_clinical(path).loc["P1", "histology"] == histology
    else:
        with pytest.raises(ValueError, match="lower-case letters, digits and underscores"):
            read_clinical(path)
