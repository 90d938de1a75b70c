"""The predict report's tables and text (report/predict_report.py)."""

import numpy as np
import pandas as pd

from parotidlib.constants import CLASSES
from parotidlib.evaluation.external import compute_external_metrics
from parotidlib.report import predict_report as R


def _frame(split: str, labelled: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i, hist in enumerate(["pleomorphic_adenoma", "warthin", "malignant"] * 2):
        for k in range(5):
            true = hist if k else "free"
            p = rng.dirichlet(np.ones(4))
            rows.append({"patient_id": f"P{i}", "slice_index": k,
                         "true_label": true if labelled or true == "free" else np.nan,
                         "histology": hist if labelled else np.nan, "split": split,
                         **{f"prob_{c}": p[j] for j, c in enumerate(CLASSES)},
                         "predicted_label": CLASSES[int(p.argmax())]})
    return pd.DataFrame(rows)


def test_side_by_side_tables_of_a_validated_cohort():
    results = compute_external_metrics(_frame("external", True, 0), 2, 20, 0,
                                       internal=_frame("test", True, 1), synthetic=True,
                                       model={"training_run": "run1", "channels": ["t1"]})
    tables = R.validation_tables(results)
    assert list(tables) == ["Slices and patients", next(t for t in tables if "Table 4" in t),
                            next(t for t in tables if "Table 5" in t), "External minus internal"]
    slices = tables["Slices and patients"]
    assert list(slices.columns) == [R.INTERNAL, R.EXTERNAL]
    acc = results["external"]["slice"]["accuracy"]
    assert slices.loc["slice accuracy [95% Wilson CI] (k/n)", R.EXTERNAL].endswith(
        f"({acc['successes']}/{acc['total']})")
    cal = R.calibration_frame(results)
    assert ("patients", "malignant vs benign") in cal.index
    assert ("patients", "Malignant vs rest") not in cal.index  # the same outcome as above
    text = R.summary_paragraph(results, "synthetic cohort of 6 patients, seed 1")
    assert "run1" in text and "difference (external - internal)" in text
    assert "Cohort: synthetic cohort of 6 patients" in text
    assert len(R.diagnoses_frame(results)) == 6


def test_an_unlabelled_cohort_is_marked_unvalidated():
    results = compute_external_metrics(_frame("external", False, 2), 2, 20, 0,
                                       internal=_frame("test", True, 1))
    assert R.validation_tables(results) == {} and R.calibration_frame(results).empty
    assert "**Unvalidated.**" in R.summary_paragraph(results)
    assert set(R.diagnoses_frame(results)["histology"]) == {"none (unvalidated)"}
