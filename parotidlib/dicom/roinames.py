"""Which ROI is the right gland, the left gland or the tumour: whole names, TG-263 first.

:func:`classify_roi` decides one ROI from its name and RTROIInterpretedType, in this order:

1. **Derived structures are never a label**: an RTROIInterpretedType listed in the rules'
   ``derived_types`` (PTV, CTV, AVOIDANCE, CONTROL, ...), or a name with a margin ("+5mm",
   "_5mm", "exp"), a target volume other than the GTV (PTV, CTV, ITV, PRV), a nodal volume
   (GTVn, "GTV LN") or a planning helper (z*, opt*, avoid*, ring, "Block", "bed").
2. **The name, whole**: folded and normalised (:func:`parotidlib.dicom.rules.normalise_roi_name`,
   "Parotid_R" -> "parotid r") it must match one label's pattern with ``re.fullmatch``, so
   that "Parotid_L-GTV" or "PTV_GTV" can never pass for a gland or the tumour because they
   contain one's name. The defaults are the AAPM TG-263 names (Parotid_R, Parotid_L, GTV,
   GTVp) and the usual other spellings ("R Parotid", "Parotid Rt", "Parotis re", "Tumour",
   "Lesion").
3. **Both glands in one ROI** (TG-263 "Parotids") is split at the midline
   (:func:`split_bilateral`), never taken as one side.
4. A name that matched nothing is left out; the report says why where a rule knows
   (a boolean result such as "Parotid_L-GTV"), else "no rule matches".

References
----------
Mayo CS et al. American Association of Physicists in Medicine Task Group 263: Standardizing
Nomenclatures in Radiation Oncology. Int J Radiat Oncol Biol Phys 2018;100(4):1057-1066
(Table 3: Parotid_L, Parotid_R, Parotids; target names GTVp, GTVn, PTV, CTV, and the "z"
prefix of structures not meant for evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from parotidlib.dicom.rules import STRUCTURES, Rules, fold, normalise_roi_name

BILATERAL = 0
"""The 'label' of an ROI that holds both glands, before :func:`split_bilateral`."""
#: Least world-x distance (mm) between the centroids of the two halves of a bilateral gland
#: ROI (adult parotid glands lie some 80-110 mm apart).
MIN_HALF_SEPARATION_MM = 10.0
#: A component smaller than this share of the ROI's voxels is a fragment, not a gland.
FRAGMENT_SHARE = 0.05


@dataclass(frozen=True)
class RoiVerdict:
    """What the rules make of one ROI.

    Attributes
    ----------
    name : str
        The ROI name as written.
    label : int or None
        1 right gland, 2 left gland, 3 tumour, :data:`BILATERAL` both glands, None: not used.
    reason : str
        Why it is not used ("" when it is): "derived: a margin", "RTROIInterpretedType PTV",
        "no rule matches", "matches several labels".
    """

    name: str
    label: int | None
    reason: str = ""


def classify_roi(name: str, rules: Rules, interpreted_type: str = "") -> RoiVerdict:
    """The label of one ROI, or why it has none (see the module docstring)."""
    kind = str(interpreted_type or "").strip().upper()
    if kind and kind in rules.derived_types:
        return RoiVerdict(name, None, f"derived: RTROIInterpretedType {kind}")
    raw = fold(name)
    for reason, patterns in (rules.derived_rois or {}).items():
        if any(p.search(raw) for p in patterns):
            return RoiVerdict(name, None, f"derived: {reason}")
    text = normalise_roi_name(name)
    found = [label for label, patterns in rules.rois.items()
             if any(p.fullmatch(text) for p in patterns)]
    if any(p.fullmatch(text) for p in rules.bilateral_glands):
        found.append(BILATERAL)
    if len(found) == 1:
        return RoiVerdict(name, found[0])
    if len(found) > 1:
        return RoiVerdict(name, None, "matches several labels: "
                          + ", ".join(STRUCTURES.get(x, "both glands") for x in found))
    if any(p.search(raw) for p in rules.boolean_rois):
        return RoiVerdict(name, None, "derived: a boolean result")
    return RoiVerdict(name, None, "no rule matches")


def split_bilateral(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split one ROI holding both parotid glands into ``(right, left)`` at the midline.

    The ROI's 3-D connected components (26-connectivity) are found; it must have exactly two
    that each hold at least :data:`FRAGMENT_SHARE` of its voxels, with centroids at least
    :data:`MIN_HALF_SEPARATION_MM` apart in world x. RAS+ world x grows towards the
    patient's right (NIfTI-1 ``sform``), so the half at larger x is the right gland; the
    midline is halfway between the two centroids, and smaller fragments go to the side of
    the midline their centroid lies on.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean 3-D mask of the ROI on its series' grid.
    affine : numpy.ndarray
        The grid's voxel-to-RAS+ affine.

    Returns
    -------
    right, left : numpy.ndarray
        Boolean masks of the same shape.

    Raises
    ------
    ValueError
        The ROI does not fall into two glands; the message says how many components and
        how far apart.
    """
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        raise ValueError("it covers no voxel")
    sizes = np.bincount(components.ravel())[1:]
    index = np.indices(mask.shape).reshape(3, -1)
    flat = components.ravel()
    x = np.asarray(affine, float)[0, :3] @ index + float(affine[0, 3])
    centroids = np.array([x[flat == c + 1].mean() for c in range(count)])
    big = np.flatnonzero(sizes >= FRAGMENT_SHARE * sizes.sum())
    if len(big) != 2:
        raise ValueError(f"it has {len(big)} component(s) of at least {FRAGMENT_SHARE:.0%} of "
                         f"its voxels, not the two glands")
    a, b = sorted(big, key=lambda c: centroids[c])
    if centroids[b] - centroids[a] < MIN_HALF_SEPARATION_MM:
        raise ValueError(f"its two components lie {centroids[b] - centroids[a]:.1f} mm apart "
                         f"in x (at least {MIN_HALF_SEPARATION_MM:g} mm needed)")
    midline = 0.5 * (centroids[a] + centroids[b])
    right_ids = [c + 1 for c in range(count) if centroids[c] >= midline]
    right = np.isin(components, right_ids)
    return right, mask & ~right
