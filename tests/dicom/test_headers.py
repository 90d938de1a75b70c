"""Walking a DICOM tree and grouping headers into series (parotidlib.dicom.headers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from parotidlib.dicom.headers import DicomFile, Series, scan, scan_tree

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
PERSONAL = ("Doe", "19700101", "Main Street")


def _meta(ds: Dataset, sop_class: str) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _patient(ds: Dataset, patient_id: str, study: str) -> None:
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700101"
    ds.PatientAddress = "1 Main Street"
    ds.PatientSex = "F"
    ds.PatientAge = "052Y"
    ds.StudyInstanceUID = study
    ds.AccessionNumber = "A" + patient_id


def write_mr(path: Path, *, patient_id, study, series, for_uid, z, instance,
             description="T1 AX", rows=4, cols=6) -> None:
    ds = Dataset()
    _meta(ds, MR_IMAGE_STORAGE)
    _patient(ds, patient_id, study)
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = for_uid
    ds.Modality = "MR"
    ds.SeriesDescription = description
    ds.ProtocolName = description + " protocol"
    ds.RepetitionTime = "520"
    ds.EchoTime = "11.5"
    ds.FlipAngle = "90"
    ds.ContrastBolusAgent = "Gd-DTPA" if "+C" in description else ""
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Scan 1"
    ds.MagneticFieldStrength = "3"
    ds.SeriesDate = "20200102"
    ds.SeriesTime = "101010"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0, 0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.8]
    ds.SliceThickness = "3"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.zeros((rows, cols), "<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_rtstruct(path: Path, *, patient_id, study, for_uid) -> str:
    ds = Dataset()
    _meta(ds, RTSTRUCT)
    _patient(ds, patient_id, study)
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.SeriesDescription = "contours"
    ref = Dataset()
    ref.FrameOfReferenceUID = for_uid
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
    roi = Dataset()
    roi.ROINumber = 1
    roi.ROIName = "parotid_r"
    ds.StructureSetROISequence = Sequence([roi])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds.SeriesInstanceUID


def write_dicomdir(path: Path) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.FileSetID = "EXPORT"
    ds.DirectoryRecordSequence = Sequence([])
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def tree(tmp_path):
    """Two patients: P001 with T1 (5 slices, shuffled names and instance numbers), CE-T1 and
    an RTSTRUCT; P002 with T2; plus README.txt, a DICOMDIR and a .DS_Store."""
    src = tmp_path / "export"
    rng = np.random.default_rng(1)
    study1, study2 = generate_uid(), generate_uid()
    for1, for2 = generate_uid(), generate_uid()
    uids = {"t1": generate_uid(), "ce": generate_uid(), "t2": generate_uid()}
    zs = [10.0, 13.0, 16.0, 19.0, 22.0]
    names = rng.permutation(len(zs))
    instances = rng.permutation(len(zs)) + 1
    for z, name, inst in zip(zs, names, instances, strict=True):
        write_mr(src / "a" / "b" / f"{name:08d}", patient_id="P001", study=study1,
                 series=uids["t1"], for_uid=for1, z=z, instance=int(inst))
    for k, z in enumerate([0.0, 4.0, 8.0]):
        write_mr(src / "P1" / "ce" / f"x{k}.dcm", patient_id="P001", study=study1,
                 series=uids["ce"], for_uid=for1, z=z, instance=3 - k, description="T1 +C")
    for k, z in enumerate([-5.0, 0.0]):
        write_mr(src / "zz" / f"IM{k}", patient_id="P002", study=study2, series=uids["t2"],
                 for_uid=for2, z=z, instance=k + 1, description="T2 AX")
    rt_uid = write_rtstruct(src / "P1" / "rt" / "RS.dcm", patient_id="P001", study=study1,
                            for_uid=for1)
    (src / "README.txt").write_text("exported by PACS\n")
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(100))
    write_dicomdir(src / "DICOMDIR")
    return src, uids, rt_uid, for1, zs


def test_groups_two_patients(tree):
    src, uids, rt_uid, for1, zs = tree
    series, problems = scan_tree(src)
    assert problems == []
    by_uid = {s.series_uid: s for s in series}
    assert set(by_uid) == {*uids.values(), rt_uid}
    assert {s.patient_id for s in series} == {"P001", "P002"}
    t1 = by_uid[uids["t1"]]
    assert t1.patient_id == "P001" and t1.modality == "MR"
    assert len(t1.files) == 5
    assert [f.image_position[2] for f in t1.files] == zs  # along the normal, not by name
    assert t1.description == "T1 AX" and t1.protocol == "T1 AX protocol"
    assert t1.repetition_time_ms == 520.0 and t1.echo_time_ms == 11.5
    assert t1.flip_angle_deg == 90.0 and t1.field_strength_t == 3.0
    assert t1.pixel_spacing_mm == (0.5, 0.8) and t1.slice_thickness_mm == 3.0
    assert t1.manufacturer == "ACME" and t1.model == "Scan 1"
    assert t1.series_date == "20200102" and t1.series_time == "101010"
    assert t1.patient_age == "052Y" and t1.patient_sex == "F"
    assert t1.accession_number == "AP001"
    assert t1.frame_of_reference_uid == for1
    assert t1.files[0].image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert by_uid[uids["ce"]].contrast_agent == "Gd-DTPA"
    ce = by_uid[uids["ce"]]
    assert [f.instance_number for f in ce.files] == [3, 2, 1]
    t2 = by_uid[uids["t2"]]
    assert t2.patient_id == "P002" and len(t2.files) == 2
    rt = by_uid[rt_uid]
    assert rt.modality == "RTSTRUCT" and len(rt.files) == 1
    assert rt.frame_of_reference_uid == for1
    assert rt.files[0].path.name == "RS.dcm"


def test_counts_non_dicom(tree):
    src, *_ = tree
    result = scan(src)
    skipped = {p.name for p in result.skipped}
    assert skipped == {"README.txt", ".DS_Store", "DICOMDIR"}
    assert result.n_files == 5 + 3 + 2 + 1 + 3
    assert result.n_dicom == 11
    assert result.problems == []


def test_no_personal_data(tree):
    src, *_ = tree
    series, _ = scan_tree(src)
    for s in series:
        text = repr(dataclasses.asdict(s))
        for word in PERSONAL:
            assert word not in text
    names = {f.name for f in dataclasses.fields(DicomFile)} | {
        f.name for f in dataclasses.fields(Series)}
    assert not any("name" in n.lower() or "birth" in n.lower() for n in names)


def test_read_only(tree):
    src, *_ = tree
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in src.rglob("*")}
    scan_tree(src, progress=False)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in src.rglob("*")}
    assert before == after


def test_broken_dicom_is_a_problem(tree):
    src, *_ = tree
    good = next((src / "a" / "b").iterdir()).read_bytes()
    (src / "broken.dcm").write_bytes(good[:200])  # truncated inside the file meta
    (src / "notes.dcm").write_text("not dicom at all")
    series, problems = scan_tree(src)
    paths = {Path(p.path).name for p in problems}
    assert paths == {"broken.dcm", "notes.dcm"}
    assert len(series) == 4


def test_missing_uid_is_a_problem(tmp_path):
    src = tmp_path / "src"
    write_mr(src / "a", patient_id="P009", study=generate_uid(), series=generate_uid(),
             for_uid=generate_uid(), z=0.0, instance=1)
    import pydicom

    ds = pydicom.dcmread(src / "a")
    del ds.SeriesInstanceUID
    ds.save_as(src / "a", enforce_file_format=True)
    series, problems = scan_tree(src)
    assert series == []
    assert len(problems) == 1
    assert problems[0].patient_id == "P009" and "SeriesInstanceUID" in problems[0].message


def test_duplicate_sop_instance_reported(tmp_path):
    src = tmp_path / "src"
    args = dict(patient_id="P003", study=generate_uid(), series=generate_uid(),
                for_uid=generate_uid())
    write_mr(src / "a", z=0.0, instance=1, **args)
    write_mr(src / "b", z=3.0, instance=2, **args)
    (src / "copy").write_bytes((src / "a").read_bytes())
    series, problems = scan_tree(src)
    assert len(series) == 1 and len(series[0].files) == 2
    assert len(problems) == 1 and "occurs twice" in problems[0].message


def test_not_a_folder(tmp_path):
    with pytest.raises(NotADirectoryError):
        scan_tree(tmp_path / "nope")


def test_rtstruct_without_file_meta_is_scanned(tmp_path):
    """pydicom's rtstruct.dcm has no preamble and no file meta: read with force=True, it is an
    RTSTRUCT series with the frame of reference it refers to, not a problem."""
    import shutil

    import pydicom

    pydicom_data = pytest.importorskip("pydicom.data")
    source = pydicom_data.get_testdata_file("rtstruct.dcm")
    if source is None:
        pytest.skip("pydicom's rtstruct.dcm is not installed")
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(source)  # what the importer used to trip on
    src = tmp_path / "export"
    src.mkdir()
    shutil.copy(source, src / "rtstruct.dcm")
    result = scan(src)
    assert result.problems == [] and result.skipped == ()
    (series,) = result.series
    ds = pydicom.dcmread(source, force=True)
    assert series.modality == "RTSTRUCT"
    assert series.patient_id == ds.PatientID and series.series_uid == ds.SeriesInstanceUID
    assert series.frame_of_reference_uid == (
        ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    assert series.files[0].sop_class_uid == RTSTRUCT
