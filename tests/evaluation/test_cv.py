"""Cross-validated metrics (evaluation/cv.py) on small seeded out-of-fold tables."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation import cv
from parotidlib.evaluation.paired import paired_bootstrap_difference
from parotidlib.evaluation.schema import to_jsonable
from parotidlib.evaluation.stats import wilson_interval


def _cohort(histologies: list[str], seed: int = 0) -> pd.DataFrame:
    """One row per slice: 3-8 slices a patient, the first two free, the rest its histology."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, hist in enumerate(histologies):
        for k in range(int(rng.integers(3, 9))):
            rows.append({"patient_id": f"P{i:02d}", "slice_index": k, "z_mm": 3.0 * k,
                         "true_label": "free" if k < 2 else hist,
                         "side": "left" if i % 2 else "right", "histology": hist})
    return pd.DataFrame(rows)


def _oof(cohort: pd.DataFrame, folds: int = 3, seeds: tuple[int, ...] = (0, 1),
         skill: float = 1.5, model_seed: int = 100) -> pd.DataFrame:
    """Pooled OOF predictions: folds by StratifiedGroupKFold, a noisy model per seed (the
    folds follow the seed only, so two models with other ``model_seed`` share them)."""
    parts = []
    for seed in seeds:
        rng = np.random.default_rng(model_seed + seed)
        fold = np.empty(len(cohort), dtype=int)
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a class with fewer members than k
            for f, (_, test) in enumerate(splitter.split(cohort, cohort["histology"],
                                                         cohort["patient_id"])):
                fold[test] = f
        logits = rng.normal(size=(len(cohort), 4))
        logits[np.arange(len(cohort)), [CLASSES.index(t) for t in cohort["true_label"]]] += skill
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        part = cohort.assign(split="test", **{f"prob_{c}": p[:, j] for j, c in enumerate(CLASSES)},
                             predicted_label=[CLASSES[j] for j in p.argmax(axis=1)],
                             fold=fold, seed=seed)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def oof() -> pd.DataFrame:
    return _oof(_cohort([HISTOLOGIES[i % 3] for i in range(12)]))


@pytest.fixture(scope="module")
def result(oof) -> dict:
    return cv.compute_cv_metrics(oof, bootstrap_resamples=60, bootstrap_seed=0, synthetic=True)


def test_output_keys_and_strict_json(result, oof):
    assert set(result) == {"format", "synthetic", "malignant_threshold", "folds", "seeds",
                           "n_patients", "n_slices", "per_seed", "per_fold", "spread",
                           "interval_width", "method"}
    assert result["format"] == cv.CV_FORMAT and result["synthetic"] is True
    assert result["folds"] == 3 and result["seeds"] == [0, 1]
    assert result["n_patients"] == 12 and result["n_slices"] == len(oof) // 2
    assert set(result["per_seed"]) == {"0", "1"}
    assert set(result["per_seed"]["0"]["patient"]) == {"table5", "confusion_matrix",
                                                       "confusion_labels", "accuracy"}
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert "StratifiedGroupKFold" in result["method"]


def test_pooled_accuracy_equals_the_direct_count(result, oof):
    for seed in (0, 1):
        rows = oof[oof["seed"] == seed]
        acc = result["per_seed"][str(seed)]["slice"]["accuracy"]
        assert acc["total"] == len(rows)
        assert acc["successes"] == int((rows["true_label"] == rows["predicted_label"]).sum())
        lo, hi = wilson_interval(acc["successes"], acc["total"])
        assert acc["ci95"] == pytest.approx([lo, hi])
        block = result["per_seed"][str(seed)]["slice"]
        assert np.sum(block["confusion_matrix"]) == len(rows) and block["patients"] == 12
    # the two seeds are different models: a bug using one seed's rows for both would show
    assert (result["per_seed"]["0"]["slice"]["accuracy"]["successes"]
            != result["per_seed"]["1"]["slice"]["accuracy"]["successes"])


def test_patient_accuracy_counts_exact_diagnoses(result, oof):
    from parotidlib.evaluation.decision import diagnose_patients
    rows = oof[oof["seed"] == 1]
    d = diagnose_patients(rows, malignant_threshold=2)
    acc = result["per_seed"]["1"]["patient"]["accuracy"]
    assert acc["total"] == 12
    assert acc["successes"] == int((d["true_histology"] == d["predicted_histology"]).sum())
    assert np.sum(result["per_seed"]["1"]["patient"]["confusion_matrix"]) == 12


def test_one_row_per_fold_and_seed(result, oof):
    rows = result["per_fold"]
    assert len(rows) == result["folds"] * len(result["seeds"]) == 6
    assert [(r["seed"], r["fold"]) for r in rows] == [(s, f) for s in (0, 1) for f in range(3)]
    for r in rows:
        part = oof[(oof["seed"] == r["seed"]) & (oof["fold"] == r["fold"])]
        assert r["slices"] == len(part) and r["patients"] == part["patient_id"].nunique()
        assert r["accuracy"]["successes"] == int((part.true_label == part.predicted_label).sum())
        assert 0.0 <= r["micro_auc"] <= 1.0
    for s in (0, 1):
        assert sum(r["slices"] for r in rows if r["seed"] == s) == result["n_slices"]
        assert sum(r["patients"] for r in rows if r["seed"] == s) == result["n_patients"]


def test_spread_matches_numpy(result):
    folds = np.array([r["accuracy"]["value"] for r in result["per_fold"]])
    spread = result["spread"]["slice_accuracy"]["per_fold"]
    assert spread["n"] == 6
    assert spread["mean"] == pytest.approx(folds.mean())
    assert spread["sd"] == pytest.approx(np.std(folds, ddof=1))
    assert (spread["min"], spread["max"]) == (pytest.approx(folds.min()),
                                             pytest.approx(folds.max()))
    aucs = np.array([r["micro_auc"] for r in result["per_fold"]])
    assert result["spread"]["micro_auc"]["per_fold"]["sd"] == pytest.approx(np.std(aucs, ddof=1))
    seeds = np.array([result["per_seed"][s]["slice"]["accuracy"]["value"] for s in ("0", "1")])
    per_seed = result["spread"]["slice_accuracy"]["per_seed"]
    assert per_seed["n"] == 2 and per_seed["sd"] == pytest.approx(np.std(seeds, ddof=1))
    assert per_seed["mean"] == pytest.approx(seeds.mean())


def test_interval_width_without_and_with_a_single_split(result, oof):
    first = result["per_seed"]["0"]["slice"]["accuracy"]
    width = result["interval_width"]
    assert width["cv"] == pytest.approx(first["ci95"][1] - first["ci95"][0])
    assert width["single_split"] is None and width["ratio"] is None
    assert width["single_split_undefined"] == "no single-split run given"
    # a single split of n test slices: the expected width is Wilson's at the CV accuracy
    n = 20
    single = {"slice": {"test": {"accuracy": {"value": 0.7, "ci95": [0.5, 0.9],
                                              "successes": 14, "total": n}}}}
    out = cv.compute_cv_metrics(oof, bootstrap_resamples=0, single_split=single)["interval_width"]
    assert out["single_split"] == pytest.approx(0.4)
    assert out["ratio"] == pytest.approx(width["cv"] / 0.4)
    assert out["single_split_expected"] == pytest.approx(cv.wilson_width(first["value"], n))
    assert out["single_split_expected"] > out["cv"]  # fewer slices, wider interval
    # with the CV's own slice count the expected width is the CV interval's width
    same = {"slice": {"test": {"accuracy": first}}}
    own = cv.compute_cv_metrics(oof, bootstrap_resamples=0, single_split=same)["interval_width"]
    assert own["single_split_expected"] == pytest.approx(width["cv"], abs=1e-12)
    assert own["ratio"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="slice.test.accuracy"):
        cv.compute_cv_metrics(oof, bootstrap_resamples=0, single_split={"slice": {}})


@pytest.mark.parametrize("k,n", [(0, 5), (3, 7), (7, 7), (164, 186)])
def test_wilson_width_equals_the_interval(k, n):
    lo, hi = wilson_interval(k, n)
    assert cv.wilson_width(k / n, n) == pytest.approx(hi - lo, abs=1e-12)


def test_check_catches_a_duplicated_slice(oof):
    bad = pd.concat([oof, oof.iloc[[5]]], ignore_index=True)
    row = oof.iloc[5]
    with pytest.raises(ValueError, match=rf"once per seed.*patient_id='{row.patient_id}'"
                                         rf".*appears 2 times for seed {row.seed}"):
        cv.check_cv_predictions(bad)


def test_check_catches_a_patient_in_two_folds(oof):
    bad = oof.copy()
    i = bad.index[(bad["patient_id"] == "P03") & (bad["seed"] == 1)][0]
    bad.loc[i, "fold"] = (bad.loc[i, "fold"] + 1) % 3
    with pytest.raises(ValueError, match="one fold per seed.*patient 'P03' in folds .* seed 1"):
        cv.check_cv_predictions(bad)


def test_check_catches_missing_columns_and_uneven_seeds(oof):
    with pytest.raises(ValueError, match=r"missing columns \['fold'\]"):
        cv.check_cv_predictions(oof.drop(columns="fold"))
    dropped = oof.drop(index=oof.index[(oof["seed"] == 1)][0])
    with pytest.raises(ValueError, match="same slices.*1 missing.*seed 0 only"):
        cv.check_cv_predictions(dropped)
    with pytest.raises(ValueError, match="fold must hold integers"):
        cv.check_cv_predictions(oof.assign(fold=oof["fold"] + 0.5))
    cv.check_cv_predictions(oof)  # the valid table passes


def test_tiny_cohort_has_undefined_values_not_errors():
    # 12 patients, one Warthin and one malignant: two of the three folds lack a class
    skewed = _oof(_cohort(["pleomorphic_adenoma"] * 10 + ["warthin", "malignant"]), seeds=(4,))
    assert skewed.groupby("fold")["histology"].nunique().min() < 3
    out = cv.compute_cv_metrics(skewed, bootstrap_resamples=30)
    assert len(out["per_fold"]) == 3
    assert out["spread"]["slice_accuracy"]["per_seed"]["sd"] is None
    assert out["spread"]["slice_accuracy"]["per_seed"]["sd_undefined"] == "one value"
    json.dumps(out, allow_nan=False)
    # 3 patients, 3 folds of one patient each, no malignant patient, bootstrap off
    tiny = _oof(_cohort(["pleomorphic_adenoma", "warthin", "warthin"], seed=2), seeds=(0,))
    out = cv.compute_cv_metrics(tiny, bootstrap_resamples=0)
    table5 = {r["type"]: r for r in out["per_seed"]["0"]["patient"]["table5"]}
    assert table5["malignant"]["accuracy"]["undefined"] == "no malignant patient"
    assert out["per_seed"]["0"]["slice"]["micro_auc"]["ci95_undefined"] == \
        "bootstrap_resamples is 0"
    assert out["per_seed"]["0"]["slice"]["class_auc_undefined"]["malignant"] == \
        "no malignant slice"
    assert all(r["patients"] == 1 for r in out["per_fold"])
    assert out["interval_width"]["ratio_undefined"] == "no single-split run given"
    json.dumps(out, allow_nan=False)


def test_reproducible_and_read_back(oof, result, tmp_path):
    again = cv.compute_cv_metrics(oof, bootstrap_resamples=60, bootstrap_seed=0, synthetic=True)
    assert again == result
    oof.assign(patient_id="0" + oof["patient_id"]).to_csv(tmp_path / "cv.csv", index=False)
    back = cv.read_cv_predictions(tmp_path / "cv.csv")
    assert back["patient_id"].iloc[0].startswith("0P")
    cv.check_cv_predictions(back)


# --------------------------------------------------------------------------- radiomics


@pytest.fixture(scope="module")
def radiomics_oof() -> pd.DataFrame:
    """The baseline's OOF predictions of the same slices and folds: a weaker, other model."""
    return _oof(_cohort([HISTOLOGIES[i % 3] for i in range(12)]), skill=0.3, model_seed=500)


@pytest.fixture(scope="module")
def with_radiomics(radiomics_oof) -> dict:
    cnn = _oof(_cohort([HISTOLOGIES[i % 3] for i in range(12)]), skill=3.0)
    out = cv.compute_cv_metrics(cnn, bootstrap_resamples=60, bootstrap_seed=0, synthetic=True,
                                radiomics_predictions=radiomics_oof,
                                radiomics_info={"model": "logistic"})
    return {"cnn": cnn, "metrics": out}


def _accuracy(rows: pd.DataFrame) -> float:
    return float((rows["true_label"] == rows["predicted_label"]).mean())


def test_radiomics_pooled_results_equal_direct_counts(with_radiomics, radiomics_oof):
    from sklearn.preprocessing import label_binarize

    from parotidlib.evaluation.decision import diagnose_patients
    from parotidlib.evaluation.metrics import micro_auc

    out = with_radiomics["metrics"]
    assert set(out["radiomics"]) == {"info", "per_seed"}
    assert out["radiomics"]["info"] == {"model": "logistic"}
    assert set(out["radiomics"]["per_seed"]) == {"0", "1"}
    for seed in (0, 1):
        rows = radiomics_oof[radiomics_oof["seed"] == seed]
        block = out["radiomics"]["per_seed"][str(seed)]
        acc = block["slice"]["accuracy"]
        assert acc["total"] == len(rows)
        assert acc["successes"] == int((rows["true_label"] == rows["predicted_label"]).sum())
        assert acc["ci95"] == pytest.approx(list(wilson_interval(acc["successes"], len(rows))))
        y = label_binarize(rows["true_label"], classes=list(CLASSES))
        scores = rows[[f"prob_{c}" for c in CLASSES]].to_numpy()
        assert block["slice"]["micro_auc"]["value"] == pytest.approx(micro_auc(y, scores))
        assert block["slice"]["micro_auc"]["n_resamples"] == 60  # the clustered bootstrap ran
        lesion = {r["task"]: r for r in block["table4"]}["lesion_vs_none"]
        free_t, free_p = rows["true_label"] == "free", rows["predicted_label"] == "free"
        assert (lesion["tp"], lesion["fn"]) == (int((free_t & free_p).sum()),
                                                int((free_t & ~free_p).sum()))
        d = diagnose_patients(rows, malignant_threshold=2)
        assert block["patient"]["accuracy"]["successes"] == int(
            (d["true_histology"] == d["predicted_histology"]).sum())
        assert sum(r["patients"] for r in block["patient"]["table5"]
                   if r["type"] != "benign") == 12
    # the CNN's keys are those it has without a baseline
    cnn = with_radiomics["cnn"]
    alone = cv.compute_cv_metrics(cnn, bootstrap_resamples=60, bootstrap_seed=0, synthetic=True)
    assert {k: v for k, v in out.items() if k not in ("radiomics", "cnn_vs_radiomics")} == alone
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_paired_difference_pairs_seed_s_with_seed_s(with_radiomics, radiomics_oof):
    out, cnn = with_radiomics["metrics"], with_radiomics["cnn"]
    assert out["cnn_vs_radiomics"]["method"] == cv.CV_RADIOMICS_METHOD
    for seed in (0, 1):
        c, r = cnn[cnn["seed"] == seed], radiomics_oof[radiomics_oof["seed"] == seed]
        cmp = out["cnn_vs_radiomics"]["per_seed"][str(seed)]
        acc = cmp["accuracy"]
        assert acc["value"] == pytest.approx(_accuracy(c) - _accuracy(r))
        assert (acc["value_a"], acc["value_b"]) == (pytest.approx(_accuracy(c)),
                                                    pytest.approx(_accuracy(r)))
        assert acc["n_patients"] == 12 and acc["n_slices"] == len(c)
        assert acc["ci95"][0] > 0  # skill 3.0 against 0.3 on 12 patients: the CNN wins
        assert cmp["micro_auc"]["value"] > 0 and cmp["micro_auc"]["n_resamples"] == 60
        # the same function as the ablation's paired comparison, the same bootstrap seed
        assert cmp["accuracy"] == to_jsonable(paired_bootstrap_difference(c, r, 60, 0))
        assert cmp["micro_auc"] == to_jsonable(
            paired_bootstrap_difference(c, r, 60, 0, "micro_auc"))
        merged = c.merge(r, on=["patient_id", "slice_index", "side"], suffixes=("_c", "_r"))
        right_c = merged["predicted_label_c"] == merged["true_label_c"]
        right_r = merged["predicted_label_r"] == merged["true_label_r"]
        mc = cmp["mcnemar"]
        assert mc["only_cnn_correct"] == int((right_c & ~right_r).sum())
        assert mc["only_radiomics_correct"] == int((~right_c & right_r).sum())
        assert 0 <= mc["pvalue"] <= 1 and "independent" in mc["caveat"]
        assert "out-of-fold" in cmp["method"]
    # pairing across seeds would give another number: the test above can tell them apart
    crossed = _accuracy(cnn[cnn["seed"] == 0]) - _accuracy(radiomics_oof[radiomics_oof["seed"]
                                                                          == 1])
    assert crossed != pytest.approx(out["cnn_vs_radiomics"]["per_seed"]["0"]["accuracy"]["value"])


def test_radiomics_must_be_the_cnns_slices_seeds_and_folds(oof, radiomics_oof):
    def compute(radiomics):
        return cv.compute_cv_metrics(oof, bootstrap_resamples=0, radiomics_predictions=radiomics)

    p05 = radiomics_oof["patient_id"] == "P05"
    with pytest.raises(ValueError, match=r"seed 0: CNN and radiomics.*same slices.*P05"):
        compute(radiomics_oof[~(p05 & (radiomics_oof["slice_index"] == 0))])
    with pytest.raises(ValueError, match=r"CNN's seeds \[0, 1\], got \[0\]"):
        compute(radiomics_oof[radiomics_oof["seed"] == 0])
    moved = radiomics_oof.copy()
    moved.loc[p05 & (moved["seed"] == 1), "fold"] = (
        moved.loc[p05 & (moved["seed"] == 1), "fold"] + 1) % 3
    with pytest.raises(ValueError, match=r"CNN's folds.*patient 'P05' seed 1"):
        compute(moved)
    with pytest.raises(ValueError, match=r"^cv_radiomics_predictions: .*missing columns"):
        compute(radiomics_oof.drop(columns="fold"))
    out = compute(radiomics_oof)  # the valid pair passes, the bootstrap off
    acc = out["cnn_vs_radiomics"]["per_seed"]["1"]["accuracy"]
    assert acc["ci95"] is None and acc["p_two_sided_undefined"] == "bootstrap_resamples is 0"


def test_report_tables_show_both_models_side_by_side(with_radiomics, result):
    from parotidlib.report import cv_report

    out = with_radiomics["metrics"]
    frame = cv_report.radiomics_frame(out)
    assert list(frame.columns) == [f"{m}, seed {s} (synthetic cohort)"
                                   for s in ("0", "1") for m in ("CNN", "radiomics")]
    acc = out["radiomics"]["per_seed"]["1"]["slice"]["accuracy"]
    assert frame.loc["slice accuracy [95% Wilson CI]", "radiomics, seed 1 (synthetic cohort)"
                     ].endswith(f"({acc['successes']}/{acc['total']})")
    diff = cv_report.radiomics_difference_frame(out)
    assert list(diff.index) == ["0", "1"]
    value = out["cnn_vs_radiomics"]["per_seed"]["0"]["accuracy"]["value"]
    assert diff.loc["0", "accuracy: CNN minus radiomics [95% CI]"].startswith(f"{value:.3f}")
    table = cv_report.table4_cnn_vs_radiomics(out)["0"]
    assert list(table.index[:2]) == [("benign vs malignant", "CNN"),
                                     ("benign vs malignant", "radiomics")]
    text = cv_report.radiomics_paragraph(out)
    assert text.startswith("**Synthetic cohort**") and "treats them as independent" in text
    # without a baseline (radiomics: false) there is nothing to show
    assert cv_report.radiomics_frame(result).empty
    assert cv_report.radiomics_difference_frame(result).empty
    assert cv_report.table4_cnn_vs_radiomics(result) == {}
    assert cv_report.radiomics_paragraph(result) == ""


# --------------------------------------------------------------------------- grouped folds


@pytest.fixture(scope="module")
def grouped(oof) -> dict:
    """The OOF table with its folds replaced by three scanners of 4 patients each."""
    scanner = {f"P{i:02d}": ("GE", "Skyra", "Verio")[i // 4] for i in range(12)}
    table = oof.assign(fold=oof["patient_id"].map(lambda p: int(p[1:]) // 4))
    grouping = {"column": "scanner", "groups": [
        {"fold": f, "group": g, "patients": 4} for f, g in enumerate(("GE", "Skyra", "Verio"))]}
    metrics = cv.compute_cv_metrics(table, bootstrap_resamples=40, synthetic=True,
                                    grouping=grouping)
    return {"table": table, "grouping": grouping, "metrics": metrics, "scanner": scanner}


def test_per_group_results_equal_direct_counts(grouped):
    out, table = grouped["metrics"], grouped["table"]
    json.dumps(out, allow_nan=False)
    assert out["grouping"]["label"] == "leave-one-scanner-out (internal-external validation)"
    assert out["method"] == cv.GROUPED_CV_METHOD and out["folds"] == 3
    assert [(r["seed"], r["group"]) for r in out["per_group"]] == [
        (s, g) for s in (0, 1) for g in ("GE", "Skyra", "Verio")]
    for r in out["per_group"]:
        rows = table[(table["seed"] == r["seed"]) & (table["fold"] == r["fold"])]
        assert set(rows["patient_id"].map(grouped["scanner"])) == {r["group"]}
        acc = r["slice"]["accuracy"]
        assert acc["successes"] == int((rows["true_label"] == rows["predicted_label"]).sum())
        assert acc["total"] == len(rows) == r["slices"] and r["patients"] == 4
        lo, hi = wilson_interval(acc["successes"], acc["total"])
        assert acc["ci95"] == pytest.approx([lo, hi])
        assert sum(r["histology"].values()) == 4
        assert r["patient_accuracy"]["total"] == 4
    # the pooled results are those of the same table without a grouping
    plain = cv.compute_cv_metrics(table, bootstrap_resamples=40, synthetic=True)
    assert plain["per_seed"] == out["per_seed"] and "per_group" not in plain


def test_grouping_must_match_the_folds(grouped):
    two = {"column": "scanner", "groups": grouped["grouping"]["groups"][:2]}
    with pytest.raises(ValueError, match=r"seed 0: .* folds \[0, 1, 2\], the grouping by "
                                         r"'scanner' has \[0, 1\]"):
        cv.compute_cv_metrics(grouped["table"], bootstrap_resamples=0, grouping=two)
    with pytest.raises(ValueError, match="cv_groups.json's content"):
        cv.compute_cv_metrics(grouped["table"], bootstrap_resamples=0, grouping={"groups": []})


def test_groups_file_round_trip(tmp_path):
    from parotidlib.data.split import group_table

    patients = pd.DataFrame({"patient_id": [f"P{i}" for i in range(10)],
                             "histology": [HISTOLOGIES[i % 3] for i in range(10)],
                             "site": ["b"] * 5 + ["a"] * 5})
    assert cv.read_cv_groups(tmp_path) is None
    cv.write_cv_groups(tmp_path, "site", group_table(patients, "site"))
    back = cv.read_cv_groups(tmp_path)
    assert back["column"] == "site"
    assert [(g["fold"], g["group"], g["patients"]) for g in back["groups"]] == [
        (0, "a", 5), (1, "b", 5)]


def test_report_sets_the_groups_side_by_side(grouped, result):
    from parotidlib.report import cv_report

    out = grouped["metrics"]
    frames = cv_report.group_frames(out)
    assert list(frames) == ["0", "1"]
    frame = frames["1"]
    assert list(frame.columns) == ["GE (fold 0)", "Skyra (fold 1)", "Verio (fold 2)",
                                   "pooled (all groups)"]
    row = next(r for r in out["per_group"] if r["seed"] == 1 and r["group"] == "Skyra")
    acc = row["slice"]["accuracy"]
    assert frame.loc["slice accuracy [95% Wilson CI]", "Skyra (fold 1)"].endswith(
        f"({acc['successes']}/{acc['total']})")
    assert frame.loc["patients", "pooled (all groups)"] == "12"
    text = cv_report.group_paragraph(out)
    assert text.startswith("**Synthetic cohort**") and "`scanner`" in text
    assert cv_report.summary_paragraph(out).startswith(
        "Leave-one-scanner-out (internal-external validation), 3 groups,")
    assert cv_report.group_frames(result) == {} and cv_report.group_paragraph(result) == ""
