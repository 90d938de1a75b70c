"""Radiomics baseline: a scikit-learn classifier on per-slice IBSI features (torch-free).

Issue 15 compares the CNN with a conventional radiomics model trained on the same slices
and patients. The features are those of :func:`parotidlib.radiomics.features.dataset_features`
(IBSI definitions; Zwanenburg et al., Radiology 2020;295:328-338), one row per slice, with
NaN where an ROI is degenerate. The model follows the usual radiomics recipe for parotid MRI
(Qi J, Gao A, Ma X, et al. *Differentiation of Benign From Malignant Parotid Gland Tumors
Using Conventional MRI Based on Radiomics Nomogram.* Front Oncol 2022;12:937050): impute,
standardise, select a few features, fit a linear (or tree-ensemble) classifier, with every
data-dependent step fitted inside the cross-validation so that no validation slice leaks
into feature selection.

Pipeline (scikit-learn; Pedregosa F, et al. *Scikit-learn: Machine Learning in Python.*
JMLR 2011;12:2825-2830)::

    SimpleImputer(median) -> StandardScaler -> SelectKBest(f_classif) -> classifier

* ``model="logistic"``: multinomial ``LogisticRegression`` (L2, lbfgs,
  ``class_weight="balanced"``); grid ``k`` in {10, 30, all} x ``C`` in {0.1, 1}.
* ``model="random_forest"``: ``RandomForestClassifier`` (100 trees, ``max_features="sqrt"``,
  ``class_weight="balanced"``); grid ``k`` in {30, all} x ``min_samples_leaf`` in {1, 5}.

``k`` values above the number of features are capped at it. Hyperparameters are chosen by
``GridSearchCV`` with ``StratifiedGroupKFold(inner_folds, shuffle=True, random_state=seed)``
grouped by patient, on the rows the caller passes (the training slices only), scored by
**balanced accuracy** (the mean per-class recall: robust to the many tumour-free slices, and
defined for every fold, unlike the log loss when a fold lacks a class). The best setting is
refitted on all the given rows. Everything is seeded, so a seed gives identical predictions.

The classes are the run's (``classes``, :class:`parotidlib.study.ClassScheme`: the paper's
four by default), in model-output order; the labels are indices into them and the
predictions carry one ``prob_<class>`` column per class, as the CNN's predictions.csv.
A class absent from the training labels is simply not learned: the classifier is fitted on
the classes present, and :meth:`BaselineModel.predict_proba` gives that class probability 0
(the other columns still sum to 1). At least two classes must be present (ValueError).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from parotidlib.config import check_int
from parotidlib.constants import CLASSES

__all__ = ["MODELS", "SCORING", "BaselineModel", "baseline_predictions", "fit_baseline",
           "param_grid", "predictions_columns"]

#: Classifiers :func:`fit_baseline` can fit.
MODELS: tuple[str, ...] = ("logistic", "random_forest")
#: Inner-CV scoring (scikit-learn scorer name).
SCORING = "balanced_accuracy"


def predictions_columns(classes: Sequence[str] = CLASSES) -> tuple[str, ...]:
    """Columns of predictions.csv, in order (as written by parotidlib.learn.predict), with one
    ``prob_<class>`` per class in ``classes`` order."""
    return ("patient_id", "slice_index", "true_label", "z_mm", "side", "histology", "split",
            *(f"prob_{c}" for c in classes), "predicted_label")


#: Columns of predictions.csv of the paper's classes.
PREDICTIONS_COLUMNS: tuple[str, ...] = predictions_columns()
_SLICE_COLUMNS: tuple[str, ...] = ("patient_id", "slice_index", "z_mm", "label", "side",
                                   "histology", "split")


@dataclass
class BaselineModel:
    """A fitted radiomics baseline (see the module docstring).

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Imputer, scaler, feature selection and classifier, refitted on all training rows.
    params : dict
        The hyperparameters chosen by the inner cross-validation (``GridSearchCV.best_params_``).
    cv_score : float
        Mean inner-CV balanced accuracy of the chosen setting.
    feature_names : list of str
        The feature columns, in the order the pipeline expects them.
    model : str
        ``"logistic"`` or ``"random_forest"``.
    seed : int
        The seed of the inner folds and of the classifier.
    inner_splits : list of (ndarray, ndarray)
        The inner (train, validation) row indices used by the grid search, for inspection.
    class_names : tuple of str
        The run's classes, in model-output order; the labels index them.
    """

    pipeline: Pipeline
    params: dict[str, Any]
    cv_score: float
    feature_names: list[str]
    model: str = "logistic"
    seed: int = 0
    inner_splits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)
    class_names: tuple[str, ...] = CLASSES

    @property
    def classes(self) -> np.ndarray:
        """Class indices (into :attr:`class_names`) the classifier was trained on."""
        return np.asarray(self.pipeline.classes_, dtype=int)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities of each row, shape (N, C), columns in :attr:`class_names` order.

        Parameters
        ----------
        features : pandas.DataFrame
            Feature table with (at least) the columns :attr:`feature_names`; NaNs allowed.

        Returns
        -------
        numpy.ndarray of float64, shape (N, C)
            Rows sum to 1; a class absent from training has probability 0.
        """
        x = _feature_matrix(features, self.feature_names)
        probs = np.zeros((len(x), len(self.class_names)), dtype=np.float64)
        probs[:, self.classes] = self.pipeline.predict_proba(x)
        return probs / probs.sum(axis=1, keepdims=True)


def _feature_matrix(features: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame, got {type(features)}")
    if names is None:
        names = [str(c) for c in features.columns]
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise ValueError(f"features is missing columns {missing[:5]} ({len(missing)} in all)")
    x = features[names].apply(pd.to_numeric, errors="raise").astype(np.float64)
    if np.isinf(x.to_numpy()).any():
        raise ValueError("features must not contain infinities (NaN is allowed)")
    return x


def _labels(labels: Any, n: int, classes: Sequence[str]) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if y.dtype.kind not in "iu" or y.min(initial=0) < 0 or y.max(initial=0) >= len(classes):
        raise ValueError(f"labels must be integer class indices 0..{len(classes) - 1} (the "
                         f"classes {list(classes)})")
    return y.astype(np.int64)


def param_grid(model: str, n_features: int) -> dict[str, list[Any]]:
    """The hyperparameter grid searched for ``model`` (``k`` capped at ``n_features``).

    Parameters
    ----------
    model : str
        ``"logistic"`` or ``"random_forest"``.
    n_features : int
        Number of feature columns.

    Returns
    -------
    dict
        ``GridSearchCV`` ``param_grid`` over the pipeline's step parameters.
    """
    if model == "logistic":
        ks, grid = [10, 30], {"clf__C": [0.1, 1.0]}
    elif model == "random_forest":
        ks, grid = [30], {"clf__min_samples_leaf": [1, 5]}
    else:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    k = sorted({min(k, n_features) for k in ks if k < n_features}) + ["all"]
    return {"select__k": k, **grid}


def _pipeline(model: str, seed: int, n_jobs: int) -> Pipeline:
    if model == "logistic":
        clf: Any = LogisticRegression(C=1.0, l1_ratio=0.0, solver="lbfgs", max_iter=1000,
                                      class_weight="balanced", random_state=seed)
    elif model == "random_forest":
        clf = RandomForestClassifier(n_estimators=100, max_features="sqrt",
                                     class_weight="balanced", random_state=seed,
                                     n_jobs=n_jobs)
    else:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("select", SelectKBest(f_classif, k="all")),
        ("clf", clf),
    ])


def fit_baseline(
    features: pd.DataFrame,
    labels: np.ndarray,
    patient_ids: np.ndarray,
    seed: int = 0,
    model: str = "logistic",
    inner_folds: int = 3,
    n_jobs: int = 1,
    classes: Sequence[str] = CLASSES,
) -> BaselineModel:
    """Fit the radiomics baseline on training slices, tuning it by patient-grouped inner CV.

    Parameters
    ----------
    features : pandas.DataFrame, shape (N, F)
        Per-slice features (``dataset_features`` output) of the training slices only; NaN
        where an ROI is degenerate (median-imputed inside the pipeline).
    labels : numpy.ndarray of int, shape (N,)
        Class indices into ``classes``.
    patient_ids : numpy.ndarray, shape (N,)
        Patient of each slice: the inner folds never split a patient.
    seed : int
        Seeds the inner folds (shuffle) and the classifier.
    model : str
        ``"logistic"`` (default) or ``"random_forest"``.
    inner_folds : int
        Number of inner ``StratifiedGroupKFold`` folds (>= 2, <= number of patients).
    n_jobs : int
        Cores for the random forest (the grid search itself runs serially).
    classes : sequence of str
        The run's classes in model-output order (the dataset's; the paper's four by default).

    Returns
    -------
    BaselineModel

    Raises
    ------
    ValueError
        On malformed inputs, fewer than two classes, or fewer patients than ``inner_folds``.

    Notes
    -----
    Grid and scoring: see the module docstring and :func:`param_grid`. A class absent from
    ``labels`` gets probability 0 from :meth:`BaselineModel.predict_proba`.
    """
    x = _feature_matrix(features)
    n = len(x)
    y = _labels(labels, n, classes)
    groups = np.asarray(patient_ids)
    if groups.shape != (n,):
        raise ValueError(f"patient_ids must have shape ({n},), got {groups.shape}")
    if x.shape[1] == 0 or n == 0:
        raise ValueError("features must have at least one row and one column")
    if len(np.unique(y)) < 2:
        raise ValueError(f"labels must contain at least two classes, got {np.unique(y)}")
    check_int("inner_folds", inner_folds, 2)
    n_patients = len(pd.unique(groups))
    if n_patients < inner_folds:
        raise ValueError(f"need at least inner_folds={inner_folds} patients, got {n_patients}")
    cv = StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # few members of a rare class per fold; constant columns (F-score undefined)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        splits = [(tr, va) for tr, va in cv.split(x, y, groups)]
        search = GridSearchCV(_pipeline(model, seed, n_jobs), param_grid(model, x.shape[1]),
                              scoring=SCORING, cv=splits, n_jobs=1, refit=True,
                              error_score="raise")
        # One BLAS thread: lbfgs on a few thousand rows x <= 200 features is ~10x slower
        # with a threaded BLAS on the 2-core machine (bench/bench_report_additions.py).
        with threadpool_limits(limits=1):
            search.fit(x, y)
    return BaselineModel(pipeline=search.best_estimator_, params=dict(search.best_params_),
                         cv_score=float(search.best_score_),
                         feature_names=[str(c) for c in x.columns], model=model, seed=seed,
                         inner_splits=splits, class_names=tuple(classes))


def baseline_predictions(model: BaselineModel, features: pd.DataFrame,
                         slices: pd.DataFrame) -> pd.DataFrame:
    """The baseline's predictions table, with the columns of predictions.csv in order.

    Parameters
    ----------
    model : BaselineModel
        From :func:`fit_baseline`.
    features : pandas.DataFrame, shape (N, F)
        Features of the slices to predict, row i describing ``slices`` row i.
    slices : pandas.DataFrame, shape (N, ...)
        The curated slices table, with columns patient_id, slice_index, z_mm, label, side,
        histology, split.

    Returns
    -------
    pandas.DataFrame
        Columns :func:`predictions_columns` of the model's classes: patient_id, slice_index,
        true_label (the slices' ``label``), z_mm, side, histology, split, one
        ``prob_<class>`` per class in :attr:`BaselineModel.class_names` order,
        predicted_label (arg-max class name); accepted by
        :func:`parotidlib.evaluation.decision.check_predictions`.
    """
    if len(features) != len(slices):
        raise ValueError(f"features has {len(features)} rows but slices has {len(slices)}")
    missing = [c for c in _SLICE_COLUMNS if c not in slices.columns]
    if missing:
        raise ValueError(f"slices is missing columns {missing}; has {list(slices.columns)}")
    probs = model.predict_proba(features)
    s = slices.reset_index(drop=True)
    out = pd.DataFrame({
        "patient_id": s["patient_id"].to_numpy(),
        "slice_index": s["slice_index"].to_numpy(),
        "true_label": s["label"].to_numpy(),
        "z_mm": s["z_mm"].to_numpy(),
        "side": s["side"].to_numpy(),
        "histology": s["histology"].to_numpy(),
        "split": s["split"].to_numpy(),
    })
    for j, c in enumerate(model.class_names):
        out[f"prob_{c}"] = probs[:, j]
    out["predicted_label"] = np.asarray(model.class_names, dtype=object)[probs.argmax(axis=1)]
    return out[list(predictions_columns(model.class_names))]
