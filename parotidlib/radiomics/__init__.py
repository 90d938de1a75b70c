"""Radiomics: hand-crafted per-slice features of the curated inputs, for a radiomics baseline.

:mod:`parotidlib.radiomics.features` computes IBSI-defined first-order, 2-D shape and texture
features (GLCM, GLRLM, GLSZM) of every slice and channel of a curated dataset
(``data/images.npy``), with the ROI the CNN sees. Torch-free.
"""

from parotidlib.radiomics.features import FEATURE_NAMES, dataset_features, slice_features

__all__ = ["FEATURE_NAMES", "dataset_features", "slice_features"]
