"""The checklist of a run with another class scheme and other series: the scheme in words,
the excluded histologies with their counts, the class counts and the study's series."""

from __future__ import annotations

import json

import pandas as pd

from parotidlib.report import checklist as C
from parotidlib.study import SCHEMES
from tests.report.test_checklist import study_run  # noqa: F401


def _restudy(run) -> None:
    """The study run as a benign_malignant run of T1, T2 and an ADC map, T1's label map."""
    data = run / "data"
    dataset = json.loads((data / "dataset.json").read_text())
    dataset["class_scheme"] = SCHEMES["benign_malignant"].record()
    dataset["classes"] = list(SCHEMES["benign_malignant"].classes)
    dataset["excluded_histologies"] = {"lipoma": 2}
    dataset.setdefault("config", {}).update(series=["t1", "t2", "adc"], labels_from="t1")
    (data / "dataset.json").write_text(json.dumps(dataset))
    slices = pd.read_csv(data / "slices.csv", dtype=str, keep_default_na=False)
    slices["label"] = slices["label"].replace({"pleomorphic_adenoma": "benign",
                                               "warthin": "benign"})
    slices.to_csv(data / "slices.csv", index=False)


def test_the_scheme_the_excluded_histologies_and_the_series_are_said(study_run):  # noqa: F811
    run, params = study_run
    _restudy(run)
    text = C.checklist_markdown(C.study_checklist(run, params, synthetic=True), "D")
    assert "scheme `classes: benign_malignant`: benign (benign: pleomorphic adenoma" in text
    assert "3 classes: free, benign, malignant" in text
    assert "left out by the scheme (`exclude`), per histology: lipoma 2." in text
    assert "(`series`: t1, t2, adc) and the label map of t1 (`labels_from`" in text
    assert "a histology the class scheme maps" in text
    assert "the series t2, adc and the label map of t1 resampled onto the T1 grid" in text
    assert "slices (free " in text and ", benign " in text.split("slices (free ")[1][:30]
    assert "pleomorphic adenoma 0" not in text.split("slices (free ")[1][:60]
