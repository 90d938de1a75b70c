"""Paired patient-bootstrap comparisons (evaluation/paired.py) on small seeded tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import label_binarize

from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation import paired as P
from parotidlib.evaluation.metrics import micro_auc
from parotidlib.evaluation.stats import mcnemar_exact


def _truth(n_patients: int = 12, slices: tuple[int, int] = (3, 9), seed: int = 0,
           histologies: list[str] | None = None) -> pd.DataFrame:
    """The slices: 3-8 a patient, the first two free, the rest its histology (cycled)."""
    rng = np.random.default_rng(seed)
    histologies = histologies or [HISTOLOGIES[i % 3] for i in range(n_patients)]
    rows = []
    for i, hist in enumerate(histologies):
        for k in range(int(rng.integers(*slices))):
            rows.append({"patient_id": f"P{i:02d}", "slice_index": k,
                         "side": "left" if i % 2 else "right",
                         "true_label": "free" if k < 2 else hist, "histology": hist})
    return pd.DataFrame(rows)


def _model(truth: pd.DataFrame, seed: int, skill: float = 1.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(truth), 4))
    logits[np.arange(len(truth)), [CLASSES.index(t) for t in truth["true_label"]]] += skill
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return truth.assign(**{f"prob_{c}": p[:, j] for j, c in enumerate(CLASSES)},
                        predicted_label=[CLASSES[j] for j in p.argmax(axis=1)])


def _perfect(truth: pd.DataFrame) -> pd.DataFrame:
    onehot = label_binarize(truth["true_label"], classes=list(CLASSES)).astype(float)
    return truth.assign(**{f"prob_{c}": onehot[:, j] for j, c in enumerate(CLASSES)},
                        predicted_label=truth["true_label"])


def _wrong_on(model: pd.DataFrame, patients: list[str]) -> pd.DataFrame:
    """Every slice of ``patients`` predicted as the next class (so wrong)."""
    out = model.copy()
    hit = out["patient_id"].isin(patients)
    out.loc[hit, "predicted_label"] = [CLASSES[(CLASSES.index(t) + 1) % 4]
                                       for t in out.loc[hit, "true_label"]]
    return out


def test_identical_models_differ_by_zero():
    a = _model(_truth(), seed=1)
    out = P.paired_bootstrap_difference(a, a.copy(), resamples=200, seed=0)
    assert out["value"] == 0.0 and out["ci95"] == [0.0, 0.0]
    assert out["p_two_sided"] == 1.0 and out["p_le_0"] == 1.0
    assert out["n_patients"] == 12 and out["n_slices"] == len(a) and out["n_skipped"] == 0
    auc = P.paired_bootstrap_difference(a, a.copy(), resamples=50, measure="micro_auc")
    assert auc["value"] == 0.0 and auc["ci95"] == [0.0, 0.0]


def test_one_wrong_patient_is_not_significant_by_patient_but_is_by_slice():
    truth = _truth(n_patients=12, slices=(9, 10))
    a, b = _perfect(truth), _wrong_on(_perfect(truth), ["P00"])
    out = P.paired_bootstrap_difference(a, b, resamples=400, seed=0)
    assert out["value"] == pytest.approx(9 / len(truth)) and out["value"] > 0
    # P00 is left out of ~(11/12)^12 = 35% of the resamples: the difference is then 0
    assert out["ci95"][0] == 0.0 < out["ci95"][1]
    assert 0.2 < out["p_le_0"] < 0.5 and out["p_two_sided"] > 0.05
    # McNemar on slices sees 9 discordant slices, all one way, and calls it significant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slices = mcnemar_exact(np.ones(len(truth), bool), b["predicted_label"] == b["true_label"])
    assert slices["pvalue"] == pytest.approx(2 * 0.5 ** 9) and slices["pvalue"] < 0.01


@pytest.mark.parametrize("n_patients,excludes_zero", [(4, False), (40, True)])
def test_ci_excludes_zero_only_with_enough_patients(n_patients, excludes_zero):
    truth = _truth(n_patients=n_patients, slices=(4, 7), seed=3)
    wrong = [f"P{i:02d}" for i in range(0, n_patients, 4)]  # a quarter of the patients
    a, b = _perfect(truth), _wrong_on(_perfect(truth), wrong)
    out = P.paired_bootstrap_difference(a, b, resamples=500, seed=0)
    assert out["value"] > 0
    assert (out["ci95"][0] > 0) is excludes_zero
    assert (out["p_two_sided"] < 0.05) is excludes_zero


def test_one_patient_is_undefined():
    truth = _truth(n_patients=1, slices=(8, 9))
    a, b = _perfect(truth), _wrong_on(_perfect(truth), ["P00"])
    out = P.paired_bootstrap_difference(a, b, resamples=100)
    assert out["value"] is None and out["ci95"] is None
    assert out["undefined"] == "fewer than 2 patients"
    assert out["p_two_sided"] is None and out["p_two_sided_undefined"] == "fewer than 2 patients"
    assert out["n_patients"] == 1 and out["n_slices"] == 8


def test_resampling_draws_patients_the_same_for_both_models():
    truth = _truth(n_patients=7, seed=5)
    a, b = _model(truth, seed=1), _model(truth, seed=2)
    out = P.paired_bootstrap_difference(a, b, resamples=300, seed=11)
    # the bootstrap written out by hand: patients drawn with replacement, shared by a and b
    codes, patients = pd.factorize(truth["patient_id"], sort=True)
    ca = (a["predicted_label"] == a["true_label"]).to_numpy()
    cb = (b["predicted_label"] == b["true_label"]).to_numpy()
    rng = np.random.default_rng(11)
    pick = rng.integers(0, len(patients), size=(300, len(patients)))
    diffs = []
    for draw in pick:
        idx = np.concatenate([np.flatnonzero(codes == i) for i in draw])
        diffs.append(ca[idx].mean() - cb[idx].mean())
    assert out["ci95"] == pytest.approx(list(np.quantile(diffs, [0.025, 0.975])))
    assert out["p_le_0"] == pytest.approx(np.mean(np.asarray(diffs) <= 0))
    assert out["value"] == pytest.approx(ca.mean() - cb.mean())


def test_seeded_and_matched_by_slice_not_row_order():
    truth = _truth(n_patients=10, seed=2)
    a, b = _model(truth, seed=1), _model(truth, seed=2, skill=0.5)
    first = P.paired_bootstrap_difference(a, b, resamples=200, seed=3)
    assert P.paired_bootstrap_difference(a, b, resamples=200, seed=3) == first
    shuffled = b.sample(frac=1.0, random_state=0)
    assert P.paired_bootstrap_difference(a, shuffled, resamples=200, seed=3) == first
    assert P.paired_bootstrap_difference(a, b, resamples=200, seed=4)["ci95"] != first["ci95"]


def test_different_slice_sets_are_refused_with_counts():
    truth = _truth(n_patients=5)
    a, b = _model(truth, seed=1), _model(truth, seed=2)
    with pytest.raises(ValueError, match=rf"a has {len(a)}, b has {len(a) - 2}, "
                                         rf"{len(a) - 2} in common \(2 only in a, 0 only in b\)"):
        P.paired_bootstrap_difference(a, b.iloc[2:])
    assert b["true_label"].iloc[0] == "free"
    relabelled = b.assign(true_label=b["true_label"].where(b.index != 0, "malignant"))
    with pytest.raises(ValueError, match="disagree on the true label of 1 slices"):
        P.paired_bootstrap_difference(a, relabelled)
    with pytest.raises(ValueError, match="repeats slices"):
        P.paired_bootstrap_difference(a, pd.concat([b, b.iloc[[0]]]))
    with pytest.raises(ValueError, match="measure"):
        P.paired_bootstrap_difference(a, b, measure="kappa")


def test_micro_auc_difference_and_skipped_resamples():
    # malignant only in patient P02 (of 5): resamples without P02 lack a class and are skipped
    truth = _truth(seed=1, histologies=["pleomorphic_adenoma", "warthin", "malignant",
                                        "pleomorphic_adenoma", "warthin"])
    a, b = _model(truth, seed=1, skill=2.0), _model(truth, seed=2, skill=0.5)
    out = P.paired_bootstrap_difference(a, b, resamples=200, seed=0, measure="micro_auc")
    y = label_binarize(truth["true_label"], classes=list(CLASSES))
    cols = [f"prob_{c}" for c in CLASSES]
    assert out["value"] == pytest.approx(micro_auc(y, a[cols].to_numpy())
                                         - micro_auc(y, b[cols].to_numpy()))
    # the same draws by hand: a resample is skipped when it misses a class (P02's malignant,
    # or both patients of a benign type), about 45% of them here
    codes, patients = pd.factorize(truth["patient_id"], sort=True)
    rng = np.random.default_rng(0)
    skipped = 0
    for _ in range(200):
        idx = np.concatenate([np.flatnonzero(codes == i)
                              for i in rng.integers(0, len(patients), size=len(patients))])
        skipped += truth["true_label"].iloc[idx].nunique() < 4
    assert out["n_skipped"] == skipped and 0.3 * 200 < skipped < 0.6 * 200
    assert out["n_resamples"] == 200 and out["ci95"][0] <= out["ci95"][1]


def test_resamples_zero_leaves_the_interval_undefined():
    truth = _truth(n_patients=5)
    out = P.paired_bootstrap_difference(_model(truth, 1), _model(truth, 2), resamples=0)
    assert out["value"] is not None and out["ci95"] is None
    assert out["ci95_undefined"] == "bootstrap_resamples is 0"


def test_paired_table_rows_and_mcnemar_column():
    truth = _truth(n_patients=12, seed=4)
    ref = _model(truth, seed=0, skill=2.0)
    pairs = {"t1": (_model(truth, seed=1, skill=0.5), ref),
             "t1+t2": (_model(truth, seed=2, skill=1.5), ref.sample(frac=1.0, random_state=1)),
             "t1+ce_t1+t2+gland": (ref, ref)}
    table = P.paired_table(pairs, reference="t1+ce_t1+t2+gland", resamples=150, seed=0)
    assert list(table["composition"]) == ["t1", "t1+t2"]
    assert "independent" in P.MCNEMAR_COLUMN and P.MCNEMAR_COLUMN in table.columns
    ref_correct = ref["predicted_label"] == ref["true_label"]
    for name, row in table.set_index("composition").iterrows():
        comp = pairs[name][0]
        comp_correct = comp["predicted_label"] == comp["true_label"]
        expected = mcnemar_exact(comp_correct.to_numpy(), ref_correct.to_numpy())
        assert row[P.MCNEMAR_COLUMN] == pytest.approx(expected["pvalue"])
        assert row["accuracy"] == pytest.approx(comp_correct.mean())
        assert row["reference accuracy"] == pytest.approx(ref_correct.mean())
        diff = P.paired_bootstrap_difference(comp, ref, resamples=150, seed=0)
        assert row["difference"] == pytest.approx(diff["value"])
        assert row["bootstrap p (two-sided, by patient)"] == pytest.approx(diff["p_two_sided"])
        assert row["difference [95% CI]"].startswith(f"{diff['value']:.3f} [")
        assert row["patients"] == 12 and row["slices"] == len(truth)
