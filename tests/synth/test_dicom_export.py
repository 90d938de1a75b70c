"""The synthetic cohort written as DICOM (parotidlib.synth.dicom) against its NIfTI source."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from skimage.draw import polygon2mask

from parotidlib.constants import SERIES
from parotidlib.synth.dicom import (
    SOURCE_NAME,
    affine_to_dicom_geometry,
    dicom_geometry_to_affine,
    mask_to_contours,
    reference_manifest,
    write_dicom_cohort,
)
from parotidlib.synth.generate import generate_cohort

SCALE = 4.0
N, SEED = 2, 5
MR = "1.2.840.10008.5.1.4.1.1.4"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
ROI_LABEL = {"Parotid_R": 1, "Parotid_L": 2, "GTV": 3}
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dicom")


@pytest.fixture(scope="module")
def nifti(base) -> Path:
    return generate_cohort(base / "nifti", n_patients=N, seed=SEED, jobs=1, pixel_scale=SCALE)


def _export(base: Path, nifti: Path, name: str, **kwargs) -> Path:
    return write_dicom_cohort(base / name, n_patients=N, seed=SEED, jobs=1, pixel_scale=SCALE,
                              nifti_dir=nifti.parent, **kwargs)


@pytest.fixture(scope="module")
def plain(base, nifti) -> Path:
    return _export(base, nifti, "plain")


@pytest.fixture(scope="module")
def shuffled(base, nifti) -> Path:
    return _export(base, nifti, "shuffled", shuffle=True)


@pytest.fixture(scope="module")
def oblique(base, nifti) -> Path:
    return _export(base, nifti, "oblique", oblique_deg=20.0, anisotropic=True, shuffle=True,
                   contours_on="t1")


def _manifest(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"patient_id": str, "sex": str})


def _read_tree(root: Path) -> dict:
    """{patient: {"mr": {series_uid: [datasets]}, "rs": [datasets]}} of every DICOM file."""
    out: dict = defaultdict(lambda: {"mr": defaultdict(list), "rs": []})
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix in (".csv", ".json", ".gz"):
            continue
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        if ds.SOPClassUID == MR:
            out[ds.PatientID]["mr"][ds.SeriesInstanceUID].append(ds)
        else:
            assert ds.SOPClassUID == RTSTRUCT
            out[ds.PatientID]["rs"].append(ds)
    return out


def _series_name(ds) -> str:
    desc = ds.SeriesDescription.lower()
    if "+c" in desc:
        return "ce_t1"
    return "t2" if desc.startswith("t2") else "t1"


def _stack(slices: list) -> tuple[np.ndarray, np.ndarray]:
    """Volume [i, j, k] and RAS affine from one MR series, sorted by position (own formula)."""
    o = np.asarray(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(o[:3], o[3:])
    slices = sorted(slices, key=lambda d: float(np.dot(d.ImagePositionPatient, normal)))
    data = np.stack([d.pixel_array.T for d in slices], axis=2)
    ps = np.asarray(slices[0].PixelSpacing, dtype=float)
    first = np.asarray(slices[0].ImagePositionPatient, dtype=float)
    lps = np.eye(4)
    lps[:3, 0] = o[:3] * ps[1]
    lps[:3, 1] = o[3:] * ps[0]
    if len(slices) > 1:
        last = np.asarray(slices[-1].ImagePositionPatient, dtype=float)
        lps[:3, 2] = (last - first) / (len(slices) - 1)
    else:
        lps[:3, 2] = normal * float(slices[0].SpacingBetweenSlices)
    lps[:3, 3] = first
    return data, LPS @ lps


def _rasterise(rs, shape, affine, sop_to_k: dict) -> dict[str, np.ndarray]:
    """ROI name -> mask, contours filled with polygon2mask and combined by XOR."""
    inv = np.linalg.inv(LPS @ affine)
    names = {r.ROINumber: r.ROIName for r in rs.StructureSetROISequence}
    out = {}
    for rc in rs.ROIContourSequence:
        mask = np.zeros(shape, dtype=bool)
        for c in getattr(rc, "ContourSequence", []):
            assert c.ContourGeometricType == "CLOSED_PLANAR"
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            assert len(pts) == c.NumberOfContourPoints
            vox = np.column_stack([pts, np.ones(len(pts))]) @ inv.T
            k = int(round(vox[0, 2]))
            np.testing.assert_allclose(vox[:, 2], k, atol=1e-3)  # planar, on a slice
            assert sop_to_k[c.ContourImageSequence[0].ReferencedSOPInstanceUID] == k
            mask[:, :, k] ^= polygon2mask(shape[:2], vox[:, :2])
        out[names[rc.ReferencedROINumber]] = mask
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def _check_against(tree: dict, manifest_path: Path, contours_on: str = "all") -> None:
    manifest = _manifest(manifest_path)
    assert sorted(tree) == sorted(manifest["patient_id"])
    for _, row in manifest.iterrows():
        patient = tree[row["patient_id"]]
        assert len(patient["mr"]) == 3
        frames = {s[0].FrameOfReferenceUID for s in patient["mr"].values()}
        assert len(frames) == 1
        studies = {s[0].StudyInstanceUID for s in patient["mr"].values()}
        assert len(studies) == 1
        by_name = {_series_name(s[0]): s for s in patient["mr"].values()}
        assert sorted(by_name) == sorted(SERIES)
        rs_by_series = {}
        for rs in patient["rs"]:
            ref = rs.ReferencedFrameOfReferenceSequence[0]
            assert ref.FrameOfReferenceUID in frames
            uid = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]\
                .SeriesInstanceUID
            rs_by_series[_series_name(patient["mr"][uid][0])] = rs
        expected = list(SERIES) if contours_on == "all" else ["t1"]
        assert sorted(rs_by_series) == sorted(expected)
        for series in SERIES:
            img = nib.load(manifest_path.parent / row[series])
            lab = nib.load(manifest_path.parent / row[f"{series}_labels"])
            slices = by_name[series]
            data, affine = _stack(slices)
            np.testing.assert_array_equal(data, np.asarray(img.dataobj))
            np.testing.assert_allclose(affine, img.affine, atol=1e-4)
            for ds in slices:
                assert ds.Modality == "MR"
                assert ds.RescaleSlope == 1 and ds.RescaleIntercept == 0
                assert ds.PatientName == f"SYNTHETIC^{row['patient_id']}"
                assert ds.PatientAge == f"{int(row['age']):03d}Y"
                assert ds.PatientSex == row["sex"]
                assert float(ds.RepetitionTime) == pytest.approx(row[f"{series}_tr_ms"])
                assert float(ds.EchoTime) == pytest.approx(row[f"{series}_te_ms"])
                assert float(ds.MagneticFieldStrength) == row["field_strength_t"]
                assert ds.Manufacturer.lower().split()[0] in row["scanner"].lower()
                assert ds.ManufacturerModelName.split()[0] in row["scanner"]
                assert ("ContrastBolusAgent" in ds) == (series == "ce_t1")
            if series == "ce_t1":
                assert slices[0].ContrastBolusAgent == "GADOLINIUM"
                assert float(slices[0].FlipAngle) == pytest.approx(row["ce_t1_flip_deg"])
            if series not in rs_by_series:
                continue
            normal = np.cross(*np.reshape(np.asarray(slices[0].ImageOrientationPatient,
                                                     dtype=float), (2, 3)))
            ordered = sorted(slices, key=lambda d: float(np.dot(d.ImagePositionPatient,
                                                                normal)))
            sop_to_k = {d.SOPInstanceUID: k for k, d in enumerate(ordered)}
            labels = np.asarray(lab.dataobj)
            masks = _rasterise(rs_by_series[series], labels.shape, affine, sop_to_k)
            assert sorted(masks) == sorted(ROI_LABEL)
            for name, value in ROI_LABEL.items():
                truth = labels == value
                assert _dice(masks[name], truth) >= 0.97, (row["patient_id"], series, name)
            # gland ROIs first, tumour last: the label map back
            back = np.zeros(labels.shape, dtype=np.uint8)
            for name in ("Parotid_R", "Parotid_L", "GTV"):
                back[masks[name]] = ROI_LABEL[name]
            assert _dice(back > 0, labels > 0) >= 0.97


def test_files_pixels_geometry_and_contours(plain, nifti):
    tree = _read_tree(plain)
    source = json.loads((plain / SOURCE_NAME).read_text())
    assert source["complete"] is True
    assert reference_manifest(plain) == nifti.resolve()
    _check_against(tree, nifti)
    # non-shuffled layout: <pid>/<series>/IM_0001.dcm in slice order, InstanceNumber k + 1
    for pid in tree:
        for series in SERIES:
            files = sorted((plain / pid / series).glob("IM_*.dcm"))
            numbers = [pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber
                       for f in files]
            assert numbers == list(range(1, len(files) + 1))


def test_series_descriptions_realistic(plain):
    tree = _read_tree(plain)
    for patient in tree.values():
        descs = {s[0].SeriesDescription for s in patient["mr"].values()}
        assert len(descs) == 3
        assert any("+C" in d for d in descs)


def test_clinical_csv_matches_manifest(plain, nifti):
    clinical = _manifest(plain / "clinical.csv")
    manifest = _manifest(nifti)
    assert list(clinical.columns) == ["patient_id", "histology", "tumor_side", "age", "sex"]
    pd.testing.assert_frame_equal(clinical, manifest[list(clinical.columns)])
    ids = {p for p in _read_tree(plain)}
    assert ids == set(clinical["patient_id"])


def _uids(tree: dict) -> set:
    out = set()
    for patient in tree.values():
        for slices in patient["mr"].values():
            out |= {(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID,
                     d.FrameOfReferenceUID) for d in slices}
        out |= {(d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID) for d in
                patient["rs"]}
    return out


def test_same_seed_same_uids_and_resume(base, nifti, plain):
    again = _export(base, nifti, "again")
    assert _uids(_read_tree(again)) == _uids(_read_tree(plain))
    # resume: a second call with the same settings keeps the complete patients
    stamp = {p: p.stat().st_mtime_ns for p in again.rglob("*.dcm")}
    _export(base, nifti, "again")
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*.dcm")} == stamp
    with pytest.raises(FileExistsError):
        _export(base, nifti, "again", shuffle=True)


def test_shuffle_changes_order_not_content(plain, shuffled):
    a, b = _read_tree(plain), _read_tree(shuffled)
    assert _uids(a) == _uids(b)
    for pid in a:
        flat = [p for p in (shuffled / pid).iterdir()]
        assert all(p.is_file() and p.name.startswith("IM_") for p in flat)
        for uid, slices in a[pid]["mr"].items():
            other = {d.SOPInstanceUID: d for d in b[pid]["mr"][uid]}
            for d in slices:
                e = other[d.SOPInstanceUID]
                assert e.PixelData == d.PixelData
                assert e.ImagePositionPatient == d.ImagePositionPatient
            numbers_plain = [d.InstanceNumber for d in sorted(
                slices, key=lambda d: d.ImagePositionPatient[2])]
            numbers_shuf = [other[d.SOPInstanceUID].InstanceNumber for d in sorted(
                slices, key=lambda d: d.ImagePositionPatient[2])]
            assert sorted(numbers_shuf) == numbers_plain
    # file names in sorted order no longer follow slices: at least one series out of order
    pid = sorted(a)[0]
    files = sorted((shuffled / pid).iterdir())
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    mr = [h for h in heads if h.SOPClassUID == MR]
    assert [h.SeriesInstanceUID for h in mr] != sorted(h.SeriesInstanceUID for h in mr) or \
        [float(h.ImagePositionPatient[2]) for h in mr] != sorted(
            float(h.ImagePositionPatient[2]) for h in mr)
    ordered = all(x.InstanceNumber < y.InstanceNumber for x, y in zip(mr, mr[1:], strict=False))
    assert not ordered


def test_oblique_anisotropic_reference(oblique, nifti):
    ref = reference_manifest(oblique)
    assert ref == (oblique / "reference" / "manifest.csv").resolve()
    tree = _read_tree(oblique)
    _check_against(tree, ref, contours_on="t1")
    src, dst = _manifest(nifti), _manifest(ref)
    for (_, a), (_, b) in zip(src.iterrows(), dst.iterrows(), strict=True):
        affines = {}
        for series in SERIES:
            ia, ib = nib.load(nifti.parent / a[series]), nib.load(ref.parent / b[series])
            np.testing.assert_array_equal(np.asarray(ia.dataobj), np.asarray(ib.dataobj))
            affines[series] = (ia.affine, ib.affine)
            zooms = np.linalg.norm(ib.affine[:3, :3], axis=0)
            assert zooms[0] == pytest.approx(1.3 * zooms[1], rel=1e-5)
            assert abs(ib.affine[2, 0]) > 0.1  # rotated out of the axial plane
        # one world transform for the three series: they stay aligned
        world = [b_ @ np.linalg.inv(a_) for a_, b_ in affines.values()]
        for w in world[1:]:
            np.testing.assert_allclose(w, world[0], atol=1e-3)
        slices = next(iter(tree[a["patient_id"]]["mr"].values()))
        ps = [float(v) for v in slices[0].PixelSpacing]
        assert ps[1] == pytest.approx(1.3 * ps[0], rel=1e-5)


def test_geometry_helpers_round_trip():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    aff = np.eye(4)
    aff[:3, :3] = q * np.array([0.7, 0.9, 5.0])
    aff[:3, 3] = rng.normal(size=3) * 50
    if np.linalg.det(aff[:3, :3]) < 0:
        aff[:3, 2] *= -1
    geo = affine_to_dicom_geometry(aff, 7)
    back = dicom_geometry_to_affine(geo["orientation"], geo["pixel_spacing"],
                                    geo["positions"][0], geo["positions"][-1], 7)
    np.testing.assert_allclose(back, aff, atol=1e-9)


def test_mask_to_contours_holes_and_islands():
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:18, 2:18] = True
    mask[5:15, 5:15] = False  # hole
    mask[8:12, 8:12] = True  # island in the hole
    mask[0, 19] = True  # single-pixel corner island
    contours = mask_to_contours(mask)
    assert len(contours) == 4
    filled = np.zeros_like(mask)
    for c in contours:
        filled ^= polygon2mask(mask.shape, c)
    np.testing.assert_array_equal(filled, mask)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="contours_on"):
        write_dicom_cohort(tmp_path / "x", 1, contours_on="t2")
    for kwargs, match in (({"n_patients": True}, "n_patients must be an integer >= 1"),
                          ({"n_patients": 1.0}, "n_patients must be an integer >= 1"),
                          ({"seed": -1}, "seed must be an integer >= 0")):
        with pytest.raises(ValueError, match=match):
            write_dicom_cohort(tmp_path / "x", **{"n_patients": 1, **kwargs})
    assert not (tmp_path / "x").exists()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "a.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_dicom_cohort(tmp_path / "foreign", 1, pixel_scale=SCALE, jobs=1)


def test_diffusion_series_as_a_scanner_writes_them(base, plain):
    """--diffusion: DWI (trace, b = 800) and ADC series with their diffusion attributes, the
    voxels and affines of the NIfTI cohort, and T1/CE-T1/T2 files byte-identical to the
    export without diffusion."""
    out = write_dicom_cohort(base / "diffusion", n_patients=N, seed=SEED, jobs=1,
                             pixel_scale=SCALE, diffusion=True)
    source = json.loads((out / SOURCE_NAME).read_text())
    assert source["settings"]["diffusion"] is True
    assert "diffusion" not in json.loads((plain / SOURCE_NAME).read_text())["settings"]
    manifest_path = reference_manifest(out)
    manifest = _manifest(manifest_path)
    tree = _read_tree(out)
    for _, row in manifest.iterrows():
        pid = row["patient_id"]
        for series in SERIES:
            for path in sorted((plain / pid / series).iterdir()):
                assert (out / pid / series / path.name).read_bytes() == path.read_bytes()
        by_desc = {s[0].SeriesDescription: s for s in tree[pid]["mr"].values()}
        assert len(by_desc) == 5
        dwi = next(s for d, s in by_desc.items() if "b800" in d or "TRACEW" in d)
        adc = next(s for d, s in by_desc.items() if "ADC" in d)
        for series, slices in (("dwi", dwi), ("adc", adc)):
            data, affine = _stack(slices)
            img = nib.load(manifest_path.parent / row[series])
            np.testing.assert_array_equal(data, np.asarray(img.dataobj))
            np.testing.assert_allclose(affine, img.affine, atol=1e-4)
            for ds in slices:
                assert list(ds.ScanningSequence) == ["SE", "EP"]
                assert float(ds.RepetitionTime) == pytest.approx(row["dwi_tr_ms"])
                assert float(ds.EchoTime) == pytest.approx(row["dwi_te_ms"])
                assert float(ds.SliceThickness) == pytest.approx(
                    row["dwi_slice_thickness_mm"])
        for ds in dwi:
            assert list(ds.ImageType)[:4] == ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"]
            assert ds.DiffusionBValue == row["dwi_b_value_s_mm2"] == 800
            assert ds.DiffusionDirectionality == "ISOTROPIC"
            assert "RealWorldValueMappingSequence" not in ds
        for ds in adc:
            assert list(ds.ImageType)[:4] == ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]
            (mapping,) = ds.RealWorldValueMappingSequence
            assert mapping.LUTLabel == "ADC" and mapping.RealWorldValueSlope == 1.0
            unit = mapping.MeasurementUnitsCodeSequence[0]
            assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("um2/s", "UCUM")
        # contours on every series (contours_on="all"), the diffusion ones included
        assert len(tree[pid]["rs"]) == 5
