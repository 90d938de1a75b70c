"""The report's words and table for where the network looks (``saliency.json``, written by
:mod:`parotidlib.learn.explain`): the ROI rule, the randomisation check's method and verdict,
the warnings, and the per-class table. ``learn`` records numbers and flags; the sentences are
made here, so a run's ``saliency.json`` reads the same whatever the report says about it.
Torch-free.

References
----------
Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. Sanity checks for saliency maps.
    NeurIPS 2018.
Selvaraju RR, Cogswell M, Das A, et al. Grad-CAM: visual explanations from deep networks via
    gradient-based localization. ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from parotidlib.constants import CLASSES

__all__ = ["NO_MASK_TEXT", "ROI_TEXT", "randomisation_method", "randomisation_verdict",
           "saliency_table", "saliency_warnings"]

#: How the region of interest of a slice is found (learn.saliency.roi_masks).
ROI_TEXT = ("The region of interest of a slice is taken as the nonzero pixels of its T1 channel "
            "(of the first MR series channel, ce_t1 or t2, when t1 is not an input): the "
            "curated data store no masks, but with mask_background: true (the default) every "
            "pixel outside the ROI is 0 in the image channels. The ROI is the tumour on a lesion "
            "slice and the contralateral gland on a free slice. Each series is cropped around "
            "its own aligned label map, so the T1 mask is the one that matches the T1 channel; "
            "the gland channel is not used (on a lesion slice it is the whole ipsilateral "
            "gland). ROI pixels whose T1 value is 0 (at or below the normalisation window's "
            "lower percentile) are counted outside; without mask_background the mask is the "
            "whole in-image crop and the fraction says nothing.")


#: The warning of a run curated without ``mask_background``.
NO_MASK_TEXT = ("The dataset was curated with mask_background: false, so the region of "
                "interest (the nonzero T1 pixels) is the whole in-image crop, not the tumour: "
                "the shares of the maps inside it say nothing about the tumour.")
#: Median share of the image in the ROI above which the masks look like whole crops.
WHOLE_CROP_AREA = 0.99

_REFERENCES = {"randomised": "the same network with all layers re-initialised",
               "given": "the given reference network"}


def randomisation_method(check: Mapping[str, Any], method_name: str) -> str:
    """What the model-parameter randomisation check did, in words (``check``: the
    ``randomisation`` block of ``saliency.json``; ``method_name``: "Grad-CAM" or
    "Grad-CAM++")."""
    compared = _REFERENCES[check.get("reference", "randomised")]
    return (f"Model-parameter randomisation test (Adebayo et al. 2018): {method_name} maps of "
            f"the trained network were compared with those of {compared} (full "
            f"re-initialisation with a seeded generator, seed {check['seed']}: convolutions "
            f"He-normal, linear layers PyTorch's default, batch norms reset), for the same "
            f"slices and target classes, by Spearman's rank correlation of their pixels per "
            f"slice. The maps are called informative when the mean correlation is below "
            f"{check['threshold']:g}.")


def randomisation_verdict(check: Mapping[str, Any], method_name: str) -> str:
    """The check's verdict, saying "not informative" when the maps are not."""
    mean, threshold = check.get("mean_spearman"), check["threshold"]
    if mean is None:
        return (f"The randomisation check is undefined (no slice with two non-constant maps), "
                f"so the {method_name} maps are not shown to be informative.")
    if check["informative"]:
        return (f"The {method_name} maps depend on the learned weights: mean Spearman "
                f"correlation {mean:.2f} with the randomised network's maps (< {threshold:g}).")
    return (f"The {method_name} maps are not informative: they change little when the "
            f"network's weights are randomised (mean Spearman correlation {mean:.2f} >= "
            f"{threshold:g}), so they show the input and the architecture rather than what "
            f"the network learned.")


def saliency_warnings(summary: Mapping[str, Any]) -> list[str]:
    """Warnings about a summary's mask fractions: a run curated without ``mask_background``,
    or ROI masks covering nearly every pixel. A ``saliency.json`` written before the
    sentences moved here carries them itself (``warnings``): those are returned."""
    if "warnings" in summary:
        return list(summary["warnings"])
    if not summary.get("mask_background", True):
        return [NO_MASK_TEXT]
    area = summary.get("median_roi_area")
    if area is not None and area > WHOLE_CROP_AREA:
        return [f"The ROI masks cover nearly every pixel (median {area:.3f}): the slices look "
                f"curated without mask_background, so the mask fractions do not measure the "
                f"tumour."]
    return []


def saliency_table(summary: Mapping[str, Any], classes: Sequence[str] | None = None
                   ) -> pd.DataFrame:
    """Per true class: test slices, the map's mean share inside the ROI, the ROI's mean share
    of the image (what an evenly spread map would give) and their ratio.

    ``classes`` default: the run's, as the summary lists them (every class of the dataset's
    scheme, in model-output order; the paper's four for an empty summary)."""
    rows = []
    per_class = summary["mask_fraction"]["per_class"]
    for name in classes if classes is not None else (list(per_class) or CLASSES):
        entry = per_class.get(name, {})
        inside, area = entry.get("mean"), entry.get("mean_roi_area")
        rows.append({
            "class": name,
            "test slices": entry.get("n_slices", 0),
            "slices without map mass": entry.get("n_undefined", 0),
            "map mass in ROI": inside,
            "ROI share of image": area,
            "ratio": inside / area if inside is not None and area else None,
        })
    return pd.DataFrame(rows).set_index("class").round(3)
