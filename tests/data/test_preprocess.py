"""Alignment, crops and the four-channel samples (parotidlib.data.align/crop/preprocess)."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from test_cohort import T1_GRID, T2_GRID, label_world, make_affine, make_volumes

from parotidlib.config import CurationConfig
from parotidlib.data.align import AlignmentError, align_labels, bbox3d
from parotidlib.data.crop import Box, extract_box, resize_square, square_box, to_display
from parotidlib.data.preprocess import intensity_window, preprocess_patient
from parotidlib.data.volumes import PatientVolumes, check_patient_data


def patient(tumor_side="right", histology="malignant", pid="X1", **kwargs) -> PatientVolumes:
    vols = make_volumes(tumor_side, **kwargs)
    return PatientVolumes(pid, histology, tumor_side, {s: v[0] for s, v in vols.items()},
                          {s: v[1] for s, v in vols.items()})


def quiet(volumes, config=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return preprocess_patient(volumes, config)


# ------------------------------------------------------------------ crop primitives


def test_square_box_exact():
    mask = np.zeros((64, 48), bool)
    mask[30:36, 20:28] = True  # 6 x 8 px
    # margin 2 px -> 10 x 12; squared to 12 x 12, the 2 extra rows split 1/1
    assert square_box(mask, (1.0, 1.0), 2.0) == Box(27, 39, 18, 30)
    # anisotropic pixels: square in mm. 6 x 0.5 mm = 3 mm, 8 x 1 mm = 8 mm (no margin)
    box = square_box(mask, (0.5, 1.0), 0.0)
    assert box.shape == (16, 8)
    assert (box.i0, box.i1) == (25, 41) and (box.j0, box.j1) == (20, 28)
    with pytest.raises(ValueError, match="empty"):
        square_box(np.zeros((4, 4), bool), (1.0, 1.0), 1.0)


def test_extract_box_pads_with_zeros():
    plane = np.arange(1, 26, dtype=float).reshape(5, 5)
    out = extract_box(plane, Box(-2, 3, 3, 7))
    assert out.shape == (5, 4)
    assert np.all(out[:2] == 0) and np.all(out[:, 2:] == 0)
    np.testing.assert_array_equal(out[2:, :2], plane[0:3, 3:5])


@pytest.mark.parametrize("side", [13, 224, 400])
def test_resize_matches_torch_antialiased_bilinear(side):
    rng = np.random.default_rng(side)
    crop = rng.random((side, side)).astype(np.float32)
    ours = resize_square(crop, 64)
    ref = torch.nn.functional.interpolate(torch.from_numpy(crop)[None, None], size=(64, 64),
                                          mode="bilinear", align_corners=False,
                                          antialias=True)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_resize_identity_and_antialiasing():
    crop = np.random.default_rng(0).random((13, 13)).astype(np.float32)
    np.testing.assert_allclose(resize_square(crop, 13), crop, atol=1e-6)
    # shrinking a 1-px checkerboard is anti-aliased to ~0.5, not aliased to 0 or 1
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    small = resize_square(checker, 16)
    assert abs(small.mean() - 0.5) < 0.02 and small.std() < 0.05


def test_intensity_window_ignores_air():
    data = np.zeros((10, 10, 10), np.float32)
    data[2:8, 2:8, 2:8] = np.linspace(100, 200, 216).reshape(6, 6, 6)
    lo, hi = intensity_window(data, 0.5, 99.5)
    body = data[data > 0]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(body, [0.5, 99.5])))
    assert lo > 100


# ------------------------------------------------------------------ alignment


def oblique_t2_grid():
    """T2 rotated 10 degrees about z, 1.3 x 1.25 x 5 mm, shifted: a really different grid."""
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.3, 1.25, 5.0])
    affine[:3, 3] = rot @ np.array([-36.0, -30.0, -19.3]) + [0.7, -0.4, 0.0]
    return (60, 50, 9), affine


@pytest.mark.parametrize("t2_grid", [T2_GRID, oblique_t2_grid()], ids=["shifted", "oblique"])
def test_aligned_tumour_box_matches_t1(t2_grid):
    vols = patient(grids={"t1": T1_GRID, "ce_t1": T1_GRID, "t2": t2_grid})
    t1 = vols.images["t1"]
    t1_box = bbox3d(np.asanyarray(vols.labels["t1"].dataobj) == 3)
    aligned = align_labels(vols.labels["t2"], t1.shape, t1.affine, "X1", "t2")
    t2_box = bbox3d(aligned == 3)
    # in-plane within a voxel; through-plane the 5 mm T2 slices may gain or lose one 4 mm slice
    np.testing.assert_allclose(t2_box[0][:2], t1_box[0][:2], atol=1)
    np.testing.assert_allclose(t2_box[1][:2], t1_box[1][:2], atol=1)
    np.testing.assert_allclose(t2_box[0][2], t1_box[0][2], atol=1)
    np.testing.assert_allclose(t2_box[1][2], t1_box[1][2], atol=1)
    # the crops show the same world: with an intensity ramp linear in world coordinates
    # (reproduced exactly by trilinear interpolation), the T2 crop is the T1 crop up to the
    # intensity window; a flipped or misplaced crop would break the correlation
    def ramp(xyz, lab, series):
        return (400.0 + xyz @ np.array([3.0, 5.0, 2.0])).astype(np.float32)

    vols = patient(grids={"t1": T1_GRID, "ce_t1": T1_GRID, "t2": t2_grid}, intensity_fn=ramp)
    out = quiet(vols, CurationConfig(image_size=32, mask_background=False))
    lesion = out.slices["label"].to_numpy() != "free"
    t1_ch, t2_ch = out.images[lesion, 0].astype(float), out.images[lesion, 2].astype(float)
    for a, b in zip(t1_ch, t2_ch, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.97
        # radiological display: anterior (+y) at the top, the patient's right (+x) at the left
        assert a[0, 0] == a.max() and a[-1, -1] == a.min()


def test_non_overlapping_series_raises_naming_patient_and_series():
    far = make_affine((1.3, 1.25, 5.0), (966.3, -25.9, -19.3))
    vols = patient(pid="FAR", grids={"t1": T1_GRID, "ce_t1": T1_GRID,
                                     "t2": (T2_GRID[0], far)})
    with pytest.raises(AlignmentError, match=r"patient FAR: series t2 .*does not overlap"):
        quiet(vols)


# ------------------------------------------------------------------ samples


def test_crop_contents_exact():
    vols = patient("right", grids={"t1": T1_GRID, "ce_t1": T1_GRID, "t2": T1_GRID})
    # T1 tumour: x 9.5..14.5 -> i 41..46, y -2.5..4.5 -> j 21..28; margin 2 -> 10 x 12 -> 12
    config = CurationConfig(image_size=12, crop_margin_mm=2.0, channels=("t1", "gland"))
    out = quiet(vols, config)
    t1 = np.asanyarray(vols.images["t1"].dataobj)
    lab = np.asanyarray(vols.labels["t1"].dataobj)
    lo, hi = np.percentile(t1[t1 > 0], [0.5, 99.5])
    k = 4
    row = np.flatnonzero((out.slices["slice_index"] == k) & (out.slices["label"] != "free"))[0]
    crop = ((t1[38:50, 19:31, k] - lo) / (hi - lo)).clip(0, 1) * (lab[38:50, 19:31, k] == 3)
    expected = np.round(crop.T[::-1, ::-1] * 255).astype(np.uint8)
    np.testing.assert_allclose(out.images[row, 0].astype(int), expected.astype(int), atol=1)
    assert out.slices.loc[row, "tumor_area_mm2"] == 48.0
    # gland channel: box of right gland + tumour (x 6.5..17.5 -> i 38..49, y -8.5..8.5
    # -> j 15..32, margin 2 -> 16 x 22 -> 22 x 22) resized 22 -> 12
    gland_roi = (lab[:, :, k] == 1) | (lab[:, :, k] == 3)
    assert square_box(gland_roi, (1, 1), 2.0) == Box(33, 55, 13, 35)
    roi = (lab[33:55, 13:35, k] == 1) | (lab[33:55, 13:35, k] == 3)
    gland = ((t1[33:55, 13:35, k] - lo) / (hi - lo)).clip(0, 1) * roi
    expected = np.round(resize_square(to_display(gland), 12) * 255).astype(np.uint8)
    np.testing.assert_allclose(out.images[row, 1].astype(int), expected.astype(int), atol=1)


def test_slices_labels_and_counts():
    out = quiet(patient("right", histology="warthin"), CurationConfig(image_size=224))
    lesion = out.slices[out.slices["label"] != "free"]
    free = out.slices[out.slices["label"] == "free"]
    # tumour |z| <= 6 mm on 4 mm slices centred at -18 + 4k: k = 3..6
    assert lesion["slice_index"].tolist() == [3, 4, 5, 6]
    assert set(lesion["label"]) == {"warthin"} and set(lesion["label_index"]) == {2}
    assert set(lesion["side"]) == {"right"}
    # contralateral (left) gland |z| <= 14 mm: k = 1..8
    assert free["slice_index"].tolist() == list(range(1, 9))
    assert set(free["side"]) == {"left"} and set(free["label_index"]) == {0}
    assert free["z_mm"].tolist() == [-14.0 + 4 * i for i in range(8)]
    assert out.images.shape == (12, 4, 224, 224) and out.images.dtype == np.uint8
    assert not out.no_free_slices
    big = quiet(patient("right"), CurationConfig(min_tumor_area_mm2=49.0))
    assert (big.slices["label"] != "free").sum() == 0


def test_both_sides_one_sample_per_side_and_no_free():
    def labels(xyz):
        lab = label_world(xyz, "left")  # left tumour 6 x 8 mm
        x, y, z = np.moveaxis(xyz, -1, 0)
        right = (np.abs(x - 12) <= 4) & (np.abs(y) <= 6) & (np.abs(z) <= 6)  # 8 x 12 mm
        lab[right] = 3
        return lab

    out = quiet(patient("both", label_fn=labels))
    assert (out.slices["label"] == "free").sum() == 0
    assert out.slices.groupby("slice_index")["side"].apply(sorted).map(tuple).unique().tolist() \
        == [("left", "right")]
    area = out.slices.groupby("side")["tumor_area_mm2"].first()
    assert area["left"] == 48.0 and area["right"] == 96.0  # the bigger one is on the right (+x)


def test_channel_subsets_match_full():
    vols = patient("left")
    full = quiet(vols, CurationConfig(image_size=32))
    part = quiet(vols, CurationConfig(image_size=32, channels=("t1", "gland")))
    assert part.images.shape == (len(full.slices), 2, 32, 32)
    np.testing.assert_array_equal(part.images[:, 0], full.images[:, 0])
    np.testing.assert_array_equal(part.images[:, 1], full.images[:, 3])
    t2 = quiet(vols, CurationConfig(image_size=32, channels=("t2",)))
    np.testing.assert_array_equal(t2.images[:, 0], full.images[:, 2])


@pytest.mark.parametrize("channels, message", [
    (("t2", "t1"), "channels must"), (("t1", "t1"), "channels must"), ((), "channels must"),
    (("t1", "flair"), r"channels entry 'flair' is not one of series \[t1, ce_t1, t2\]")])
def test_bad_channels_rejected(channels, message):
    with pytest.raises(ValueError, match=message):
        CurationConfig(channels=channels)


def test_las_t1_gives_same_images_as_ras():
    # the same voxel centres stored in x-flipped (LAS) order
    shape, zooms, origin, _ = T1_GRID
    las = (shape, zooms, (origin[0] + (shape[0] - 1) * zooms[0], *origin[1:]), True)
    config = CurationConfig(image_size=32)
    ras = quiet(patient(grids={"t1": T1_GRID, "ce_t1": T1_GRID, "t2": T2_GRID}), config)
    flipped = quiet(patient(grids={"t1": las, "ce_t1": T1_GRID, "t2": T2_GRID}), config)
    assert ras.slices.equals(flipped.slices)
    np.testing.assert_array_equal(ras.images, flipped.images)


def test_minmax_normalisation_spans_roi():
    out = quiet(patient(), CurationConfig(normalisation="minmax", image_size=64,
                                          crop_margin_mm=0.0))
    lesion = out.images[out.slices["label"].to_numpy() != "free", 0]
    assert lesion.max() >= 250  # the ROI's maximum maps to 255 (before bilinear resizing)


# ------------------------------------------------------------------ degenerate input


def test_empty_series_mask_falls_back_to_t1_box_with_warning():
    vols = patient(pid="EMPTY")
    lab = np.asanyarray(vols.labels["ce_t1"].dataobj).copy()
    lab[:, :, :4][lab[:, :, :4] == 3] = 1  # no tumour on CE-T1's lower slices
    vols.labels["ce_t1"] = nib.Nifti1Image(lab, vols.labels["ce_t1"].affine)
    with pytest.warns(UserWarning, match=r"patient EMPTY, series ce_t1, slice\(s\) 3: no tumour"):
        out = preprocess_patient(vols)
    assert out.images[0, 1].max() > 0  # the fallback crop still shows the tumour


def test_tumour_at_image_edge_warns_and_pads():
    vols = patient(pid="EDGE", tumour_centre=(29.0, 1.0, 0.0))
    with pytest.warns(UserWarning,
                      match=r"patient EDGE, channel t1, slice\(s\) 3, 4, 5, 6: the ROI touches"):
        out = preprocess_patient(vols, CurationConfig(image_size=32, mask_background=False))
    lesion = out.images[out.slices["label"].to_numpy() != "free", 0]
    # display columns run from the patient's right (+x, the clipped side): zero padded there
    assert np.all(lesion[:, :, 0] == 0) and lesion.max() > 0


def test_missing_contralateral_gland_reported():
    vols = patient("right", pid="NOGLAND")
    for series in ("t1", "ce_t1", "t2"):
        lab = np.asanyarray(vols.labels[series].dataobj).copy()
        lab[lab == 2] = 0
        vols.labels[series] = nib.Nifti1Image(lab, vols.labels[series].affine)
    with pytest.warns(UserWarning, match=r"patient NOGLAND: no slice of the contralateral "
                                         r"\(left\) gland"):
        out = preprocess_patient(vols)
    assert out.no_free_slices and (out.slices["label"] == "free").sum() == 0


def test_swapped_gland_labels_warn_and_a_side_conflict_is_a_problem():
    def swapped(xyz):
        lab = label_world(xyz, "right")
        return np.select([lab == 1, lab == 2], [2, 1], lab.astype(int)).astype(np.uint8)

    # sides follow the labels: the tumour (at +x) now lies in the gland labelled left (2),
    # which contradicts the manifest's "right": a validation problem of the patient, which
    # preprocessing no longer merely warns about
    vols = patient("right", pid="SWAP", label_fn=swapped)
    problems = check_patient_data(vols)
    assert {(p.patient_id, p.column) for p in problems} == {("SWAP", "tumor_side")}
    assert problems[0].message.startswith("manifest tumor_side is 'right' but the tumour "
                                          "(label 3) lies on the left side")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        preprocess_patient(vols)
    messages = [str(w.message) for w in caught]
    assert any("RAS" in m for m in messages)
    assert not any("tumor_side" in m for m in messages)
    # labelled as the manifest says ("left"): valid, and the RAS contradiction still warns
    vols = patient("left", pid="SWAP", label_fn=swapped)
    assert check_patient_data(vols) == []
    with pytest.warns(UserWarning, match="RAS"):
        out = preprocess_patient(vols)
    assert set(out.slices.loc[out.slices["label"] != "free", "side"]) == {"left"}
    assert set(out.slices.loc[out.slices["label"] == "free", "side"]) == {"right"}


def test_centroid_is_the_exact_integer_moment_over_the_count():
    # _centroid calls scipy.ndimage.center_of_mass; its float sum of integer products is
    # exact, so it must equal (bit for bit) the integer first moment divided by the count
    # that decides a tumour's side of the midline.
    from parotidlib.data.preprocess import _centroid

    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = rng.random(tuple(rng.integers(1, 40, 3))) < rng.uniform(0.01, 0.9)
        if not mask.any():
            assert _centroid(mask) is None
            continue
        idx = np.argwhere(mask)  # int64 voxel indices
        expected = idx.sum(axis=0).astype(float) / len(idx)
        got = _centroid(mask)
        assert got.dtype == np.float64 and got.shape == (3,)
        assert np.array_equal(got, expected)
    assert _centroid(np.zeros((4, 5, 6), bool)) is None
