"""Cross-validation over all patients (run/cv.py) end to end on the smoke profile, with the
members run by submitit's local executor (the SLURM code path without a cluster)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from parotidlib.constants import CLASSES
from parotidlib.evaluation.cv import read_cv_predictions
from parotidlib.report.cv_report import RADIOMICS_SECTION
from parotidlib.run import batch as B
from parotidlib.run import cv as CV
from parotidlib.run.cv import pool_predictions, run_cv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    base = tmp_path_factory.mktemp("cv")
    params = base / "cv.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text().replace("epochs: 2",
                                                                           "epochs: 1"))
    mp = pytest.MonkeyPatch()
    mp.setenv("PAROTIDLIB_DATA_DIR", str(base / "data"))
    try:
        html = run_cv(params, folds=3, seeds=[0], name="cv", executor="submitit-local",
                      reports_dir=base / "reports")
        yield dict(html=html, params=params, base=base, run_dir=html.parent)
    finally:
        mp.undo()


def test_every_patient_is_out_of_fold_exactly_once(cv):
    run_dir = cv["run_dir"]
    pooled = read_cv_predictions(run_dir / "cv_predictions.csv")
    slices = pd.read_csv(run_dir / "data" / "slices.csv", dtype={"patient_id": str})
    assert len(pooled) == len(slices)  # every slice once (seed 0)
    assert not pooled.duplicated(["patient_id", "slice_index", "side"]).any()
    assert (pooled.groupby("patient_id")["fold"].nunique() == 1).all()
    assert sorted(pooled["fold"].unique()) == [0, 1, 2]
    for fold in range(3):  # each member's test patients are its fold, trained without them
        member = run_dir / "folds" / f"fold{fold}__seed0"
        member_slices = pd.read_csv(member / "data" / "slices.csv", dtype={"patient_id": str})
        test = set(member_slices.loc[member_slices["split"] == "test", "patient_id"])
        assert test == set(pooled.loc[pooled["fold"] == fold, "patient_id"])
        assert (member / "data" / "images.npy").resolve() == (run_dir / "data" / "images.npy"
                                                                ).resolve()


def test_pooled_metrics_equal_those_recomputed_from_the_pooled_table(cv):
    run_dir = cv["run_dir"]
    pooled = read_cv_predictions(run_dir / "cv_predictions.csv")
    metrics = json.loads((run_dir / "cv_metrics.json").read_text())
    acc = metrics["per_seed"]["0"]["slice"]["accuracy"]
    assert acc["successes"] == int((pooled["true_label"] == pooled["predicted_label"]).sum())
    assert acc["total"] == len(pooled) and metrics["synthetic"] is True
    assert len(metrics["per_fold"]) == 3 and metrics["n_patients"] == 12
    text = cv["html"].read_text()
    for section in ("Cross-validation over all patients", "Table 4", "Table 5", "Per fold",
                    "paper (21 test patients)", "Synthetic data", "data:image/png;base64"):
        assert section in text, section


def test_radiomics_is_pooled_out_of_fold_and_compared_on_the_same_slices(cv):
    run_dir = cv["run_dir"]
    keys = ["patient_id", "slice_index", "side"]
    cnn = read_cv_predictions(run_dir / "cv_predictions.csv")
    rad = read_cv_predictions(run_dir / "cv_radiomics_predictions.csv")
    assert list(rad.columns) == list(cnn.columns)
    assert not rad.duplicated(["seed", *keys]).any()  # every slice once per seed
    assert rad[keys + ["fold", "seed"]].equals(cnn[keys + ["fold", "seed"]])
    assert rad["patient_id"].nunique() == 12
    for fold in range(3):  # the member's own test rows of its radiomics_predictions.csv
        member = pd.read_csv(run_dir / "folds" / f"fold{fold}__seed0" /
                             "radiomics_predictions.csv", dtype={"patient_id": str})
        test = member[member["split"] == "test"]
        part = rad[rad["fold"] == fold]
        assert len(part) == len(test)
        same = part.merge(test, on=keys, suffixes=("", "_member"), validate="one_to_one")
        assert len(same) == len(test)
        assert same["prob_malignant"].to_numpy() == pytest.approx(
            same["prob_malignant_member"].to_numpy())

    metrics = json.loads((run_dir / "cv_metrics.json").read_text())
    block = metrics["radiomics"]["per_seed"]["0"]
    right_r = rad["true_label"] == rad["predicted_label"]
    assert block["slice"]["accuracy"]["successes"] == int(right_r.sum())
    assert block["slice"]["accuracy"]["total"] == len(rad)
    assert sum(map(sum, block["slice"]["confusion_matrix"])) == len(rad)
    assert metrics["radiomics"]["info"] == {"model": "logistic"}
    cmp = metrics["cnn_vs_radiomics"]["per_seed"]["0"]
    right_c = cnn["true_label"] == cnn["predicted_label"]
    assert cmp["accuracy"]["value"] == pytest.approx(right_c.mean() - right_r.mean())
    assert cmp["accuracy"]["n_patients"] == 12 and cmp["accuracy"]["n_slices"] == len(cnn)
    assert cmp["mcnemar"]["only_cnn_correct"] == int((right_c & ~right_r).sum())
    assert cmp["mcnemar"]["only_radiomics_correct"] == int((~right_c & right_r).sum())

    text = cv["html"].read_text()
    assert RADIOMICS_SECTION in text
    section = text[text.index(RADIOMICS_SECTION):]
    for part in ("radiomics, seed 0 (synthetic cohort)", "Synthetic cohort",
                 "CNN minus radiomics", "McNemar exact p (slices as independent)",
                 "treats them as independent", "Table 4, seed 0: CNN and radiomics"):
        assert part in section, part


def _member(root: Path, name: str, patients: list[str], fold: int) -> dict:
    """A member folder with predictions.csv and radiomics_predictions.csv: 4 patients of 2
    slices each, ``patients`` the member's test split."""
    rows = []
    for pid in ("A", "B", "C", "D"):
        for k in range(2):
            rows.append({"patient_id": pid, "slice_index": k, "z_mm": 3.0 * k,
                         "true_label": "free" if k == 0 else "warthin", "side": "left",
                         "histology": "warthin", "split": "test" if pid in patients
                         else "train", **{f"prob_{c}": 0.25 for c in CLASSES},
                         "predicted_label": "free"})
    (root / "folds" / name).mkdir(parents=True)
    for filename in ("predictions.csv", "radiomics_predictions.csv"):
        pd.DataFrame(rows).to_csv(root / "folds" / name / filename, index=False)
    return {"name": name, "run_dir": name, "overrides": {"fold": fold, "seed": 0}}


def test_radiomics_pooling_names_a_member_without_the_file(tmp_path):
    members = [_member(tmp_path, "fold0__seed0", ["A", "B"], 0),
               _member(tmp_path, "fold1__seed0", ["C", "D"], 1)]
    pooled = pool_predictions(tmp_path, members, filename="radiomics_predictions.csv")
    assert len(pooled) == 8 and pooled.groupby("patient_id")["fold"].nunique().max() == 1
    (tmp_path / "folds" / "fold1__seed0" / "radiomics_predictions.csv").unlink()
    with pytest.raises(FileNotFoundError,
                       match="member fold1__seed0 has no radiomics_predictions.csv"):
        pool_predictions(tmp_path, members, filename="radiomics_predictions.csv")
    with pytest.raises(FileNotFoundError, match="member fold1__seed0"):
        CV._pool_radiomics(ROOT / "params" / "smoke.yaml", 2, tmp_path, members)
    assert len(pool_predictions(tmp_path, members)) == 8  # the CNN's pooling is unaffected


def test_radiomics_off_leaves_no_pooled_file(tmp_path):
    members = [_member(tmp_path, "fold0__seed0", ["A", "B"], 0),
               _member(tmp_path, "fold1__seed0", ["C", "D"], 1)]
    on = tmp_path / "on.yaml"
    on.write_text((ROOT / "params" / "smoke.yaml").read_text())
    CV._pool_radiomics(on, 2, tmp_path, members)
    assert len(read_cv_predictions(tmp_path / CV.CV_RADIOMICS_PREDICTIONS)) == 8
    off = tmp_path / "off.yaml"
    off.write_text(on.read_text() + "radiomics: false\n")
    CV._pool_radiomics(off, 2, tmp_path, members)  # a stale pooled file goes
    assert not (tmp_path / CV.CV_RADIOMICS_PREDICTIONS).exists()


def test_an_interrupted_batch_resumes_without_rerunning_finished_members(cv, monkeypatch):
    """A failed member does not stop the batch: its traceback is logged, the batch raises,
    and the rerun runs that member only."""
    run_dir = cv["run_dir"]
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(cv["base"] / "data"))
    shutil.rmtree(run_dir / "folds" / "fold1__seed0" / ".stages")  # as if killed

    def broken(task):
        raise RuntimeError(f"node lost while running {task['name']}")

    monkeypatch.setattr(B, "_run_member", broken)
    with pytest.raises(B.BatchError, match=r"fold1__seed0 \(see logs/fold1__seed0.err\)"):
        run_cv(cv["params"], folds=3, seeds=[0], name="cv", executor="local",
               reports_dir=cv["base"] / "reports")
    assert "node lost" in (run_dir / "logs" / "fold1__seed0.err").read_text()
    members = json.loads((run_dir / "folds" / "members.json").read_text())
    assert [m["status"] for m in members] == ["done", "failed", "done"]
    monkeypatch.undo()
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(cv["base"] / "data"))
    result = B.run_batch(cv["params"], {"fold": [0, 1, 2], "seed": [0]}, name="cv",
                         members_dir="folds", overrides={"cv_folds": 3},
                         reports_dir=cv["base"] / "reports")
    assert result.skipped == ["fold0__seed0", "fold2__seed0"]
    assert not (run_dir / "logs" / "fold1__seed0.err").exists()
    again = B.run_batch(cv["params"], {"fold": [0, 1, 2], "seed": [0]}, name="cv",
                        members_dir="folds", overrides={"cv_folds": 3},
                        reports_dir=cv["base"] / "reports")
    assert len(again.skipped) == 3  # a finished batch submits nothing
