"""The radiomics baseline of a run: features of its curated slices, the baseline fitted on the
training patients' slices, and its predictions of every slice (``radiomics_predictions.csv``,
the columns of predictions.csv), so the CNN and radiomics are compared on the same test
patients (issue 15; ``evaluation.comparison``). Torch-free.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.data.dataset import load_dataset
from parotidlib.radiomics.baseline import baseline_predictions, fit_baseline
from parotidlib.radiomics.features import dataset_features

__all__ = ["radiomics_baseline"]


def radiomics_baseline(data_dir: str | Path, channels: tuple[str, ...] | None = None,
                       seed: int = 0, model: str = "logistic", n_bins: int = 32
                       ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit the radiomics baseline on a run's training slices and predict every slice.

    Parameters
    ----------
    data_dir : path
        The run's curated dataset (``<run>/data``).
    channels : sequence of str, optional
        The channels the features come from (default: every curated channel; the run's
        ``channels``, so the baseline sees the inputs the CNN sees).
    seed : int
        Seed of the inner, patient-grouped cross-validation
        (:func:`parotidlib.radiomics.baseline.fit_baseline`).
    model : str
        ``"logistic"`` or ``"random_forest"``.
    n_bins : int
        Grey-level bins of the texture features.

    Returns
    -------
    predictions : DataFrame
        predictions.csv's columns (one ``prob_<class>`` per class of the dataset, in its
        order), train and test slices.
    info : dict
        ``model``, chosen ``params``, inner-CV ``cv_score`` (balanced accuracy), ``n_features``,
        ``seconds`` (features, fit), JSON-able.
    """
    ds = load_dataset(data_dir, channels=channels)
    start = time.perf_counter()
    features = dataset_features(np.asarray(ds.images), ds.channels, n_bins=n_bins)
    features_s = time.perf_counter() - start
    train = ds.indices("train")
    fitted = fit_baseline(features.iloc[train].reset_index(drop=True), ds.labels[train],
                          ds.slices["patient_id"].to_numpy()[train], seed=seed, model=model,
                          classes=ds.classes)
    fit_s = time.perf_counter() - start - features_s
    predictions = baseline_predictions(fitted, features, ds.slices)
    info = {"model": model, "params": {k: (v if isinstance(v, int | float | str) else str(v))
                                       for k, v in fitted.params.items()},
            "cv_score": float(fitted.cv_score), "n_features": len(fitted.feature_names),
            "channels": list(ds.channels), "n_bins": n_bins,
            "seconds": {"features": round(features_s, 2), "fit": round(fit_s, 2)}}
    return predictions, info
