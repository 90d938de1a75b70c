"""Stacking DICOM series into RAS+ NIfTI volumes (parotidlib.dicom.volume)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from parotidlib.dicom.headers import scan_tree
from parotidlib.dicom.volume import SeriesError, lps_affine, ras_affine, read_volume

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def rotation(ax_deg: float = 0.0, az_deg: float = 0.0) -> np.ndarray:
    a, b = np.radians(ax_deg), np.radians(az_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rz @ rx


def mr_dataset(*, patient_id, study_uid, series_uid, for_uid, position, orientation,
               pixel_spacing, stored, slope=1.0, intercept=0.0, instance=1,
               description="T1 AX") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "052Y"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.Modality = "MR"
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.RepetitionTime = "500"
    ds.EchoTime = "12"
    ds.FlipAngle = "90"
    ds.MagneticFieldStrength = "1.5"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Scan 1"
    ds.SeriesDate = "20200102"
    ds.SeriesTime = "101010"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    ds.SliceThickness = "3"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = stored.astype("<i2").tobytes()
    return ds


def write_series(folder: Path, *, rows=40, cols=64, n=6, rot=None, spacing=(0.5, 0.8),
                 dz=3.0, origin=(-20.0, 30.0, -15.0), slope=2.0, intercept=-100.0,
                 patient_id="P001", seed=0, shuffle=True, skip=(), duplicate=None,
                 tilt=None, for_uids=None, description="T1 AX"):
    """Write an MR series; returns (expected rescaled data [col, row, slice], positions)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rot = np.eye(3) if rot is None else rot
    row_dir, col_dir, normal = rot[:, 0], rot[:, 1], rot[:, 2]
    orientation = np.concatenate([row_dir, col_dir])
    study, series = generate_uid(), generate_uid()
    for_uid = generate_uid()
    stored = rng.integers(-500, 2000, size=(n, rows, cols)).astype(np.int16)
    positions = [np.asarray(origin) + k * dz * normal for k in range(n)]
    if tilt is not None:
        positions = [p + k * tilt * row_dir for k, p in enumerate(positions)]
    keep = [k for k in range(n) if k not in skip]
    if duplicate is not None:
        keep.append(duplicate)
    order = rng.permutation(len(keep)) if shuffle else np.arange(len(keep))
    instances = rng.permutation(len(keep)) + 1 if shuffle else np.arange(len(keep)) + 1
    for m, idx in enumerate(order):
        k = keep[idx]
        ds = mr_dataset(patient_id=patient_id, study_uid=study, series_uid=series,
                        for_uid=(for_uids[k] if for_uids else for_uid),
                        position=positions[k], orientation=orientation,
                        pixel_spacing=spacing, stored=stored[k], slope=slope,
                        intercept=intercept, instance=int(instances[m]),
                        description=description)
        ds.save_as(folder / f"IM{m:04d}", enforce_file_format=True)
    expected = np.transpose(stored.astype(float) * slope + intercept, (2, 1, 0))
    return expected, [positions[k] for k in range(n)]


def one_series(folder: Path):
    series, problems = scan_tree(folder)
    assert problems == []
    assert len(series) == 1
    return series[0]


CASES = {
    "axial": dict(rot=np.eye(3), spacing=(0.8, 0.8), rows=48, cols=48),
    "oblique": dict(rot=rotation(20, 20)),
    "anisotropic_nonsquare": dict(rot=np.eye(3), spacing=(0.5, 0.8), rows=40, cols=64),
    "coronal_oblique": dict(rot=rotation(-70, 20), spacing=(0.5, 0.8), rows=40, cols=64),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_voxels_and_affine(tmp_path, case):
    params = CASES[case]
    expected, positions = write_series(tmp_path / "in", **params)
    series = one_series(tmp_path / "in")
    img = read_volume(series)
    data = np.asarray(img.dataobj)
    assert data.shape == expected.shape
    np.testing.assert_array_equal(data, expected)
    assert data.dtype == np.int16
    rot = params["rot"]
    dr, dc = params.get("spacing", (0.5, 0.8))
    shape = data.shape
    for i, j, k in [(0, 0, 0), (shape[0] - 1, 0, 1), (0, shape[1] - 1, 2),
                    (shape[0] - 1, shape[1] - 1, shape[2] - 1), (3, 7, 4)]:
        lps = positions[k] + i * dc * rot[:, 0] + j * dr * rot[:, 1]
        world = img.affine @ [i, j, k, 1]
        np.testing.assert_allclose(world[:3], LPS_TO_RAS @ lps, atol=1e-4)
    np.testing.assert_allclose(img.affine, ras_affine(series))
    np.testing.assert_allclose(ras_affine(series), np.diag([-1, -1, 1, 1]) @ lps_affine(series))
    hdr = img.header
    assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1
    np.testing.assert_allclose(hdr.get_qform(), img.affine, atol=1e-4)
    assert hdr.get_xyzt_units()[0] == "mm"
    assert bytes(hdr["descrip"]).strip(b"\0") == b""


def test_round_trip_through_nifti_file(tmp_path):
    expected, _ = write_series(tmp_path / "in", rot=rotation(20, 20))
    img = read_volume(one_series(tmp_path / "in"))
    nib.save(img, tmp_path / "out.nii.gz")
    back = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(np.asarray(back.dataobj), expected)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-5)
    assert b"Doe" not in (tmp_path / "out.nii.gz").read_bytes()


def test_non_integer_rescale_is_float32(tmp_path):
    expected, _ = write_series(tmp_path / "in", slope=0.25, intercept=0.5)
    img = read_volume(one_series(tmp_path / "in"))
    assert img.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(img.dataobj), expected, rtol=1e-6)


def test_dtype_override(tmp_path):
    expected, _ = write_series(tmp_path / "in", n=3)
    img = read_volume(one_series(tmp_path / "in"), dtype=np.float32)
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(img.dataobj), expected)


def test_source_tree_not_written(tmp_path):
    write_series(tmp_path / "in", n=3)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "in").rglob("*")}
    read_volume(one_series(tmp_path / "in"))
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "in").rglob("*")}
    assert before == after


# ------------------------------------------------------------------------ dcm2niix cross-check


def _dcm2niix() -> str | None:
    exe = Path(sys.executable).with_name("dcm2niix")
    if exe.exists():
        return str(exe)
    return shutil.which("dcm2niix")


@pytest.mark.parametrize("case", sorted(CASES))
def test_affine_matches_dcm2niix(tmp_path, case):
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix binary not found (pip install dcm2niix); cannot cross-check")
    params = CASES[case]
    write_series(tmp_path / "in", **params)
    ours = read_volume(one_series(tmp_path / "in"))
    out = tmp_path / "d2n"
    out.mkdir()
    proc = subprocess.run([exe, "-z", "n", "-f", "%s", "-o", str(out), str(tmp_path / "in")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    niftis = sorted(out.glob("*.nii"))
    assert len(niftis) == 1, (proc.stdout, niftis)
    theirs = nib.load(niftis[0])
    # dcm2niix may flip the row axis and store slices in another order: compare in a common
    # (closest canonical) voxel order, where the same grid has the same affine and data.
    a, b = nib.as_closest_canonical(ours), nib.as_closest_canonical(theirs)
    assert a.shape == b.shape
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-3)
    np.testing.assert_allclose(np.asarray(a.dataobj, dtype=float),
                               b.get_fdata(), atol=1e-3)
    # and directly: every corner voxel of ours lands on a voxel centre of theirs
    inv = np.linalg.inv(theirs.affine)
    sh = ours.shape
    for corner in [(0, 0, 0), (sh[0] - 1, 0, 0), (0, sh[1] - 1, 0), (0, 0, sh[2] - 1)]:
        ijk = inv @ ours.affine @ [*corner, 1]
        np.testing.assert_allclose(ijk[:3], np.round(ijk[:3]), atol=1e-3)


# ------------------------------------------------------------------------------ refusals


def _refused(folder: Path) -> SeriesError:
    series, _ = scan_tree(folder)
    assert len(series) == 1
    with pytest.raises(SeriesError) as info:
        read_volume(series[0])
    err = info.value
    assert err.problems
    for p in err.problems:
        assert p.patient_id == "P001"
        assert series[0].series_uid in p.message and "T1 AX" in p.message
        assert p.path is not None and Path(p.path).exists()
    return err


def test_missing_slice_refused(tmp_path):
    _, positions = write_series(tmp_path / "in", n=6, skip=(3,), dz=3.0)
    err = _refused(tmp_path / "in")
    text = str(err)
    assert "missing slice" in text
    assert len(err.problems) == 1
    missing_at = float(np.dot(positions[3], np.eye(3)[:, 2]))
    assert f"{missing_at:.4g}" in err.problems[0].message


def test_missing_slice_refused_oblique(tmp_path):
    write_series(tmp_path / "in", n=6, skip=(1,), rot=rotation(20, 20))
    assert "missing slice" in str(_refused(tmp_path / "in"))


def test_duplicate_position_refused(tmp_path):
    write_series(tmp_path / "in", n=5, duplicate=2)
    err = _refused(tmp_path / "in")
    assert "duplicate slice position" in str(err)
    # both files are named
    assert err.problems[0].message.count(str(tmp_path / "in")) == 2


def test_two_orientations_refused(tmp_path):
    write_series(tmp_path / "in", n=4)
    # rewrite one file with another orientation
    import pydicom

    path = sorted((tmp_path / "in").iterdir())[1]
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate(
        [rotation(10, 0)[:, 0], rotation(10, 0)[:, 1]])]
    ds.save_as(path, enforce_file_format=True)
    err = _refused(tmp_path / "in")
    assert "one orientation" in str(err)
    assert any(p.path == str(path) for p in err.problems)


def test_two_frames_of_reference_refused(tmp_path):
    uids = [generate_uid()] * 3 + [generate_uid()] * 2
    write_series(tmp_path / "in", n=5, for_uids=uids)
    assert "FrameOfReferenceUID" in str(_refused(tmp_path / "in"))


def test_uneven_spacing_refused(tmp_path):
    write_series(tmp_path / "in", n=5, dz=3.0)
    import pydicom

    files = sorted((tmp_path / "in").iterdir())
    moved = [f for f in files if abs(float(pydicom.dcmread(f).ImagePositionPatient[2])
                                     - (-15.0 + 2 * 3.0)) < 1e-6][0]
    ds = pydicom.dcmread(moved)
    ds.ImagePositionPatient[2] = f"{-15.0 + 2 * 3.0 + 0.5:.6f}"
    ds.save_as(moved, enforce_file_format=True)
    assert "uneven slice spacing" in str(_refused(tmp_path / "in"))


def test_tilted_stack_refused(tmp_path):
    write_series(tmp_path / "in", n=4, tilt=0.5)
    assert "gantry tilt" in str(_refused(tmp_path / "in"))


def test_small_spacing_jitter_accepted(tmp_path):
    write_series(tmp_path / "in", n=5, dz=3.0)
    import pydicom

    for f in sorted((tmp_path / "in").iterdir())[:2]:
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient[2] = f"{float(ds.ImagePositionPatient[2]) + 0.005:.6f}"
        ds.save_as(f, enforce_file_format=True)
    read_volume(one_series(tmp_path / "in"))


def test_single_slice_refused(tmp_path):
    write_series(tmp_path / "in", n=1)
    assert "single slice" in str(_refused(tmp_path / "in"))


def test_multiframe_refused(tmp_path):
    write_series(tmp_path / "in", n=2)
    import pydicom

    for f in (tmp_path / "in").iterdir():
        ds = pydicom.dcmread(f)
        ds.NumberOfFrames = 2
        ds.save_as(f, enforce_file_format=True)
    assert "multi-frame" in str(_refused(tmp_path / "in"))


def test_rescale_per_file(tmp_path):
    """Each file's RescaleSlope/Intercept applies to its own slice (Philips varies them)."""
    expected, positions = write_series(tmp_path / "in", n=4, slope=1.0, intercept=0.0)
    import pydicom

    for f in (tmp_path / "in").iterdir():
        ds = pydicom.dcmread(f)
        if abs(float(ds.ImagePositionPatient[2]) - positions[2][2]) < 1e-6:
            ds.RescaleSlope = "3"
            ds.RescaleIntercept = "7"
            ds.save_as(f, enforce_file_format=True)
    expected[:, :, 2] = expected[:, :, 2] * 3 + 7
    data = np.asarray(read_volume(one_series(tmp_path / "in")).dataobj)
    np.testing.assert_array_equal(data, expected)


# ------------------------------------------------------- one problem per series and kind


def _edit_all(folder: Path, edit) -> list[Path]:
    import pydicom

    paths = sorted(folder.iterdir())
    for path in paths:
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path, enforce_file_format=True)
    return paths


def test_missing_tag_is_one_problem_with_a_count(tmp_path):
    write_series(tmp_path / "in", n=5)
    _edit_all(tmp_path / "in", lambda ds: delattr(ds, "PixelSpacing"))
    err = _refused(tmp_path / "in")
    (problem,) = err.problems
    assert "5 of 5 files miss (or have an invalid) PixelSpacing (first: " in problem.message


def test_odd_orientations_and_matrix_sizes_are_one_problem_each(tmp_path):
    import pydicom

    write_series(tmp_path / "in", n=6)
    paths = sorted((tmp_path / "in").iterdir())
    turned = [f"{v:.8f}" for v in np.concatenate([rotation(10, 0)[:, 0],
                                                   rotation(10, 0)[:, 1]])]
    for path in paths[1:3]:
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = turned
        ds.save_as(path, enforce_file_format=True)
    for path in paths[3:5]:
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns = 20, 128  # same number of pixels, another matrix
        ds.save_as(path, enforce_file_format=True)
    err = _refused(tmp_path / "in")
    assert len(err.problems) == 2, err
    orient, matrix = err.problems
    assert "2 of 6 files have an ImageOrientationPatient differing" in orient.message
    assert "one orientation" in orient.message and orient.path in {str(p) for p in paths[1:3]}
    assert "2 of 6 files have Rows x Columns differing from 40 x 64" in matrix.message


def test_tilted_stack_is_one_problem(tmp_path):
    write_series(tmp_path / "in", n=5, tilt=0.5)
    (problem,) = _refused(tmp_path / "in").problems
    assert "4 of 5 files have an ImagePositionPatient shifted" in problem.message


def _dual_echo(folder: Path, n: int = 4):
    """A PD/T2 dual-echo series: every position twice, TE 12 ms (echo 1) and 80 ms (echo 2,
    pixels halved)."""
    import pydicom

    expected, _ = write_series(folder, n=n, slope=1.0, intercept=0.0)
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.EchoNumbers = 1
        ds.save_as(path, enforce_file_format=True)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.EchoNumbers = 2
        ds.EchoTime = "80"
        ds.InstanceNumber = int(ds.InstanceNumber) + 100
        ds.PixelData = (ds.pixel_array // 2).astype("<i2").tobytes()
        ds.save_as(path.with_name(path.name + "_e2"), enforce_file_format=True)
    return expected


def test_dual_echo_is_one_problem_naming_the_echoes(tmp_path):
    expected = _dual_echo(tmp_path / "in", n=4)
    err = _refused(tmp_path / "in")
    (problem,) = err.problems
    assert ("several echoes (TE 12, 80 ms) in one series: 4 positions hold 2 echoes each; "
            "a rules `echo:` setting picks one") in problem.message
    series = one_series(tmp_path / "in")
    long = np.asarray(read_volume(series, echo_time_ms=80).dataobj)
    np.testing.assert_array_equal(long, np.floor_divide(expected, 2))
    np.testing.assert_array_equal(np.asarray(read_volume(series, echo_time_ms=12).dataobj),
                                  expected)


# --------------------------------------------------------------- C-level stderr of readers


def test_stderr_to_log_counts_each_line_once(capfd, caplog):
    import logging
    import os

    from parotidlib.dicom.volume import stderr_to_log

    with caplog.at_level(logging.WARNING, logger="parotidlib.dicom.volume"):
        with stderr_to_log("patient P001, series 'x' (1.2)"):
            for _ in range(3):
                os.write(2, b"Unsupported JPEG data precision 12\n")
            os.write(2, b"another line\n")
    assert capfd.readouterr().err == ""
    records = [r.getMessage() for r in caplog.records]
    assert len(records) == 2
    assert any("Unsupported JPEG data precision 12" in m and "3 time(s)" in m
               and "P001" in m for m in records)


def test_gdcm_noise_of_a_12_bit_jpeg_series_is_logged_once(tmp_path, capfd, caplog):
    """pydicom's JPGExtended.dcm (JPEG extended, 12 bit): GDCM prints "Unsupported JPEG data
    precision 12" on fd 2 for every slice it decodes."""
    import logging

    import pydicom

    pydicom_data = pytest.importorskip("pydicom.data")
    source = pydicom_data.get_testdata_file("JPGExtended.dcm")
    if source is None:
        pytest.skip("pydicom's JPGExtended.dcm is not installed")
    study, series, for_uid = generate_uid(), generate_uid(), generate_uid()
    folder = tmp_path / "jpeg12"
    folder.mkdir()
    for k in range(3):
        ds = pydicom.dcmread(source)
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = "MR"
        ds.PatientID = "P012"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesDescription = "T1 JPEG12"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 4.0 * k]
        ds.InstanceNumber = k + 1
        ds.save_as(folder / f"IM{k}", enforce_file_format=True)
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="parotidlib.dicom.volume"):
        try:
            img = read_volume(one_series(folder))
        except SeriesError as exc:  # a GDCM build that cannot decode it: still refused cleanly
            assert exc.problems
            img = None
    err = capfd.readouterr().err
    assert "Unsupported JPEG" not in err
    noisy = [r.getMessage() for r in caplog.records if "JPEG" in r.getMessage()]
    if img is not None:
        assert img.shape[2] == 3
    if not noisy:
        pytest.skip("this SimpleITK/GDCM build prints nothing for 12-bit JPEG")
    assert len(noisy) == 1 and "time(s)" in noisy[0] and "P012" in noisy[0]
