"""The run facts the report prints (report.runfolder): stage cache record, cohort, params,
skipped patients."""

import json

from parotidlib.paths import PROJECT_ROOT
from parotidlib.report import runfolder


def test_stage_table_says_how_each_stage_was_obtained(tmp_path):
    stages = tmp_path / ".stages"
    stages.mkdir()
    (stages / "train.json").write_text(json.dumps(
        {"key": "b" * 64, "complete": True, "seconds": 3.0, "resumed": True}))
    (stages / "curate.json").write_text(json.dumps(
        {"key": "a" * 64, "complete": True, "seconds": 0.0,
         "reused_from": str(tmp_path / "2026-11-30_default_abc1234")}))
    (stages / "report.json").write_text(json.dumps({"key": "c" * 64, "complete": False}))
    table = runfolder.stage_table(tmp_path)
    assert list(table.index) == ["curate", "train", "report"]
    assert table.loc["curate", "how"] == "reused from 2026-11-30_default_abc1234"
    assert table.loc["train", "how"] == "resumed from its checkpoints"
    assert table.loc["report", "how"] == "running or interrupted"
    assert table.loc["train", "key"] == "b" * 12


def test_cohort_and_params_never_show_a_path_outside_the_project(tmp_path):
    outside = tmp_path / "home" / "someone" / "study" / "manifest.csv"
    (tmp_path / "cohort.json").write_text(json.dumps({"manifest": str(outside),
                                                      "fingerprint": "f" * 64}))
    cohort = runfolder.cohort_frame(tmp_path)
    assert cohort.loc["cohort", "cohort"] == "study/manifest.csv"
    assert cohort.loc["fingerprint (SHA-256)", "cohort"] == "f" * 64
    shown = runfolder.params_frame({"cohort_manifest": str(outside), "epochs": 3})
    assert shown.loc["cohort_manifest", "value"] == "study/manifest.csv"
    inside = PROJECT_ROOT / "data" / "synthetic" / "manifest.csv"
    assert runfolder.params_frame({"cohort_manifest": str(inside)}).loc[
        "cohort_manifest", "value"] == "data/synthetic/manifest.csv"
    assert str(tmp_path) not in cohort.to_string() + shown.to_string()


def test_skipped_patients_are_listed_with_their_problems(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"skipped_patients": [
        {"patient_id": "P7", "problems": ["tumor_side: manifest says right, tumour left",
                                          "t2: file not found"]}]}))
    frame = runfolder.skipped_patients_frame(tmp_path)
    assert list(frame["patient"]) == ["P7", "P7"] and "tumor_side" in frame["problem"][0]
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"skipped_patients": []}))
    assert runfolder.skipped_patients_frame(tmp_path).empty
