"""A trained model applied to another cohort: diagnoses, validation beside the internal test,
calibration and the decision curve (``external.json``; torch-free).

The predict chain (notebooks 70-72, ``python -m parotidlib predict``) curates a new cohort
with the model bundle's settings, predicts every slice (``predictions.csv``, split
``"external"``) and calls :func:`compute_external_metrics`. Its parts:

- :func:`patient_probabilities`: a patient's class probabilities, the mean slice
  probabilities over its lesion slices (the slices with a tumour ROI), renormalised over the
  three tumour types (``free`` left out). The decision rule (Figure 5) counts slices and gives
  no probability; this is the probability calibration and the decision curve are about.
- :func:`patient_diagnoses`: the rule of Figure 5 for every patient, with the slice counts it
  used and the malignant-slice count against the threshold, whether or not the patient has a
  histology;
- :func:`cohort_block`: for the patients with histology, the blocks of the main report
  (slice accuracy and AUC, Table 4, Table 5, patient confusion matrix) plus calibration at
  slice and patient level (malignant vs benign, and each class one-vs-rest);
- :func:`accuracy_differences`: external minus internal accuracy, slices (patient-clustered
  bootstrap, each cohort resampled on its own) and patients (Newcombe's hybrid score interval
  for independent proportions, statsmodels).

Every function takes the run's class scheme (``scheme``, :class:`parotidlib.study.ClassScheme`,
from the bundle's curation; default the paper's four classes): the probabilities, the rule and
the blocks run over its classes, malignant vs benign over its groups (undefined where the
scheme lacks one), and external.json records it under ``class_scheme`` unless it is the
paper's.

Slices of a patient without histology have an empty ``true_label`` for their lesion slices
and ``free`` for the others; such patients are diagnosed and shown, never scored. A cohort
with no patient with histology is *unvalidated*: ``validated`` is False and no block is
computed.

References
----------
Xia X, Feng B, Wang J, et al. Deep learning for differentiating benign from malignant parotid
    lesions on MR images. Front Oncol 2021; 11:632104 (Figure 5, Tables 4-5).
Collins GS, Dhiman P, Ma J, et al. Evaluation of clinical prediction models (part 1): from
    development to external validation. BMJ 2024; 384:e074819.
Newcombe RG. Interval estimation for the difference between independent proportions:
    comparison of eleven methods. Stat Med 1998; 17:873-890 (method 10).
Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007; 69:369-390.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep

from parotidlib.evaluation.calibration import calibration_summary, net_benefit, one_vs_rest
from parotidlib.evaluation.classes import (
    SCHEME_KEY,
    is_paper,
    patient_class,
    probability_columns,
)
from parotidlib.evaluation.decision import diagnose_patient, diagnose_patients
from parotidlib.evaluation.diagnostic_accuracy import patient_confusion, patient_table5, table4
from parotidlib.evaluation.metrics import MIN_BOOTSTRAP_PATIENTS
from parotidlib.evaluation.results import slice_block
from parotidlib.evaluation.schema import to_jsonable
from parotidlib.evaluation.stats import proportion_or_undefined, undefined_block
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

__all__ = [
    "EXTERNAL_FORMAT",
    "PATIENT_PROBABILITY",
    "DECISION_THRESHOLDS",
    "accuracy_differences",
    "calibration_blocks",
    "cohort_block",
    "compute_external_metrics",
    "decision_curve",
    "labelled",
    "patient_diagnoses",
    "patient_probabilities",
    "patient_probability_text",
]

#: Format tag of external.json.
EXTERNAL_FORMAT = "parotidlib.external-metrics/1"
#: How a patient's probabilities are made (written into external.json and the report), for
#: the paper's scheme (:func:`patient_probability_text` for any).
PATIENT_PROBABILITY = (
    "mean slice probability over the patient's lesion slices (tumour ROI), renormalised over "
    "the three tumour types (free left out)")
#: Threshold probabilities of the decision curve.
DECISION_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.01, 1.0, 0.01))
#: How the rule's sentence names a class (else its name with spaces).
_SAID = {"warthin": "Warthin"}


def patient_probability_text(scheme: ClassScheme = PAPER_CLASSES) -> str:
    """How a patient's probabilities are made, for ``scheme`` (the paper's:
    :data:`PATIENT_PROBABILITY`)."""
    if is_paper(scheme):
        return PATIENT_PROBABILITY
    return ("mean slice probability over the patient's lesion slices (tumour ROI), "
            f"renormalised over the {len(scheme.classes) - 1} lesion classes (free left out)")


def _patient_columns(scheme: ClassScheme) -> list[str]:
    return [f"p_{c}" for c in scheme.classes[1:]]


def _is_lesion(frame: pd.DataFrame) -> np.ndarray:
    """Lesion slices: every slice whose true label is not ``free`` (unknown included)."""
    return (frame["true_label"].astype(object) != "free").to_numpy()


def labelled(predictions: pd.DataFrame, scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """The rows of the patients with a histology the scheme gives a class (the ones a
    validation can score)."""
    if "histology" not in predictions.columns:
        return predictions
    return predictions[predictions["histology"].map(
        lambda h: patient_class(h, scheme) is not None).astype(bool)]


def patient_probabilities(predictions: pd.DataFrame,
                          scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """Each patient's probability of each lesion class (:func:`patient_probability_text`).

    Returns
    -------
    pandas.DataFrame
        ``patient_id`` and ``p_<class>`` for the scheme's lesion classes (paper:
        ``p_pleomorphic_adenoma``, ``p_warthin``, ``p_malignant``; summing to 1), sorted by
        patient; NaN for a patient without lesion slices.
    """
    lesion_classes = scheme.classes[1:]
    columns = _patient_columns(scheme)
    frame = predictions.assign(_lesion=_is_lesion(predictions))
    rows = []
    for pid, group in frame.groupby("patient_id", sort=True):
        lesion = group[group["_lesion"]]
        mean = lesion[[f"prob_{h}" for h in lesion_classes]].to_numpy(float).mean(axis=0) \
            if len(lesion) else np.full(len(lesion_classes), np.nan)
        total = mean.sum()
        probs = mean / total if np.isfinite(total) and total > 0 else np.full_like(mean, np.nan)
        rows.append({"patient_id": pid, **dict(zip(columns, probs, strict=True))})
    return pd.DataFrame(rows, columns=["patient_id", *columns])


def _rule_text(counts: Mapping[str, int], diagnosis: str, malignant_threshold: int,
               scheme: ClassScheme) -> str:
    """The sentence of the rule applied (the paper's: malignant slices against the
    threshold, then pleomorphic adenoma vs Warthin slices)."""
    n_mal = sum(counts[f"n_pred_{c}"] for c in scheme.malignant)
    said = " vs ".join(f"{counts[f'n_pred_{c}']} {_SAID.get(c, c.replace('_', ' '))}"
                       for c in scheme.benign)
    if n_mal > malignant_threshold:
        verdict = "malignant" + (f" ({diagnosis.replace('_', ' ')})"
                                 if len(scheme.malignant) > 1 else "")
    else:
        verdict = f"benign, {said} slices" if scheme.benign else diagnosis.replace("_", " ")
    return (f"{n_mal} slice(s) predicted malignant "
            f"{'>' if n_mal > malignant_threshold else '<='} {malignant_threshold}: {verdict}")


def patient_diagnoses(predictions: pd.DataFrame, malignant_threshold: int,
                      scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """The decision rule of Figure 5 for every patient, histology or not.

    Returns
    -------
    pandas.DataFrame
        One row per patient (sorted): ``patient_id``, ``histology`` (the class of its
        histology, :func:`parotidlib.evaluation.classes.patient_class`, which for the
        paper's scheme is the histology; None without one), ``predicted_histology``,
        ``n_slices``, ``n_lesion_slices``, ``n_pred_<class>`` for the scheme's classes,
        ``malignant_threshold``, ``rule`` (the sentence the rule applied), ``correct`` (None
        without histology) and the :func:`patient_probabilities` columns.
    """
    columns = list(probability_columns(scheme))
    has_probs = all(c in predictions.columns for c in columns)
    probabilities = patient_probabilities(predictions, scheme).set_index("patient_id")
    rows = []
    for pid, group in predictions.groupby("patient_id", sort=True):
        predicted = group["predicted_label"].to_numpy(object)
        probs = group[columns].to_numpy(float) if has_probs else None
        diagnosis = diagnose_patient(predicted, probs, malignant_threshold, patient_id=str(pid),
                                     scheme=scheme)
        counts = {f"n_pred_{c}": int(np.sum(predicted == c)) for c in scheme.classes}
        rule = _rule_text(counts, diagnosis, malignant_threshold, scheme)
        hist = group["histology"].iloc[0] if "histology" in group.columns else None
        hist = patient_class(hist, scheme)
        rows.append({"patient_id": pid, "histology": hist, "predicted_histology": diagnosis,
                     "n_slices": len(group), "n_lesion_slices": int(_is_lesion(group).sum()),
                     **counts, "malignant_threshold": int(malignant_threshold), "rule": rule,
                     "correct": None if hist is None else bool(hist == diagnosis),
                     **probabilities.loc[pid].to_dict()})
    return pd.DataFrame(rows)


def _summary_or_undefined(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, Any]:
    keep = np.isfinite(p)
    if not keep.any():
        return undefined_block("no item with a probability")
    return calibration_summary(y[keep], np.clip(p[keep], 0.0, 1.0), n_bins=n_bins)


def _labelled_patients(frame: pd.DataFrame, scheme: ClassScheme) -> pd.DataFrame:
    """:func:`patient_probabilities` of the labelled patients with lesion slices, their true
    class (``histology``) and ``p_any_malignant`` (the summed malignant classes)."""
    patients = patient_probabilities(frame, scheme).merge(
        frame.drop_duplicates("patient_id")[["patient_id", "histology"]], on="patient_id")
    patients["histology"] = patients["histology"].map(lambda h: patient_class(h, scheme))
    first = _patient_columns(scheme)[0]
    patients = patients[np.isfinite(patients[first])]
    return patients.assign(p_any_malignant=patients[[f"p_{c}" for c in scheme.malignant]]
                           .sum(axis=1) if scheme.malignant else 0.0)


def calibration_blocks(predictions: pd.DataFrame, n_bins: int = 10,
                       scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """Calibration of labelled predictions at slice and patient level.

    Slices: ``malignant_vs_benign`` on the lesion slices, with the probability of the
    malignant classes renormalised over the lesion classes (paper: ``prob_malignant / (1 -
    prob_free)``), and ``one_vs_rest`` of each class on every slice with its own column.
    Patients: ``malignant_vs_benign`` with the summed ``p_<malignant class>`` and
    ``one_vs_rest`` of each lesion class (:func:`patient_probabilities`). Each entry is a
    :func:`parotidlib.evaluation.calibration.calibration_summary`; ``malignant_vs_benign``
    is undefined ("the class scheme has no benign class" / "... no malignant class") for a
    scheme without both groups.
    """
    frame = labelled(predictions, scheme)
    lesion = frame[_is_lesion(frame)]
    tumour = lesion[[f"prob_{h}" for h in scheme.classes[1:]]].to_numpy(float)
    total = tumour.sum(axis=1)
    bad = tumour[:, [scheme.classes[1:].index(c) for c in scheme.malignant]].sum(axis=1)
    p_slice = np.divide(bad, total, out=np.full(len(total), np.nan), where=total > 0)
    y_slice = lesion["true_label"].isin(scheme.malignant).to_numpy(int)
    ovr = one_vs_rest(frame["true_label"].to_numpy(str),
                      np.clip(frame[list(probability_columns(scheme))].to_numpy(float), 0.0,
                              1.0),
                      scheme.classes)
    patients = _labelled_patients(frame, scheme)
    hist = patients["histology"].to_numpy(str)
    missing = [g for g, members in (("benign", scheme.benign), ("malignant", scheme.malignant))
               if not members]
    if missing:
        reason = f"the class scheme has no {missing[0]} class"
        slice_mvb, patient_mvb = undefined_block(reason), undefined_block(reason)
    else:
        slice_mvb = _summary_or_undefined(y_slice, p_slice, n_bins)
        patient_mvb = _summary_or_undefined(np.isin(hist, scheme.malignant).astype(int),
                                            patients["p_any_malignant"].to_numpy(float),
                                            n_bins)
    return {
        "slice": {
            "malignant_vs_benign": slice_mvb,
            "one_vs_rest": {c: calibration_summary(y, p, n_bins=n_bins)
                            for c, (y, p) in ovr.items()},
        },
        "patient": {
            "malignant_vs_benign": patient_mvb,
            "one_vs_rest": {h: _summary_or_undefined((hist == h).astype(int),
                                                     patients[f"p_{h}"].to_numpy(float), n_bins)
                            for h in scheme.classes[1:]},
        },
        "patient_probability": patient_probability_text(scheme),
    }


def decision_curve(predictions: pd.DataFrame,
                   thresholds: tuple[float, ...] = DECISION_THRESHOLDS,
                   scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """Net benefit of "operate as malignant when the probability of the malignant classes
    (paper: ``p_malignant``) >= pt" over the labelled patients (Vickers & Elkin 2006), with
    treat-all and treat-none."""
    patients = _labelled_patients(labelled(predictions, scheme), scheme)
    return net_benefit(patients["histology"].isin(scheme.malignant).to_numpy(int),
                       patients["p_any_malignant"].to_numpy(float), list(thresholds))


def cohort_block(predictions: pd.DataFrame, split: str, malignant_threshold: int,
                 bootstrap_resamples: int, bootstrap_seed: int, n_bins: int = 10,
                 scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """The results of one cohort's labelled patients, computed as the main report's.

    Parameters
    ----------
    predictions : DataFrame
        predictions.csv rows of one cohort (``split`` column equal to ``split``).
    split : str
        ``"external"``, or ``"test"`` for the training run's internal test.

    Returns
    -------
    dict
        ``slice`` (as metrics.json's ``slice.<split>``), ``table4``, ``patient`` (``table5``,
        ``confusion_matrix``, ``confusion_labels``, ``accuracy``: the exact diagnosis of the
        lesion class, Wilson interval), ``calibration`` (:func:`calibration_blocks`) and
        ``decision_curve`` (:func:`decision_curve` rows).
    """
    frame = labelled(predictions, scheme)
    patients = diagnose_patients(frame, malignant_threshold=malignant_threshold, scheme=scheme)
    correct = int((patients["true_histology"] == patients["predicted_histology"]).sum())
    return {
        "slice": slice_block(frame, split, bootstrap_resamples, bootstrap_seed, scheme),
        "table4": table4(frame, scheme=scheme),
        "patient": {
            "table5": patient_table5(patients, scheme=scheme),
            "confusion_matrix": patient_confusion(patients, scheme).tolist(),
            "confusion_labels": list(scheme.classes[1:]),
            "accuracy": proportion_or_undefined(correct, len(patients), "no patient"),
        },
        "calibration": calibration_blocks(frame, n_bins, scheme),
        "decision_curve": decision_curve(frame, scheme=scheme).to_dict(orient="records"),
    }


def _slice_correct_by_patient(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per patient: correct slices and slices (arrays, one entry per patient)."""
    hits = (frame["true_label"].astype(str) == frame["predicted_label"].astype(str))
    grouped = hits.groupby(frame["patient_id"]).agg(["sum", "count"])
    return grouped["sum"].to_numpy(float), grouped["count"].to_numpy(float)


def accuracy_differences(external: pd.DataFrame, internal: pd.DataFrame,
                         malignant_threshold: int, resamples: int = 1000, seed: int = 0,
                         scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """External minus internal accuracy, at slice and at patient level, with 95% intervals.

    Slices: the difference of the pooled slice accuracies, with a percentile interval from a
    patient-clustered bootstrap that resamples each cohort's patients on its own (the cohorts
    are independent; the slices of a patient are not). Patients: the difference of the
    proportions of exactly diagnosed patients (three types), Newcombe's hybrid score interval
    (``statsmodels.stats.proportion.confint_proportions_2indep``, ``method="newcomb"``).
    """
    ext, intl = labelled(external, scheme), labelled(internal, scheme)
    out: dict[str, Any] = {}
    ek, en = _slice_correct_by_patient(ext)
    ik, inn = _slice_correct_by_patient(intl)
    value = ek.sum() / en.sum() - ik.sum() / inn.sum()
    block: dict[str, Any] = {"value": float(value), "ci95": None,
                             "method": "patient-clustered percentile bootstrap, each cohort "
                                       "resampled on its own"}
    if resamples == 0:
        block["undefined"] = "bootstrap_resamples is 0"
    elif min(len(ek), len(ik)) < MIN_BOOTSTRAP_PATIENTS:
        block["undefined"] = f"fewer than {MIN_BOOTSTRAP_PATIENTS} patients in a cohort"
    else:
        rng = np.random.default_rng(seed)
        a = rng.integers(0, len(ek), size=(resamples, len(ek)))
        b = rng.integers(0, len(ik), size=(resamples, len(ik)))
        diffs = ek[a].sum(1) / en[a].sum(1) - ik[b].sum(1) / inn[b].sum(1)
        lo, hi = np.quantile(diffs, [0.025, 0.975])
        block.update(ci95=[float(lo), float(hi)], n_resamples=int(resamples))
    out["slice_accuracy"] = block
    ep = diagnose_patients(ext, malignant_threshold, scheme) if len(ext) else None
    ip = diagnose_patients(intl, malignant_threshold, scheme) if len(intl) else None
    if ep is None or ip is None:
        out["patient_accuracy"] = undefined_block("no patient with histology in a cohort")
        return out
    ec = int((ep["true_histology"] == ep["predicted_histology"]).sum())
    ic = int((ip["true_histology"] == ip["predicted_histology"]).sum())
    lo, hi = confint_proportions_2indep(ec, len(ep), ic, len(ip), method="newcomb",
                                        compare="diff")
    out["patient_accuracy"] = {
        "value": ec / len(ep) - ic / len(ip), "ci95": [float(lo), float(hi)],
        "external": [ec, len(ep)], "internal": [ic, len(ip)],
        "method": "Newcombe hybrid score interval (independent proportions)"}
    return out


def compute_external_metrics(predictions: pd.DataFrame, malignant_threshold: int,
                             bootstrap_resamples: int = 1000, bootstrap_seed: int = 0,
                             n_bins: int = 10, internal: pd.DataFrame | None = None,
                             synthetic: bool = False,
                             model: Mapping[str, Any] | None = None,
                             scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """Everything external.json holds; plain JSON types.

    Parameters
    ----------
    predictions : DataFrame
        The external cohort's predictions.csv (split ``"external"``).
    malignant_threshold : int
        The bundle's decision-rule threshold.
    internal : DataFrame, optional
        The training run's test predictions (``Bundle.internal_predictions()``): its blocks
        are computed the same way, beside the external ones, and the differences.
    synthetic : bool
        Whether the external cohort is synthetic (labelled in every output).
    model : mapping, optional
        What to record about the model (bundle path, run, commit, training cohort synthetic).
    scheme : ClassScheme
        The model's class scheme (default the paper's four classes); recorded as
        ``class_scheme`` unless it is the paper's.

    Returns
    -------
    dict
        ``format``, ``synthetic``, ``model``, ``malignant_threshold``, ``patient_probability``,
        ``n_patients``, ``n_labelled_patients``, ``validated`` (at least one patient with
        histology), ``diagnoses`` (:func:`patient_diagnoses` rows) and, when validated,
        ``external`` and ``internal`` (:func:`cohort_block`; ``internal`` None without
        internal predictions) and ``difference`` (:func:`accuracy_differences`).
    """
    diagnoses = patient_diagnoses(predictions, malignant_threshold, scheme)
    n_labelled = int(diagnoses["histology"].notna().sum())
    out: dict[str, Any] = {
        "format": EXTERNAL_FORMAT,
        "synthetic": bool(synthetic),
        "model": dict(model or {}),
        "malignant_threshold": int(malignant_threshold),
        "patient_probability": patient_probability_text(scheme),
        "n_patients": len(diagnoses),
        "n_labelled_patients": n_labelled,
        "validated": n_labelled > 0,
        "diagnoses": diagnoses.to_dict(orient="records"),
    }
    if not is_paper(scheme):
        out[SCHEME_KEY] = scheme.record()
    if n_labelled:
        args = (malignant_threshold, bootstrap_resamples, bootstrap_seed, n_bins, scheme)
        out["external"] = cohort_block(predictions, "external", *args)
        out["internal"] = (cohort_block(internal, "test", *args)
                           if internal is not None and len(internal) else None)
        if out["internal"] is not None:
            out["difference"] = accuracy_differences(predictions, internal, malignant_threshold,
                                                     bootstrap_resamples, bootstrap_seed,
                                                     scheme)
    else:
        logger.info("no patient with histology: predictions only (unvalidated)")
    return to_jsonable(out)
