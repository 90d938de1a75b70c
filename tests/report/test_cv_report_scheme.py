"""The cross-validation report follows the curated dataset's class scheme (issue 25, item 1):
the scheme recorded by run.cv (or the batch's data) is read back, said in words, and the
tables name its classes; the paper's scheme renders as before (small seeded tables)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parotidlib.evaluation.cv import compute_cv_metrics
from parotidlib.report import cv_report as R
from parotidlib.study import PAPER_CLASSES, SCHEMES, ClassScheme

BM = SCHEMES["benign_malignant"]
#: Patient -> (histology, fold, scanner).
PATIENTS = {"P0": ("pleomorphic_adenoma", 0, "A"), "P1": ("basal_cell_adenoma", 0, "A"),
            "P2": ("mucoepidermoid_carcinoma", 0, "A"), "P3": ("warthin", 1, "B"),
            "P4": ("malignant", 1, "B"), "P5": ("warthin", 1, "B")}


def _pooled(scheme: ClassScheme, seed: int = 0) -> pd.DataFrame:
    """Out-of-fold predictions of two folds: three slices per patient, seeded
    probabilities; a histology the scheme does not map becomes its malignant class."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid, (histology, fold, _) in PATIENTS.items():
        if histology not in scheme.histologies:
            histology = "malignant"
        label = scheme.class_of(histology)
        for k, true in enumerate(("free", label, label)):
            prob = rng.dirichlet(np.ones(len(scheme.classes)))
            rows.append({"patient_id": pid, "slice_index": k, "side": "left",
                         "true_label": true, "histology": histology, "split": "test",
                         **{f"prob_{c}": p for c, p in zip(scheme.classes, prob, strict=True)},
                         "predicted_label": scheme.classes[int(np.argmax(prob))],
                         "fold": fold, "seed": 0})
    return pd.DataFrame(rows)


GROUPING = {"column": "scanner", "groups": [
    {"fold": 0, "group": "A", "patients": 3}, {"fold": 1, "group": "B", "patients": 3}]}


def _metrics(scheme: ClassScheme) -> dict:
    return compute_cv_metrics(_pooled(scheme), bootstrap_resamples=20, synthetic=True,
                              grouping=GROUPING, scheme=scheme)


def test_the_scheme_is_read_from_the_record_run_cv_writes(tmp_path: Path):
    assert R.cv_scheme(tmp_path) == PAPER_CLASSES  # neither record nor data: the paper's
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"class_scheme": BM.record()}))
    assert R.cv_scheme(tmp_path) == BM  # a batch folder holding its curated data
    custom = ClassScheme("custom", (("warthin", "warthin"), ("malignant", "malignant")),
                         ("pleomorphic_adenoma",), ("malignant",))
    (tmp_path / R.CV_SCHEME).write_text(json.dumps(R.scheme_record(custom)))
    assert R.cv_scheme(tmp_path) == custom  # the members' scheme, recorded by run.cv


def test_another_scheme_is_said_and_its_classes_name_the_rows():
    metrics = _metrics(BM)
    assert metrics["class_scheme"]["name"] == "benign_malignant"
    text = R.scheme_paragraph(metrics)
    assert "Class scheme `benign_malignant`" in text
    assert "basal cell adenoma" in text and "mucoepidermoid carcinoma" in text
    assert "free, benign, malignant" in text

    pooled = R.pooled_frame(metrics)
    assert "paper (21 test patients)" not in pooled.columns
    assert "patient accuracy (2 classes)" in pooled.index
    assert "patient accuracy (3 types)" not in pooled.index

    table = R.group_frames(metrics)["0"]
    assert list(table.columns) == ["A (fold 0)", "B (fold 1)", "pooled (all groups)"]
    counts = table.loc["patients benign / malignant"]
    assert counts.tolist() == ["2/1", "2/1", "4/2"]  # the pooled column sums the groups
    assert "patient accuracy (2 classes)" in table.index
    assert "benign" in R.table5_by_seed(metrics)["0"].to_string()


def test_the_papers_scheme_renders_as_before():
    metrics = _metrics(PAPER_CLASSES)
    assert "class_scheme" not in metrics and R.scheme_paragraph(metrics) == ""
    pooled = R.pooled_frame(metrics)
    assert "paper (21 test patients)" in pooled.columns
    assert "patient accuracy (3 types)" in pooled.index
    table = R.group_frames(metrics)["0"]
    assert table.loc["patients PA / Warthin / malignant"].tolist() == ["1/0/2", "0/2/1",
                                                                       "1/2/3"]


@pytest.mark.parametrize("scheme", [PAPER_CLASSES, BM])
def test_the_cv_figures_draw_the_schemes_classes(tmp_path: Path, scheme: ClassScheme):
    names = R.draw_cv_figures(tmp_path, _pooled(scheme), synthetic=True, scheme=scheme)
    assert all((tmp_path / "figures" / f"{n}.png").is_file() for n in names)
