"""The TRIPOD+AI checklist of a run folder (report/checklist.py): the statement's items in
order, answers read from the run, the synthetic label, no personal data, missing files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from parotidlib import params as P
from parotidlib.config import CurationConfig
from parotidlib.constants import CLASSES, HISTOLOGIES
from parotidlib.evaluation.external import compute_external_metrics
from parotidlib.evaluation.results import compute_metrics
from parotidlib.evaluation.schema import to_jsonable
from parotidlib.io import sha256_file
from parotidlib.learn.train import TRAINING_RECORD, training_method
from parotidlib.report import checklist as C
from parotidlib.report.checklist_facts import _commit_from_name

# Tiny splits: bootstrap resamples and splits lacking a class, and perfectly separated
# calibration fits, which the statistics warn about.
pytestmark = [pytest.mark.filterwarnings("ignore:bootstrap_micro_auc_ci"),
              pytest.mark.filterwarnings("ignore:roc_curves"),
              pytest.mark.filterwarnings("ignore:overflow encountered")]

#: TRIPOD+AI 2024 (Collins et al., BMJ 2024;385:e078378): the 52 item numbers, in order.
NUMBERS = [
    "1", "2", "3a", "3b", "3c", "4", "5a", "5b", "6a", "6b", "6c", "7", "8a", "8b", "8c",
    "9a", "9b", "9c", "10", "11", "12a", "12b", "12c", "12d", "12e", "12f", "12g", "13", "14",
    "15", "16", "17", "18a", "18b", "18c", "18d", "18e", "18f", "19", "20a", "20b", "20c",
    "21", "22", "23a", "23b", "24", "25", "26", "27a", "27b", "27c",
]
#: Items of the statement that apply to development only (D) and evaluation only (E).
D_ONLY = {"9a", "12a", "12b", "12c", "15", "22", "27a", "27b"}
E_ONLY = {"12f", "12g", "20c", "24"}
#: Patient ids of the fixtures: distinctive, so that their absence from a text means something.
SKIPPED_ID = "QXZ9913"


def _slices(ids: list[str], hist: list[str], split: list[str], seed: int,
            scanners: tuple[str, ...] = ("GE Signa HDxt 1.5T", "Siemens Verio 3T"),
            dates: bool = False) -> pd.DataFrame:
    """A slices.csv: 3 lesion and 2 free slices per patient, seeded."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (pid, h, s) in enumerate(zip(ids, hist, split, strict=True)):
        side = "left" if i % 2 else "right"
        clinical = {"histology": h, "tumor_side": side, "scanner": scanners[i % len(scanners)],
                    "age": int(rng.integers(30, 80)), "sex": "MF"[i % 2], "split": s}
        if dates:
            clinical["scan_date"] = f"2016-{(i % 12) + 1:02d}-{(i % 27) + 1:02d}"
        for k in range(5):
            label = h if k < 3 else "free"
            rows.append({"patient_id": pid, "slice_index": k, "z_mm": 3.0 * k, "label": label,
                         "label_index": CLASSES.index(label) if isinstance(label, str) else -1,
                         "side": side if k < 3 else ("right" if side == "left" else "left"),
                         "tumor_area_mm2": float(rng.uniform(30, 400)), **clinical})
    frame = pd.DataFrame(rows)
    order = ["patient_id", "slice_index", "z_mm", "label", "label_index", "side", "histology",
             "tumor_side", "scanner", "age", "sex", "tumor_area_mm2", "split"]
    return frame[order + [c for c in frame.columns if c not in order]]


def _predictions(slices: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Probabilities leaning to the true class (every fourth slice to another class)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, row in enumerate(slices.itertuples()):
        alpha = np.ones(len(CLASSES))
        if isinstance(row.label, str):
            target = CLASSES.index(row.label) if i % 4 else (CLASSES.index(row.label) + 1) % 4
            alpha[target] = 12.0
        p = rng.dirichlet(alpha)
        rows.append({"patient_id": row.patient_id, "slice_index": row.slice_index,
                     "true_label": row.label, "z_mm": row.z_mm, "side": row.side,
                     "histology": row.histology, "split": row.split,
                     **{f"prob_{c}": p[j] for j, c in enumerate(CLASSES)},
                     "predicted_label": CLASSES[int(p.argmax())]})
    return pd.DataFrame(rows)


def _counts(slices: pd.DataFrame, names: tuple[str, ...]) -> dict:
    patients = slices.drop_duplicates("patient_id")
    out = {"slices": {}, "patients": {}}
    for name in (*names, "total"):
        part = slices if name == "total" else slices[slices["split"] == name]
        ppart = patients if name == "total" else patients[patients["split"] == name]
        out["slices"][name] = {c: int((part["label"] == c).sum()) for c in CLASSES}
        out["patients"][name] = {h: int((ppart["histology"] == h).sum()) for h in HISTOLOGIES}
        out["patients"][name]["all"] = len(ppart)
    return out


def _dataset(folder: Path, slices: pd.DataFrame, manifest: Path, external: bool = False,
             skipped: list[dict] | None = None, params: dict | None = None) -> None:
    (folder / "data").mkdir(parents=True)
    slices.to_csv(folder / "data" / "slices.csv", index=False)
    config = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in asdict(CurationConfig.from_params(params or _params())).items()
              if k != "curate_jobs"}
    meta = {"format": "parotidlib.curated/1", **({"external": True} if external else {}),
            "channels": list(config["channels"]), "image_size": config["image_size"],
            "classes": list(CLASSES),
            "n_slices": len(slices), "config": config, "manifest": str(manifest),
            "manifest_sha256": "0" * 64, "cohort_sha256": "1" * 64,
            "counts": _counts(slices, ("external",) if external else ("train", "test")),
            "patients_without_free_slices": [], "patients_without_lesion_slices": [],
            "skipped_patients": skipped or [], "warnings": ["a usable oddity"]}
    (folder / "data" / "dataset.json").write_text(json.dumps(meta, indent=2))
    (folder / "cohort.json").write_text(json.dumps({"manifest": str(manifest),
                                                    "fingerprint": "2" * 64}))


def _params(**over) -> dict:
    return {**P.defaults(), "image_size": 32, "malignant_threshold": 3, "test_fraction": 0.25,
            "split_seed": 7, "bootstrap_resamples": 50, "val_fraction": 0.2, **over}


def _write_bundle(path: Path, slices: pd.DataFrame, predictions: pd.DataFrame) -> None:
    test = predictions[predictions["split"] == "test"]
    torch.save({"format": "parotidlib.model-bundle/1",
                "model": {"conv1.weight": torch.randn(4, 4, 3, 3),
                          "bn1.num_batches_tracked": torch.tensor(3)},
                "model_args": {"in_channels": 4, "num_classes": 4, "widths": [8, 16],
                               "blocks_per_stage": [1, 1]},
                "channels": ["t1", "ce_t1", "t2", "gland"], "malignant_threshold": 3,
                "checkpoint": "best", "epoch": 2, "kit_version": "0.1.0",
                "git_commit": "abc1234", "training_cohort_fingerprint": "2" * 64,
                "training_counts": _counts(slices, ("train", "test")),
                "internal_test": {"run": "dev-run", "synthetic": True,
                                  "predictions": {c: test[c].tolist() for c in test.columns}}},
               path)


@pytest.fixture
def study_run(tmp_path):
    """A study run folder as the pipeline leaves it, small and seeded: 12 patients, 9 train
    and 3 test, a skipped patient, a bundle and the radiomics info."""
    ids = [f"ZQX{i:04d}" for i in range(12)]
    hist = [HISTOLOGIES[i % 3] for i in range(12)]
    split = ["test" if i in (0, 4, 8) else "train" for i in range(12)]
    slices = _slices(ids, hist, split, seed=0)
    run = tmp_path / "reports" / "2026-12-02_default_abc1234"
    manifest = tmp_path / "cohort" / "manifest.csv"
    skipped = [{"patient_id": SKIPPED_ID, "problems": [
        f"patient {SKIPPED_ID}, column t2, file {tmp_path}/cohort/{SKIPPED_ID}/t2.nii.gz: "
        f"not found"]}]
    _dataset(run, slices, manifest, skipped=skipped)
    params = _params()
    predictions = _predictions(slices, seed=1)
    predictions.to_csv(run / "predictions.csv", index=False)
    metrics = compute_metrics(predictions, params, synthetic=True)
    metrics["cnn_vs_radiomics"] = {
        "accuracy": {"value": -0.01, "ci95": [-0.05, 0.03], "p_two_sided": 0.61},
        "micro_auc": {"value": 0.002, "ci95": [-0.01, 0.02], "p_two_sided": 0.8},
        "mcnemar": {"pvalue": 1.0}}
    metrics["radiomics"] = {"slice": {"test": metrics["slice"]["test"]}}
    (run / "metrics.json").write_text(json.dumps(to_jsonable(metrics)))
    (run / "radiomics.json").write_text(json.dumps(
        {"model": "logistic", "params": {"clf__C": 0.1, "select__k": 30}, "cv_score": 0.81,
         "n_features": 176}))
    (run / "model").mkdir()
    pd.DataFrame({"epoch": [1, 2], "val_accuracy": [0.5, 0.6]}).to_csv(
        run / "model" / "history.csv", index=False)
    (run / "model" / TRAINING_RECORD).write_text(json.dumps(training_method()))
    _write_bundle(run / "bundle.pt", slices, predictions)
    return run, params


@pytest.fixture
def predict_run(study_run, tmp_path):
    """A predict run folder applying the study run's bundle to 6 other patients (two of them
    without histology), on one scanner."""
    dev, _ = study_run
    ids = [f"ZQY{i:04d}" for i in range(6)]
    hist = ["warthin", "warthin", "malignant", "pleomorphic_adenoma", None, None]
    slices = _slices(ids, hist, ["external"] * 6, seed=2, scanners=("Siemens Skyra 3T",))
    slices.loc[slices["histology"].isna() & (slices["label"] != "free"), "label"] = None
    run = tmp_path / "reports" / "2026-12-03_predict_other_def5678"
    _dataset(run, slices, tmp_path / "other" / "manifest.csv", external=True)
    predictions = _predictions(slices, seed=3)
    predictions.to_csv(run / "predictions.csv", index=False)
    dev_predictions = pd.read_csv(dev / "predictions.csv", dtype={"patient_id": str})
    results = compute_external_metrics(
        predictions, 3, 50, 0, internal=dev_predictions[dev_predictions["split"] == "test"],
        synthetic=True, model={"bundle": "bundle.pt", "training_run": dev.name,
                               "training_cohort_synthetic": True, "kit_version": "0.1.0",
                               "git_commit": "abc1234", "checkpoint": "best", "epoch": 2,
                               "channels": ["t1", "ce_t1", "t2", "gland"],
                               "malignant_threshold": 3})
    (run / "external.json").write_text(json.dumps(to_jsonable(results)))
    return run, _params(model=str(dev / "bundle.pt")), results


def _by_number(items) -> dict[str, C.ChecklistItem]:
    return {item.number: item for item in items}


def _counted(slices: pd.DataFrame, split: str) -> str:
    """The patients of a split as the checklist must give them, counted here independently."""
    patients = slices[slices["split"] == split].groupby("patient_id")["histology"].first()
    parts = [f"{name} {int((patients == h).sum())}" for h, name in
             (("pleomorphic_adenoma", "pleomorphic adenoma"), ("warthin", "Warthin tumour"),
              ("malignant", "malignant"))]
    return f"{split}: {len(patients)} patients ({', '.join(parts)})"


def test_the_item_table_is_the_statements_numbering_in_order():
    assert list(C.ITEM_NUMBERS) == NUMBERS and len(NUMBERS) == 52
    applies = {item.number: item.applies for item in C.ITEMS}
    assert {n for n, a in applies.items() if a == "D"} == D_ONLY
    assert {n for n, a in applies.items() if a == "E"} == E_ONLY
    assert all(item.topic and item.section for item in C.ITEMS)
    assert len({item.topic for item in C.ITEMS}) == 52
    with pytest.raises(ValueError, match="status"):
        C.ChecklistItem("1", "Title", "t", "D", status="done")


def test_study_checklist_answers_from_the_run(study_run):
    run, params = study_run
    items = C.study_checklist(run, params, synthetic=True)
    assert [item.number for item in items] == NUMBERS
    by = _by_number(items)
    slices = pd.read_csv(run / "data" / "slices.csv", dtype={"patient_id": str})
    metrics = json.loads((run / "metrics.json").read_text())
    # item 21: the patients of each analysis, as counted from slices.csv
    for split in ("train", "test"):
        assert _counted(slices, split) in by["21"].answer
    malignant = slices.drop_duplicates("patient_id").query("histology == 'malignant'")
    assert (f"train {int((malignant['split'] == 'train').sum())}, test "
            f"{int((malignant['split'] == 'test').sum())}") in by["21"].answer
    # ceil(0.2 x 9 training patients) = 2 validation patients
    assert "2 are held out as validation patients" in by["21"].answer
    # item 23a: metrics.json's numbers, labelled synthetic
    acc = metrics["slice"]["test"]["accuracy"]
    assert f"{acc['value']:.3f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}] " \
           f"({acc['successes']}/{acc['total']})" in by["23a"].answer
    assert by["23a"].answer.startswith("Synthetic data.")
    assert "CNN minus radiomics: accuracy -0.010 [-0.050, 0.030]" in by["23a"].answer
    # the params of the run, not the defaults
    assert "test_fraction 0.25" in by["12a"].answer and "split_seed 7" in by["12a"].answer
    assert "`malignant_threshold` = 3" in by["15"].answer
    assert "clf__C 0.1, select__k 30" in by["12c"].answer and "epoch 2" in by["12c"].answer
    assert "without class weights" in by["13"].answer
    # the bundle: its file's SHA-256, and the commit it records
    assert sha256_file(run / "bundle.pt") in by["22"].answer
    assert "git commit abc1234 (recorded in `bundle.pt`" in by["18f"].answer
    # the patient skipped by validation: counted, by column, never named
    assert "1 patient(s) of the manifest were skipped" in by["11"].answer
    assert "`t2` 1" in by["6b"].answer and SKIPPED_ID not in by["6b"].answer
    assert "13 patients in the manifest" in by["5a"].answer
    assert "2 scanner(s) (GE Signa HDxt 1.5T 6 (50.0%), Siemens Verio 3T 6 (50.0%))" \
        in by["5a"].answer
    # what only the authors know, and what does not apply to a development run
    for number in ("1", "17", "18a", "18b", "18c", "18d", "19", "25", "26"):
        assert by[number].status == C.AUTHORS, number
    for number in E_ONLY:
        assert by[number].status == C.NOT_APPLICABLE, number
    assert by["5a"].status == by["23a"].status == by["21"].status == C.FROM_RUN


def test_markdown_names_the_statement_labels_synthetic_and_holds_no_patient_data(study_run,
                                                                               tmp_path):
    run, params = study_run
    items = C.study_checklist(run, params, synthetic=True)
    text = C.checklist_markdown(items, "Checklist")
    assert text.startswith("# Checklist\n") and C.CITATION in text
    assert "**Synthetic data.**" in text
    assert [m for m in re.findall(r"^- \*\*(\w+)\*\*", text, flags=re.M)] == NUMBERS
    slices = pd.read_csv(run / "data" / "slices.csv", dtype={"patient_id": str})
    for pid in [*slices["patient_id"].unique(), SKIPPED_ID]:
        assert pid not in text, pid
    assert str(tmp_path) not in text  # no absolute path (the manifest's, the problem's file)
    assert "`cohort/manifest.csv`" in text
    # a run on a real cohort is not labelled synthetic
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["synthetic"] = False
    (run / "metrics.json").write_text(json.dumps(metrics))
    real = C.checklist_markdown(C.study_checklist(run, params, synthetic=False), "Checklist")
    assert "Synthetic data" not in real and "synthetic cohort" not in real.lower()


def test_params_default_to_the_runs_params_yaml_and_evaluations_are_found(study_run,
                                                                          predict_run):
    run, params = study_run
    (run / "params.yaml").write_text(P.to_yaml({**params, "split_seed": 11}))
    by = _by_number(C.study_checklist(run, synthetic=True))
    assert "split_seed 7" in by["12a"].answer  # the split dataset.json records
    assert "training seed 0" in by["12a"].answer and "batch 32" in by["12c"].answer
    assert f"It exists for this run: `{predict_run[0].name}`" in by["12e"].answer
    (predict_run[0] / "external.json").unlink()
    assert "None was found" in _by_number(C.study_checklist(run, params, True))["12e"].answer


@pytest.mark.parametrize("name, predict, commit", [
    ("2026-12-02_default_abc1234", False, "abc1234"),
    ("2026-12-02_my_profile_abc1234-dirty", False, "abc1234-dirty"),
    ("2026-12-02_default_abc1234_external", False, None),  # make external: the model's commit
    ("2026-12-02_default_abc1234_external", True, None),
    ("2026-12-03_predict_other_def5678", True, "def5678"),
    ("2026-12-03_predict_other_def5678", False, None),
    ("smoke", False, None),
])
def test_the_commit_is_read_only_from_a_default_run_name(name, predict, commit):
    assert _commit_from_name(name, predict) == commit


def test_a_synthetic_metrics_file_labels_the_checklist_even_if_the_caller_does_not(study_run):
    run, params = study_run
    items = C.study_checklist(run, params, synthetic=False)  # metrics.json says synthetic
    assert "**Synthetic data.**" in C.checklist_markdown(items, "Checklist")


def _dated_run(tmp_path, dates: dict[str, list]):
    """A 6-patient run whose slices.csv carries the given per-patient manifest columns."""
    ids = [f"ZQX{i:04d}" for i in range(6)]
    slices = _slices(ids, [HISTOLOGIES[i % 3] for i in range(len(ids))],
                     ["test" if i % 3 == 2 else "train" for i in range(len(ids))], seed=4)
    for column, values in dates.items():
        slices[column] = slices["patient_id"].map(dict(zip(ids, values, strict=True)))
    run = tmp_path / "run"
    _dataset(run, slices, tmp_path / "cohort" / "manifest.csv")
    metrics = compute_metrics(_predictions(slices, 5), _params(), synthetic=False)
    (run / "metrics.json").write_text(json.dumps(to_jsonable(metrics)))
    return run, slices


def test_dates_are_given_as_a_range_of_years_only(tmp_path):
    iso = [f"2016-{m:02d}-1{m}" for m in range(1, 7)]
    compact = [20150304, 20150911, 20160101, 20171231, 20170601, 20160505]  # DICOM-style ints
    run, slices = _dated_run(tmp_path, {"scan_date": iso, "surgery_date": compact,
                                        "validated": ["yes"] * 6})
    by = _by_number(C.study_checklist(run, _params(), synthetic=False))
    assert by["5b"].status == C.FROM_RUN
    answer = by["5b"].answer
    assert "`scan_date` from 2016 to 2016 (6 of 6 patients with a date)" in answer
    assert "`surgery_date` from 2015 to 2017 (6 of 6 patients with a date)" in answer
    assert "validated" not in answer and "1970" not in answer
    assert "2016-01" not in answer and "2015-03" not in answer  # no month, no day
    # without a date column the authors give the dates
    slices.drop(columns=["scan_date", "surgery_date"]).to_csv(run / "data" / "slices.csv",
                                                              index=False)
    assert _by_number(C.study_checklist(run, _params(), False))["5b"].status == C.AUTHORS


def test_few_dated_patients_or_ambiguous_dates_are_not_summarised(tmp_path):
    run, _ = _dated_run(tmp_path, {"scan_date": ["2016-01-05", None, None, None, None, None],
                                   "op_date": ["03/04/2016"] * 6})
    answer = _by_number(C.study_checklist(run, _params(), synthetic=False))["5b"].answer
    assert "2016" not in answer
    assert "`scan_date` has a readable date (ISO 8601 or YYYYMMDD) for 1 patient(s)" in answer
    assert "`op_date` has a readable date (ISO 8601 or YYYYMMDD) for 0 patient(s)" in answer


def test_a_site_column_is_not_a_centre_but_a_hospital_column_is(tmp_path):
    run, slices = _dated_run(tmp_path, {"site": ["deep lobe"] * 6})
    answer = _by_number(C.study_checklist(run, _params(), synthetic=False))["6a"].answer
    assert "deep lobe" not in answer and "no centre column" in answer
    slices["hospital"] = ["north" if i < 15 else "south" for i in range(len(slices))]
    slices.to_csv(run / "data" / "slices.csv", index=False)
    answer = _by_number(C.study_checklist(run, _params(), synthetic=False))["6a"].answer
    assert "2 centre(s) in the manifest column `hospital` (north 3, south 3)" in answer


def test_answers_follow_the_channels_validation_and_radiomics_params(study_run):
    run, params = study_run
    by = _by_number(C.study_checklist(run, params, synthetic=True))
    assert "the paper's composition (Table 3 row g)" in by["9a"].answer
    assert "the epoch with the best" in by["12c"].answer
    by = _by_number(C.study_checklist(
        run, {**params, "channels": ("ce_t1", "t2"), "val_fraction": 0.0, "radiomics": False},
        synthetic=True))
    assert "not the paper's proposed model" in by["9a"].answer
    assert "the paper's composition" not in by["9a"].answer
    assert "without validation patients (val_fraction 0) is the last epoch's" in by["12c"].answer
    assert "the last epoch" in by["12a"].answer
    # radiomics: false wins over a radiomics.json left by an earlier run
    assert (run / "radiomics.json").is_file()
    assert "No radiomics baseline in this run (`radiomics: false`)" in by["12c"].answer


def test_missing_optional_files_are_said_not_raised(study_run):
    run, params = study_run
    for name in ("radiomics.json", "bundle.pt", "model/history.csv"):
        (run / name).unlink()
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["cnn_vs_radiomics"], metrics["radiomics"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    by = _by_number(C.study_checklist(run, params, synthetic=True))
    assert "No `radiomics.json` in this run folder" in by["12c"].answer
    assert "`bundle.pt` is missing" in by["22"].answer
    assert "no `cnn_vs_radiomics` section" in by["12e"].answer
    assert "No radiomics comparison in metrics.json" in by["23a"].answer
    assert "git commit abc1234 (from the run folder's name)" in by["18f"].answer


def test_the_saliency_analysis_is_named_with_its_verdict_when_the_run_has_it(study_run):
    run, params = study_run
    assert "Where the network looks" not in _by_number(
        C.study_checklist(run, params, synthetic=True))["12e"].answer
    (run / "saliency.json").write_text(json.dumps({
        "computed": True, "method_name": "Grad-CAM++", "layer": "stages.layer2",
        "randomisation": {"mean_spearman": 0.8123, "informative": False}}))
    answer = _by_number(C.study_checklist(run, params, synthetic=True))["12e"].answer
    assert "Grad-CAM++ maps of `stages.layer2`" in answer
    assert "mean Spearman correlation 0.81: not informative" in answer
    (run / "saliency.json").write_text(json.dumps({"computed": False}))
    assert "Where the network looks" not in _by_number(
        C.study_checklist(run, params, synthetic=True))["12e"].answer


@pytest.mark.parametrize("name", ["metrics.json", "data/dataset.json", "data/slices.csv"])
def test_a_missing_required_file_is_named(study_run, name):
    run, params = study_run
    (run / name).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        C.study_checklist(run, params, synthetic=True)


def test_evaluation_checklist_on_a_predict_folder(predict_run):
    run, params, results = predict_run
    items = C.evaluation_checklist(run, params, synthetic=True)
    assert [item.number for item in items] == NUMBERS
    by = _by_number(items)
    for number in D_ONLY:
        assert by[number].status == C.NOT_APPLICABLE, number
    assert by["24"].status == C.NOT_APPLICABLE
    assert by["12f"].status == C.FROM_RUN and "No updating" in by["12f"].answer
    # calibration from external.json
    cal = results["external"]["calibration"]["patient"]["malignant_vs_benign"]
    assert f"Brier {cal['brier']:.3f}" in by["23a"].answer
    assert f"ECE {cal['ece']:.3f}" in by["23a"].answer
    acc = results["external"]["slice"]["accuracy"]
    assert f"({acc['successes']}/{acc['total']})" in by["23a"].answer
    assert by["23a"].answer.startswith("Synthetic data.")
    # the bundle applied, and the development cohort beside this one
    assert sha256_file(Path(params["model"])) in by["12g"].answer
    assert "Siemens Skyra 3T 6 (100.0%)" in by["16"].answer
    assert "pleomorphic adenoma 4 (33.3%), Warthin tumour 4 (33.3%), malignant 4 (33.3%) " \
           "of 12 patients" in by["20c"].answer
    assert "2 patient(s), diagnosed and listed but left out" in by["11"].answer
    assert "scored: 4 patients with histology, of whom 1 malignant" in by["21"].answer
    assert "git commit def5678 (from this predict run's folder name)" in by["18f"].answer
    text = C.checklist_markdown(items, "Checklist")
    assert "**Synthetic data.**" in text
    assert not any(f"ZQ{k}" in text for k in ("X0", "Y0"))


def test_evaluation_without_the_development_run_uses_the_bundle_or_says_so(predict_run):
    run, params, results = predict_run
    dev = Path(params["model"]).parent
    (dev / "data" / "slices.csv").unlink()
    by = _by_number(C.evaluation_checklist(run, params, synthetic=True))
    assert "the bundle's counts" in by["20c"].answer and "of 12 patients" in by["20c"].answer
    Path(params["model"]).unlink()
    by = _by_number(C.evaluation_checklist(run, params, synthetic=True))
    assert "internal test patients" in by["20c"].answer
    assert "unknown: the file is not here any more" in by["12g"].answer


def test_an_unvalidated_predict_folder_reports_no_performance(predict_run):
    run, params, results = predict_run
    unlabelled = {k: v for k, v in results.items() if k not in ("external", "internal",
                                                                "difference")}
    unlabelled["validated"] = False
    (run / "external.json").write_text(json.dumps(unlabelled))
    by = _by_number(C.evaluation_checklist(run, params, synthetic=True))
    assert "Unvalidated" in by["23a"].answer
    (run / "external.json").unlink()
    with pytest.raises(FileNotFoundError, match="external.json"):
        C.evaluation_checklist(run, params, synthetic=True)


def test_write_checklist_and_frame(study_run):
    run, params = study_run
    items = C.study_checklist(run, params, synthetic=True)
    path = C.write_checklist(run, items)
    assert path == run / C.CHECKLIST_NAME
    assert path.read_text() == C.checklist_markdown(
        items, f"Reporting checklist (TRIPOD+AI 2024): {run.name}")
    assert not list(run.glob(".checklist.md.*"))  # the atomic write left no temporary file
    frame = C.checklist_frame(items)
    assert list(frame.index) == NUMBERS
    assert list(frame.columns) == ["section", "topic", "applies", "status", "answer"]
    assert frame.loc["17", "status"] == C.AUTHORS


def test_the_module_loads_without_torch_or_scikit_learn():
    code = ("import sys, parotidlib.report.checklist; "
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ages_are_summarised_by_quartiles_not_by_single_patients_extremes(study_run):
    run, params = study_run
    slices = pd.read_csv(run / "data" / "slices.csv", dtype={"patient_id": str})
    ages = slices.groupby("patient_id")["age"].first()
    answer = _by_number(C.study_checklist(run, params, synthetic=True))["20b"].answer
    assert (f"all: {len(ages)} patients, age mean {ages.mean():.1f} (interquartile range "
            f"{ages.quantile(0.25):.1f}-{ages.quantile(0.75):.1f}) years") in answer
    assert f"-{ages.max():.0f})" not in answer and f"range {ages.min():.0f}-" not in answer


def test_the_loss_and_sampling_are_read_from_the_training_record(study_run):
    """Items 12c and 13 describe the loss and sampling that training recorded
    (model/training.json), and say so when a run has no record."""
    run, params = study_run
    by = _by_number(C.study_checklist(run, params, synthetic=True))
    assert "Training (`learn.train`): cross-entropy, optimiser adam" in by["12c"].answer
    assert by["13"].answer.startswith(
        "No class-imbalance method in the CNN's training (`learn.train`): an unweighted "
        "cross-entropy over a uniform random permutation of the training slices each epoch")
    record = run / "model" / TRAINING_RECORD
    record.write_text(json.dumps({**training_method(), "class_weights": [1.0, 2.0, 2.0, 3.0],
                                  "label_smoothing": 0.1}))
    answer = _by_number(C.study_checklist(run, params, synthetic=True))["13"].answer
    assert "cross-entropy with class weights [1.0, 2.0, 2.0, 3.0] and label smoothing 0.1" \
        in answer and "No class-imbalance method" not in answer
    record.unlink()  # a run trained before training wrote the record
    by = _by_number(C.study_checklist(run, params, synthetic=True))
    assert "loss not recorded (no `model/training.json`)" in by["12c"].answer
    assert "are not recorded in this run folder" in by["13"].answer
    assert "unweighted" not in by["13"].answer and by["13"].status == C.FROM_RUN


def test_the_synthetic_flag_travels_with_the_checklist_not_its_wording(study_run):
    """The header's synthetic label follows the run's flag, never the text of the answers."""
    run, params = study_run
    synthetic = C.study_checklist(run, params, synthetic=True)
    assert synthetic.synthetic and len(synthetic) == 52
    assert "**Synthetic data.**" not in C.checklist_markdown(list(synthetic), "Checklist")
    assert "**Synthetic data.**" in C.checklist_markdown(list(synthetic), "Checklist",
                                                         synthetic=True)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["synthetic"] = False
    (run / "metrics.json").write_text(json.dumps(metrics))
    real = C.study_checklist(run, params, synthetic=False)
    assert not real.synthetic
    worded = [C.ChecklistItem("1", "Title", "t", "D;E", "Synthetic data: quoted by a user")]
    assert "**Synthetic data.**" not in C.checklist_markdown(worded, "Checklist")


def test_the_data_file_answers_an_item_of_the_other_kind_only_as_not_applicable():
    """checklist.yaml: an answer for an item outside its report kind (the study's 24) can
    only say why it does not apply; every status is one of the three."""
    applies = {item.number: set(item.applies.split(";")) for item in C.ITEMS}
    for kind, answers in C.DATA["answers"].items():
        for number, entry in answers.items():
            choices = entry if isinstance(entry, list) else [entry]
            assert {c["status"] for c in choices} <= {"run", "authors", "na"}
            if not ({"D", "E"} if kind == "both" else {kind}) <= applies[number]:
                assert {c["status"] for c in choices} == {"na"}, (kind, number)
