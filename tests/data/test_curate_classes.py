"""The class scheme in the data layer: which histologies a manifest may hold, the slices'
labels, the excluded patients, the split's strata and the tables (params ``classes``,
parotidlib.study.ClassScheme)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from parotidlib.config import CurationConfig
from parotidlib.data.cohort import CohortError, read_manifest
from parotidlib.data.curate import curate_cohort, resplit_dataset
from parotidlib.data.tables import histology_order, slice_counts, table1
from parotidlib.study import class_scheme
from parotidlib.synth import generate_cohort

SMALL = dict(image_size=16, test_fraction=0.4, curate_jobs=1)
FIVE = ("pleomorphic_adenoma", "warthin", "malignant", "basal_cell_adenoma",
        "mucoepidermoid_carcinoma")
#: The paper's classes, the carcinoma pooled with the malignant, the basal cell adenoma out.
EXCLUDING = {"pleomorphic_adenoma": "pleomorphic_adenoma", "warthin": "warthin",
             "malignant": "malignant", "mucoepidermoid_carcinoma": "malignant",
             "exclude": ["basal_cell_adenoma"]}


@pytest.fixture(scope="module")
def five(tmp_path_factory) -> Path:
    """Ten tiny synthetic patients, two of each of five histologies (seeded)."""
    return generate_cohort(tmp_path_factory.mktemp("five") / "c", n_patients=10, seed=3,
                           jobs=1, pixel_scale=4.0, histologies=dict.fromkeys(FIVE, 1.0))


def curate(manifest: Path, out: Path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return curate_cohort(manifest, out, CurationConfig(**{**SMALL, **kwargs}),
                             progress=False)


def _histology(manifest: Path) -> pd.Series:
    table = pd.read_csv(manifest, dtype=str)
    return table.set_index("patient_id")["histology"]


def test_the_paper_scheme_refuses_further_histologies_naming_patients_and_scheme(five,
                                                                                  tmp_path):
    hist = _histology(five)
    with pytest.raises(CohortError) as err:
        curate(five, tmp_path / "data")
    text = str(err.value)
    for pid in hist.index[hist.isin(FIVE[3:])]:
        assert f"patient {pid}, column histology" in text
    assert "unknown histology 'basal_cell_adenoma': not covered by the class scheme 'paper' " \
           "(classes ['free', 'pleomorphic_adenoma', 'warthin', 'malignant']" in text
    assert len(err.value.problems) == 4
    assert not (tmp_path / "data").exists()


def test_benign_malignant_gives_three_classes_and_labels_by_behaviour(five, tmp_path):
    ds = curate(five, tmp_path / "data", classes="benign_malignant")
    assert ds.classes == ("free", "benign", "malignant")
    assert ds.meta["classes"] == ["free", "benign", "malignant"]
    assert ds.meta["class_scheme"] == class_scheme("benign_malignant").record()
    assert ds.class_scheme == class_scheme("benign_malignant")
    assert ds.meta["excluded_histologies"] == {}
    lesion = ds.slices[ds.slices["label"] != "free"]
    bad = lesion["histology"].isin(["malignant", "mucoepidermoid_carcinoma"])
    assert set(lesion.loc[bad, "label"]) == {"malignant"}
    assert set(lesion.loc[~bad, "label"]) == {"benign"}
    assert set(lesion.loc[~bad, "histology"]) == {"pleomorphic_adenoma", "warthin",
                                                   "basal_cell_adenoma"}
    assert (ds.labels == ds.slices["label"].map(ds.classes.index)).all()
    counts = ds.meta["counts"]
    assert list(counts["slices"]["total"]) == ["free", "benign", "malignant"]
    assert list(counts["patients"]["total"]) == [*FIVE, "all"]  # the paper's three first
    assert counts["patients"]["total"]["all"] == 10
    # both splits hold both lesion classes (stratified by class)
    for split in ("train", "test"):
        assert all(counts["slices"][split][c] > 0 for c in ("benign", "malignant"))
    table = slice_counts(ds.slices, ds.classes)
    assert table.index.tolist()[:3] == ["free", "benign", "malignant"]
    assert slice_counts(ds.slices).index.tolist() == table.index.tolist()  # from label_index


def test_excluded_histologies_are_left_out_and_counted(five, tmp_path):
    hist = _histology(five)
    ds = curate(five, tmp_path / "data", classes=EXCLUDING)
    left_out = set(hist.index[hist == "basal_cell_adenoma"])
    assert left_out and not left_out & set(ds.slices["patient_id"])
    assert set(ds.slices["patient_id"]) == set(hist.index) - left_out
    assert ds.meta["excluded_histologies"] == {"basal_cell_adenoma": len(left_out)}
    assert ds.meta["skipped_patients"] == []
    assert ds.classes == ("free", "pleomorphic_adenoma", "warthin", "malignant")
    carcinoma = ds.slices[ds.slices["histology"] == "mucoepidermoid_carcinoma"]
    assert set(carcinoma.loc[carcinoma["label"] != "free", "label"]) == {"malignant"}
    assert not any(pid in (tmp_path / "data" / "dataset.json").read_text()
                   for pid in left_out)  # counted, never named in the files
    cohort = read_manifest(five, check_data=False, scheme=class_scheme(EXCLUDING))
    assert cohort.excluded_counts == {"basal_cell_adenoma": len(left_out)}
    assert set(cohort.excluded["patient_id"]) == left_out
    assert "Basal cell adenoma" not in table1(cohort.manifest).index.get_level_values(1)


def test_an_unmapped_histology_is_refused_naming_patients_and_scheme(five, tmp_path):
    hist = _histology(five)
    partial = {k: v for k, v in EXCLUDING.items() if k != "mucoepidermoid_carcinoma"}
    with pytest.raises(CohortError, match=r"unknown histology 'mucoepidermoid_carcinoma': not "
                                          r"covered by the class scheme 'custom' \(classes "
                                          r"\['free', 'pleomorphic_adenoma', 'warthin', "
                                          r"'malignant'\].*excluded \['basal_cell_adenoma'\]"
                       ) as err:
        curate(five, tmp_path / "data", classes=partial)
    named = {p.patient_id for p in err.value.problems}
    assert named == set(hist.index[hist == "mucoepidermoid_carcinoma"])


def test_a_resplit_keeps_the_scheme(five, tmp_path):
    ds = curate(five, tmp_path / "data", classes="benign_malignant")
    fold = resplit_dataset(ds.path, tmp_path / "fold1",
                           CurationConfig(**{**SMALL, "classes": "benign_malignant",
                                             "cv_folds": 2, "fold": 1}))
    assert fold.classes == ds.classes and fold.meta["class_scheme"] == ds.meta["class_scheme"]
    assert list(fold.meta["counts"]["slices"]["total"]) == list(ds.classes)
    assert json.loads((tmp_path / "fold1" / "dataset.json").read_text())["counts"][
        "patients"]["total"]["all"] == 10


def test_table1_lists_the_cohorts_histologies_paper_first(five):
    manifest = pd.read_csv(five, dtype=str, keep_default_na=False)
    groups = table1(manifest).loc["Pathology type"].index.tolist()
    assert groups == ["Pleomorphic adenoma", "Warthin tumour", "Malignant",
                      "Basal cell adenoma", "Mucoepidermoid carcinoma"]
    assert histology_order(["zeta_tumour", "oncocytoma", "warthin", ""]) == [
        "pleomorphic_adenoma", "warthin", "malignant", "oncocytoma", "zeta_tumour"]
