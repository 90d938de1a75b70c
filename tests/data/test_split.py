"""Patient-level splits (parotidlib.data.split)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from parotidlib.data.split import (
    LeakageError,
    check_no_leakage,
    group_table,
    patient_groups,
    patient_strata,
    split_patients,
)
from parotidlib.study import PAPER_CLASSES, class_scheme


def paper_patients() -> pd.DataFrame:
    """The paper's 233 patients by histology (Table 1: 63 Warthin, 90 PA, 80 malignant)."""
    hist = ["warthin"] * 63 + ["pleomorphic_adenoma"] * 90 + ["malignant"] * 80
    order = np.random.default_rng(1).permutation(233)
    return pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(233)],
                         "histology": np.array(hist)[order]})


def test_paper_sizes_and_stratification():
    patients = paper_patients()
    split = split_patients(patients, test_fraction=21 / 233, seed=0)
    assert split.value_counts().to_dict() == {"train": 212, "test": 21}  # the paper's 212/21
    assert split.index.is_unique and set(split.index) == set(patients["patient_id"])
    hist = patients.set_index("patient_id")["histology"]
    test_counts = hist[split[split == "test"].index].value_counts()
    # proportional allocation: 21 x (63, 90, 80) / 233 = (5.7, 8.1, 7.2)
    assert set(test_counts.index) == {"warthin", "pleomorphic_adenoma", "malignant"}
    assert abs(test_counts["warthin"] - 5.7) <= 1
    assert abs(test_counts["pleomorphic_adenoma"] - 8.1) <= 1
    assert abs(test_counts["malignant"] - 7.2) <= 1
    # the default 0.1 is round(23.3) = 23 test patients
    assert (split_patients(patients) == "test").sum() == 23


def test_seeded_and_order_free():
    patients = paper_patients()
    a = split_patients(patients, seed=3)
    assert a.equals(split_patients(patients.sample(frac=1, random_state=0), seed=3))
    assert not a.equals(split_patients(patients, seed=4))


def test_rows_per_slice_are_grouped_by_patient():
    patients = paper_patients()
    slices = patients.loc[patients.index.repeat(5)].reset_index(drop=True)  # 5 rows each
    split = split_patients(slices, seed=0)
    assert len(split) == 233
    assert split.equals(split_patients(patients, seed=0))


def test_stratified_group_kfold_folds_are_disjoint_and_cover():
    patients = paper_patients()
    slices = patients.loc[patients.index.repeat(3)].reset_index(drop=True)
    tests = [set(split_patients(slices, cv_folds=5, fold=f, seed=0).pipe(lambda s: s[s == "test"]
                                                                          .index))
             for f in range(5)]
    assert set().union(*tests) == set(patients["patient_id"])
    assert sum(len(t) for t in tests) == 233  # disjoint
    hist = patients.set_index("patient_id")["histology"]
    for test in tests:
        assert 40 <= len(test) <= 53
        counts = hist[list(test)].value_counts()
        assert abs(counts["pleomorphic_adenoma"] - 18) <= 2


def test_small_cohort_falls_back_with_warning():
    patients = pd.DataFrame({"patient_id": ["a", "b", "c", "d"],
                             "histology": ["warthin", "warthin", "malignant", "malignant"]})
    with pytest.warns(UserWarning, match="without stratification"):
        split = split_patients(patients, test_fraction=0.25)
    assert (split == "test").sum() == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"test_fraction": 0.0}, "test_fraction"), ({"test_fraction": 1.0}, "test_fraction"),
    ({"cv_folds": 1}, "cv_folds"), ({"cv_folds": 3, "fold": 3}, "fold"),
    ({"fold": 1}, "fold"), ({"cv_folds": 300}, "cv_folds")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_patients(paper_patients(), **kwargs)


def test_mixed_histology_per_patient_rejected():
    df = pd.DataFrame({"patient_id": ["a", "a", "b"], "histology": ["warthin", "malignant",
                                                                     "warthin"]})
    with pytest.raises(ValueError, match="several histologies.*'a'"):
        split_patients(df)


def test_check_no_leakage():
    ok = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "train", "test"]})
    check_no_leakage(ok)
    bad = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c"],
                        "split": ["train", "test", "test", "test", "train"]})
    with pytest.raises(LeakageError, match=r"2 patient\(s\).*a: test, train; c: test, train"):
        check_no_leakage(bad)


# --------------------------------------------------------------------------- grouped folds


def _scanner_cohort(counts: dict[str, tuple[int, int, int]], seed: int = 0) -> pd.DataFrame:
    """Patients by scanner with (PA, Warthin, malignant) counts, shuffled (seeded)."""
    rows = [(s, h) for s, c in counts.items()
            for h, n in zip(("pleomorphic_adenoma", "warthin", "malignant"), c, strict=True)
            for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(rows))
    return pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(len(rows))],
                         "scanner": [rows[j][0] for j in order],
                         "histology": [rows[j][1] for j in order]})


TABLE2 = {"GE": (63, 47, 56), "Skyra": (17, 4, 12), "Verio": (10, 12, 12)}


@pytest.mark.parametrize("counts, column, edit, match", [
    (TABLE2, "site", None, r"no such column; the columns are \['patient_id', 'scanner'"),
    (TABLE2, "scanner", "missing", r"2 patient\(s\) have no value in it \(e\.g\. P000, P001\)"),
    ({"GE": (5, 5, 5), "Verio": (3, 3, 0)}, "scanner", None,
     r"group 'Verio' has no malignant patient \(pleomorphic_adenoma 3, warthin 3, "
     r"malignant 0\)"),
    ({"GE": (5, 5, 5), "Verio": (1, 1, 1)}, "scanner", None,
     r"group 'Verio' has 3 patient\(s\) .* fewer than 5"),
    ({"GE": (5, 5, 5)}, "scanner", None, "one value"),
])
def test_group_table_refuses_what_cannot_be_validated(counts, column, edit, match):
    patients = _scanner_cohort(counts)
    if edit == "missing":
        patients.loc[patients["patient_id"].isin(["P000", "P001"]), "scanner"] = [None, ""]
    with pytest.raises(ValueError, match=match):
        group_table(patients, column)


@pytest.mark.parametrize("counts, sizes", [
    (TABLE2, [166, 33, 34]),  # the synthetic cohort's three scanners (Table 2)
    ({"A": (30, 1, 1), "B": (2, 2, 2), "C": (1, 9, 40)}, [32, 6, 50]),  # unbalanced
])
def test_one_fold_per_group_holding_out_its_patients(counts, sizes):
    patients = _scanner_cohort(counts)
    slices = patients.loc[patients.index.repeat(3)].reset_index(drop=True)  # rows per slice
    table = group_table(slices, "scanner")
    assert table["group"].tolist() == sorted(counts) and table["fold"].tolist() == [0, 1, 2]
    assert table["patients"].tolist() == sizes
    assert table[["pleomorphic_adenoma", "warthin", "malignant"]].to_numpy().tolist() == [
        list(counts[g]) for g in sorted(counts)]
    by_patient = patients.set_index("patient_id")["scanner"]
    held_out = []
    for fold, group in enumerate(sorted(counts)):
        split = split_patients(slices, cv_folds=3, fold=fold, group_by="scanner", seed=fold)
        test = set(split.index[split == "test"])
        assert test == set(by_patient.index[by_patient == group])  # exactly its group
        held_out += sorted(test)
    assert sorted(held_out) == sorted(patients["patient_id"])  # every patient once


def test_grouped_split_needs_one_fold_per_group_and_reads_numbers_as_text():
    patients = _scanner_cohort({"1.5": (2, 2, 2), "3": (2, 2, 2)})
    with pytest.raises(ValueError, match=r"cv_folds must be the number of 'scanner' values "
                                         r"\(2\).*got 3"):
        split_patients(patients, cv_folds=3, fold=0, group_by="scanner")
    numeric = patients.assign(scanner=patients["scanner"].astype(float))  # as slices.csv reads
    for fold in range(2):
        assert split_patients(numeric, cv_folds=2, fold=fold, group_by="scanner").equals(
            split_patients(patients, cv_folds=2, fold=fold, group_by="scanner"))
    assert patient_groups(numeric, "scanner").value_counts().to_dict() == {"1.5": 6, "3": 6}
    twice = pd.concat([patients, patients.assign(scanner="3")])
    with pytest.raises(ValueError, match="several values"):
        patient_groups(twice, "scanner")


# --------------------------------------------------------------------------- class schemes


def _five_histologies(n: int = 50) -> pd.DataFrame:
    """n patients of five histologies (the paper's three and two further ones), seeded."""
    names = ["pleomorphic_adenoma", "warthin", "malignant", "basal_cell_adenoma",
             "mucoepidermoid_carcinoma"]
    hist = np.random.default_rng(5).choice(names, n)
    return pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "histology": hist,
                         "scanner": np.where(np.arange(n) % 2, "GE", "Verio")})


@pytest.mark.parametrize("kwargs", [{}, {"cv_folds": 5, "fold": 2}])
def test_the_paper_scheme_splits_as_the_histologies_do(kwargs):
    patients = paper_patients()
    for seed in range(3):
        assert split_patients(patients, seed=seed, scheme=PAPER_CLASSES, **kwargs).equals(
            split_patients(patients, seed=seed, **kwargs))


def test_a_scheme_stratifies_by_class():
    patients = _five_histologies(200)
    scheme = class_scheme("benign_malignant")
    split = split_patients(patients, test_fraction=0.2, seed=0, scheme=scheme)
    strata = patient_strata(patients, scheme).set_axis(patients["patient_id"])
    share = strata[split.index[split == "test"]].value_counts() / strata.value_counts()
    assert share.round(2).tolist() == [0.2, 0.2]  # both classes 1:4, exactly
    cv = split_patients(patients, cv_folds=4, fold=1, seed=0, scheme=scheme)
    assert set(strata[cv.index[cv == "test"]]) == {"benign", "malignant"}


def test_a_histology_without_a_class_is_refused_naming_patients_and_scheme():
    patients = _five_histologies()
    bca = sorted(patients.loc[patients["histology"] == "basal_cell_adenoma", "patient_id"])
    with pytest.raises(ValueError, match=(
            rf"histology 'basal_cell_adenoma' of {len(bca)} patient\(s\) \(e\.g\. "
            rf"{', '.join(bca[:3])}, \.\.\.\) has no class in the class scheme 'paper' "
            rf"\(classes \['free', 'pleomorphic_adenoma', 'warthin', 'malignant'\]; "
            rf"\['mucoepidermoid_carcinoma'\] neither\)")):
        split_patients(patients, scheme=PAPER_CLASSES)


def test_group_table_counts_and_checks_the_classes_present():
    patients = _five_histologies()
    scheme = class_scheme({"pleomorphic_adenoma": "pa", "warthin": "warthin",
                           "malignant": "malignant", "mucoepidermoid_carcinoma": "malignant",
                           "exclude": ["basal_cell_adenoma"]})
    table = group_table(patients, "scanner", scheme=scheme)
    kept = patients[patients["histology"] != "basal_cell_adenoma"]
    assert list(table.columns) == ["fold", "group", "patients", "pa", "warthin", "malignant"]
    assert table["patients"].sum() == len(kept)
    assert table["malignant"].sum() == kept["histology"].isin(
        ["malignant", "mucoepidermoid_carcinoma"]).sum()
    # by histology (no scheme): the paper's three first, then the others present
    assert list(group_table(patients, "scanner").columns[3:]) == [
        "pleomorphic_adenoma", "warthin", "malignant", "basal_cell_adenoma",
        "mucoepidermoid_carcinoma"]
    # a class no patient has is not asked of every group; one some group lacks is
    no_warthin = patients[patients["histology"] != "warthin"]
    assert "warthin" not in group_table(no_warthin, "scanner", scheme=scheme).columns
    lacking = patients[~((patients["scanner"] == "GE") & (patients["histology"] == "warthin"))]
    with pytest.raises(ValueError, match=r"group 'GE' has no warthin patient .* every "
                                         r"held-out group needs every class of the cohort"):
        group_table(lacking, "scanner", scheme=scheme)
