"""Aligning a series to the T1 grid through the affines (Xia et al. 2021, Methods, Figure 3).

The series of one patient may lie on different grids (voxel size, field of view, position);
their NIfTI affines map voxel indices to the same world (RAS+, mm) space, so CE-T1, T2 and
their label maps are resampled onto (parts of) the T1 grid with
:func:`nibabel.processing.resample_from_to` (order 1 for images, order 0 for label maps).
To keep curation fast only the boxes that are needed are resampled: the bounding box of the
labelled voxels (label maps) and each crop box (images).
"""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
from nibabel.affines import apply_affine
from nibabel.processing import resample_from_to


class AlignmentError(ValueError):
    """A series cannot be aligned to the T1 grid (names the patient and the series)."""

    def __init__(self, message: str, patient_id: str | None = None, series: str | None = None):
        self.patient_id = patient_id
        self.series = series
        super().__init__(message)


def grid_world_bounds(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World (mm) axis-aligned bounding box of a grid's field of view.

    Parameters
    ----------
    shape : tuple of int
        Grid shape (the first three axes are used).
    affine : ndarray, shape (4, 4)
        Voxel-to-world affine.

    Returns
    -------
    lo, hi : ndarray, shape (3,)
        Minimum and maximum world coordinates (mm) of the voxel *edges* (index -0.5 to n-0.5).
    """
    corners = np.array(list(itertools.product(*[(-0.5, n - 0.5) for n in shape[:3]])))
    world = apply_affine(affine, corners)
    return world.min(axis=0), world.max(axis=0)


def check_overlap(img: nib.spatialimages.SpatialImage, ref_shape: tuple[int, ...],
                  ref_affine: np.ndarray, patient_id: str, series: str) -> None:
    """Raise AlignmentError if ``img``'s field of view does not intersect the reference grid's.

    The test compares world bounding boxes; a series that passes may still cover the T1 grid
    only partly (voxels outside its field of view become 0 after resampling).
    """
    lo, hi = grid_world_bounds(img.shape, img.affine)
    ref_lo, ref_hi = grid_world_bounds(ref_shape, ref_affine)
    if np.any(np.minimum(hi, ref_hi) - np.maximum(lo, ref_lo) <= 0):
        fmt = lambda a, b: ", ".join(f"{x:.1f}..{y:.1f}" for x, y in zip(a, b, strict=True))  # noqa: E731
        raise AlignmentError(
            f"patient {patient_id}: series {series} ({img.get_filename() or 'in memory'}) does "
            f"not overlap the T1 grid: its field of view spans x, y, z = [{fmt(lo, hi)}] mm, "
            f"the T1 grid's [{fmt(ref_lo, ref_hi)}] mm; check the affines",
            patient_id, series)


def bbox3d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Index bounding box ``(lo, hi)`` (inclusive) of the True voxels of a 3-D mask, or None."""
    lo, hi = [], []
    for axis in range(3):
        hit = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        lo.append(hit[0])
        hi.append(hit[-1])
    return np.array(lo), np.array(hi)


def box_in_reference(src_affine: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     ref_affine: np.ndarray, ref_shape: tuple[int, ...]
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """Reference-grid index box covering the source voxels ``lo..hi`` (inclusive).

    The source box's edge corners (±0.5 voxel) are mapped through the affines; every
    reference voxel whose centre falls inside them is inside the returned box, which is
    clipped to the reference grid. Returns ``(start, stop)`` (half-open) or None when the
    box misses the reference grid.
    """
    corners = np.array(list(itertools.product(*[(a - 0.5, b + 0.5) for a, b in zip(lo, hi,
                                                                                    strict=True)])))
    to_ref = np.linalg.inv(ref_affine) @ src_affine
    ijk = apply_affine(to_ref, corners)
    start = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    stop = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.asarray(ref_shape[:3]))
    if np.any(stop <= start):
        return None
    return start, stop


def resample_box(img: nib.spatialimages.SpatialImage, ref_affine: np.ndarray,
                 start: tuple[int, int, int], shape: tuple[int, int, int],
                 order: int) -> np.ndarray:
    """Resample ``img`` onto a box of the reference grid.

    Parameters
    ----------
    img : nibabel image
        The moving series (its data type is kept: pass float32 data for order 1).
    ref_affine : ndarray, shape (4, 4)
        The reference (T1) grid's affine.
    start : tuple of 3 int
        Reference index of the box's first voxel (may be negative or beyond the grid).
    shape : tuple of 3 int
        Box shape in reference voxels.
    order : int
        Interpolation order: 1 (trilinear) for images, 0 (nearest) for label maps.

    Returns
    -------
    ndarray, shape ``shape``
        0 outside ``img``'s field of view.
    """
    box_affine = ref_affine @ nib.affines.from_matvec(np.eye(3), np.asarray(start, float))
    out = resample_from_to(img, (tuple(int(s) for s in shape), box_affine), order=order,
                           mode="constant", cval=0.0)
    return np.asanyarray(out.dataobj)


def align_labels(img: nib.spatialimages.SpatialImage, ref_shape: tuple[int, ...],
                 ref_affine: np.ndarray, patient_id: str, series: str) -> np.ndarray:
    """A series' label map on the full reference (T1) grid, by nearest neighbour.

    Only the reference box that covers the labelled voxels is resampled (the rest is 0).

    Parameters
    ----------
    img : nibabel image
        The series' label map (integer values).
    ref_shape, ref_affine
        The reference grid.
    patient_id, series : str
        Named in errors.

    Returns
    -------
    ndarray of uint8, shape ``ref_shape``

    Raises
    ------
    AlignmentError
        The field of view, or the labelled region, does not overlap the reference grid.
    """
    check_overlap(img, ref_shape, ref_affine, patient_id, series)
    data = np.asanyarray(img.dataobj).astype(np.uint8)
    out = np.zeros(ref_shape[:3], dtype=np.uint8)
    box = bbox3d(data > 0)
    ref_box = None if box is None else box_in_reference(img.affine, *box, ref_affine, ref_shape)
    if ref_box is None:
        raise AlignmentError(f"patient {patient_id}: the labelled region of series {series} "
                             f"({img.get_filename() or 'in memory'}) lies outside the T1 grid; "
                             f"check the affines", patient_id, series)
    start, stop = ref_box
    sub = resample_box(nib.Nifti1Image(data, img.affine), ref_affine, tuple(start),
                       tuple(stop - start), order=0)
    out[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]] = sub
    return out
