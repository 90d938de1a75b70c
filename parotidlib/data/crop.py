"""Square ROI crops of one axial slice, resized to the network's input size.

Xia et al. 2021 (Methods, Figure 3) crop the segmented tumour (or parotid gland) from each
series and put the crops into the channels of one image resized to 224 x 224. Here a crop is
the ROI's bounding box plus a margin, padded to a square in millimetres (centred), taken with
zeros where it leaves the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Box:
    """A half-open index box ``[i0, i1) x [j0, j1)`` on a slice; may extend beyond it."""

    i0: int
    i1: int
    j0: int
    j1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.i1 - self.i0, self.j1 - self.j0


def square_box(mask: np.ndarray, spacing_mm: tuple[float, float], margin_mm: float) -> Box:
    """Bounding box of ``mask`` plus ``margin_mm``, padded to a square in mm (centred).

    Parameters
    ----------
    mask : ndarray of bool, shape (ni, nj)
        The ROI on one slice (at least one True pixel).
    spacing_mm : (float, float)
        Pixel size along i and j (mm).
    margin_mm : float
        Margin added on every side (mm; rounded to whole pixels per axis).

    Returns
    -------
    Box
        Where the square needs an odd number of extra pixels, the extra one goes to the
        high-index side.
    """
    ii = np.flatnonzero(mask.any(axis=1))
    jj = np.flatnonzero(mask.any(axis=0))
    if ii.size == 0:
        raise ValueError("mask must contain at least one pixel, got an empty mask")
    spacing = np.asarray(spacing_mm, dtype=float)
    margin = np.round(margin_mm / spacing).astype(int)
    lo = np.array([ii[0], jj[0]]) - margin
    hi = np.array([ii[-1], jj[-1]]) + 1 + margin
    extent = hi - lo
    side_mm = float(np.max(extent * spacing))
    n = np.maximum(extent, np.round(side_mm / spacing).astype(int))
    lo = lo - (n - extent) // 2
    hi = lo + n
    return Box(int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]))


def extract_box(plane: np.ndarray, box: Box) -> np.ndarray:
    """Copy ``box`` out of a 2-D array, with zeros where the box leaves the array."""
    out = np.zeros(box.shape, dtype=plane.dtype)
    ni, nj = plane.shape
    si0, si1 = max(box.i0, 0), min(box.i1, ni)
    sj0, sj1 = max(box.j0, 0), min(box.j1, nj)
    if si1 > si0 and sj1 > sj0:
        out[si0 - box.i0:si1 - box.i0, sj0 - box.j0:sj1 - box.j0] = plane[si0:si1, sj0:sj1]
    return out


def inside_mask(plane_shape: tuple[int, int], box: Box) -> np.ndarray:
    """Boolean array of ``box``'s shape: True where the box lies on the plane."""
    return extract_box(np.ones(plane_shape, dtype=bool), box)


def touches_edge(mask: np.ndarray) -> bool:
    """True if a 2-D mask has a pixel on the first/last row or column."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def to_display(crop: np.ndarray) -> np.ndarray:
    """Reorient an (i, j) crop of a RAS-ordered slice to radiological display.

    Rows run anterior to posterior, columns from the patient's right to left (the patient's
    right on the viewer's left), as in the paper's figures.
    """
    return crop.T[::-1, ::-1]


def resize_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a crop to ``size x size`` with (antialiased) bilinear interpolation.

    Uses Pillow's ``Image.resize(BILINEAR)`` on 32-bit float images (Pillow ships with
    matplotlib and torchvision): pixel centres are aligned and, when shrinking, the triangle
    filter widens with the scale (antialiasing) - the same result as
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True)``
    and torchvision's ``resize``, four to six times faster than ``scipy.ndimage.zoom``.

    Parameters
    ----------
    crop : ndarray, shape (h, w)
    size : int
        Output side (pixels).

    Returns
    -------
    ndarray of float32, shape (size, size)
    """
    image = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Map intensities in [0, 1] to uint8 (value x 255, rounded; clipped first)."""
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
