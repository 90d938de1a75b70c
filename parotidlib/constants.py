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
#: MR series of the paper's cohort: the default of the ``series`` param (parotidlib.study).
SERIES: tuple[str, ...] = ("t1", "ce_t1", "t2")
#: The series every other one is aligned to, and the gland channel's source (parotidlib.study).
REFERENCE_SERIES = "t1"
#: The channel cropped from the reference series around the ipsilateral gland (Figure 3).
GLAND_CHANNEL = "gland"
#: The paper's model input channels, in this order: every series, then the gland; the
#: default of the ``channels`` param, and any subset (kept in this order) for the ablation.
CHANNELS: tuple[str, ...] = (*SERIES, GLAND_CHANNEL)
#: Tumour sides in the manifest.
SIDES: tuple[str, ...] = ("left", "right", "both")

#: Label-map values (one label map per series, on that series' grid).
LABEL_BACKGROUND = 0
LABEL_RIGHT_GLAND = 1
LABEL_LEFT_GLAND = 2
LABEL_TUMOR = 3
GLAND_LABEL = {"right": LABEL_RIGHT_GLAND, "left": LABEL_LEFT_GLAND}

#: Clinical manifest columns every cohort must have, whatever its series.
CLINICAL_COLUMNS: tuple[str, ...] = ("patient_id", "histology", "tumor_side", "age", "sex",
                                     "scanner")
#: Image and label-map columns of the default series; paths are relative to the manifest's
#: folder. Another ``series`` param needs other columns (parotidlib.study.Study).
IMAGE_COLUMNS: tuple[str, ...] = SERIES
LABEL_COLUMNS: tuple[str, ...] = tuple(f"{s}_labels" for s in SERIES)
#: Manifest columns a cohort of the default series must have.
MANIFEST_COLUMNS: tuple[str, ...] = (*CLINICAL_COLUMNS, *IMAGE_COLUMNS, *LABEL_COLUMNS)

#: Histologies of parotid tumours the kit knows, with their behaviour, after the WHO
#: classification of salivary gland tumours (El-Naggar AK, Chan JKC, Grandis JR, Takata T,
#: Slootweg PJ, eds. WHO Classification of Head and Neck Tumours. 4th ed. IARC 2017, ch. 7):
#: True = malignant. ``malignant`` is the paper's pooled malignant group (Xia et al. 2021).
KNOWN_HISTOLOGIES: dict[str, bool] = {
    "pleomorphic_adenoma": False, "warthin": False, "basal_cell_adenoma": False,
    "oncocytoma": False, "myoepithelioma": False, "canalicular_adenoma": False,
    "cystadenoma": False, "sebaceous_adenoma": False, "lymphadenoma": False,
    "ductal_papilloma": False, "lipoma": False, "haemangioma": False,
    "schwannoma": False,
    "malignant": True, "mucoepidermoid_carcinoma": True, "adenoid_cystic_carcinoma": True,
    "acinic_cell_carcinoma": True, "salivary_duct_carcinoma": True,
    "carcinoma_ex_pleomorphic_adenoma": True, "myoepithelial_carcinoma": True,
    "epithelial_myoepithelial_carcinoma": True, "polymorphous_adenocarcinoma": True,
    "secretory_carcinoma": True, "basal_cell_adenocarcinoma": True,
    "adenocarcinoma_nos": True, "squamous_cell_carcinoma": True, "lymphoma": True,
    "metastasis": True,
}
#: The slice class of a tumour-free contralateral gland (Xia et al. 2021): every scheme's 0.
FREE_CLASS = "free"
