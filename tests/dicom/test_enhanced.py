"""Enhanced (multi-frame) MR read like a classic series (parotidlib.dicom.volume, .headers).

The multi-frame objects are written by another writer than the kit's: highdicom's Legacy
Converted Enhanced MR Image (SOP class 1.2.840.10008.5.1.4.1.1.4.4), made from a series of the
kit's synthetic DICOM export, then edited with pydicom where a test needs functional groups
that converter does not write (per-frame rescale, EffectiveEchoTime, the Enhanced
Contrast/Bolus module).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from parotidlib.dicom.headers import scan, scan_tree
from parotidlib.dicom.volume import SeriesError, check_geometry, echo_times_ms, read_volume
from parotidlib.synth.dicom import write_dicom_cohort

hd = pytest.importorskip("highdicom")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

LEGACY_ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.4"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("enhanced")
    return Path(write_dicom_cohort(base / "D", n_patients=1, seed=0, pixel_scale=4, jobs=1))


def patient_dir(src: Path) -> Path:
    return sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))[0]


def classic(folder: Path):
    series, problems = scan_tree(folder)
    assert problems == [] and len(series) == 1
    return series[0]


def enhance(datasets: list[Dataset], out: Path, *, series_uid: str | None = None) -> Path:
    """One Legacy Converted Enhanced MR file of ``datasets`` (keeping their SeriesInstanceUID
    unless told)."""
    image = hd.legacy.LegacyConvertedEnhancedMRImage(
        datasets, series_instance_uid=series_uid or datasets[0].SeriesInstanceUID,
        series_number=int(datasets[0].get("SeriesNumber") or 1),
        sop_instance_uid=hd.UID(), instance_number=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(out)
    return out


def read_folder(folder: Path) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir())]


@pytest.fixture(scope="module")
def t1_enhanced(export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("t1e") / "t1" / "ENH.dcm"
    return enhance(read_folder(patient_dir(export) / "t1"), out)


def frame_groups(ds: Dataset) -> list[Dataset]:
    return list(ds.PerFrameFunctionalGroupsSequence)


# ----------------------------------------------------------------------------- voxels


def test_legacy_converted_equals_the_classic_series(export, t1_enhanced):
    want = read_volume(classic(patient_dir(export) / "t1"))
    series = classic(t1_enhanced.parent)
    assert series.files[0].sop_class_uid == LEGACY_ENHANCED_MR
    assert series.files[0].number_of_frames == want.shape[2]
    got = read_volume(series)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj))
    assert got.get_data_dtype() == want.get_data_dtype()
    np.testing.assert_allclose(got.affine, want.affine, atol=1e-4)
    assert int(got.header["sform_code"]) == 1 and int(got.header["qform_code"]) == 1
    assert bytes(got.header["descrip"]).strip(b"\0") == b""
    geo, problems = check_geometry(series)
    assert problems == [] and geo.multiframe
    assert sorted(f.frame for f in geo.files) == list(range(1, want.shape[2] + 1))


def test_frames_in_any_order_and_an_oblique_export(tmp_path):
    """Frames written in shuffled order, oblique anisotropic geometry: still the classic
    voxels, affine within 1e-4 mm."""
    src = Path(write_dicom_cohort(tmp_path / "D", n_patients=1, seed=1, pixel_scale=4, jobs=1,
                                  oblique_deg=20.0, anisotropic=True))
    folder = patient_dir(src) / "t2"
    datasets = read_folder(folder)
    rng = np.random.default_rng(0)
    datasets = [datasets[i] for i in rng.permutation(len(datasets))]
    out = enhance(datasets, tmp_path / "E" / "t2.dcm")
    want, got = read_volume(classic(folder)), read_volume(classic(out.parent))
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj))
    np.testing.assert_allclose(got.affine, want.affine, atol=1e-4)


def test_per_frame_rescale_is_applied(export, t1_enhanced, tmp_path):
    """Philips writes the Pixel Value Transformation per frame (PS3.3 C.7.6.16.2.9) with
    differing RescaleSlope: every frame's own slope applies."""
    want = np.asarray(read_volume(classic(patient_dir(export) / "t1")).dataobj).astype(float)
    ds = pydicom.dcmread(t1_enhanced)
    shared = ds.SharedFunctionalGroupsSequence[0]
    del shared.PixelValueTransformationSequence
    doubled = set()
    for k, group in enumerate(frame_groups(ds)):
        item = Dataset()
        item.RescaleIntercept = "0"
        item.RescaleSlope = "2" if k % 2 else "1"
        item.RescaleType = "US"
        group.PixelValueTransformationSequence = Sequence([item])
        if k % 2:
            doubled.add(k + 1)
    out = tmp_path / "R" / "rescaled.dcm"
    out.parent.mkdir()
    ds.save_as(out)
    series = classic(out.parent)
    geo, problems = check_geometry(series)
    assert problems == []
    for k, f in enumerate(geo.files):
        if f.frame in doubled:
            want[:, :, k] *= 2
    got = np.asarray(read_volume(series).dataobj)
    assert 0 < len(doubled) < len(geo.files)
    np.testing.assert_array_equal(got, want)


def two_echo_object(export: Path, out: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A multi-frame object holding each slice of the T1 twice: TE 10.21 (as written) and
    TE 80 ms (other pixels), EffectiveEchoTime in each frame's MR Echo Macro."""
    first = read_folder(patient_dir(export) / "t1")
    second = []
    for ds in first:
        ds2 = copy.deepcopy(ds)
        ds2.SOPInstanceUID = generate_uid()
        ds2.file_meta.MediaStorageSOPInstanceUID = ds2.SOPInstanceUID
        ds2.EchoTime = "80"
        ds2.EchoNumbers = 2
        ds.EchoNumbers = 1
        ds2.InstanceNumber = int(ds.InstanceNumber) + 100
        ds2.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        second.append(ds2)
    enhance(first + second, out)
    ds = pydicom.dcmread(out)
    for k, group in enumerate(frame_groups(ds)):  # TE as Enhanced MR writes it
        for seq in ("UnassignedPerFrameConvertedAttributesSequence",):
            if seq in group and "EchoTime" in group[seq][0]:
                del group[seq][0].EchoTime
        echo = Dataset()
        echo.EffectiveEchoTime = 10.21 if k < len(first) else 80.0
        group.MREchoSequence = Sequence([echo])
    shared = ds.SharedFunctionalGroupsSequence[0]
    for seq in ("UnassignedSharedConvertedAttributesSequence",):
        if seq in shared and "EchoTime" in shared[seq][0]:
            del shared[seq][0].EchoTime
    ds.save_as(out)
    return out, np.stack([d.pixel_array for d in first]), np.stack([d.pixel_array
                                                                    for d in second])


def test_two_echoes_refused_naming_them_and_one_can_be_picked(export, tmp_path):
    out, _, _ = two_echo_object(export, tmp_path / "E2" / "dual.dcm")
    series = classic(out.parent)
    n = len(list((patient_dir(export) / "t1").iterdir()))
    with pytest.raises(SeriesError) as info:
        read_volume(series)
    (problem,) = info.value.problems
    assert "several echoes (TE 10.21, 80 ms)" in problem.message
    assert f"{n} positions hold 2 echoes each" in problem.message
    assert "echo:" in problem.message
    assert problem.patient_id == series.patient_id and problem.path == str(out)
    assert series.series_uid in problem.message
    assert echo_times_ms(series) == [10.21, 80.0]
    # the echo a rule picks: the classic T1 voxels (TE 10.21) or the halved ones (TE 80)
    want = read_volume(classic(patient_dir(export) / "t1"))
    short = read_volume(series, echo_time_ms=10.21)
    np.testing.assert_array_equal(np.asarray(short.dataobj), np.asarray(want.dataobj))
    np.testing.assert_allclose(short.affine, want.affine, atol=1e-4)
    long = read_volume(series, echo_time_ms=80)
    np.testing.assert_array_equal(np.asarray(long.dataobj),
                                  np.asarray(want.dataobj) // 2)
    with pytest.raises(SeriesError, match="no frame has TE 50 ms"):
        read_volume(series, echo_time_ms=50)


def test_two_stacks_refused(t1_enhanced, tmp_path):
    ds = pydicom.dcmread(t1_enhanced)
    for k, group in enumerate(frame_groups(ds)):
        group.FrameContentSequence[0].StackID = "1" if k < 4 else "2"
    out = tmp_path / "S" / "stacks.dcm"
    out.parent.mkdir()
    ds.save_as(out)
    with pytest.raises(SeriesError) as info:
        read_volume(classic(out.parent))
    (problem,) = info.value.problems
    assert "2 stacks (StackID '1' (4 frames), '2'" in problem.message
    assert problem.path == str(out)


def test_frames_that_are_not_one_evenly_spaced_stack_are_refused(t1_enhanced, tmp_path):
    ds = pydicom.dcmread(t1_enhanced)
    groups = frame_groups(ds)
    pos = groups[3].PlanePositionSequence[0].ImagePositionPatient
    pos[2] = float(pos[2]) + 1.5
    out = tmp_path / "U" / "uneven.dcm"
    out.parent.mkdir()
    ds.save_as(out)
    with pytest.raises(SeriesError) as info:
        read_volume(classic(out.parent))
    text = str(info.value)
    assert "uneven slice spacing" in text and "frame 4" in text


def test_several_multiframe_files_or_a_mixture_refused(export, t1_enhanced, tmp_path):
    folder = tmp_path / "M"
    shutil.copytree(t1_enhanced.parent, folder)
    ds = pydicom.dcmread(t1_enhanced)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(folder / "ENH2.dcm")
    with pytest.raises(SeriesError, match="2 multi-frame files in one series"):
        read_volume(classic(folder))
    mixed = tmp_path / "X"
    shutil.copytree(t1_enhanced.parent, mixed)
    shutil.copy(next((patient_dir(export) / "t1").iterdir()), mixed / "IM.dcm")
    with pytest.raises(SeriesError) as info:
        read_volume(classic(mixed))
    assert "1 multi-frame and 1 single-frame files in one series" in str(info.value)


# ----------------------------------------------------------------------------- headers


def test_header_fields_of_the_legacy_converted_object(export, t1_enhanced):
    want = classic(patient_dir(export) / "t1")
    got = classic(t1_enhanced.parent)
    for field in ("repetition_time_ms", "echo_time_ms", "flip_angle_deg", "pixel_spacing_mm",
                  "slice_thickness_mm", "series_uid", "frame_of_reference_uid",
                  "contrast_agent"):
        assert getattr(got, field) == pytest.approx(getattr(want, field)), field
    assert got.files[0].image_orientation == pytest.approx(want.files[0].image_orientation)
    assert got.files[0].number_of_frames == len(want.files)


def enhanced_headers(src: Path, out: Path, *, administered: str | None = "YES",
                     agent_name: str | None = "Gadoterate meglumine") -> Path:
    """The converted object with TR, TE and flip angle only in the Enhanced MR functional
    groups and the Enhanced Contrast/Bolus module (PS3.3 C.8.13.5.2, C.8.13.5.4, C.7.6.4b,
    C.7.6.16.2.12)."""
    ds = pydicom.dcmread(src)
    shared = ds.SharedFunctionalGroupsSequence[0]
    converted = shared.UnassignedSharedConvertedAttributesSequence[0]
    for kw in ("RepetitionTime", "EchoTime", "FlipAngle"):
        if kw in converted:
            delattr(converted, kw)
    if "ContrastBolusAgent" in ds:
        del ds.ContrastBolusAgent
    timing = Dataset()
    timing.RepetitionTime = 512.5
    timing.FlipAngle = 75.0
    timing.EchoTrainLength = 1
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    for group in frame_groups(ds):
        echo = Dataset()
        echo.EffectiveEchoTime = 9.5
        group.MREchoSequence = Sequence([echo])
    agent = Dataset()
    if agent_name:
        agent.CodeValue = "C0000000"
        agent.CodingSchemeDesignator = "99TEST"
        agent.CodeMeaning = agent_name
    agent.ContrastBolusAgentNumber = 1
    route = Dataset()
    route.CodeValue = "47625008"
    route.CodingSchemeDesignator = "SCT"
    route.CodeMeaning = "Intravenous route"
    agent.ContrastBolusAdministrationRouteSequence = Sequence([route])
    agent.ContrastBolusVolume = 15.0
    profile = Dataset()
    profile.ContrastBolusStartTime = "101500"
    agent.ContrastAdministrationProfileSequence = Sequence([profile])
    ds.ContrastBolusAgentSequence = Sequence([agent])
    if administered is not None:
        usage = Dataset()
        usage.ContrastBolusAgentNumber = 1
        usage.ContrastBolusAgentAdministered = administered
        shared.ContrastBolusUsageSequence = Sequence([usage])
    ds.AcquisitionDateTime = "20200102101600.000000"
    if "AcquisitionTime" in ds:
        del ds.AcquisitionTime
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out)
    return out


def test_header_fields_from_the_functional_groups(t1_enhanced, tmp_path):
    out = enhanced_headers(t1_enhanced, tmp_path / "H" / "e.dcm")
    result = scan(out.parent)
    assert result.problems == []
    (s,) = result.series
    assert s.repetition_time_ms == 512.5 and s.flip_angle_deg == 75.0
    assert s.echo_time_ms == 9.5
    assert s.contrast_agent == "Gadoterate meglumine"
    assert s.contrast_route == "Intravenous route" and s.contrast_volume_ml == 15.0
    assert s.contrast_start_time == "101500"
    assert s.acquisition_time == "101600.000000"
    assert s.pixel_spacing_mm is not None and s.slice_thickness_mm is not None
    f = s.files[0]
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    first = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    assert f.image_position == pytest.approx(tuple(float(v) for v in
                                                   first.ImagePositionPatient))
    assert f.image_orientation is not None and f.number_of_frames == ds.NumberOfFrames


@pytest.mark.parametrize("administered, name, expected", [
    ("NO", "Gadoterate meglumine", ""),
    ("YES", None, "administered (agent not named)"),
    (None, "Gadobutrol", "Gadobutrol"),  # the module without usage: an agent was used
])
def test_contrast_agent_from_the_enhanced_contrast_module(t1_enhanced, tmp_path, administered,
                                                          name, expected):
    out = enhanced_headers(t1_enhanced, tmp_path / "H" / "e.dcm", administered=administered,
                           agent_name=name)
    (s,) = scan(out.parent).series
    assert s.contrast_agent == expected


# ----------------------------------------------------------------------------- import


def test_import_with_an_enhanced_t1_equals_the_classic_import(export, t1_enhanced, tmp_path):
    from parotidlib.dicom.importer import import_dicom

    copy_src = tmp_path / "D"
    shutil.copytree(export, copy_src)
    t1 = patient_dir(copy_src) / "t1"
    shutil.rmtree(t1)
    t1.mkdir()
    shutil.copy(t1_enhanced, t1 / "ENH.dcm")
    (copy_src / "SOURCE.json").unlink(missing_ok=True)  # not the kit's export any more
    classic_result = import_dicom(export, tmp_path / "C1", clinical=export / "clinical.csv",
                                  progress=False)
    enhanced_result = import_dicom(copy_src, tmp_path / "C2",
                                   clinical=copy_src / "clinical.csv", progress=False)
    assert len(classic_result.imported) == 1, classic_result.refused
    assert len(enhanced_result.imported) == 1, enhanced_result.refused
    rows = [pd.read_csv(r.manifest, dtype=str).iloc[0] for r in (classic_result,
                                                                 enhanced_result)]
    images = [nib.load(Path(r.manifest).parent / row["t1"])
              for r, row in zip((classic_result, enhanced_result), rows, strict=True)]
    np.testing.assert_array_equal(np.asarray(images[0].dataobj), np.asarray(images[1].dataobj))
    np.testing.assert_allclose(images[0].affine, images[1].affine, atol=1e-4)
    labels = [np.asarray(nib.load(Path(r.manifest).parent / row["t1_labels"]).dataobj)
              for r, row in zip((classic_result, enhanced_result), rows, strict=True)]
    np.testing.assert_array_equal(labels[0], labels[1])


def test_an_echo_rule_picks_one_echo_of_a_multiframe_object(export, tmp_path):
    from parotidlib.dicom.roles import echo_to_read, echoes, pick_echo
    from parotidlib.dicom.rules import load_rules

    out, _, _ = two_echo_object(export, tmp_path / "E3" / "dual.dcm")
    series = classic(out.parent)
    assert [te for te, _ in echoes(series)] == [10.21, 80.0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("series:\n  t1:\n    description: ['t1']\n    echo: longest\n")
    chosen, note = pick_echo(series, "t1", load_rules(rules))
    assert "echo 2 of 2 (TE 80 ms" in note and echo_to_read(chosen) == 80.0
    want = read_volume(classic(patient_dir(export) / "t1"))
    got = read_volume(chosen, echo_time_ms=echo_to_read(chosen))
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj) // 2)
