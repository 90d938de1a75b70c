"""Slice metrics, the paper's Tables 4 and 5, the threshold sweep and metrics.json checks.

The central fixture rebuilds the paper's test set (Xia et al. 2021): 21 patients (8 PA,
5 Warthin, 8 malignant) and 275 slices (89 free, 57 PA, 36 Warthin, 93 malignant). Its
confusion matrix is forced by the paper's text except for the malignant row:
- free: all 89 correct (Figure 7 text);
- PA: 41 correct, 16 misclassified; Warthin: 18 correct, 14 as PA (Discussion), so 4 more
  Warthin errors; benign sensitivity 88/93 leaves 5 benign slices predicted malignant, so
  those 4 Warthin errors are malignant and PA has 15 as Warthin, 1 as malignant;
- malignant: 76 correct (81.72%); the split of its 17 errors, 4 as PA and 13 as Warthin,
  is ASSUMED (as in the example of docs/metrics.md; Table 4 does not depend on it).
The per-patient slices are ASSUMED too, chosen to give Table 5 (6/8, 3/5, 12/13, 8/8),
which forces one Warthin patient with >= 3 malignant slices. Probabilities are 0.7 on the
predicted class and 0.1 on the others.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import label_binarize

from parotidlib.constants import CLASSES
from parotidlib.evaluation.decision import PROBABILITY_COLUMNS, diagnose_patients
from parotidlib.evaluation.diagnostic_accuracy import (
    TABLE4_TASKS,
    binary_counts,
    patient_confusion,
    patient_table5,
    table4,
    threshold_sweep,
)
from parotidlib.evaluation.metrics import (
    bootstrap_micro_auc_ci,
    confusion,
    micro_auc,
    roc_curves,
    slice_accuracy,
)
from parotidlib.evaluation.schema import to_jsonable, validate_metrics

PA, WT, MAL, FREE = "pleomorphic_adenoma", "warthin", "malignant", "free"

# patient -> (histology, predicted classes of its lesion slices with counts)
PAPER_PATIENTS = {
    **{f"pa{i}": (PA, c) for i, c in enumerate(
        [{PA: 6, WT: 1}] * 4 + [{PA: 6, MAL: 1}, {PA: 7}, {PA: 2, WT: 5}, {PA: 2, WT: 6}], 1)},
    **{f"wt{i}": (WT, c) for i, c in enumerate(
        [{PA: 2, WT: 5}, {PA: 1, WT: 5}, {PA: 1, WT: 5}, {PA: 1, WT: 1, MAL: 4},
         {PA: 9, WT: 2}], 1)},
    **{f"mal{i}": (MAL, c) for i, c in enumerate(
        [{MAL: 10, PA: 4}] + [{MAL: 10, WT: 4}] * 3 + [{MAL: 9, WT: 1}] + [{MAL: 9}] * 3, 1)},
}
PAPER_CM = np.array([[89, 0, 0, 0], [0, 41, 15, 1], [0, 14, 18, 4], [0, 4, 13, 76]])


def with_probs(df, p=0.7):
    probs = np.full((len(df), 4), (1 - p) / 3)
    probs[np.arange(len(df)), [CLASSES.index(c) for c in df["predicted_label"]]] = p
    for j, col in enumerate(PROBABILITY_COLUMNS):
        df[col] = probs[:, j]
    return df


@pytest.fixture
def paper_frame():
    rows = []
    for j, (pid, (hist, counts)) in enumerate(PAPER_PATIENTS.items()):
        for pred, n in counts.items():
            rows += [(pid, hist, hist, pred)] * n
        rows += [(pid, hist, FREE, FREE)] * (5 if j < 5 else 4)  # 89 free slices
    df = pd.DataFrame(rows, columns=["patient_id", "histology", "true_label", "predicted_label"])
    df["split"] = "test"
    return with_probs(df)


def random_frame(rng, n_patients=6, slices=8, split="test"):
    """Seeded predictions table with Dirichlet probabilities, every class present."""
    true = np.resize(np.arange(4), n_patients * slices)
    rng.shuffle(true)
    alpha = np.ones((len(true), 4))
    alpha[np.arange(len(true)), true] += 2.0  # informative but imperfect scores
    probs = np.array([rng.dirichlet(a) for a in alpha])
    df = pd.DataFrame({
        "patient_id": np.repeat([f"p{i}" for i in range(n_patients)], slices),
        "true_label": np.asarray(CLASSES)[true],
        "predicted_label": np.asarray(CLASSES)[probs.argmax(axis=1)],
        "split": split,
    })
    for j, col in enumerate(PROBABILITY_COLUMNS):
        df[col] = probs[:, j]
    return df


def r3(block):
    return round(block["value"], 3), [round(b, 3) for b in block["ci95"]]


# ---- confusion matrix and accuracy ------------------------------------------------------

def test_confusion_hand_computed():
    y_true = [FREE, PA, PA, WT, MAL, MAL, 1]
    y_pred = [FREE, PA, WT, PA, MAL, 0, 2]
    expected = np.array([[1, 0, 0, 0], [0, 1, 2, 0], [0, 1, 0, 0], [1, 0, 0, 1]])
    np.testing.assert_array_equal(confusion(y_true, y_pred), expected)
    with pytest.raises(ValueError, match="same length"):
        confusion([FREE], [FREE, PA])
    with pytest.raises(ValueError, match="y_pred"):
        confusion([FREE], ["tumour"])


def test_paper_confusion_and_accuracy(paper_frame):
    np.testing.assert_array_equal(
        confusion(paper_frame["true_label"], paper_frame["predicted_label"]), PAPER_CM)
    acc = slice_accuracy(paper_frame, split="test")
    assert (acc["successes"], acc["total"]) == (224, 275)  # Figure 7 text: 81.45%
    assert round(acc["value"], 4) == 0.8145


def test_slice_accuracy_split_selection(paper_frame):
    train = paper_frame.assign(split="train", predicted_label=paper_frame["true_label"])
    both = pd.concat([paper_frame, train])
    assert slice_accuracy(both, split="train")["value"] == 1.0
    assert slice_accuracy(both)["total"] == 550
    with pytest.raises(ValueError, match="split must be one of"):
        slice_accuracy(both, split="validation")
    with pytest.raises(ValueError, match="no 'split' column"):
        slice_accuracy(paper_frame.drop(columns="split"), split="test")


# ---- Table 4 ----------------------------------------------------------------------------

def test_paper_table4_reproduced(paper_frame):
    rows = {r["task"]: r for r in table4(paper_frame, split="test")}
    bm, pw, ln = rows["benign_vs_malignant"], rows["pleomorphic_vs_warthin"], rows["lesion_vs_none"]

    assert bm["positive"] == "benign"
    assert (bm["tp"], bm["fn"], bm["fp"], bm["tn"]) == (88, 5, 17, 76)
    assert r3(bm["accuracy"]) == (0.882, [0.827, 0.921])
    assert r3(bm["sensitivity"]) == (0.946, [0.873, 0.980])
    assert r3(bm["specificity"]) == (0.817, [0.721, 0.887])

    assert pw["positive"] == PA
    assert (pw["tp"], pw["fn"], pw["fp"], pw["tn"], pw["n_other"]) == (41, 16, 18, 18, 5)
    assert r3(pw["accuracy"]) == (0.634, [0.533, 0.725])
    # The paper's printed "sensitivity" 0.695 and "specificity" 0.529 are this row's
    # PPV 41/59 and NPV 18/34; the usual definitions give 41/57 and 18/36.
    assert r3(pw["ppv"]) == (0.695, [0.560, 0.805])
    assert r3(pw["npv"]) == (0.529, [0.354, 0.698])
    assert (pw["sensitivity"]["successes"], pw["sensitivity"]["total"]) == (41, 57)
    assert (pw["specificity"]["successes"], pw["specificity"]["total"]) == (18, 36)

    assert ln["positive"] == FREE
    assert r3(ln["accuracy"]) == (1.0, [0.986, 1.0])
    assert r3(ln["sensitivity"]) == (1.0, [0.948, 1.0])   # 89/89 free slices
    assert r3(ln["specificity"]) == (1.0, [0.975, 1.0])   # 186/186 lesion slices


def test_lesion_slice_predicted_free_counts_as_error():
    y_true = [PA, PA, WT, MAL, MAL, FREE]
    y_pred = [PA, FREE, WT, FREE, MAL, FREE]
    bm = binary_counts(y_true, y_pred, TABLE4_TASKS[0])
    # benign: PA->PA, PA->free (FN), WT->WT; malignant: ->free (FP), ->malignant (TN)
    assert bm == {"tp": 2, "fn": 1, "fp": 1, "tn": 1, "n": 5, "n_other": 2}
    ln = binary_counts(y_true, y_pred, TABLE4_TASKS[2])
    assert ln == {"tp": 1, "fn": 0, "fp": 2, "tn": 3, "n": 6, "n_other": 0}


def test_table4_keeps_empty_task_and_marks_empty_denominator_undefined():
    df = with_probs(pd.DataFrame({"patient_id": ["a"] * 3, "true_label": [FREE, MAL, MAL],
                                  "predicted_label": [FREE, MAL, PA]}))
    rows = {r["task"]: r for r in table4(df)}
    assert list(rows) == [t.name for t in TABLE4_TASKS]  # every task, in the paper's order
    pw = rows["pleomorphic_vs_warthin"]
    assert pw["n"] == 0
    assert pw["accuracy"] == {"value": None, "ci95": None,
                              "undefined": "no pleomorphic_adenoma or warthin slice"}
    assert rows["benign_vs_malignant"]["sensitivity"] == {  # no benign slice
        "value": None, "ci95": None, "undefined": "no benign slice"}
    assert rows["benign_vs_malignant"]["specificity"]["successes"] == 1


# ---- ROC and AUC ------------------------------------------------------------------------

def naive_auc(y, s):
    """Mann-Whitney: P(score of a positive > score of a negative), ties count 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


def test_auc_matches_pairwise_and_micro_matches_raveled():
    df = random_frame(np.random.default_rng(1))
    res = roc_curves(df)
    y = label_binarize(df["true_label"], classes=list(CLASSES))
    s = df[list(PROBABILITY_COLUMNS)].to_numpy()
    for j, c in enumerate(CLASSES):
        assert res.auc[c] == pytest.approx(naive_auc(y[:, j], s[:, j]), abs=1e-12)
    assert res.auc["micro"] == pytest.approx(naive_auc(y.ravel(), s.ravel()), abs=1e-12)
    assert res.auc["micro"] == pytest.approx(roc_auc_score(y, s, average="micro"))
    assert micro_auc(y, s) == pytest.approx(res.auc["micro"])
    assert res.auc["macro"] == pytest.approx(np.mean([res.auc[c] for c in CLASSES]))
    codes = [CLASSES.index(c) for c in df["true_label"]]
    assert res.auc["macro"] == pytest.approx(
        roc_auc_score(codes, s, multi_class="ovr", average="macro", labels=[0, 1, 2, 3]))
    for key in (*CLASSES, "micro", "macro"):
        assert res.fpr[key][0] == 0 and res.tpr[key][-1] == pytest.approx(1.0)
        assert res.fpr[key].shape == res.tpr[key].shape


def test_ties_in_scores_match_pairwise(paper_frame):
    # The paper frame has only two distinct scores per column: many ties.
    res = roc_curves(paper_frame)
    y = label_binarize(paper_frame["true_label"], classes=list(CLASSES))
    s = paper_frame[list(PROBABILITY_COLUMNS)].to_numpy()
    assert res.auc[WT] == pytest.approx(naive_auc(y[:, 2], s[:, 2]))
    assert res.auc["micro"] == pytest.approx(naive_auc(y.ravel(), s.ravel()))


def test_absent_class_skipped_with_warning():
    df = random_frame(np.random.default_rng(2))
    df = df[df["true_label"] != WT]
    with pytest.warns(UserWarning, match="'warthin'"):
        res = roc_curves(df)
    assert WT not in res.auc and res.classes == (FREE, PA, MAL)
    assert res.auc["macro"] == pytest.approx(np.mean([res.auc[c] for c in res.classes]))


def test_roc_requires_probabilities(paper_frame):
    with pytest.raises(ValueError, match="prob_"):
        roc_curves(paper_frame.drop(columns=list(PROBABILITY_COLUMNS)))


# ---- patient-clustered bootstrap --------------------------------------------------------

def test_bootstrap_deterministic_and_contains_estimate():
    df = random_frame(np.random.default_rng(3), n_patients=8)
    a = bootstrap_micro_auc_ci(df, n_resamples=200, seed=5)
    b = bootstrap_micro_auc_ci(df, n_resamples=200, seed=5)
    c = bootstrap_micro_auc_ci(df, n_resamples=200, seed=6)
    assert a == b and a["ci95"] != c["ci95"]
    assert a["value"] == pytest.approx(roc_curves(df).auc["micro"])
    assert a["ci95"][0] <= a["value"] <= a["ci95"][1]
    assert (a["n_resamples"], a["n_skipped"], a["n_patients"]) == (200, 0, 8)


def skipped_oracle(n_patients, rare, n_resamples, seed):
    """Resamples lacking patient ``rare`` (the only one with some class) or made of it alone
    (lacking the others' classes), replaying the documented RNG draws."""
    rng = np.random.default_rng(seed)
    picks = [set(rng.integers(0, n_patients, size=n_patients)) for _ in range(n_resamples)]
    return sum(rare not in p or p == {rare} for p in picks)


def test_bootstrap_counts_skipped_resamples():
    df = random_frame(np.random.default_rng(4), n_patients=3, slices=6)
    # p0 and p1 each hold free, PA and malignant slices; only p2 (index 2) has Warthin.
    df["true_label"] = [FREE, PA, MAL] * 4 + [WT] * 6
    with pytest.warns(UserWarning, match="skipped"):
        res = bootstrap_micro_auc_ci(df, n_resamples=100, seed=0)
    assert res["n_skipped"] == skipped_oracle(3, 2, 100, 0) > 0


def test_bootstrap_errors():
    df = random_frame(np.random.default_rng(5), n_patients=2, slices=8)
    with pytest.raises(ValueError, match="at least 2 patients"):
        bootstrap_micro_auc_ci(df[df["patient_id"] == "p0"])
    for kwargs, name in ((dict(n_resamples=0), "n_resamples"), (dict(seed=-1), "seed"),
                         (dict(confidence=1.0), "confidence")):
        with pytest.raises(ValueError, match=name):
            bootstrap_micro_auc_ci(df, **kwargs)
    # Two patients with disjoint classes: a resample needs both; find a seed where 3 miss.
    df.loc[df["patient_id"] == "p0", "true_label"] = FREE
    df.loc[df["patient_id"] == "p1", "true_label"] = MAL
    seed = next(s for s in range(200) if _all_miss_one(2, 3, s))
    with pytest.raises(ValueError, match="all 3 bootstrap resamples") as err:
        bootstrap_micro_auc_ci(df, n_resamples=3, seed=seed)
    assert err.value.reason == "every resample lacked a class"  # an UndefinedError


def _all_miss_one(n_patients, n_resamples, seed):
    rng = np.random.default_rng(seed)
    return all(len(set(rng.integers(0, n_patients, size=n_patients))) < n_patients
               for _ in range(n_resamples))


# ---- Table 5 and the threshold sweep ----------------------------------------------------

def test_paper_table5_reproduced(paper_frame):
    patients = diagnose_patients(paper_frame)
    rows = {r["type"]: (r["patients"], r["correct"]) for r in patient_table5(patients)}
    assert rows == {PA: (8, 6), WT: (5, 3), "benign": (13, 12), MAL: (8, 8)}
    np.testing.assert_array_equal(patient_confusion(patients),
                                  [[6, 2, 0], [1, 3, 1], [0, 0, 8]])
    block = patient_table5(patients)[0]["accuracy"]
    assert (block["successes"], block["total"]) == (6, 8)


def test_threshold_sweep(paper_frame):
    sweep = threshold_sweep(paper_frame, thresholds=range(0, 11))
    assert list(sweep["malignant_threshold"]) == list(range(11))
    at2 = sweep.set_index("malignant_threshold").loc[2]
    assert (at2["tp"], at2["fn"], at2["fp"], at2["tn"]) == (8, 0, 1, 12)
    assert at2["sensitivity"] == 1.0 and at2["specificity"] == pytest.approx(12 / 13)
    # Raising the threshold can only lower sensitivity and raise specificity.
    assert np.all(np.diff(sweep["sensitivity"]) <= 0)
    assert np.all(np.diff(sweep["specificity"]) >= 0)
    # The fewest malignant slices of a malignant patient is 9: sensitivity drops after 8.
    assert sweep.loc[8, "sensitivity"] == 1.0 and sweep.loc[9, "sensitivity"] < 1.0
    assert np.all(sweep["sensitivity_lo"] <= sweep["sensitivity"])


def test_patient_confusion_counts_dtype_and_empty():
    rng = np.random.default_rng(0)
    hist = ["pleomorphic_adenoma", "warthin", "malignant"]
    df = pd.DataFrame({"true_histology": rng.choice(hist, 200),
                       "predicted_histology": rng.choice(hist, 200)})
    expected = np.zeros((3, 3), dtype=np.int64)
    for t, p in zip(df["true_histology"], df["predicted_histology"], strict=True):
        expected[hist.index(t), hist.index(p)] += 1
    got = patient_confusion(df)
    assert got.dtype == np.int64 and got.shape == (3, 3)
    np.testing.assert_array_equal(got, expected)
    # A type missing from both columns still has its row and column, in HISTOLOGIES order.
    only_wt = pd.DataFrame({"true_histology": ["warthin"], "predicted_histology": ["warthin"]})
    np.testing.assert_array_equal(patient_confusion(only_wt), [[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    empty = df.iloc[:0]
    got = patient_confusion(empty)
    assert got.dtype == np.int64 and got.shape == (3, 3) and not got.any()


def test_patient_table_bad_input():
    with pytest.raises(ValueError, match="patient_df"):
        patient_table5(pd.DataFrame({"x": [1]}))
    bad = pd.DataFrame({"true_histology": ["benign"], "predicted_histology": [PA]})
    with pytest.raises(ValueError, match="true_histology"):
        patient_confusion(bad)


# ---- metrics.json -----------------------------------------------------------------------

#: One threshold-sweep record of metrics.json (the paper's counts at threshold 2).
SWEEP_ROW = {"malignant_threshold": 2, "tp": 8, "fn": 0, "fp": 1, "tn": 12,
             "sensitivity": 1.0, "sensitivity_lo": 0.598, "sensitivity_hi": 1.0,
             "specificity": 0.923, "specificity_lo": 0.621, "specificity_hi": 0.996}


@pytest.fixture
def good_metrics(paper_frame):
    patients = diagnose_patients(paper_frame)
    split = {
        "accuracy": slice_accuracy(paper_frame),
        "micro_auc": {"value": np.float64(0.93), "ci95": [0.9, 0.95]},
        "confusion_matrix": confusion(paper_frame["true_label"], paper_frame["predicted_label"]),
    }
    return {
        "synthetic": True,
        "slice": {"train": dict(split), "test": dict(split)},
        "table4": table4(paper_frame),
        "patient": {"table5": patient_table5(patients),
                    "confusion_matrix": patient_confusion(patients)},
        "timing_s": {"curate": 1.5, "train": np.float32(20.0), "evaluate": 3},
        "extra_key": "allowed",
    }


def test_validate_metrics_accepts_good_and_json_roundtrip(good_metrics):
    validate_metrics(good_metrics)  # numpy values accepted before conversion
    text = json.dumps(to_jsonable(good_metrics), allow_nan=False)
    validate_metrics(json.loads(text))


@pytest.mark.parametrize("path, breaker", [
    ("slice.test.accuracy.ci95", lambda m: m["slice"]["test"]["accuracy"].update(ci95=[0.1])),
    ("slice.test.accuracy.value", lambda m: m["slice"]["test"]["accuracy"].update(value=0.5)),
    ("slice.train.accuracy.successes",
     lambda m: m["slice"]["train"]["accuracy"].update(successes=999)),
    ("slice.train.micro_auc.value", lambda m: m["slice"]["train"]["micro_auc"].update(value=2)),
    ("slice.test.confusion_matrix", lambda m: m["slice"]["test"].update(confusion_matrix=[[1]])),
    ("slice.test is required", lambda m: m["slice"].pop("test")),
    ("table4[1].task", lambda m: m["table4"][1].update(task="pa_vs_w")),
    ("table4[0].sensitivity.total", lambda m: m["table4"][0]["sensitivity"].update(total=0)),
    ("table4 must list each task once", lambda m: m["table4"].append(m["table4"][0])),
    ("patient.table5[2].correct", lambda m: m["patient"]["table5"][2].update(correct=99)),
    ("patient.confusion_matrix[0][1]",
     lambda m: m["patient"].__setitem__("confusion_matrix", [[1, -1, 0]] * 3)),
    ("synthetic", lambda m: m.update(synthetic="yes")),
    ("timing_s.train", lambda m: m["timing_s"].update(train=-1.0)),
])
def test_validate_metrics_names_offending_key(good_metrics, path, breaker):
    metrics = json.loads(json.dumps(to_jsonable(good_metrics)))
    breaker(metrics)
    with pytest.raises(ValueError, match="^" + path.replace("[", r"\[").replace("]", r"\]")):
        validate_metrics(metrics)


def test_to_jsonable_converts_numpy():
    out = to_jsonable({"a": np.int64(3), "b": np.array([[1.5, np.nan]]), 1: (np.bool_(True),),
                       "c": pd.Series({"x": np.float32(2.0)})})
    assert out == {"a": 3, "b": [[1.5, None]], "1": [True], "c": {"x": 2.0}}
    assert type(out["a"]) is int
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())


@pytest.mark.parametrize("path, breaker", [
    ("slice.test.accuracy.ci95 must be [lower, upper]",
     lambda m: m["slice"]["test"]["accuracy"].update(ci95=[0.95, 0.8])),
    ("slice.test.accuracy.value must lie in ci95",
     lambda m: m["slice"]["test"]["accuracy"].update(ci95=[0.1, 0.2])),
    ("slice.test.micro_auc.ci95 must be [lower, upper]",
     lambda m: m["slice"]["test"]["micro_auc"].update(ci95=[0.95, 0.9])),
    ("slice.test.accuracy.successes must be integer",  # JSON Schema would accept 164.0
     lambda m: m["slice"]["test"]["accuracy"].update(successes=164.0)),
    ("table4[0].tp must be integer", lambda m: m["table4"][0].update(tp=True)),
    ("table4[0].sensitivity must be object", lambda m: m["table4"][0].update(sensitivity="x")),
    ("table4[0].sensitivity must be object",  # a bare null has no reason
     lambda m: m["table4"][0].update(sensitivity=None)),
    ("table4[0].sensitivity.undefined is required",
     lambda m: m["table4"][0].update(sensitivity={"value": None, "ci95": None})),
    ("table4[0].sensitivity.ci95 must be null",
     lambda m: m["table4"][0].update(sensitivity={"value": None, "ci95": [0.1, 0.2],
                                                  "undefined": "no benign slice"})),
    ("table4[0].sensitivity.undefined must have at least 1 characters",
     lambda m: m["table4"][0].update(sensitivity={"value": None, "ci95": None,
                                                  "undefined": ""})),
    ("table4[0].sensitivity.undefined must be absent when value is defined",
     lambda m: m["table4"][0]["sensitivity"].update(undefined="no benign slice")),
    ("slice.test.micro_auc.ci95_undefined is required",
     lambda m: m["slice"]["test"]["micro_auc"].update(ci95=None)),
    ("slice.test.micro_auc.ci95_undefined must be absent when ci95 is defined",
     lambda m: m["slice"]["test"]["micro_auc"].update(ci95_undefined="fewer than 2 patients")),
    ("slice.test.macro_auc_undefined is required",
     lambda m: m["slice"]["test"].update(macro_auc=None)),
    ("slice.test.macro_auc_undefined must be absent when macro_auc is defined",
     lambda m: m["slice"]["test"].update(macro_auc=0.9, macro_auc_undefined="x")),
    ("slice.test.class_auc_undefined must name only entries left out of class_auc",
     lambda m: m["slice"]["test"].update(class_auc={"free": 1.0},
                                         class_auc_undefined={"free": "only free slices"})),
    ("patient.table5[0].accuracy must be undefined exactly when patients is 0",
     lambda m: m["patient"]["table5"][0].update(patients=0, correct=0)),
    ("patient.table5[0].accuracy must be undefined exactly when patients is 0",
     lambda m: m["patient"]["table5"][0].update(
         accuracy={"value": None, "ci95": None, "undefined": "no pleomorphic_adenoma patient"})),
    ("patient.threshold_sweep[0].sensitivity_undefined is required",
     lambda m: m["patient"].update(threshold_sweep=[dict(SWEEP_ROW, sensitivity=None,
                                                         sensitivity_lo=None,
                                                         sensitivity_hi=None)])),
    ("patient.threshold_sweep[0].sensitivity_lo must be null",
     lambda m: m["patient"].update(threshold_sweep=[dict(
         SWEEP_ROW, sensitivity=None, sensitivity_undefined="no malignant patient")])),
    ("patient.threshold_sweep[0].specificity_undefined must be absent when specificity is",
     lambda m: m["patient"].update(threshold_sweep=[dict(
         SWEEP_ROW, specificity_undefined="no benign patient")])),
    ("timing_s.train must be number", lambda m: m["timing_s"].update(train=float("nan"))),
    ("timing_s.train must be number", lambda m: m["timing_s"].update(train=float("inf"))),
    ("synthetic is required", lambda m: m.pop("synthetic")),
])
def test_validate_metrics_semantic_and_strict_types(good_metrics, path, breaker):
    metrics = json.loads(json.dumps(to_jsonable(good_metrics)))
    breaker(metrics)
    with pytest.raises(ValueError, match="^" + path.replace("[", r"\[").replace("]", r"\]")):
        validate_metrics(metrics)


def test_validate_metrics_root_must_be_an_object():
    with pytest.raises(ValueError, match=r"^metrics must be object, got \[1\]"):
        validate_metrics([1])  # type: ignore[arg-type]


def test_validate_metrics_accepts_undefined_values_with_their_reason(good_metrics):
    metrics = json.loads(json.dumps(to_jsonable(good_metrics)))
    undefined = {"value": None, "ci95": None, "undefined": "no benign slice"}
    metrics["slice"]["test"]["micro_auc"].update(ci95=None,  # bootstrap could not run
                                                 ci95_undefined="fewer than 2 patients")
    metrics["slice"]["train"]["micro_auc"] = {"value": None, "ci95": None,
                                              "undefined": "no slice"}
    metrics["slice"]["test"].update(macro_auc=None, macro_auc_undefined="only free slices",
                                    class_auc={},
                                    class_auc_undefined={"free": "only free slices"})
    metrics["table4"][0]["sensitivity"] = dict(undefined)  # empty denominator
    metrics["table4"][0]["ppv"] = dict(undefined, undefined="no slice predicted benign")
    metrics["table4"][1]["accuracy"] = dict(undefined, undefined="no benign or malignant slice")
    metrics["patient"]["table5"][1] = {"type": "warthin", "patients": 0, "correct": 0,
                                       "accuracy": dict(undefined, undefined="no warthin patient")}
    metrics["patient"]["threshold_sweep"] = [
        SWEEP_ROW, dict(SWEEP_ROW, specificity=None, specificity_lo=None, specificity_hi=None,
                        specificity_undefined="no benign patient")]
    metrics["timing_s"] = {}
    validate_metrics(metrics)


def test_metrics_schema_file_is_shipped_valid_and_agrees_with_constants():
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    from parotidlib.constants import HISTOLOGIES
    from parotidlib.evaluation.schema import METRICS_SCHEMA

    resource = files("parotidlib.evaluation").joinpath("metrics.schema.json")
    assert resource.is_file()
    assert json.loads(resource.read_text()) == METRICS_SCHEMA
    assert METRICS_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(METRICS_SCHEMA)
    # Sizes and names follow the class scheme (x-check "class_scheme"); for the paper's:
    from parotidlib.evaluation.diagnostic_accuracy import table5_groups

    assert METRICS_SCHEMA["x-check"] == "class_scheme"
    assert [name for name, _, _ in table5_groups()] == [*HISTOLOGIES[:2], "benign",
                                                        HISTOLOGIES[2]]
    assert [t.name for t in TABLE4_TASKS] == ["benign_vs_malignant", "pleomorphic_vs_warthin",
                                              "lesion_vs_none"]
    assert len(CLASSES) == 4
