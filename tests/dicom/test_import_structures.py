"""The import on exports edited the way hospitals write them: a bilateral "Parotids" ROI,
derived structures beside the real ones, several structure sets for one series, a draft in
its own series, a planning-CT structure set, no tumour drawn, names of the series that say
"w/o" and "mit KM" without contrast tags, a dual-echo T2, and pydicom's own RTSTRUCT without
file meta beside a valid export. The synthetic export (parotidlib.synth.dicom) is edited with
pydicom, and the import is compared with the NIfTI cohort it came from."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from parotidlib.dicom.importer import import_dicom
from parotidlib.synth.dicom import reference_manifest, write_dicom_cohort

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


EXPORT = (1, 0)  # patients and seed of the module's export (conftest.source)


def patient_dir(export):
    return next(p for p in export.iterdir() if p.is_dir() and p.name.startswith("SYN"))


def rtstruct(export, series="t1"):
    return next((patient_dir(export) / f"{series}_rtstruct").iterdir())


def run(export, tmp_path, rules=None):
    return import_dicom(export, tmp_path / "C", clinical=export / "clinical.csv", rules=rules,
                        progress=False)


def labels(result, series="t1"):
    manifest = pd.read_csv(result.manifest, dtype=str)
    return np.asarray(nib.load(result.cohort_dir / manifest.loc[0, f"{series}_labels"]).dataobj)


def reference(export, series="t1"):
    ref_manifest = reference_manifest(export)
    ref = pd.read_csv(ref_manifest, dtype=str)
    return np.asarray(nib.load(Path(ref_manifest).parent / ref.loc[0, f"{series}_labels"]).dataobj)


def image(result, series):
    manifest = pd.read_csv(result.manifest, dtype=str)
    return np.asarray(nib.load(result.cohort_dir / manifest.loc[0, series]).dataobj)


def reference_image(export, series):
    ref_manifest = reference_manifest(export)
    ref = pd.read_csv(ref_manifest, dtype=str)
    return np.asarray(nib.load(Path(ref_manifest).parent / ref.loc[0, series]).dataobj)


def report(result):
    return pd.read_csv(result.report, dtype=str, keep_default_na=False).iloc[0]


def rename(ds, old, new):
    for item in ds.StructureSetROISequence:
        if item.ROIName == old:
            item.ROIName = new


def add_copy_of_roi(ds, name, new_name, shift_mm=0.0):
    """A new ROI with the contours of ``name`` (shifted in x), as a planning system adds one."""
    import copy

    number = next(int(i.ROINumber) for i in ds.StructureSetROISequence if i.ROIName == name)
    new_number = max(int(i.ROINumber) for i in ds.StructureSetROISequence) + 1
    roi = copy.deepcopy(next(i for i in ds.StructureSetROISequence if int(i.ROINumber) == number))
    roi.ROINumber, roi.ROIName = new_number, new_name
    ds.StructureSetROISequence.append(roi)
    contour = copy.deepcopy(next(i for i in ds.ROIContourSequence
                                 if int(i.ReferencedROINumber) == number))
    contour.ReferencedROINumber = new_number
    for c in contour.ContourSequence:
        points = np.asarray(c.ContourData, float).reshape(-1, 3)
        points[:, 0] += shift_mm
        c.ContourData = [f"{v:.4f}" for v in points.ravel()]
    ds.ROIContourSequence.append(contour)


def dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_the_unedited_export_is_exact(export, tmp_path):
    result = run(export, tmp_path)
    assert result.imported and not result.refused
    assert (labels(result) == reference(export)).all()
    row = report(result)
    # the T1 has no agent and SeriesNumber 3, before the CE-T1 (7) that has one
    assert "t1: contrast: its SeriesNumber comes before the first series that records an " \
        "agent" in row["decided_by"]
    assert "ce_t1: contrast: ContrastBolusAgent is present" in row["decided_by"]
    assert row["lossy_compression"] == "none"


def test_a_bilateral_parotids_roi_is_split_into_both_glands(export, tmp_path):
    path = rtstruct(export)
    ds = pydicom.dcmread(path)
    numbers = {i.ROIName: int(i.ROINumber) for i in ds.StructureSetROISequence}
    right = next(i for i in ds.ROIContourSequence
                 if int(i.ReferencedROINumber) == numbers["Parotid_R"])
    left = next(i for i in ds.ROIContourSequence
                if int(i.ReferencedROINumber) == numbers["Parotid_L"])
    for c in left.ContourSequence:
        right.ContourSequence.append(c)
    ds.ROIContourSequence = [i for i in ds.ROIContourSequence if i is not left]
    ds.StructureSetROISequence = [i for i in ds.StructureSetROISequence
                                  if i.ROIName != "Parotid_L"]
    ds.RTROIObservationsSequence = [i for i in ds.RTROIObservationsSequence
                                    if int(i.ReferencedROINumber) != numbers["Parotid_L"]]
    rename(ds, "Parotid_R", "Parotids")
    ds.save_as(path)
    result = run(export, tmp_path)
    assert result.imported, result.refused
    got, want = labels(result), reference(export)
    for label in (1, 2, 3):  # Dice 0 for one gland before: "Parotids" became the left gland
        assert dice(got == label, want == label) == 1.0, label
    used = report(result)["rois_used"]
    assert "ROI 1 (right half) of " in used and " -> right_gland (t1, " in used
    assert "ROI 1 (left half) of " in used and " -> left_gland (t1, " in used


def test_derived_structures_beside_the_real_ones_are_left_out(export, tmp_path):
    path = rtstruct(export)
    ds = pydicom.dcmread(path)
    for name, new, shift in (("GTV", "GTV+5mm", 3.0), ("GTV", "PTV_GTV", 2.0),
                             ("GTV", "GTVn", 25.0), ("Parotid_L", "Parotid_L-GTV", 0.0),
                             ("GTV", "Tumor Bed Block", 1.0)):
        add_copy_of_roi(ds, name, new, shift)
    ds.save_as(path)
    result = run(export, tmp_path)
    assert result.imported, result.refused
    assert (labels(result) == reference(export)).all()
    unmatched = report(result)["rois_unmatched"]
    for number, reason in ((4, "derived: a margin"), (5, "derived: a planning target"),
                           (6, "derived: a nodal volume"), (7, "derived: a boolean result"),
                           (8, "derived: a planning helper")):
        assert f"ROI {number} of " in unmatched and f"on t1 ({reason}" in unmatched
    assert "GTV" not in unmatched  # ROIs by number: names are free text


def test_two_tumour_rois_in_one_set_are_refused_with_their_volumes(export, tmp_path):
    path = rtstruct(export)
    ds = pydicom.dcmread(path)
    add_copy_of_roi(ds, "GTV", "Tumour", 1.0)
    ds.save_as(path)
    result = run(export, tmp_path)
    (problems,) = result.refused.values()
    assert "tumour on t1: 2 ROIs of one structure set" in problems[0]
    assert "'GTV' (ROI 3, " in problems[0] and " ml) in RTSTRUCT" in problems[0]
    assert "<free text withheld> (ROI 3, " in report(result)["problems"]
    pid = pd.read_csv(export / "clinical.csv", dtype=str).loc[0, "patient_id"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"pin:\n  '{pid}':\n    tumour: GTV\n")
    again = import_dicom(export, tmp_path / "C2", clinical=export / "clinical.csv", rules=rules,
                         progress=False)
    assert again.imported and (labels(again) == reference(export)).all()


def second_instance(export, series="t1", new_series=False, approval="APPROVED",
                    date="20300101", shift_mm=4.0):
    """Another structure set for the series: the GTV shifted, in the same RTSTRUCT series (a
    second instance) or in its own series (a draft)."""
    path = rtstruct(export, series)
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if new_series:
        ds.SeriesInstanceUID = generate_uid()
    ds.ApprovalStatus = approval
    ds.StructureSetDate = date
    number = next(int(i.ROINumber) for i in ds.StructureSetROISequence if i.ROIName == "GTV")
    contour = next(i for i in ds.ROIContourSequence if int(i.ReferencedROINumber) == number)
    for c in contour.ContourSequence:
        points = np.asarray(c.ContourData, float).reshape(-1, 3)
        points[:, 0] += shift_mm
        c.ContourData = [f"{v:.4f}" for v in points.ravel()]
    out = path.parent / ("RS_draft.dcm" if not new_series else "../draft_rs/RS_0001.dcm")
    out.parent.mkdir(exist_ok=True)
    ds.save_as(out)


def test_a_second_instance_in_the_same_series_is_read_and_the_approved_one_wins(export,
                                                                               tmp_path):
    second_instance(export)  # APPROVED, newer, GTV shifted
    result = run(export, tmp_path)
    assert result.imported, result.refused
    got, want = labels(result) == 3, reference(export) == 3
    assert dice(got, want) < 0.99  # the second instance's (shifted) GTV was taken
    row = report(result)
    assert "tumour on t1 from RTSTRUCT of 20300101" in row["structure_sets"]
    assert "APPROVED" in row["structure_sets"]
    assert "left out: <free text withheld> (ROI 3, " in row["structure_sets"]


def test_a_draft_in_its_own_series_is_not_unioned(export, tmp_path):
    second_instance(export, new_series=True, approval="UNAPPROVED", date="20300101")
    original = pydicom.dcmread(rtstruct(export))
    original.ApprovalStatus = "APPROVED"
    original.save_as(rtstruct(export))
    result = run(export, tmp_path)
    assert result.imported, result.refused
    assert dice(labels(result) == 3, reference(export) == 3) == 1.0  # not 0.80 as a union
    rules = tmp_path / "rules.yaml"
    rules.write_text("structure_sets: refuse\n")
    again = import_dicom(export, tmp_path / "C2", clinical=export / "clinical.csv", rules=rules,
                         progress=False)
    (problems,) = again.refused.values()
    assert "2 structure sets carry it and the rules say refuse" in problems[0]


def test_a_planning_ct_structure_set_is_ignored_and_listed(export, tmp_path):
    path = rtstruct(export, "t2")
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ct_series, ct_frame = generate_uid(), generate_uid()
    item = ds.ReferencedFrameOfReferenceSequence[0]
    item.FrameOfReferenceUID = ct_frame
    item.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID = ct_series
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = ct_frame
    out = patient_dir(export) / "ct_rs"
    out.mkdir()
    ds.save_as(out / "RS.dcm")
    result = run(export, tmp_path)
    assert result.imported, result.refused  # refused before: "refers to no series of the three"
    assert "ignored: RTSTRUCT of" in report(result)["structure_sets"]
    assert f"refers to series {ct_series}, not one of the chosen MR" in report(result)[
        "structure_sets"]


def test_no_tumour_contour_refuses_the_patient(export, tmp_path):
    for series in ("t1", "ce_t1", "t2"):
        path = rtstruct(export, series)
        ds = pydicom.dcmread(path)
        rename(ds, "GTV", "Mandible")
        ds.save_as(path)
    result = run(export, tmp_path)
    (problems,) = result.refused.values()
    assert problems[0].startswith("no tumour contour: the labels drawn are ['left_gland', "
                                  "'right_gland']")
    assert "'Mandible' on t1 (no rule matches)" in problems[0]


def test_pre_and_post_contrast_named_in_text_only_are_not_swapped(export, tmp_path):
    for series, description in (("t1", "T1 w/o contrast"), ("ce_t1", "T1 mit KM")):
        for f in (patient_dir(export) / series).iterdir():
            ds = pydicom.dcmread(f)
            ds.SeriesDescription = description
            for keyword in ("ContrastBolusAgent", "ContrastBolusRoute"):
                if keyword in ds:
                    delattr(ds, keyword)
            if series == "ce_t1":  # the same TR/TE as the T1: only the words tell them apart
                ds.RepetitionTime, ds.EchoTime = 500, 10
            ds.save_as(f)
    result = run(export, tmp_path)
    assert result.imported, result.refused
    for series in ("t1", "ce_t1"):
        assert (image(result, series) == reference_image(export, series)).all(), series
    assert "t1: contrast: the description says 'w o contrast'" in report(result)["decided_by"]


def test_a_dual_echo_t2_is_refused_unless_the_rules_pick_an_echo(export, tmp_path):
    folder = patient_dir(export) / "t2"
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.EchoNumbers, ds.SeriesDescription = 2, "PD T2 TSE AX"
        ds.save_as(f)
        ds.EchoNumbers, ds.EchoTime = 1, 15
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(folder / f"PD_{f.name}")
    result = run(export, tmp_path)
    (problems,) = result.refused.values()
    assert "holds 2 echoes" in problems[0] and "series.t2.echo" in problems[0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("series:\n  t2:\n    description: ['\\bt2']\n    te_ms: [40, 250]\n"
                     "    echo: longest\n")
    again = import_dicom(export, tmp_path / "C2", clinical=export / "clinical.csv", rules=rules,
                         progress=False)
    assert again.imported, again.refused
    assert (image(again, "t2") == reference_image(export, "t2")).all()
    assert "echo 2 of 2 (TE 86.61 ms, of 15, 86.61 ms) by the rule echo: longest" in report(
        again)["decided_by"]


def test_pydicom_rtstruct_without_file_meta_beside_a_valid_export(export, tmp_path):
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("rtstruct.dcm"), export / "rtstruct.dcm")
    result = run(export, tmp_path)  # InvalidDicomError out of the whole import before
    assert len(result.imported) == 1
    rows = pd.read_csv(result.report, dtype=str, keep_default_na=False)
    other = rows[rows["status"] == "refused"]
    assert len(other) == 1 and "no MR series; found RTSTRUCT (1 series)" in other.iloc[0][
        "problems"]


def test_a_semicolon_separated_clinical_table_is_named_as_such(export, tmp_path):
    table = (export / "clinical.csv").read_text().replace(",", ";")
    (export / "clinical.csv").write_text(table)
    with pytest.raises(ValueError, match="looks semicolon-separated"):
        run(export, tmp_path)


def test_carry_over_refusal_names_every_series_in_another_frame(tmp_path):
    src = Path(write_dicom_cohort(tmp_path / "D", n_patients=1, seed=2, pixel_scale=4, jobs=1,
                                  contours_on="t1"))
    frame = generate_uid()
    for series in ("ce_t1", "t2"):
        for f in (patient_dir(src) / series).iterdir():
            ds = pydicom.dcmread(f)
            ds.FrameOfReferenceUID = frame
            ds.save_as(f)
    result = run(src, tmp_path)
    (problems,) = result.refused.values()
    assert problems[0].startswith("the chosen series come from 2 different frames of reference")
    assert "combine: {frames_of_reference: true}" in problems[0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("combine: {frames_of_reference: true}\n")
    again = import_dicom(src, tmp_path / "C2", clinical=src / "clinical.csv", rules=rules,
                         progress=False)
    (problems,) = again.refused.values()
    assert problems == ["ce_t1, t2: no contours of their own and another (or no) frame of "
                        "reference than t1: labels cannot be carried over"]
