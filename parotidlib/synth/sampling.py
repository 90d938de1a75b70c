"""Resampling between regular grids and smooth random fields (textures).

A volume here is sampled on a regular grid along each axis, so every resampling is separable:
one small matrix per axis (:func:`average_matrix`), applied with :func:`apply_separable`.
Averaging the linear interpolant of the fine samples over each output voxel's extent is the
partial-volume effect of a voxel (through-slice: the slice thickness; in-plane: the pixel
size): a rectangular slice profile, as for an ideal slice-selective excitation.

Textures are Gaussian random fields made by convolving white noise with a Gaussian kernel
(a process convolution; Higdon 2002, "Space and space-time modeling using process
convolutions"), generated on a coarse grid where the correlation length allows it and
linearly interpolated to the fine grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter

__all__ = ["apply_separable", "average_matrix", "axis_coords", "random_field"]


def axis_coords(start: float, step: float, n: int) -> np.ndarray:
    """Centres ``start + step * arange(n)`` (mm) of a regular axis, float64."""
    return start + step * np.arange(n, dtype=np.float64)


def _hat_cdf(t: np.ndarray) -> np.ndarray:
    """Integral from -inf to t of the unit hat function max(0, 1 - |s|)."""
    t = np.clip(t, -1.0, 1.0)
    return np.where(t < 0.0, 0.5 * (t + 1.0) ** 2, 1.0 - 0.5 * (1.0 - t) ** 2)


def average_matrix(src: np.ndarray, dst: np.ndarray, width: float) -> sparse.csr_array:
    """Weights that average a linearly interpolated signal over output intervals.

    Row ``i`` holds the weights of the samples at ``src`` whose linear interpolant,
    averaged over ``[dst[i] - width / 2, dst[i] + width / 2]``, gives output ``i``.
    ``width -> 0`` is plain linear interpolation; ``width`` larger than the source step is
    area (box) averaging. Parts of an interval beyond the source samples get no weight, so
    such rows sum to less than 1 (the caller fills in what lies outside).

    Parameters
    ----------
    src : ndarray, shape (n_src,)
        Regularly spaced source sample positions (mm), increasing.
    dst : ndarray, shape (n_dst,)
        Output centres (mm).
    width : float
        Averaging interval (mm), e.g. the slice thickness or the pixel size.

    Returns
    -------
    scipy.sparse.csr_array of float32, shape (n_dst, n_src)
        Banded: each row has about ``width / step + 2`` non-zeros.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    step = float(src[1] - src[0]) if src.size > 1 else 1.0
    half = 0.5 * max(float(width), 1e-6 * step) / step
    # only the source samples within half + 1 steps of a centre can have weight
    pos = (dst - src[0]) / step
    first = np.floor(pos - half - 1.0).astype(int)
    band = int(np.ceil(2 * half)) + 3
    cols = first[:, None] + np.arange(band)[None, :]
    rel = pos[:, None] - cols
    if half < 1e-3:
        weights = np.maximum(0.0, 1.0 - np.abs(rel))
    else:
        weights = (_hat_cdf(rel + half) - _hat_cdf(rel - half)) / (2.0 * half)
    keep = (cols >= 0) & (cols < src.size) & (weights > 0)
    rows = np.broadcast_to(np.arange(dst.size)[:, None], cols.shape)
    return sparse.csr_array((weights[keep].astype(np.float32), (rows[keep], cols[keep])),
                            shape=(dst.size, src.size))


def apply_separable(volume: np.ndarray, matrices: Sequence[sparse.csr_array | None]
                    ) -> np.ndarray:
    """Apply one matrix per axis: ``out[a, b, ...] = sum M0[a, i] M1[b, j] ... v[i, j, ...]``.

    Parameters
    ----------
    volume : ndarray, shape (n0, n1, ...)
    matrices : sequence of sparse arrays (m_k, n_k) or None, one per axis
        None leaves that axis as it is.

    Returns
    -------
    ndarray of float32, shape (m0, m1, ...)
    """
    out = np.asarray(volume, dtype=np.float32)
    for axis, matrix in enumerate(matrices):
        if matrix is None:
            continue
        moved = np.moveaxis(out, axis, 0)
        flat = np.ascontiguousarray(moved).reshape(moved.shape[0], -1)
        res = (matrix @ flat).reshape((matrix.shape[0], *moved.shape[1:]))
        out = np.moveaxis(res, 0, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def random_field(rng: np.random.Generator, coords: Sequence[np.ndarray], sigma_mm: float
                 ) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian random field on a regular grid.

    White noise smoothed with a Gaussian of standard deviation ``sigma_mm`` (the field's
    correlation length scale). Where ``sigma_mm`` is large against the grid step the noise
    is drawn on a coarser grid (step about ``sigma_mm / 1.5``) and linearly interpolated,
    which costs far less and changes the field only slightly.

    Parameters
    ----------
    rng : numpy.random.Generator
    coords : sequence of ndarray
        Sample positions (mm) along each axis, regularly spaced.
    sigma_mm : float
        Smoothing scale (mm), > 0.

    Returns
    -------
    ndarray of float32, shape ``tuple(len(c) for c in coords)``
    """
    if sigma_mm <= 0:
        raise ValueError(f"sigma_mm must be > 0, got {sigma_mm!r}")
    steps = [float(c[1] - c[0]) if len(c) > 1 else sigma_mm for c in coords]
    coarse_coords, mats = [], []
    for c, step in zip(coords, steps, strict=True):
        coarse_step = max(step, sigma_mm / 1.5)
        if coarse_step <= step * 1.25 or len(c) < 4:
            coarse_coords.append(np.asarray(c, dtype=np.float64))
            mats.append(None)
            continue
        n = int(np.ceil((c[-1] - c[0]) / coarse_step)) + 3
        cc = axis_coords(c[0] - coarse_step, coarse_step, n)
        coarse_coords.append(cc)
        mats.append(average_matrix(cc, c, 0.0))
    shape = tuple(len(c) for c in coarse_coords)
    noise = rng.standard_normal(shape, dtype=np.float32)
    sig = [sigma_mm / (cc[1] - cc[0]) if len(cc) > 1 else 0.0 for cc in coarse_coords]
    field = gaussian_filter(noise, sig, mode="wrap", truncate=3.0)
    field /= max(float(field.std()), 1e-12)
    return apply_separable(field, mats).astype(np.float32, copy=False)
