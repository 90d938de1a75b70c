"""RTSTRUCT rasterisation and SEG reading (parotidlib.dicom.contours).

Every RTSTRUCT here is built with pydicom and has no ContourImageSequence: geometry alone
decides the slice. Expected masks are computed by hand from the pixel-centre rule.
"""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from parotidlib.dicom.contours import (
    ContourError,
    ContourWarning,
    default_tolerance_mm,
    rasterise_rtstruct,
    read_seg,
    roi_names,
)

FRAME = "1.2.826.0.1.3680043.8.498.1"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

# An axial grid as a DICOM series gives it: i along the rows (column index, 0.5 mm),
# j down the columns (row index, 0.8 mm), 3 mm slices; ni != nj.
SHAPE = (40, 24, 5)
AFFINE = np.array([
    [-0.5, 0.0, 0.0, 10.0],
    [0.0, -0.8, 0.0, 20.0],
    [0.0, 0.0, 3.0, -6.0],
    [0.0, 0.0, 0.0, 1.0],
])
# so voxel (i, j, k) lies at LPS x = 0.5 i - 10, y = 0.8 j - 20, z = 3 k - 6


def index_to_lps(index: np.ndarray, affine: np.ndarray = AFFINE) -> np.ndarray:
    index = np.atleast_2d(np.asarray(index, dtype=float))
    ras = index @ affine[:3, :3].T + affine[:3, 3]
    return ras @ LPS_TO_RAS.T


def rect_lps(z: float, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])


def rect_index(k: float, i0: float, i1: float, j0: float, j1: float,
               affine: np.ndarray = AFFINE) -> np.ndarray:
    corners = np.array([[i0, j0, k], [i1, j0, k], [i1, j1, k], [i0, j1, k]])
    return index_to_lps(corners, affine)


def contour_item(points_lps: np.ndarray, kind: str = "CLOSED_PLANAR") -> Dataset:
    item = Dataset()
    item.ContourGeometricType = kind
    item.NumberOfContourPoints = len(points_lps)
    item.ContourData = [f"{v:.6f}" for v in np.asarray(points_lps, dtype=float).ravel()]
    return item


def make_rtstruct(rois: dict[str, list], frame: str = FRAME,
                  roi_frame: str | None = None) -> Dataset:
    """rois: name -> list of (N, 3) LPS point arrays or (points, geometric type) pairs."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ref = Dataset()
    ref.FrameOfReferenceUID = frame
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = roi_frame or frame
        ds.StructureSetROISequence.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        items = []
        for c in contours:
            points, kind = c if isinstance(c, tuple) else (c, "CLOSED_PLANAR")
            items.append(contour_item(points, kind))
        rc.ContourSequence = Sequence(items)
        ds.ROIContourSequence.append(rc)
    return ds


def expected(box: tuple, shape=SHAPE) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    out[box] = True
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# ----------------------------------------------------------------------------- geometry


def test_square_on_non_square_anisotropic_grid_lands_on_hand_computed_voxels():
    """The rt-utils bug: PixelSpacing rows/columns swapped, non-square images clipped."""
    # LPS x -7.1..-4.9 -> i = (x + 10) / 0.5 = 5.8..10.2 -> centres i = 6..10
    # LPS y -17.9..-15.1 -> j = (y + 20) / 0.8 = 2.625..6.125 -> centres j = 3..6; z 0 -> k 2
    near = rect_lps(0.0, -7.1, -4.9, -17.9, -15.1)
    # far along i, beyond nj = 24: i = 29.6..38.4 -> 30..38, j = 0.6..2.4 -> 1..2, z 6 -> k 4
    far = rect_lps(6.0, 4.8, 9.2, -19.52, -18.08)
    masks = rasterise_rtstruct(make_rtstruct({"Parotid_L": [near, far]}), AFFINE, SHAPE,
                               frame_of_reference_uid=FRAME)
    want = expected(np.s_[6:11, 3:7, 2]) | expected(np.s_[30:39, 1:3, 4])
    assert masks["Parotid_L"].shape == SHAPE and masks["Parotid_L"].dtype == bool
    assert np.array_equal(masks["Parotid_L"], want)
    assert masks["Parotid_L"].sum() == 5 * 4 + 9 * 2


def test_oblique_grid_contour_in_its_plane():
    angle = np.deg2rad(25.0)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                    [-np.sin(angle), 0, np.cos(angle)]]) @ np.array(
        [[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.45, 2.5])
    affine[:3, 3] = [-30.0, 12.0, 40.0]
    shape = (12, 9, 6)
    points = rect_index(3, 2.3, 7.6, 1.2, 4.4, affine)
    masks = rasterise_rtstruct(make_rtstruct({"Tumour": [points]}), affine, shape)
    assert np.array_equal(masks["Tumour"], expected(np.s_[3:8, 2:5, 3], shape))


def test_ring_keeps_its_hole_and_island_inside_hole_stays():
    outer = rect_index(1, 2.5, 12.5, 2.5, 12.5)
    inner = rect_index(1, 5.5, 9.5, 5.5, 9.5)
    island = rect_index(1, 6.6, 8.4, 6.6, 8.4)
    masks = rasterise_rtstruct(
        make_rtstruct({"ring": [outer, inner], "nested": [inner, outer, island]}),
        AFFINE, SHAPE)
    ring = expected(np.s_[3:13, 3:13, 1]) & ~expected(np.s_[6:10, 6:10, 1])
    assert np.array_equal(masks["ring"], ring)
    assert np.array_equal(masks["nested"], ring | expected(np.s_[7:9, 7:9, 1]))


def test_two_islands_on_one_slice():
    a = rect_index(2, 1.5, 4.5, 1.5, 4.5)
    b = rect_index(2, 20.5, 30.5, 10.5, 12.5)
    masks = rasterise_rtstruct(make_rtstruct({"islands": [a, b]}), AFFINE, SHAPE)
    want = expected(np.s_[2:5, 2:5, 2]) | expected(np.s_[21:31, 11:13, 2])
    assert np.array_equal(masks["islands"], want)


def test_default_tolerance():
    assert default_tolerance_mm(AFFINE) == pytest.approx(0.3)
    assert default_tolerance_mm(np.diag([1.0, 1.0, 0.5, 1.0])) == pytest.approx(0.1)


# ----------------------------------------------------------------------------- refusals


def test_tilted_contour_refused_naming_roi_and_distance(tmp_path):
    tilted = rect_index(2, 2.5, 8.5, 2.5, 8.5)
    tilted[1:3, 2] += 1.5  # two corners 1.5 mm higher: tilted against the axial planes
    good = rect_index(3, 2.5, 8.5, 2.5, 8.5)
    ds = make_rtstruct({"Parotid_R": [tilted], "Body": [good]})
    path = tmp_path / "rs.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ContourError) as info:
        rasterise_rtstruct(path, AFFINE, SHAPE, patient_id="P007")
    (problem,) = info.value.problems
    assert problem.patient_id == "P007"
    assert problem.column == "Parotid_R"
    assert problem.path == str(path.resolve())
    assert "'Parotid_R'" in problem.message and "tilted" in problem.message
    assert "1.500 mm from the nearest image plane" in problem.message
    assert "slice position 0.750 mm" in problem.message  # mean z, along the normal (+z)
    # the clean ROI is still available to a caller that only needs it
    assert set(info.value.masks) == {"Body"}
    assert np.array_equal(info.value.masks["Body"], expected(np.s_[3:9, 3:9, 3]))


def test_contour_between_slices_refused():
    between = rect_index(2.4, 2.5, 8.5, 2.5, 8.5)  # 0.4 planes = 1.2 mm above k = 2
    with pytest.raises(ContourError) as info:
        rasterise_rtstruct(make_rtstruct({"Tumour": [between]}), AFFINE, SHAPE)
    (problem,) = info.value.problems
    assert problem.column == "Tumour"
    assert "between image planes" in problem.message
    assert "slice position 1.200 mm" in problem.message
    assert "1.200 mm from the nearest image plane k=2" in problem.message
    # within a wider tolerance the same contour is accepted on k = 2
    masks = rasterise_rtstruct(make_rtstruct({"Tumour": [between]}), AFFINE, SHAPE,
                               tolerance_mm=1.5)
    assert np.array_equal(masks["Tumour"], expected(np.s_[3:9, 3:9, 2]))


def test_small_rounding_within_default_tolerance_accepted():
    points = rect_index(2.05, 2.5, 8.5, 2.5, 8.5)  # 0.15 mm off, default tolerance 0.3 mm
    masks = rasterise_rtstruct(make_rtstruct({"Tumour": [points]}), AFFINE, SHAPE)
    assert np.array_equal(masks["Tumour"], expected(np.s_[3:9, 3:9, 2]))


def test_contour_outside_the_slices_refused():
    with pytest.raises(ContourError, match=r"outside the series' 5 slices"):
        rasterise_rtstruct(make_rtstruct({"Tumour": [rect_index(7, 1.5, 3.5, 1.5, 3.5)]}),
                           AFFINE, SHAPE)


def test_every_problem_collected():
    bad = [rect_index(2.5, 1.5, 3.5, 1.5, 3.5), rect_index(1.5, 1.5, 3.5, 1.5, 3.5)]
    with pytest.raises(ContourError) as info:
        rasterise_rtstruct(make_rtstruct({"A": bad, "B": bad[:1]}), AFFINE, SHAPE)
    assert [p.column for p in info.value.problems] == ["A", "A", "B"]
    assert "contour 2" in info.value.problems[1].message


def test_wrong_frame_of_reference_refused():
    ds = make_rtstruct({"Tumour": [rect_index(2, 1.5, 3.5, 1.5, 3.5)]}, roi_frame="1.2.3.4")
    with pytest.raises(ContourError) as info:
        rasterise_rtstruct(ds, AFFINE, SHAPE, frame_of_reference_uid=FRAME)
    (problem,) = info.value.problems
    assert problem.column == "Tumour" and "1.2.3.4" in problem.message
    assert FRAME in problem.message
    # without a frame of reference to check against, geometry alone is used
    assert rasterise_rtstruct(ds, AFFINE, SHAPE)["Tumour"].sum() == 4


def test_malformed_contour_refused():
    ds = make_rtstruct({"Tumour": [rect_index(2, 1.5, 3.5, 1.5, 3.5)]})
    ds.ROIContourSequence[0].ContourSequence[0].NumberOfContourPoints = 5
    with pytest.raises(ContourError, match="NumberOfContourPoints is 5"):
        rasterise_rtstruct(ds, AFFINE, SHAPE)


def test_point_contours_warned_not_rasterised():
    marker = index_to_lps([[3.0, 3.0, 2.0]])
    ds = make_rtstruct({"Marker": [(marker, "POINT")],
                        "Tumour": [rect_index(2, 1.5, 3.5, 1.5, 3.5), (marker, "POINT")]})
    with pytest.warns(ContourWarning) as record:
        masks = rasterise_rtstruct(ds, AFFINE, SHAPE)
    assert set(masks) == {"Tumour"}
    assert masks["Tumour"].sum() == 4
    text = " ".join(str(w.message) for w in record)
    assert "'Marker'" in text and "left out" in text and "'Tumour'" in text


def test_empty_roi_and_names():
    ds = make_rtstruct({"Tumour": [rect_index(2, 1.5, 3.5, 1.5, 3.5)], "Empty": []})
    assert roi_names(ds) == ["Tumour", "Empty"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        masks = rasterise_rtstruct(ds, AFFINE, SHAPE)
    assert not masks["Empty"].any() and masks["Tumour"].sum() == 4


def test_duplicate_roi_names_refused():
    ds = make_rtstruct({"A": [rect_index(2, 1.5, 3.5, 1.5, 3.5)],
                        "B": [rect_index(2, 1.5, 3.5, 1.5, 3.5)]})
    ds.StructureSetROISequence[1].ROIName = "A"
    with pytest.raises(ContourError, match="occurs 2 times"):
        rasterise_rtstruct(ds, AFFINE, SHAPE)


# ----------------------------------------------------------------------------- round trip


def test_round_trip_against_find_contours():
    from scipy import ndimage
    from skimage import measure

    rng = np.random.default_rng(20210305)
    shape = (48, 36, 6)
    angle = np.deg2rad(12.0)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[np.cos(angle), -np.sin(angle), 0],
                               [np.sin(angle), np.cos(angle), 0],
                               [0, 0, 1]]) @ np.diag([-0.6, -0.9, 3.3])
    affine[:3, 3] = [15.0, 25.0, -8.0]
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(4.0, 3.0, 0.8))
    truth = noise > np.quantile(noise, 0.7)
    assert truth.sum() > 500

    contours = []
    for k in range(shape[2]):
        padded = np.pad(truth[:, :, k].astype(float), 1)
        for c in measure.find_contours(padded, 0.5):
            index = np.column_stack([c - 1.0, np.full(len(c), float(k))])
            contours.append(index_to_lps(index, affine))
    ds = make_rtstruct({"blob": contours})
    masks = rasterise_rtstruct(ds, affine, shape)
    assert dice(masks["blob"], truth) >= 0.97


# ----------------------------------------------------------------------------- SEG


def _mr_slices(shape=SHAPE) -> list[Dataset]:
    """An axial MR series on AFFINE: rows = j (0.8 mm), columns = i (0.5 mm)."""
    study, series = generate_uid(), generate_uid()
    out = []
    for k in range(shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P1", "P1^", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.InstanceNumber = "20210101", "", 1, k + 1
        ds.FrameOfReferenceUID = FRAME
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-10.0, -20.0, 3.0 * k - 6.0]
        ds.PixelSpacing = [0.8, 0.5]
        ds.SliceThickness = 3.0
        ds.Rows, ds.Columns = shape[1], shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.zeros((shape[1], shape[0]), np.uint16).tobytes()
        out.append(ds)
    return out


def _write_seg(tmp_path, slices, masks_ijk: dict[str, np.ndarray]):
    import highdicom as hd

    category = hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
    descriptions, stack = [], []
    for number, (label, mask) in enumerate(masks_ijk.items(), start=1):
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=label,
            segmented_property_category=category,
            segmented_property_type=hd.sr.CodedConcept("45289007", "SCT", "Parotid gland"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
        stack.append(np.transpose(mask, (2, 1, 0)))  # (k, j, i) = (frame, row, column)
    seg = hd.seg.Segmentation(
        source_images=slices, pixel_array=np.stack(stack, axis=-1).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=2,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    return path


def test_seg_read_onto_the_series_grid(tmp_path):
    gland = expected(np.s_[6:11, 3:7, 1:3])
    tumour = expected(np.s_[30:39, 1:3, 4])
    path = _write_seg(tmp_path, _mr_slices(), {"Parotid_L": gland, "Tumour": tumour})
    masks = read_seg(path, AFFINE, SHAPE, frame_of_reference_uid=FRAME)
    assert set(masks) == {"Parotid_L", "Tumour"}
    assert np.array_equal(masks["Parotid_L"], gland)
    assert np.array_equal(masks["Tumour"], tumour)
    with pytest.raises(ContourError, match="frame of reference"):
        read_seg(path, AFFINE, SHAPE, frame_of_reference_uid="1.2.3")


def test_seg_on_another_grid_refused(tmp_path):
    path = _write_seg(tmp_path, _mr_slices(), {"Tumour": expected(np.s_[6:11, 3:7, 2])})
    shifted = AFFINE.copy()
    shifted[2, 3] += 1.5  # planes half a slice away
    with pytest.raises(ContourError) as info:
        read_seg(path, shifted, SHAPE, patient_id="P1")
    problem = info.value.problems[0]
    assert problem.column == "Tumour" and problem.patient_id == "P1"
    assert "does not coincide" in problem.message


def test_dataset_from_file_roundtrip(tmp_path):
    ds = make_rtstruct({"Tumour": [rect_index(2, 1.5, 3.5, 1.5, 3.5)]})
    path = tmp_path / "rs.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert roi_names(path) == ["Tumour"]
    again = pydicom.dcmread(path)
    assert rasterise_rtstruct(again, AFFINE, SHAPE)["Tumour"].sum() == 4
