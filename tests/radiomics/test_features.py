"""parotidlib.radiomics.features: hand-computed values, scikit-image's contours, MIRP as oracle."""

import logging
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import find_contours

from parotidlib.radiomics.features import (
    FEATURE_NAMES,
    IBSI_CODES,
    dataset_features,
    slice_features,
)

SQRT2 = math.sqrt(2.0)


def _features(image, mask=None, n_bins=32):
    image = np.asarray(image)
    mask = image > 0 if mask is None else np.asarray(mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from degenerate input either
        return slice_features(image, mask, n_bins=n_bins)


def _embed(block, pad=2):
    """``block`` in the middle of a zero image."""
    return np.pad(np.asarray(block), pad)


def test_feature_names_are_fixed_unique_and_coded():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 44
    assert FEATURE_NAMES[:2] == ("shape_area_mesh", "shape_area_pixels")
    assert set(IBSI_CODES) == set(FEATURE_NAMES)
    assert all(len(code) == 4 for code in IBSI_CODES.values())
    assert list(_features(_embed(np.full((3, 3), 7)))) == list(FEATURE_NAMES)


# --------------------------------------------------------------------------- shape


def test_rectangle_area_perimeter_axes():
    a, b = 3, 5  # rows x columns of pixels
    f = _features(_embed(np.ones((a, b), np.uint8)))
    # marching squares through the pixel centres: straight sides of a-1 and b-1 pixels and
    # four corners cut by a diagonal of length sqrt(2)/2 (area 1/8 each)
    assert f["shape_area_mesh"] == pytest.approx(a * b - 0.5)
    assert f["shape_perimeter"] == pytest.approx(2 * (a + b) - 4 + 2 * SQRT2)
    assert f["shape_area_pixels"] == a * b
    area, perimeter = a * b - 0.5, 2 * (a + b) - 4 + 2 * SQRT2
    assert f["shape_perimeter_area_ratio"] == pytest.approx(perimeter / area)
    assert f["shape_circularity"] == pytest.approx(4 * math.pi * area / perimeter ** 2)
    # pixel-centre covariance over the 15 pixels (ddof 1): the columns 0..4, 3 times each,
    # sum of squared deviations 3 (4 + 1 + 0 + 1 + 4) = 30; the rows 0..2, 5 times: 10
    assert f["shape_major_axis"] == pytest.approx(4 * math.sqrt(30 / 14))
    assert f["shape_minor_axis"] == pytest.approx(4 * math.sqrt(10 / 14))
    assert f["shape_elongation"] == pytest.approx(math.sqrt(1 / 3))


def test_plus_sign_is_a_diamond():
    plus = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    f = _features(_embed(plus))
    # the contour is the square |r - 1| + |c - 1| = 1.5: side 1.5 sqrt 2
    assert f["shape_area_mesh"] == pytest.approx(4.5)
    assert f["shape_perimeter"] == pytest.approx(6 * SQRT2)
    assert f["shape_circularity"] == pytest.approx(math.pi / 4)  # any square
    assert f["shape_elongation"] == pytest.approx(1.0)


def test_diagonal_neighbours_are_separate_contours():
    f = _features(_embed(np.eye(2, dtype=np.uint8)))
    # two diamonds of area 1/2 and perimeter 2 sqrt 2 (the saddle cell is not joined)
    assert f["shape_area_mesh"] == pytest.approx(1.0)
    assert f["shape_perimeter"] == pytest.approx(4 * SQRT2)
    assert f["shape_minor_axis"] == 0.0 and f["shape_elongation"] == 0.0  # collinear


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shape_matches_scikit_image_marching_squares(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random((40, 40)), 2) > 0.5  # blobs, holes, saddles
    contours = find_contours(np.pad(mask, 1).astype(float), 0.5)
    assert all(np.allclose(c[0], c[-1]) for c in contours)  # closed
    perimeter = sum(np.hypot(*np.diff(c, axis=0).T).sum() for c in contours)
    area = abs(sum(0.5 * np.sum(c[:-1, 0] * c[1:, 1] - c[1:, 0] * c[:-1, 1])
                   for c in contours))
    f = _features(mask.astype(np.uint8), mask)
    assert f["shape_perimeter"] == pytest.approx(perimeter, rel=1e-12)
    assert f["shape_area_mesh"] == pytest.approx(area, rel=1e-12)
    assert f["shape_area_pixels"] == mask.sum()


# --------------------------------------------------------------------------- first order


def test_first_order_of_a_known_image():
    f = _features(_embed([[1, 2], [3, 4]]))
    assert f["stat_mean"] == 2.5
    assert f["stat_variance"] == pytest.approx(1.25)  # population variance (IBSI)
    assert f["stat_skewness"] == pytest.approx(0.0, abs=1e-12)
    assert f["stat_kurtosis"] == pytest.approx((0.5 * (1.5 ** 4 + 0.5 ** 4) / 1.25 ** 2) - 3)
    assert f["stat_median"] == 2.5
    assert (f["stat_min"], f["stat_max"], f["stat_range"]) == (1, 4, 3)
    assert f["stat_p10"] == pytest.approx(1.3) and f["stat_p90"] == pytest.approx(3.7)
    assert f["stat_iqr"] == pytest.approx(3.25 - 1.75)
    assert f["stat_mad"] == pytest.approx(1.0)
    assert f["stat_rmad"] == pytest.approx(0.5)  # 2 and 3 lie in [p10, p90]
    assert f["stat_cov"] == pytest.approx(math.sqrt(1.25) / 2.5)
    assert f["stat_energy"] == 30.0 and f["stat_rms"] == pytest.approx(math.sqrt(7.5))
    # 4 distinct values in 4 of 32 bins: entropy log2(4), uniformity 1/4
    assert f["ih_entropy"] == pytest.approx(2.0) and f["ih_uniformity"] == pytest.approx(0.25)


def test_mask_not_intensity_selects_the_roi():
    image = _embed([[10, 20], [30, 40]])
    mask = image > 15
    f = _features(image, mask)
    assert f["shape_area_pixels"] == 3 and f["stat_mean"] == 30.0


def test_fixed_bin_number_discretisation_edges():
    # min -> bin 1, max -> bin n_bins (not n_bins + 1), the rest floor(n (x - min) / range) + 1
    f = _features(_embed([[1.0, 2.0, 3.0, 5.0]]), n_bins=4)
    assert f["ih_entropy"] == pytest.approx(2.0)  # bins 1, 2, 3, 4: all distinct
    g = _features(_embed([[1.0, 1.0, 1.0, 5.0]]), n_bins=4)
    assert g["ih_uniformity"] == pytest.approx(0.75 ** 2 + 0.25 ** 2)


# --------------------------------------------------------------------------- texture


def test_glcm_of_vertical_stripes():
    stripes = np.tile([10, 20], (4, 2))  # 4 x 4, columns alternate
    f = _features(_embed(stripes), n_bins=2)  # bins 1 and 2
    # 0 deg: every pair differs; 90 deg: none; 45 and 135 deg: every pair differs
    assert f["cm_contrast"] == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert f["cm_dissimilarity"] == pytest.approx(0.75)
    assert f["cm_correlation"] == pytest.approx((-1 + 1 - 1 - 1) / 4)
    # each direction's symmetric matrix has two equal cells: energy 1/2, entropy 1 bit
    assert f["cm_energy"] == pytest.approx(0.5)
    assert f["cm_joint_entropy"] == pytest.approx(1.0)
    assert f["cm_inverse_difference"] == pytest.approx((0.5 + 1 + 0.5 + 0.5) / 4)
    assert f["cm_inverse_difference_moment"] == pytest.approx((0.5 + 1 + 0.5 + 0.5) / 4)
    assert f["cm_joint_average"] == pytest.approx(1.5)
    f32 = _features(_embed(stripes))  # 32 bins: levels 1 and 32
    assert f32["cm_contrast"] == pytest.approx(31 ** 2 * 0.75)


def test_glcm_of_a_checkerboard():
    board = (np.indices((4, 4)).sum(axis=0) % 2) * 10 + 10
    f = _features(_embed(board), n_bins=2)
    # 0 and 90 deg: every pair differs; both diagonals: none
    assert f["cm_contrast"] == pytest.approx(0.5)
    assert f["cm_correlation"] == pytest.approx(0.0)


def test_glcm_constant_roi_and_directions_without_pairs():
    f = _features(_embed(np.full((3, 3), 9)))
    assert f["cm_contrast"] == 0.0 and f["cm_correlation"] == 1.0  # MIRP's convention
    assert f["cm_energy"] == 1.0
    # a 1-pixel-wide row: only the 0-degree direction has pairs (the others are left out)
    row = _features(_embed([[1, 2, 1, 2]]), n_bins=2)
    assert row["cm_contrast"] == pytest.approx(1.0)


# image [[1, 1, 2], [2, 2, 2]] with 2 bins: bins equal the values
TINY = [[1, 1, 2], [2, 2, 2]]


def test_glrlm_by_hand():
    f = _features(_embed(TINY), n_bins=2)
    # runs (grey, length) per direction
    #   0 deg:   (1,2) (2,1) | (2,3)                 3 runs
    #   90 deg:  (1,1) (2,1) | (1,1) (2,1) | (2,2)   5 runs
    #   45 deg (j - i constant):  [1,2] [1,2] [2] [2] -> 6 runs of 1
    #   135 deg (i + j constant): [1] [1,2] [2,2] [2] -> (1,1) (1,1) (2,1) (2,2) (2,1)
    sre = [(1 / 4 + 1 + 1 / 9) / 3, (4 + 1 / 4) / 5, 1.0, (4 + 1 / 4) / 5]
    lre = [(4 + 1 + 9) / 3, 8 / 5, 1.0, 8 / 5]
    gln = [(1 + 4) / 3, (4 + 9) / 5, (4 + 16) / 6, (4 + 9) / 5]
    rln = [(1 + 1 + 1) / 3, (16 + 1) / 5, 36 / 6, (16 + 1) / 5]
    rp = [3 / 6, 5 / 6, 6 / 6, 5 / 6]
    for name, per_direction in [("rlm_sre", sre), ("rlm_lre", lre), ("rlm_glnu", gln),
                                ("rlm_rlnu", rln), ("rlm_rp", rp)]:
        assert f[name] == pytest.approx(np.mean(per_direction)), name


def test_glszm_by_hand():
    f = _features(_embed(TINY), n_bins=2)
    # zones: grey 1 of size 2, grey 2 of size 4 (8-connected)
    assert f["szm_sze"] == pytest.approx((1 / 4 + 1 / 16) / 2)
    assert f["szm_lze"] == pytest.approx((4 + 16) / 2)
    assert f["szm_glnu"] == pytest.approx(1.0) and f["szm_zsnu"] == pytest.approx(1.0)
    assert f["szm_zp"] == pytest.approx(2 / 6)


def test_glszm_zones_are_8_connected():
    f = _features(_embed([[1, 2], [2, 1]]), n_bins=2)
    # each grey level's two diagonal pixels form one zone: 2 zones of size 2
    assert f["szm_zp"] == pytest.approx(0.5)
    assert f["szm_lze"] == pytest.approx(4.0) and f["szm_sze"] == pytest.approx(0.25)
    assert f["szm_zsnu"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize("pixels", [0, 1])
def test_empty_or_single_pixel_roi_gives_nan(pixels):
    image = np.zeros((8, 8), np.uint8)
    image[3, 4] = 100 if pixels else 0
    f = _features(image)
    assert list(f) == list(FEATURE_NAMES)
    assert all(math.isnan(v) for v in f.values())


def test_two_pixels_give_numbers():
    f = _features(_embed([[50, 60]]))
    assert f["stat_mean"] == 55.0 and f["shape_area_pixels"] == 2
    assert math.isnan(f["stat_rmad"])  # nothing lies within [p10, p90] (as MIRP)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        slice_features(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="n_bins"):
        slice_features(np.ones((4, 4)), np.ones((4, 4)), n_bins=1)
    with pytest.raises(ValueError, match="channels"):
        dataset_features(np.zeros((2, 3, 4, 4), np.uint8), ["t1", "t2"])
    with pytest.raises(ValueError, match="shape"):
        dataset_features(np.zeros((3, 4, 4), np.uint8), ["t1", "t2", "gland"])


# --------------------------------------------------------------------------- MIRP as oracle

# our name -> MIRP's column (fixed bin number 32, GLCM/GLRLM "2d_average", GLSZM "2d"); the
# mesh area and perimeter have no 2-D counterpart in MIRP (its morphology is 3-D) and are
# checked against scikit-image above
_MIRP = {
    "shape_area_pixels": "morph_vol_approx", "shape_major_axis": "morph_pca_maj_axis",
    "shape_minor_axis": "morph_pca_min_axis", "shape_elongation": "morph_pca_elongation",
    "stat_mean": "stat_mean", "stat_variance": "stat_var", "stat_skewness": "stat_skew",
    "stat_kurtosis": "stat_kurt", "stat_median": "stat_median", "stat_min": "stat_min",
    "stat_p10": "stat_p10", "stat_p90": "stat_p90", "stat_max": "stat_max",
    "stat_iqr": "stat_iqr", "stat_range": "stat_range", "stat_mad": "stat_mad",
    "stat_rmad": "stat_rmad", "stat_cov": "stat_cov", "stat_energy": "stat_energy",
    "stat_rms": "stat_rms", "ih_entropy": "ih_entropy_fbn_n32",
    "ih_uniformity": "ih_uniformity_fbn_n32",
    **{f"cm_{ours}": f"cm_{theirs}_d1_2d_avg_fbn_n32" for ours, theirs in [
        ("contrast", "contrast"), ("correlation", "corr"), ("energy", "energy"),
        ("inverse_difference", "inv_diff"), ("inverse_difference_moment", "inv_diff_mom"),
        ("joint_entropy", "joint_entr"), ("dissimilarity", "dissimilarity"),
        ("joint_average", "joint_avg")]},
    **{f"rlm_{ours}": f"rlm_{theirs}_2d_avg_fbn_n32" for ours, theirs in [
        ("sre", "sre"), ("lre", "lre"), ("glnu", "glnu"), ("rlnu", "rlnu"),
        ("rp", "r_perc")]},
    **{f"szm_{ours}": f"szm_{theirs}_2d_fbn_n32" for ours, theirs in [
        ("sze", "sze"), ("lze", "lze"), ("glnu", "glnu"), ("zsnu", "zsnu"),
        ("zp", "z_perc")]},
}
#: Agreement with MIRP (measured: within 1e-13 relative).
RTOL, ATOL = 1e-6, 1e-9


def _random_slice(seed: int, size: int = 40) -> np.ndarray:
    """A curated-like channel: a smooth uint8 texture, 0 outside random blobs."""
    rng = np.random.default_rng(seed)
    blob = ndimage.gaussian_filter(rng.random((size, size)), 3)
    inside = blob > np.quantile(blob, 0.6)
    texture = ndimage.gaussian_filter(rng.random((size, size)), 1)
    texture = np.round(1 + 254 * (texture - texture.min()) / np.ptp(texture))
    return np.where(inside, texture, 0).astype(np.uint8)


def _constant_slice() -> np.ndarray:
    return _embed(np.full((4, 6), 77, np.uint8))


def _line_slice() -> np.ndarray:
    return _embed(np.array([[10, 20, 20, 30, 30, 30]], np.uint8))


@pytest.mark.parametrize("make", [lambda: _random_slice(0), lambda: _random_slice(1),
                                  lambda: _random_slice(2), _constant_slice, _line_slice],
                         ids=["random0", "random1", "random2", "constant", "line"])
def test_agrees_with_mirp(make):
    mirp = pytest.importorskip(
        "mirp", reason="MIRP (the IBSI reference implementation, a dev dependency: "
                       "pip install -e '.[dev]') is the oracle of this test")
    logging.getLogger("mirp").setLevel(logging.WARNING)
    image = make()
    mask = image > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MIRP's own RuntimeWarnings on degenerate ROIs
        table = mirp.extract_features(
            image=image[None].astype(float), mask=mask[None].astype(np.uint8),
            image_modality="mr", by_slice=True,
            base_feature_families=["morph", "stat", "ih", "cm", "rlm", "szm"],
            base_discretisation_method="fixed_bin_number", base_discretisation_n_bins=32,
            glcm_spatial_method="2d_average", glrlm_spatial_method="2d_average",
            ibsi_compliant=True, export_features=True)[0]
    ours = _features(image)
    for name, column in _MIRP.items():
        expected = float(table[column].iloc[0])
        if math.isnan(expected):
            assert math.isnan(ours[name]), name
        else:
            assert ours[name] == pytest.approx(expected, rel=RTOL, abs=ATOL), name


# --------------------------------------------------------------------------- datasets


def _dataset(n: int, size: int = 16) -> np.ndarray:
    images = np.stack([np.stack([_random_slice(10 * k + c, size) for c in range(4)])
                       for k in range(n)])
    images[1, 2] = 0  # an empty channel
    return images


def test_dataset_features_rows_columns_and_values():
    channels = ["t1", "ce_t1", "t2", "gland"]
    images = _dataset(5)
    table = dataset_features(images, channels)
    assert table.shape == (5, 4 * len(FEATURE_NAMES))
    assert list(table.columns) == [f"{c}_{f}" for c in channels for f in FEATURE_NAMES]
    assert list(table.index) == list(range(5))
    for k in (0, 3):
        for c, channel in enumerate(channels):
            expected = _features(images[k, c])
            row = table.loc[k, [f"{channel}_{f}" for f in FEATURE_NAMES]].to_numpy()
            np.testing.assert_array_equal(row, np.array(list(expected.values())))
    empty = table.loc[1, [f"t2_{f}" for f in FEATURE_NAMES]]
    assert empty.isna().all()
    assert table.loc[1, "t1_stat_mean"] > 0
    subset = dataset_features(images[:, :3], channels[:3])  # gland left out
    assert subset.shape == (5, 3 * len(FEATURE_NAMES))
    assert dataset_features(images[:0], channels).shape == (0, 4 * len(FEATURE_NAMES))


def test_dataset_features_in_two_processes_equal_one():
    images = _dataset(130, size=12)  # >= 64 slices per worker: 2 workers
    one = dataset_features(images, ["t1", "ce_t1", "t2", "gland"], n_bins=16)
    two = dataset_features(images, ["t1", "ce_t1", "t2", "gland"], n_bins=16, jobs=2)
    np.testing.assert_array_equal(one.to_numpy(), two.to_numpy())


def test_radiomics_is_torch_free():
    code = ("import sys, parotidlib.radiomics; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
