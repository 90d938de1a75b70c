"""Names shared by every part of the kit (see docs/design.md, "Shared names").

Class order follows the paper's Figure 7 (Xia et al. 2021): index 0 is the tumour-free
contralateral gland, then the two benign types, then malignant.
"""

from __future__ import annotations

#: Slice classes, in model-output order.
CLASSES: tuple[str, ...] = ("free", "pleomorphic_adenoma", "warthin", "malignant")
#: Histologies a patient can have (a patient is never "free").
HISTOLOGIES: tuple[str, ...] = ("pleomorphic_adenoma", "warthin", "malignant")
#: The benign histologies (Table 4, "benign vs malignant").
BENIGN: tuple[str, ...] = ("pleomorphic_adenoma", "warthin")
#: MR series of every patient.
SERIES: tuple[str, ...] = ("t1", "ce_t1", "t2")
#: Model input channels, in this order; any subset (kept in this order) for the ablation.
CHANNELS: tuple[str, ...] = ("t1", "ce_t1", "t2", "gland")
#: Tumour sides in the manifest.
SIDES: tuple[str, ...] = ("left", "right", "both")

#: Label-map values (one label map per series, on that series' grid).
LABEL_BACKGROUND = 0
LABEL_RIGHT_GLAND = 1
LABEL_LEFT_GLAND = 2
LABEL_TUMOR = 3
GLAND_LABEL = {"right": LABEL_RIGHT_GLAND, "left": LABEL_LEFT_GLAND}

#: Manifest columns every cohort must have; paths are relative to the manifest's folder.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "patient_id", "histology", "tumor_side", "age", "sex", "scanner",
    "t1", "ce_t1", "t2", "t1_labels", "ce_t1_labels", "t2_labels",
)
IMAGE_COLUMNS: tuple[str, ...] = SERIES
LABEL_COLUMNS: tuple[str, ...] = tuple(f"{s}_labels" for s in SERIES)
