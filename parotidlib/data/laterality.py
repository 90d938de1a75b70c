"""Which side of the patient a tumour lies on, read from one label map (docs/cohort-format.md).

Validation (:func:`parotidlib.data.volumes.check_patient_data`) compares this with the
manifest's ``tumor_side``; preprocessing (:mod:`parotidlib.data.preprocess`) uses the same
midline rule to give each tumour of a bilateral patient its side.

The rule, per 3-D connected tumour component (label 3, 26-connectivity):

1. **Midline.** When both gland labels are present and their centroids lie at least
   :data:`MIN_GLAND_SEPARATION_MM` apart in world x, the midline is halfway between the two
   gland centroids, and a component lies on the side of the gland whose half its centroid is
   in. The sides follow the labels: when label 1 (right gland) lies at smaller x than label
   2, contrary to RAS+, the component nearest label 1 is still "right" (preprocessing warns
   about the contradiction).
2. **Contact.** Without a usable midline (a gland label missing, e.g. a resected or
   out-of-view contralateral gland, or glands whose centroids nearly coincide), a component
   that touches (26-neighbourhood) exactly one of the two gland labels lies on that gland's
   side.
3. Otherwise the component's side is undetermined; an undetermined component never makes a
   conflict.

The tumour's centroid against the image centre (what preprocessing falls back to for its
midline when a gland is missing) is *not* used here: the field of view need not be centred
on the patient, and a wrong guess would refuse a valid patient.

A conflict (:func:`side_conflict`) is a fact, not a guess: a one-sided patient with a tumour
component determined to lie on the other side, or a bilateral patient whose tumour
components all lie, determined, on one side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.affines import apply_affine
from scipy import ndimage

from parotidlib.constants import GLAND_LABEL, LABEL_LEFT_GLAND, LABEL_RIGHT_GLAND, LABEL_TUMOR

__all__ = ["MIN_GLAND_SEPARATION_MM", "Midline", "TumourPart", "gland_midline",
           "side_conflict", "tumour_components", "tumour_parts"]

#: Least world-x distance (mm) between the two gland centroids for the midline rule. Adult
#: parotid glands lie some 80-110 mm apart; below this the labels do not tell the sides apart.
MIN_GLAND_SEPARATION_MM = 10.0
#: 26-connectivity: one tumour is one component even where it is only diagonally connected.
_CONNECTIVITY = np.ones((3, 3, 3), bool)
_OTHER_SIDE = {"left": "right", "right": "left"}
_SIDE_OF_LABEL = {value: side for side, value in GLAND_LABEL.items()}


@dataclass(frozen=True)
class Midline:
    """The patient's midline on one label map's grid.

    Attributes
    ----------
    x_mm : float
        World x (mm) halfway between the two gland centroids.
    right_sign : float
        +1 when the right gland (label 1) lies at larger world x (RAS+), -1 otherwise.
    x_right_mm, x_left_mm : float
        World x of the right (label 1) and left (label 2) gland centroids.
    """

    x_mm: float
    right_sign: float
    x_right_mm: float
    x_left_mm: float

    def side_of(self, x_mm: float) -> str:
        """``"right"`` or ``"left"``: the side of the midline world x ``x_mm`` lies on."""
        return "right" if (x_mm - self.x_mm) * self.right_sign >= 0 else "left"

    def describe(self) -> str:
        """The midline and the gland centroids it comes from, for messages."""
        return (f"midline at x {_mm(self.x_mm)} mm, halfway between the right gland (label "
                f"{LABEL_RIGHT_GLAND}) at x {_mm(self.x_right_mm)} mm and the left gland "
                f"(label {LABEL_LEFT_GLAND}) at x {_mm(self.x_left_mm)} mm")


@dataclass(frozen=True)
class TumourPart:
    """One connected tumour component and the side it lies on.

    Attributes
    ----------
    n_voxels : int
    x_mm : float
        World x (mm) of its centroid.
    side : str or None
        ``"left"``, ``"right"``, or None when undetermined.
    basis : str
        How the side was found: ``"midline"``, ``"contact"`` or ``""`` (undetermined).
    """

    n_voxels: int
    x_mm: float
    side: str | None
    basis: str


def _mm(x: float) -> str:
    """World x for messages, one decimal, never "-0.0"."""
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


def _world_x(affine: np.ndarray, ijk) -> float:
    return float(apply_affine(affine, np.asarray(ijk, dtype=float))[0])


def gland_midline(labels: np.ndarray, affine: np.ndarray) -> Midline | None:
    """The midline between the gland centroids, or None when the labels give none.

    Parameters
    ----------
    labels : ndarray of int, 3-D
        A label map (0 background, 1 right gland, 2 left gland, 3 tumour).
    affine : ndarray (4, 4)
        Its voxel-to-world affine (mm).

    Returns
    -------
    Midline or None
        None when a gland label is absent or the two centroids lie less than
        :data:`MIN_GLAND_SEPARATION_MM` apart in world x.
    """
    x = {}
    for value in (LABEL_RIGHT_GLAND, LABEL_LEFT_GLAND):
        mask = labels == value
        if not mask.any():
            return None
        x[value] = _world_x(affine, ndimage.center_of_mass(mask))
    x_right, x_left = x[LABEL_RIGHT_GLAND], x[LABEL_LEFT_GLAND]
    if abs(x_right - x_left) < MIN_GLAND_SEPARATION_MM:
        return None
    return Midline((x_right + x_left) / 2.0, float(np.sign(x_right - x_left)), x_right, x_left)


def tumour_components(tumour: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 26-connected components of a boolean tumour mask: (components, count)."""
    return ndimage.label(tumour, structure=_CONNECTIVITY)


def _contact_side(labels: np.ndarray, part: np.ndarray, box: tuple[slice, ...]) -> str | None:
    """The side of the one gland label a component touches (None: neither or both).

    ``part`` is the component's mask on ``box`` (a box of ``labels`` that holds it).
    """
    # the box grown by one voxel, clipped to the volume, and the component's mask on it
    grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n))
                  for s, n in zip(box, labels.shape, strict=True))
    mask = np.zeros(tuple(s.stop - s.start for s in grown), bool)
    mask[tuple(slice(s.start - g.start, s.stop - g.start)
               for s, g in zip(box, grown, strict=True))] = part
    shell = ndimage.binary_dilation(mask, structure=_CONNECTIVITY) & ~mask
    around = labels[grown][shell]
    touched = [value for value in (LABEL_RIGHT_GLAND, LABEL_LEFT_GLAND)
               if (around == value).any()]
    return _SIDE_OF_LABEL[touched[0]] if len(touched) == 1 else None


def tumour_parts(labels: np.ndarray, affine: np.ndarray
                 ) -> tuple[Midline | None, list[TumourPart]]:
    """Every connected tumour component of a label map with its side (module rule).

    Parameters
    ----------
    labels : ndarray of int, 3-D
        A label map with values in {0, 1, 2, 3}.
    affine : ndarray (4, 4)
        Its voxel-to-world affine (mm).

    Returns
    -------
    midline : Midline or None
        As :func:`gland_midline` returns it.
    parts : list of TumourPart
        In component order (scipy's raster order within the tumour's bounding box); empty
        without tumour voxels.
    """
    midline = gland_midline(labels, affine)
    tumour = labels == LABEL_TUMOR
    found = ndimage.find_objects(tumour.astype(np.uint8))
    if not found:
        return midline, []
    # components within the tumour's bounding box (the same components, far cheaper)
    (box,) = found
    offset = np.array([s.start for s in box], dtype=float)
    components, n = tumour_components(tumour[box])
    index = range(1, n + 1)
    sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
    centres = ndimage.center_of_mass(components > 0, components, index)
    boxes = ndimage.find_objects(components) if midline is None else [None] * n
    parts = []
    for i, centre, size, sub in zip(index, centres, sizes, boxes, strict=True):
        x = _world_x(affine, np.asarray(centre) + offset)
        if midline is not None:
            parts.append(TumourPart(int(size), x, midline.side_of(x), "midline"))
            continue
        part_box = tuple(slice(outer.start + inner.start, outer.start + inner.stop)
                         for outer, inner in zip(box, sub, strict=True))
        side = _contact_side(labels, components[sub] == i, part_box)
        parts.append(TumourPart(int(size), x, side, "contact" if side else ""))
    return midline, parts


def _where(parts: list[TumourPart], side: str, midline: Midline | None) -> str:
    """Where the parts on ``side`` lie and how that is known, for messages."""
    on_side = [p for p in parts if p.side == side]
    voxels = sum(p.n_voxels for p in on_side)
    xs = ", ".join(_mm(p.x_mm) for p in on_side)
    what = f"{voxels} voxel(s) in {len(on_side)} connected part(s), centroid world x {xs} mm"
    if all(p.basis == "midline" for p in on_side) and midline is not None:
        return f"{what}, on the {side} gland's side of the {midline.describe()}"
    return (f"{what}, touching the {side} gland only (no midline: a gland label is missing "
            f"or the gland centroids nearly coincide)")


def side_conflict(tumor_side: str, labels: np.ndarray, affine: np.ndarray) -> str | None:
    """Say how a label map contradicts the manifest's ``tumor_side``, or return None.

    Parameters
    ----------
    tumor_side : str
        The manifest's value: ``"left"``, ``"right"`` or ``"both"``.
    labels : ndarray of int, 3-D
        A label map with values in {0, 1, 2, 3} and at least one tumour voxel.
    affine : ndarray (4, 4)
        Its voxel-to-world affine (mm).

    Returns
    -------
    str or None
        A message naming both facts (what the manifest says, where the tumour lies), or
        None when nothing determined contradicts the manifest.
    """
    midline, parts = tumour_parts(labels, affine)
    if not parts:
        return None
    total = sum(p.n_voxels for p in parts)
    if tumor_side == "both":
        if any(p.side is None for p in parts):
            return None
        sides = {p.side for p in parts}
        if len(sides) != 1:
            return None
        (side,) = sides
        return (f"manifest tumor_side is 'both' but the tumour (label {LABEL_TUMOR}) lies only "
                f"on the {side} side, in or next to the {side} gland (label "
                f"{GLAND_LABEL[side]}): {_where(parts, side, midline)}; the "
                f"{_OTHER_SIDE[side]} side has no tumour")
    other = _OTHER_SIDE[tumor_side]
    wrong = [p for p in parts if p.side == other]
    if not wrong:
        return None
    share = f"the tumour (label {LABEL_TUMOR}) lies" if len(wrong) == len(parts) else \
        f"{sum(p.n_voxels for p in wrong)} of the tumour's {total} voxels (label " \
        f"{LABEL_TUMOR}) lie"
    return (f"manifest tumor_side is {tumor_side!r} but {share} on the {other} side, in or "
            f"next to the {other} gland (label {GLAND_LABEL[other]}): "
            f"{_where(parts, other, midline)}")
