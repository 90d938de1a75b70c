"""Cross-validation over all patients (run/cv.py) end to end on the smoke profile, with the
members run by submitit's local executor (the SLURM code path without a cluster)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from parotidlib.evaluation.cv import read_cv_predictions
from parotidlib.run import batch as B
from parotidlib.run.cv import run_cv

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
