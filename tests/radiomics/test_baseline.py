"""parotidlib.radiomics.baseline: a separable and a pure-noise synthetic feature table."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold

import parotidlib.radiomics.baseline as baseline
from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation.decision import check_predictions
from parotidlib.radiomics.baseline import (
    PREDICTIONS_COLUMNS,
    baseline_predictions,
    fit_baseline,
    predictions_columns,
)
from parotidlib.study import SCHEMES

N_FEATURES = 24


def _cohort(n_patients=60, slices=10, signal=True, seed=0, drop_class=None):
    """Slices table and features: each patient has a histology, its slices are free or lesion.

    With ``signal``, feature ``f0`` is 3 x class index + N(0, 0.3) (some NaN); all other
    features are N(0, 1) noise (some NaN, one all-NaN column, one constant column).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        hist = HISTOLOGIES[p % len(HISTOLOGIES)]
        for s in range(slices):
            label = "free" if s % 2 == 0 else hist
            rows.append({"patient_id": f"P{p:03d}", "slice_index": s, "z_mm": 4.0 * s,
                         "label": label, "side": "left", "histology": hist,
                         "split": "train" if p < 2 * n_patients // 3 else "test"})
    table = pd.DataFrame(rows)
    y = np.array([CLASSES.index(c) for c in table["label"]])
    if drop_class is not None:
        keep = y != drop_class
        table, y = table[keep].reset_index(drop=True), y[keep]
    x = rng.normal(size=(len(table), N_FEATURES))
    if signal:
        x[:, 0] = 3.0 * y + rng.normal(scale=0.3, size=len(y))
    x[rng.random(x.shape) < 0.03] = np.nan
    feats = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    feats["all_nan"] = np.nan
    feats["constant"] = 1.0
    return table, feats, y


def _fit(table, feats, y, **kw):
    train = (table["split"] == "train").to_numpy()
    model = fit_baseline(feats[train], y[train], table["patient_id"].to_numpy()[train], **kw)
    return model, ~train


@pytest.mark.parametrize("model_name", ["logistic", "random_forest"])
def test_separable_feature_gives_high_held_out_accuracy(model_name):
    table, feats, y = _cohort()
    model, test = _fit(table, feats, y, model=model_name)
    pred = model.predict_proba(feats[test]).argmax(axis=1)
    assert accuracy_score(y[test], pred) > 0.9
    assert model.cv_score > 0.9
    assert model.model == model_name
    assert set(model.params) == set(baseline.param_grid(model_name, feats.shape[1]))


def test_pure_noise_is_near_chance():
    table, feats, y = _cohort(n_patients=90, signal=False)
    model, test = _fit(table, feats, y)
    pred = model.predict_proba(feats[test]).argmax(axis=1)
    assert balanced_accuracy_score(y[test], pred) < 0.4  # chance: 0.25
    assert model.cv_score < 0.4


def test_inner_cv_is_grouped_by_patient_on_training_rows(monkeypatch):
    captured = {}

    class Capture(baseline.GridSearchCV):
        def fit(self, X, y=None, **params):
            captured["cv"], captured["n"] = self.cv, len(X)
            return super().fit(X, y, **params)

    split_calls = []
    real_split = StratifiedGroupKFold.split

    def spy_split(self, X, y=None, groups=None):
        split_calls.append((self, None if groups is None else np.asarray(groups)))
        return real_split(self, X, y, groups)

    monkeypatch.setattr(baseline, "GridSearchCV", Capture)
    monkeypatch.setattr(StratifiedGroupKFold, "split", spy_split)
    table, feats, y = _cohort()
    train = (table["split"] == "train").to_numpy()
    pids = table["patient_id"].to_numpy()[train]
    model = fit_baseline(feats[train], y[train], pids, seed=3, inner_folds=4)

    assert len(split_calls) == 1
    splitter, groups = split_calls[0]
    assert splitter.n_splits == 4 and splitter.shuffle and splitter.random_state == 3
    np.testing.assert_array_equal(groups, pids)
    cv = list(captured["cv"])
    assert captured["n"] == train.sum() and len(cv) == 4
    seen = []
    for (tr, va), (mtr, mva) in zip(cv, model.inner_splits, strict=True):
        np.testing.assert_array_equal(tr, mtr)
        np.testing.assert_array_equal(va, mva)
        assert not set(pids[tr]) & set(pids[va])
        assert len(tr) + len(va) == train.sum()
        seen.extend(va)
    assert sorted(seen) == list(range(train.sum()))


def test_absent_class_gets_zero_probability_and_rows_sum_to_one():
    table, feats, y = _cohort(drop_class=CLASSES.index("warthin"))
    model, test = _fit(table, feats, y)
    full_table, full_feats, full_y = _cohort()
    probs = model.predict_proba(full_feats)
    assert probs.shape == (len(full_feats), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(probs[:, CLASSES.index("warthin")] == 0.0)
    assert np.all(probs[:, [0, 1, 3]].max(axis=1) > 0)
    np.testing.assert_array_equal(model.classes, [0, 1, 3])


def test_fewer_than_two_classes_is_a_clear_error():
    table, feats, y = _cohort()
    with pytest.raises(ValueError, match="two classes"):
        fit_baseline(feats, np.zeros(len(y), dtype=int), table["patient_id"].to_numpy())
    with pytest.raises(ValueError, match="patients"):
        fit_baseline(feats[:20], y[:20], table["patient_id"].to_numpy()[:20], inner_folds=3)


def test_same_seed_gives_identical_predictions():
    table, feats, y = _cohort(signal=False)
    a, _ = _fit(table, feats, y, seed=7)
    b, _ = _fit(table, feats, y, seed=7)
    np.testing.assert_array_equal(a.predict_proba(feats), b.predict_proba(feats))
    assert a.params == b.params and a.cv_score == b.cv_score
    c, _ = _fit(table, feats, y, seed=8)
    assert any(not np.array_equal(va, vc)
               for (_, va), (_, vc) in zip(a.inner_splits, c.inner_splits, strict=True))


def test_predict_proba_uses_feature_names_not_column_order():
    table, feats, y = _cohort()
    model, _ = _fit(table, feats, y)
    shuffled = feats[feats.columns[::-1]]
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(feats))
    with pytest.raises(ValueError, match="missing columns"):
        model.predict_proba(feats.drop(columns="f0"))


def test_baseline_predictions_has_predictions_csv_columns():
    table, feats, y = _cohort()
    model, test = _fit(table, feats, y)
    slices = table[test].reset_index(drop=True)
    out = baseline_predictions(model, feats[test], slices)
    assert list(out.columns) == list(PREDICTIONS_COLUMNS) == [
        "patient_id", "slice_index", "true_label", "z_mm", "side", "histology", "split",
        "prob_free", "prob_pleomorphic_adenoma", "prob_warthin", "prob_malignant",
        "predicted_label",
    ]
    check_predictions(out, require_probabilities=True)
    assert len(out) == len(slices)
    np.testing.assert_array_equal(out["true_label"], slices["label"])
    probs = out[[f"prob_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(out["predicted_label"], np.asarray(CLASSES)[probs.argmax(1)])
    assert (out["predicted_label"] == out["true_label"]).mean() > 0.9
    with pytest.raises(ValueError, match="rows"):
        baseline_predictions(model, feats[test][:-1], slices)


def test_a_class_scheme_gives_its_classes_and_prob_columns():
    table, feats, _ = _cohort()
    scheme = SCHEMES["benign_malignant"]
    table["label"] = [c if c == "free" else scheme.class_of(c) for c in table["label"]]
    y = np.array([scheme.classes.index(c) for c in table["label"]])
    feats["f0"] = 3.0 * y + np.random.default_rng(1).normal(scale=0.3, size=len(y))
    model, test = _fit(table, feats, y, classes=scheme.classes)
    out = baseline_predictions(model, feats[test], table[test].reset_index(drop=True))
    assert model.class_names == ("free", "benign", "malignant")
    assert list(out.columns) == list(predictions_columns(scheme.classes))
    assert [c for c in out.columns if c.startswith("prob_")] == [
        "prob_free", "prob_benign", "prob_malignant"]
    assert set(out["predicted_label"]) <= set(scheme.classes)
    assert (out["predicted_label"] == out["true_label"]).mean() > 0.9
    with pytest.raises(ValueError, match=r"0\.\.2 \(the classes"):
        _fit(table, feats, np.where(y == 2, 3, y), classes=scheme.classes)


def test_baseline_is_torch_free():
    code = ("import sys, parotidlib.radiomics.baseline; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
