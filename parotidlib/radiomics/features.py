"""Per-slice radiomics features of the curated inputs (IBSI definitions, 2-D, fixed bin number).

The radiomics baseline of issue 15 is compared with the CNN on the same patients, so its
features are computed from exactly what the CNN is given: the curated ``data/images.npy``
(uint8, N x C x H x W, channels ``t1``, ``ce_t1``, ``t2``, ``gland``;
:mod:`parotidlib.data.preprocess`).

Engine
------
The features are computed here with numpy, scipy and scikit-image, following the IBSI
definitions (Zwanenburg A, Vallieres M, et al. *The Image Biomarker Standardization Initiative:
standardized quantitative radiomics for high-throughput image-based phenotyping.* Radiology
2020; 295:328-338; and the IBSI reference manual, arXiv:1612.07003). MIRP (the IBSI-compliant
reference implementation, ``mirp`` on PyPI) is the test oracle only
(``tests/radiomics/test_features.py``; a dev dependency), because it is far too slow for this
use: measured on the 2-core development machine at 64 x 64 px, one ``mirp.extract_features``
call per slice takes ~1.0 s with its (3-D) morphology family and ~0.08 s without it (first
order + intensity histogram + GLCM + GLRLM + GLSZM), i.e. ~14 min for the ~10,400 ROIs of a
default dataset (2,600 slices x 4 channels) even without shape, against a target of well
under 60 s. MIRP has no per-slice output for a stack (``by_slice`` pools the slices). This
module takes ~0.6 ms per ROI on one core (``bench/bench_radiomics.py``: 6.3 s for a default
dataset; ~1.2 ms under a load of 3 on the 2 cores) and agrees with MIRP to a
relative 1e-6 on every feature that MIRP defines in 2-D (the test).

What is measured
----------------
* **ROI mask**: the nonzero pixels of a channel (``image > 0``). With ``mask_background``
  (the default) every pixel outside the ROI is 0 in the curated image, so this is the ROI as
  the CNN sees it: for a lesion slice the tumour on that channel's own series (t1, ce_t1,
  t2), the T1 ipsilateral gland plus tumour for ``gland``; for a free slice the contralateral
  gland. The curated data do not keep the mask itself, and it is recovered only
  approximately: the crop is resized (bilinear) after masking, so the boundary pixels of
  the ROI are partial-volume mixtures with the zero background (a dark rim), and an ROI
  pixel at or below the series' low percentile window limit is 0 and falls out of the mask.
  A dataset curated with ``mask_background: false`` has no ROI in its images; its features
  are those of the whole in-image crop and are not what this baseline is meant for.
* **Intensities**: the curated uint8 values (0-255), i.e. the series' percentile window
  scaled to [0, 1] and quantised (x 255). The pre-window intensities are not kept by
  curation. The first-order statistics are in these units.
* **Discretisation**: fixed bin number (IBSI "FBN"), ``n_bins`` (default 32) bins between
  the ROI's own minimum and maximum on that slice, ``floor(n_bins (x - min) / (max - min))
  + 1`` clipped to [1, n_bins]; a constant ROI gets bin ``ceil(n_bins / 2)`` (as MIRP). FBN
  makes the texture features independent of the intensity scale of the slice.
* **2-D, per slice**: every feature from one slice of one channel, in pixel units of the
  resized crop (``image_size`` px). The crop is the ROI's box plus a fixed margin, resized
  to a fixed size, so the ROI roughly fills the crop whatever its size: size features
  (areas, perimeter, axis lengths, energy) do *not* measure the tumour's physical size;
  ``tumor_area_mm2`` in ``slices.csv`` does. Ratios (circularity, elongation) are
  scale-free.
* **Texture**: GLCM at Chebyshev distance 1, symmetric, in the 4 in-plane directions (0,
  45, 90, 135 degrees); each feature is computed per direction and averaged (IBSI 2-D
  "averaged" aggregation, MIRP ``2d_average``); a direction without a neighbour pair in the
  ROI is left out of the average. GLRLM the same (4 directions, averaged). GLSZM: zones
  8-connected in the slice (IBSI 2-D). Only pixel pairs, runs and zones inside the ROI count.
* **Degenerate ROIs**: an ROI of fewer than 2 pixels (an empty channel, or a single pixel)
  gives NaN for every feature, never an error. A constant ROI gives skewness, kurtosis and
  coefficient of variation 0 and GLCM correlation 1 (MIRP's conventions).

Features (:data:`FEATURE_NAMES`, IBSI codes in :data:`IBSI_CODES`)
------------------------------------------------------------------
* ``shape_*``: 2-D analogues of the IBSI (3-D) morphological features on the mask:
  ``area_mesh`` (area enclosed by the marching-squares contour through the pixel centres at
  level 0.5, the 2-D "volume (mesh)"), ``area_pixels`` (pixel count, "approximate volume"),
  ``perimeter`` (length of that contour, the 2-D "surface area (mesh)"),
  ``perimeter_area_ratio``, ``circularity`` (4 pi A / P^2 with the mesh area and perimeter,
  the 2-D compactness 2; 1 for a disc), ``major_axis`` and ``minor_axis`` (4 sqrt of the
  eigenvalues of the pixel-centre covariance, ddof 1) and ``elongation`` (sqrt of their
  ratio, minor over major). The contour is scikit-image's marching squares
  (``find_contours(..., 0.5)``, whose default keeps diagonal-only neighbours apart), so a
  rectangle of a x b pixels has area a b - 1/2 and perimeter 2 (a + b) - 4 + 2 sqrt 2.
* ``stat_*``: IBSI intensity-based statistics of the uint8 values (not discretised): mean,
  variance, skewness, (excess) kurtosis, median, minimum, 10th and 90th percentile,
  maximum, interquartile range, range, mean absolute deviation, robust mean absolute
  deviation, coefficient of variation, energy, root mean square. Percentiles are numpy's
  linear interpolation (as MIRP).
* ``ih_*``: intensity-histogram entropy (log2) and uniformity of the discretised ROI.
* ``cm_*``: GLCM contrast, correlation, (joint) energy = angular second moment, inverse
  difference, inverse difference moment (scikit-image's "homogeneity"), joint entropy
  (log2), dissimilarity, joint average.
* ``rlm_*``: GLRLM short and long run emphasis, grey level and run length non-uniformity,
  run percentage.
* ``szm_*``: GLSZM small and large zone emphasis, grey level and zone size non-uniformity,
  zone percentage.

The ``gland`` channel contributes its own features, like the three series: it is the CNN's
fourth input (the T1 gland around the tumour), so the baseline sees the same information;
leave it out by passing only the first three channels to :func:`dataset_features`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from skimage.measure import label as _label_zones

from parotidlib.config import check_int

__all__ = ["FEATURE_NAMES", "IBSI_CODES", "dataset_features", "slice_features"]

#: Feature -> IBSI identifier (reference manual). The shape features are the 2-D analogues of
#: the 3-D morphological features with those codes.
IBSI_CODES: dict[str, str] = {
    "shape_area_mesh": "RNU0",  # volume (mesh)
    "shape_area_pixels": "YEKZ",  # approximate volume (voxel counting)
    "shape_perimeter": "C0JK",  # surface area (mesh)
    "shape_perimeter_area_ratio": "2PR5",  # surface to volume ratio
    "shape_circularity": "BQWJ",  # compactness 2
    "shape_major_axis": "TDIC",
    "shape_minor_axis": "P9VJ",
    "shape_elongation": "Q3CK",
    "stat_mean": "Q4LE",
    "stat_variance": "ECT3",
    "stat_skewness": "KE2A",
    "stat_kurtosis": "IPH6",
    "stat_median": "Y12H",
    "stat_min": "1GSF",
    "stat_p10": "QG58",
    "stat_p90": "8DWT",
    "stat_max": "84IY",
    "stat_iqr": "SALO",
    "stat_range": "2OJQ",
    "stat_mad": "4FUA",
    "stat_rmad": "1128",
    "stat_cov": "7TET",
    "stat_energy": "N8CA",
    "stat_rms": "5ZWQ",
    "ih_entropy": "TLU2",
    "ih_uniformity": "BJ5W",
    "cm_contrast": "ACUI",
    "cm_correlation": "NI2N",
    "cm_energy": "8ZQL",
    "cm_inverse_difference": "IB1Z",
    "cm_inverse_difference_moment": "WF0Z",
    "cm_joint_entropy": "TU9B",
    "cm_dissimilarity": "8S9J",
    "cm_joint_average": "60VM",
    "rlm_sre": "22OV",
    "rlm_lre": "W4KF",
    "rlm_glnu": "R5YN",
    "rlm_rlnu": "W92Y",
    "rlm_rp": "9ZK5",
    "szm_sze": "5QRC",
    "szm_lze": "48P8",
    "szm_glnu": "JNSA",
    "szm_zsnu": "4JP3",
    "szm_zp": "P30P",
}
#: The features of one ROI, in output order.
FEATURE_NAMES: tuple[str, ...] = tuple(IBSI_CODES)

_N = len(FEATURE_NAMES)
_NAN = np.full(_N, np.nan)

# Marching squares on a 0/1 mask at level 0.5: every contour vertex is the midpoint of a
# cell edge, so a 2 x 2 cell's contour length and enclosed (inside) area depend only on
# which of its corners are inside. Case = TL + 2 TR + 4 BR + 8 BL. The saddles (5, 10) keep
# the two inside corners apart (scikit-image's default).
_H = math.sqrt(0.5)
_CASE_LENGTH = np.array([0, _H, _H, 1, _H, 2 * _H, 1, _H,
                         _H, 1, 2 * _H, _H, 1, _H, _H, 0], dtype=float)
_CASE_AREA = np.array([0, 1 / 8, 1 / 8, 1 / 2, 1 / 8, 1 / 4, 1 / 2, 7 / 8,
                       1 / 8, 1 / 2, 1 / 4, 7 / 8, 1 / 2, 7 / 8, 7 / 8, 1], dtype=float)


def _shape(mask: np.ndarray, n: int) -> list[float]:
    """2-D shape of a padded boolean mask with ``n`` >= 2 pixels."""
    m = mask.astype(np.uint8)
    case = m[:-1, :-1] + 2 * m[:-1, 1:] + 4 * m[1:, 1:] + 8 * m[1:, :-1]
    counts = np.bincount(case.ravel(), minlength=16)
    perimeter = float(counts @ _CASE_LENGTH)
    area = float(counts @ _CASE_AREA)
    rows, cols = np.nonzero(mask)
    # 2 x 2 covariance of the pixel centres (ddof 1, as MIRP), eigenvalues in closed form
    dr, dc = rows - rows.mean(), cols - cols.mean()
    crr, ccc, crc = (dr @ dr) / (n - 1), (dc @ dc) / (n - 1), (dr @ dc) / (n - 1)
    half_trace, det = (crr + ccc) / 2, crr * ccc - crc * crc
    disc = math.sqrt(max(half_trace * half_trace - det, 0.0))
    major = half_trace + disc
    minor = max(half_trace - disc, 0.0)
    if minor < 1e-12 * max(major, 1.0):  # collinear pixels (MIRP: zero_if_close)
        minor = 0.0
    return [area, float(n), perimeter, perimeter / area, 4 * math.pi * area / perimeter ** 2,
            4 * math.sqrt(major), 4 * math.sqrt(minor),
            math.sqrt(minor / major) if major > 0 else np.nan]


def _first_order(values: np.ndarray) -> list[float]:
    """IBSI intensity-based statistics of the ROI intensities (float64)."""
    n = values.size
    mu = values.mean()
    dev = values - mu
    var = (dev @ dev) / n
    sigma = math.sqrt(var)
    if sigma == 0.0:
        skew = kurt = cov = 0.0
    else:
        skew = float(np.sum(dev ** 3) / (n * sigma ** 3))
        kurt = float(np.sum(dev ** 4) / (n * sigma ** 4) - 3.0)
        cov = sigma / mu
    p10, p25, p50, p75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
    lo, hi = values.min(), values.max()
    robust = values[(values >= p10) & (values <= p90)]
    # empty only for a tiny ROI (2 distinct values): NaN, as MIRP
    rmad = float(np.abs(robust - robust.mean()).mean()) if robust.size else np.nan
    energy = float(values @ values)
    return [float(mu), float(var), skew, kurt, float(p50), float(lo), float(p10), float(p90),
            float(hi), float(p75 - p25), float(hi - lo), float(np.abs(dev).mean()),
            rmad, float(cov), energy,
            math.sqrt(energy / n)]


def _discretise(image: np.ndarray, mask: np.ndarray, values: np.ndarray, n_bins: int
                ) -> np.ndarray:
    """IBSI fixed bin number discretisation: bins 1..n_bins in the ROI, 0 outside."""
    lo, hi = values.min(), values.max()
    if lo < hi:
        bins = np.floor(n_bins * 1.0 * (image - lo) / (hi - lo)) + 1.0
        bins = np.clip(bins, 1, n_bins)
    else:
        bins = np.full(image.shape, math.ceil(n_bins / 2.0))
    return np.where(mask, bins, 0).astype(np.intp)


def _entropy(p: np.ndarray, axis=None) -> np.ndarray:
    """-sum p log2 p over the entries p > 0."""
    logs = np.log2(p, out=np.zeros_like(p), where=p > 0)
    return -np.sum(p * logs, axis=axis)


def _histogram(q: np.ndarray, n_bins: int, n: int) -> list[float]:
    p = np.bincount(q.ravel(), minlength=n_bins + 1)[1:] / n
    return [float(_entropy(p)), float(p @ p)]


# (row, column) slices of the padded grid: a pixel and its neighbour at 0, 90, 45, 135 deg
_PAIRS = (
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
)


def _glcm(q: np.ndarray, n_bins: int) -> list[float]:
    """GLCM features, per direction then averaged over the directions that have pairs."""
    counts = np.zeros((4, n_bins * n_bins))
    for d, (here, there) in enumerate(_PAIRS):
        a, b = q[here], q[there]
        both = (a > 0) & (b > 0)
        counts[d] = np.bincount((a[both] - 1) * n_bins + (b[both] - 1),
                                minlength=n_bins * n_bins)
    counts = counts.reshape(4, n_bins, n_bins)
    counts = counts + counts.transpose(0, 2, 1)  # symmetric
    total = counts.sum(axis=(1, 2))
    has = total > 0
    if not has.any():
        return [np.nan] * 8
    p = counts[has] / total[has, None, None]
    levels = np.arange(1, n_bins + 1, dtype=float)
    i, j = levels[:, None], levels[None, :]
    diff = np.abs(i - j)
    pi = p.sum(axis=2)  # marginal (= the other marginal: symmetric)
    mu = pi @ levels
    var = np.einsum("dk,dk->d", pi, (levels[None, :] - mu[:, None]) ** 2)
    cross = np.einsum("dij,ij->d", p, i * j)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(var == 0.0, 1.0, (cross - mu ** 2) / var)
    per_direction = np.stack([
        np.einsum("dij,ij->d", p, diff ** 2),  # contrast
        corr,
        np.einsum("dij,dij->d", p, p),  # energy
        np.einsum("dij,ij->d", p, 1.0 / (1.0 + diff)),  # inverse difference
        np.einsum("dij,ij->d", p, 1.0 / (1.0 + diff ** 2)),  # inverse difference moment
        _entropy(p, axis=(1, 2)),  # joint entropy
        np.einsum("dij,ij->d", p, diff),  # dissimilarity
        mu,  # joint average (= the marginal mean: symmetric)
    ])
    return [float(v) for v in per_direction.mean(axis=1)]


def _line_sequences(q: np.ndarray) -> list[np.ndarray]:
    """The padded grid as 1-D sequences along 0, 90, 45 and 135 degrees.

    Lines are separated by the zero padding, so a run never continues from one line into the
    next.
    """
    h, w = q.shape
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    diagonal = np.zeros((h, w + h), dtype=q.dtype)
    diagonal[rows, cols + (h - 1 - rows)] = q  # column index j - i constant: direction (1, 1)
    anti = np.zeros((h, w + h), dtype=q.dtype)
    anti[rows, cols + rows] = q  # i + j constant: direction (1, -1)
    return [q.ravel(), q.T.ravel(), diagonal.T.ravel(), anti.T.ravel()]


def _glrlm(q: np.ndarray, n_bins: int, n: int) -> list[float]:
    """GLRLM features, per direction then averaged."""
    out = np.zeros((4, 5))
    for d, seq in enumerate(_line_sequences(q)):
        starts = np.concatenate(([0], np.flatnonzero(seq[1:] != seq[:-1]) + 1))
        lengths = np.diff(np.append(starts, seq.size))
        grey = seq[starts]
        inside = grey > 0
        lengths, grey = lengths[inside].astype(float), grey[inside]
        runs = lengths.size
        by_grey = np.bincount(grey, minlength=n_bins + 1)
        by_length = np.bincount(lengths.astype(np.intp))
        out[d] = [np.sum(1.0 / lengths ** 2) / runs, np.sum(lengths ** 2) / runs,
                  (by_grey @ by_grey) / runs, (by_length @ by_length) / runs, runs / n]
    return [float(v) for v in out.mean(axis=0)]


def _glszm(q: np.ndarray, n_bins: int, n: int) -> list[float]:
    """GLSZM features: zones of equal bin, 8-connected in the slice."""
    zones, n_zones = _label_zones(q, background=0, connectivity=2, return_num=True)
    flat = zones.ravel()
    sizes = np.bincount(flat, minlength=n_zones + 1)[1:].astype(float)
    grey = np.zeros(n_zones + 1, dtype=np.intp)
    grey[flat] = q.ravel()
    by_grey = np.bincount(grey[1:], minlength=n_bins + 1)
    by_size = np.bincount(sizes.astype(np.intp))
    return [float(np.sum(1.0 / sizes ** 2) / n_zones), float(np.sum(sizes ** 2) / n_zones),
            float(by_grey @ by_grey) / n_zones, float(by_size @ by_size) / n_zones,
            n_zones / n]


def _features(image: np.ndarray, mask: np.ndarray, n_bins: int) -> np.ndarray:
    """The features of one ROI as a vector in FEATURE_NAMES order (NaN if < 2 pixels)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return _NAN.copy()
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    # the ROI's box with one pixel of background around it (contours, neighbours, lines)
    m = np.pad(mask[box], 1)
    n = int(np.count_nonzero(m))
    if n < 2:
        return _NAN.copy()
    img = np.pad(np.asarray(image[box], dtype=np.float64), 1)
    values = img[m]
    q = _discretise(img, m, values, n_bins)
    return np.array(_shape(m, n) + _first_order(values) + _histogram(q, n_bins, n)
                    + _glcm(q, n_bins) + _glrlm(q, n_bins, n) + _glszm(q, n_bins, n))


def _check_bins(n_bins: int) -> int:
    return int(check_int("n_bins", n_bins, 2))


def slice_features(image2d: np.ndarray, mask2d: np.ndarray, n_bins: int = 32
                   ) -> dict[str, float]:
    """IBSI radiomics features of one 2-D ROI (module docstring: definitions and units).

    Parameters
    ----------
    image2d : ndarray, shape (H, W)
        Intensities (any real dtype; a curated channel is uint8).
    mask2d : ndarray, shape (H, W)
        The ROI (nonzero or True inside). For a curated channel: ``image2d > 0``.
    n_bins : int, default 32
        Number of bins of the fixed bin number discretisation (IBSI "FBN") over the ROI's
        intensity range, for the histogram and texture features.

    Returns
    -------
    dict of str to float
        :data:`FEATURE_NAMES`, in that order. All NaN when the ROI has fewer than 2 pixels.

    Raises
    ------
    ValueError
        The arrays are not 2-D of the same shape, or ``n_bins`` is not an integer >= 2.

    References
    ----------
    Zwanenburg A, Vallieres M, et al. Radiology 2020; 295:328-338. IBSI reference manual,
    arXiv:1612.07003.
    """
    image2d, mask2d = np.asarray(image2d), np.asarray(mask2d)
    if image2d.ndim != 2 or image2d.shape != mask2d.shape:
        raise ValueError(f"image2d and mask2d must be 2-D arrays of one shape, got "
                         f"{image2d.shape} and {mask2d.shape}")
    values = _features(image2d, mask2d.astype(bool), _check_bins(n_bins))
    return dict(zip(FEATURE_NAMES, values.tolist(), strict=True))


def _chunk_features(images: np.ndarray, n_bins: int) -> np.ndarray:
    """Features of a block of slices: (n, C * len(FEATURE_NAMES)), channel-major."""
    n, c = images.shape[:2]
    out = np.empty((n, c, _N))
    for k in range(n):
        for ch in range(c):
            image = images[k, ch]
            out[k, ch] = _features(image, image > 0, n_bins)
    return out.reshape(n, c * _N)


def _n_jobs(jobs: int, n: int) -> int:
    if jobs <= 0:
        jobs = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1)
    return max(1, min(jobs, n // 64 or 1))  # at least 64 slices per worker


def dataset_features(images: np.ndarray, channels: Sequence[str], n_bins: int = 32,
                     jobs: int = 1) -> pd.DataFrame:
    """Radiomics features of every slice and channel of a curated dataset.

    Each channel's ROI is its nonzero pixels (what the CNN sees with ``mask_background``)
    and its intensities the curated uint8 values; see the module docstring.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, C, H, W)
        ``data/images.npy`` (or ``CuratedDataset.images``), a memmap is fine.
    channels : sequence of str
        The names of the C channels, in ``images`` order (``dataset.json["channels"]``).
        Every channel given contributes its features; pass ``images[:, :3]`` and the first
        three names to leave out ``gland``.
    n_bins : int, default 32
        Fixed bin number of the discretisation.
    jobs : int, default 1
        Worker processes (``parotidlib.processes.worker_pool``, which die with this
        process); 0 or less: all cores. One process is ~0.6 ms per ROI, so a default
        dataset (~2,600 x 4) takes seconds; use more only for large datasets.

    Returns
    -------
    pandas.DataFrame
        One row per slice (row i describes ``images[i]``, so it lines up with
        ``slices.csv``), columns ``<channel>_<feature>`` channel by channel, features in
        :data:`FEATURE_NAMES` order; float64, NaN for a channel whose ROI has < 2 pixels.

    Raises
    ------
    ValueError
        ``images`` is not 4-D, ``channels`` does not name its C channels (once each), or
        ``n_bins`` is invalid.
    """
    images = np.asanyarray(images)  # a memmap stays one (chunks are read as needed)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {images.shape}")
    channels = [str(c) for c in channels]
    if len(channels) != images.shape[1] or len(set(channels)) != len(channels):
        raise ValueError(f"channels must name the {images.shape[1]} channels of images once "
                         f"each, got {channels}")
    n_bins = _check_bins(n_bins)
    columns = [f"{c}_{f}" for c in channels for f in FEATURE_NAMES]
    n = images.shape[0]
    workers = _n_jobs(jobs, n)
    if workers == 1 or n == 0:
        values = _chunk_features(images, n_bins)
    else:
        from parotidlib.processes import worker_pool

        # fork where available: no re-import of __main__; the workers use numpy only
        methods = multiprocessing.get_all_start_methods()
        bounds = np.linspace(0, n, workers * 4 + 1).astype(int)
        with worker_pool(workers, "fork" if "fork" in methods else None) as pool:
            futures = [pool.submit(_chunk_features, np.array(images[a:b]), n_bins)
                       for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
            values = np.concatenate([f.result() for f in futures])
    return pd.DataFrame(values.reshape(n, len(columns)), columns=columns)
