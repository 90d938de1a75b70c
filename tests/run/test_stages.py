"""The stage rows: what each declares, and the pipeline and batches reading it, not names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from parotidlib.config import CurationConfig, RunConfig, TrainConfig, field_names
from parotidlib.run import batch, pipeline
from parotidlib.run.stages import (
    LR_SCHEDULE_KEYS,
    PREDICT_STAGES,
    STAGES,
    Stage,
    batch_stages,
    keys_of,
    stage_named,
)


def test_keys_come_from_config_sections():
    assert set(field_names(RunConfig)) | set(field_names(CurationConfig)) == \
        set(stage_named("curate").keys)
    assert stage_named("train").keys == ("channels", *field_names(TrainConfig))
    assert keys_of("a", "b", "a") == ("a", "b")


def test_what_each_stage_declares():
    assert [s.name for s in STAGES if s.cohort_in_key] == ["curate"]
    assert [s.name for s in PREDICT_STAGES if s.cohort_in_key] == ["curate"]
    train = stage_named("train")
    assert train.can_resume and train.resume_checked == LR_SCHEDULE_KEYS
    assert [s.name for s in STAGES if s.can_resume] == ["train"]
    assert [s.name for s in batch_stages("shared")] == ["curate"]
    assert [s.name for s in batch_stages("member")] == ["train", "evaluate", "statistics"]
    assert batch.MEMBER_STAGES == batch_stages("member")
    assert all(s.about for s in (*STAGES, *PREDICT_STAGES))


def test_a_stage_inserted_before_statistics_does_not_change_what_members_run():
    extra = Stage("calibrate", "35-calibrate.ipynb", "calibration.json", ("checkpoint",),
                  about="calibrated")
    chain = (*STAGES[:3], extra, *STAGES[3:])
    assert [s.name for s in batch_stages("member", chain)] == ["train", "evaluate",
                                                               "statistics"]
    member = dataclasses.replace(extra, batch="member")
    chain = (*STAGES[:3], member, *STAGES[3:])
    assert [s.name for s in batch_stages("member", chain)] == ["train", "evaluate",
                                                               "calibrate", "statistics"]


def test_rows_are_checked():
    with pytest.raises(ValueError, match="batch must be one of"):
        Stage("x", "x.ipynb", "x.json", batch="sometimes")
    with pytest.raises(ValueError, match=r"resumable keys \['epochs'\] are not its keys"):
        Stage("x", "x.ipynb", "x.json", keys=("lr",), resumable=("epochs",))
    with pytest.raises(ValueError, match="role must be one of"):
        batch_stages("all")


def test_cohort_fingerprint_enters_only_the_declared_stage(tmp_path):
    params = {"channels": ["t1"], "checkpoint": "best"}
    stage = Stage("a", "10-curate.ipynb", "a.json", ("channels",))
    with_cohort = dataclasses.replace(stage, cohort_in_key=True)
    one = pipeline.chain_keys(params, (stage,), cohort_fp="fp1")
    two = pipeline.chain_keys(params, (stage,), cohort_fp="fp2")
    assert one == two  # not declared: the fingerprint does not enter
    one = pipeline.chain_keys(params, (with_cohort,), cohort_fp="fp1")
    two = pipeline.chain_keys(params, (with_cohort,), cohort_fp="fp2")
    assert one != two


def test_resume_key_leaves_out_the_declared_keys():
    train = stage_named("train")
    params = {k: v for k, v in pipeline.load_params(
        Path(pipeline.NOTEBOOKS_DIR).parent / "params" / "smoke.yaml").items()}
    base = pipeline.resume_key(train, params, "up")
    for key, value in (("epochs", 99), ("lr_decay_start", 7)):
        assert pipeline.resume_key(train, {**params, key: value}, "up") == base
        assert pipeline.stage_key(train, {**params, key: value}, "up") != \
            pipeline.stage_key(train, params, "up")
    assert pipeline.resume_key(train, {**params, "lr": 0.5}, "up") != base


def test_after_steps_run_and_their_failure_names_the_stage(tmp_path, monkeypatch):
    calls = []

    def step(stage, run_dir):
        calls.append((stage.name, run_dir))

    def failing(stage, run_dir):
        raise pipeline.AfterStageError("exporting x failed: disk full")

    monkeypatch.setattr(pipeline, "execute_stage", lambda *a, **k: None)
    stage = Stage("a", "10-curate.ipynb", "a.json", after=(step,))
    keys = {"a": ("k", None)}
    (tmp_path / ".stages").mkdir()
    pipeline._run_stages(tmp_path, {}, (stage,), keys, False, pipeline.NOTEBOOKS_DIR)
    assert calls == [("a", tmp_path)]
    stage = dataclasses.replace(stage, after=(failing,))
    with pytest.raises(pipeline.StageError, match="stage 'a' failed: exporting x failed"):
        pipeline._run_stages(tmp_path, {}, (stage,), keys, True, pipeline.NOTEBOOKS_DIR)
