"""The paper's Figure 5 decision rule, its tie-breaks and its input checks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from parotidlib.constants import CLASSES
from parotidlib.evaluation.decision import (
    PROBABILITY_COLUMNS,
    TIE_PRIOR,
    as_class_names,
    diagnose_patient,
    diagnose_patients,
)

PA, WT, MAL, FREE = "pleomorphic_adenoma", "warthin", "malignant", "free"


def one_hot_probs(labels, p=0.7):
    """Probabilities with ``p`` on each slice's label and the rest spread evenly."""
    probs = np.full((len(labels), 4), (1 - p) / 3)
    probs[np.arange(len(labels)), [CLASSES.index(c) for c in labels]] = p
    return probs


def test_threshold_edge_two_vs_three_malignant_slices():
    benign_rest = [PA] * 5
    assert diagnose_patient([MAL] * 2 + benign_rest, malignant_threshold=2) == PA
    assert diagnose_patient([MAL] * 3 + benign_rest, malignant_threshold=2) == MAL
    # Malignant wins on count alone, even when benign slices outnumber it.
    assert diagnose_patient([MAL] * 3 + [WT] * 20) == MAL
    assert diagnose_patient([MAL] * 1, malignant_threshold=0) == MAL
    assert diagnose_patient([MAL] * 10 + [PA], malignant_threshold=10) == PA


def test_benign_type_by_majority_free_ignored():
    assert diagnose_patient([PA, PA, WT, FREE, FREE, FREE]) == PA
    assert diagnose_patient([WT, WT, PA, MAL, MAL] + [FREE] * 9) == WT


def test_tie_without_probabilities_uses_prior():
    assert TIE_PRIOR == PA
    assert diagnose_patient([PA, WT, FREE]) == PA
    assert diagnose_patient([PA, WT, WT, PA, MAL, MAL]) == PA
    # 0 vs 0 lesion slices (two malignant slices only, threshold 2): tie too.
    assert diagnose_patient([MAL, MAL, FREE]) == PA


def test_tie_broken_by_summed_probabilities():
    labels = [PA, WT, FREE]
    probs = np.array([
        [0.05, 0.50, 0.40, 0.05],   # PA slice, but Warthin close behind
        [0.05, 0.10, 0.80, 0.05],   # Warthin slice
        [0.70, 0.05, 0.20, 0.05],   # free slice still contributes its PA/Warthin mass
    ])
    # PA 0.65 vs Warthin 1.40 summed over all slices -> warthin.
    assert diagnose_patient(labels, probs) == WT
    swapped = probs[:, [0, 2, 1, 3]]
    assert diagnose_patient(labels, swapped) == PA
    # Exactly equal sums fall back on the prior.
    equal = np.array([[0.1, 0.4, 0.4, 0.1]] * 3)
    assert diagnose_patient(labels, equal) == TIE_PRIOR


def test_probabilities_do_not_override_counts():
    probs = one_hot_probs([PA, PA, WT])
    probs[:, [1, 2]] = probs[:, [2, 1]]  # Warthin now has more probability mass
    assert diagnose_patient([PA, PA, WT], probs) == PA


def test_all_free_warns_and_applies_rule():
    with pytest.warns(UserWarning, match="no lesion slice was predicted.*patient p7"):
        assert diagnose_patient([FREE] * 4, patient_id="p7") == TIE_PRIOR
    probs = one_hot_probs([FREE] * 4)
    probs[:, 2] += 0.05
    probs[:, 0] -= 0.05
    with pytest.warns(UserWarning, match="no lesion slice"):
        assert diagnose_patient([FREE] * 4, probs) == WT


def test_integer_and_name_labels_agree():
    names = [MAL, MAL, WT, WT, WT, PA, FREE]
    ints = [CLASSES.index(c) for c in names]
    assert diagnose_patient(ints) == diagnose_patient(names) == WT
    assert diagnose_patient(np.array(ints, dtype=np.int64)) == WT
    assert list(as_class_names(ints)) == names


@pytest.mark.parametrize("kwargs, name", [
    (dict(slice_labels=["benign", PA]), "slice_labels"),
    (dict(slice_labels=[PA, 7]), "slice_labels"),
    (dict(slice_labels=[PA, 1.0]), "slice_labels"),
    (dict(slice_labels=[]), "slice_labels"),
    (dict(slice_labels=[PA, WT], slice_probabilities=np.full((2, 4), 0.3)),
     "slice_probabilities"),
    (dict(slice_labels=[PA, WT], slice_probabilities=np.full((3, 4), 0.25)),
     "slice_probabilities"),
    (dict(slice_labels=[PA, WT], slice_probabilities=np.full((2, 3), 1 / 3)),
     "slice_probabilities"),
    (dict(slice_labels=[PA], slice_probabilities=[[np.nan, 0.5, 0.5, 0.0]]),
     "slice_probabilities"),
    (dict(slice_labels=[PA], malignant_threshold=-1), "malignant_threshold"),
    (dict(slice_labels=[PA], malignant_threshold=2.5), "malignant_threshold"),
    (dict(slice_labels=[PA], malignant_threshold=True), "malignant_threshold"),
])
def test_bad_input_names_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        diagnose_patient(**kwargs)


def test_probability_sum_tolerance():
    probs = np.array([[0.1, 0.6, 0.2, 0.1 + 5e-4]])  # within 1e-3 of 1
    assert diagnose_patient([PA], probs) == PA
    with pytest.raises(ValueError, match="sum to 1.*row 0"):
        diagnose_patient([PA], np.array([[0.1, 0.6, 0.2, 0.105]]))


def make_frame(patients):
    """Predictions table from {patient: (histology, [predicted labels of lesion slices],
    n_free)}; free slices are predicted free."""
    rows = []
    for pid, (hist, predicted, n_free) in patients.items():
        rows += [(pid, hist, hist, p) for p in predicted]
        rows += [(pid, hist, FREE, FREE)] * n_free
    df = pd.DataFrame(rows, columns=["patient_id", "histology", "true_label", "predicted_label"])
    probs = one_hot_probs(df["predicted_label"])
    for j, col in enumerate(PROBABILITY_COLUMNS):
        df[col] = probs[:, j]
    return df


def test_diagnose_patients_table():
    df = make_frame({
        "b": ("warthin", [WT, WT, PA, MAL, MAL], 3),
        "a": ("malignant", [MAL, MAL, MAL, PA], 2),
        "c": ("pleomorphic_adenoma", [WT, WT, PA], 0),
    })
    out = diagnose_patients(df)
    assert list(out["patient_id"]) == ["a", "b", "c"]
    assert list(out["true_histology"]) == ["malignant", "warthin", "pleomorphic_adenoma"]
    assert list(out["predicted_histology"]) == ["malignant", "warthin", "warthin"]
    assert list(out["n_slices"]) == [6, 8, 3]
    assert list(out["n_pred_malignant"]) == [3, 2, 0]
    # The threshold is passed through.
    assert diagnose_patients(df, malignant_threshold=1)["predicted_histology"].tolist() == \
        ["malignant", "malignant", "warthin"]


def test_diagnose_patients_without_histology_or_probabilities():
    df = make_frame({"p": ("pleomorphic_adenoma", [PA, WT], 1)})
    bare = df[["patient_id", "true_label", "predicted_label"]]
    out = diagnose_patients(bare)
    assert out.loc[0, "true_histology"] == PA
    assert out.loc[0, "predicted_histology"] == TIE_PRIOR


def test_diagnose_patients_with_integer_labels():
    df = make_frame({"p": ("warthin", [WT, WT, PA], 1)})
    df["true_label"] = [CLASSES.index(c) for c in df["true_label"]]
    df["predicted_label"] = [CLASSES.index(c) for c in df["predicted_label"]]
    out = diagnose_patients(df)
    assert out.loc[0, "predicted_histology"] == WT and out.loc[0, "true_histology"] == WT


def test_diagnose_patients_all_free_patient_warns():
    df = make_frame({"p": ("malignant", [FREE, FREE], 2)})
    df.loc[df.index[:2], "true_label"] = MAL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = diagnose_patients(df)
    assert any("patient p" in str(w.message) for w in caught)
    assert out.loc[0, "true_histology"] == MAL


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.drop(columns="predicted_label"), "missing columns"),
    (lambda d: d.drop(columns="prob_warthin"), "prob_warthin"),
    (lambda d: d.assign(predicted_label="benign"), "predicted_label"),
    (lambda d: d.assign(true_label="tumour"), "true_label"),
    (lambda d: d.assign(histology="adenocarcinoma"), "patient a: histology"),
    (lambda d: d.assign(prob_free=0.9), "sum to 1.*patient a"),
    (lambda d: d.iloc[:0], "at least one row"),
])
def test_diagnose_patients_bad_tables(mutate, match):
    df = make_frame({"a": ("warthin", [WT, PA], 1)})
    with pytest.raises(ValueError, match=match):
        diagnose_patients(mutate(df))


def test_true_histology_conflicts_raise():
    df = make_frame({"a": ("warthin", [WT, PA], 1)})
    df.loc[0, "true_label"] = MAL
    with pytest.raises(ValueError, match="patient a: lesion slices carry several"):
        diagnose_patients(df)
    df = make_frame({"a": ("warthin", [WT, PA], 1)})
    df["histology"] = PA
    with pytest.raises(ValueError, match="patient a: histology 'pleomorphic_adenoma' disagrees"):
        diagnose_patients(df)
    no_lesion = df[df["true_label"] == FREE].drop(columns="histology")
    with pytest.raises(ValueError, match="patient a: no lesion slice"):
        diagnose_patients(no_lesion)
