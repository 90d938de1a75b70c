"""The channel ablation as a papermill batch: a two-composition smoke batch end to end."""

import json
from pathlib import Path

import pytest

from parotidlib.config import (
    COMPOSITIONS,
    AblationConfig,
    composition_channels,
    default_compositions,
)
from parotidlib.evaluation.paired import MCNEMAR_COLUMN
from parotidlib.evaluation.stats import wilson_interval
from parotidlib.params import load_params
from parotidlib.report import ablation as A
from parotidlib.run.ablation import run_ablation, study_compositions
from parotidlib.run.batch import member_name

ROOT = Path(__file__).resolve().parents[2]


def test_compositions_are_checked():
    assert composition_channels("t1+ce_t1+t2+gland") == ("t1", "ce_t1", "t2", "gland")
    with pytest.raises(ValueError, match="order"):
        composition_channels("t2+t1")
    with pytest.raises(ValueError, match="unknown"):
        composition_channels("t1+flair")
    with pytest.raises(ValueError, match="seeds"):
        AblationConfig(seeds=())
    assert member_name({"channels": ["t1", "t2"], "seed": 3}) == "t1+t2__seed3"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("ablation")
    params = base / "ablation.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text().replace("epochs: 2", "epochs: 1")
                      + "\ncompositions: [t1, t1+ce_t1+t2+gland]\nseeds: [0]\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("PAROTIDLIB_DATA_DIR", str(base / "data"))
    try:
        html = run_ablation(params, name="abl", reports_dir=base / "reports")
        yield dict(html=html, params=params, base=base, run_dir=html.parent)
    finally:
        mp.undo()


def test_batch_builds_the_table_beside_the_paper(batch):
    text = batch["html"].read_text()
    for part in ("Table 3", "McNemar", "paired bootstrap", "data:image/png;base64"):
        assert part in text, part
    run_dir = batch["run_dir"]
    # curated once, with every channel; members link to it
    assert json.loads((run_dir / "data" / "dataset.json").read_text())["channels"] == [
        "t1", "ce_t1", "t2", "gland"]
    member = run_dir / "ablation" / "t1__seed0"
    assert (member / "data").is_symlink() and (member / "metrics.json").exists()
    assert (run_dir / "figures" / "table3_ablation.png").exists()


def test_table_rows_and_intervals_match_the_members_metrics(batch):
    run_dir = batch["run_dir"]
    members = A.read_members(run_dir)
    summary = A.summary_table(members)
    assert list(summary["composition"]) == ["t1", "t1 + ce_t1 + t2 + gland"]
    assert list(summary["paper accuracy"]) == [0.706, 0.822]
    for _, row in summary.iterrows():
        name = row["composition"].replace(" + ", "+")
        m = json.loads((run_dir / "ablation" / f"{name}__seed0" / "metrics.json").read_text())
        acc = m["slice"]["test"]["accuracy"]
        assert row["accuracy (mean)"] == pytest.approx(acc["value"])
        lo, hi = wilson_interval(acc["successes"], acc["total"])
        assert row["95% CI"] == f"[{lo:.3f}, {hi:.3f}]"
    paired = A.paired_comparisons(run_dir, members, resamples=200)
    assert len(paired) == 1 and 0.0 <= paired.loc[0, MCNEMAR_COLUMN] <= 1.0
    row = paired.iloc[0]
    assert row["composition"] == "t1" and row["seed"] == 0
    assert row["difference"] == pytest.approx(row["accuracy"] - row["reference accuracy"])


def test_resumed_batch_skips_finished_members(batch, monkeypatch):
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(batch["base"] / "data"))
    run_ablation(batch["params"], name="abl", reports_dir=batch["base"] / "reports")
    members = json.loads((batch["run_dir"] / "ablation" / "members.json").read_text())
    assert all(m["skipped"] == ["train", "evaluate", "statistics"] for m in members)


def test_cross_validated_ablation_rests_on_every_patient(batch, tmp_path, monkeypatch):
    """``ablation --folds 2``: each composition over both folds, run two at a time; Table 3
    from the pooled out-of-fold slices of all 12 patients."""
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(batch["base"] / "data"))
    html = run_ablation(batch["params"], name="abl-cv", jobs=2, folds=2,
                        reports_dir=tmp_path / "reports")
    run_dir = html.parent
    members = A.read_members(run_dir)
    assert A.cross_validated(run_dir) and len(members) == 2
    assert set(members["patients"]) == {12}
    slices = json.loads((run_dir / "data" / "dataset.json").read_text())["n_slices"]
    assert set(members["total"]) == {slices}  # every slice once, out of fold
    for name in ("t1__fold0__seed0", "t1__fold1__seed0"):
        assert (run_dir / "ablation" / name / "metrics.json").exists()
    paired = A.paired_comparisons(run_dir, members, resamples=100)
    assert paired.loc[0, "slices"] == slices and paired.loc[0, "patients"] == 12
    assert "Cross-validated" in html.read_text()


def test_compositions_follow_the_studys_series(tmp_path, monkeypatch):
    series = ("t1", "t2", "adc")
    assert composition_channels("t2+adc+gland", series) == ("t2", "adc", "gland")
    with pytest.raises(ValueError, match="unknown"):
        composition_channels("ce_t1", series)
    assert default_compositions() == COMPOSITIONS
    assert default_compositions(series) == ("t1", "t2", "adc", "t1+t2+adc", "t1+t2+adc+gland")
    assert default_compositions(("t1",)) == ("t1", "t1+gland")
    AblationConfig(compositions=("adc", "t1+adc+gland"))  # checked against series at the run
    for wrong in ("gland+t1", "T1", "t1+t1", ""):
        with pytest.raises(ValueError, match="compositions entry"):
            AblationConfig(compositions=(wrong,))
    study = "series: [t1, t2, adc]\nchannels: [t1, t2, adc, gland]\n"
    (tmp_path / "default.yaml").write_text(study)
    params = load_params(tmp_path / "default.yaml")
    assert study_compositions(tmp_path / "default.yaml", params) == default_compositions(series)
    (tmp_path / "given.yaml").write_text(study + "compositions: [adc, t2+adc]\n")
    assert study_compositions(tmp_path / "given.yaml", load_params(tmp_path / "given.yaml")) == (
        "adc", "t2+adc")
    (tmp_path / "paper.yaml").write_text(study + "compositions: [t1+ce_t1]\n")
    with pytest.raises(ValueError, match=r"unknown channel\(s\) \['ce_t1'\]"):
        study_compositions(tmp_path / "paper.yaml", load_params(tmp_path / "paper.yaml"))


def test_a_channel_grid_curates_the_studys_series(tmp_path, monkeypatch):
    import parotidlib.run.pipeline as pipeline
    from parotidlib.run.batch import run_batch

    curated = []

    def stop(*args, overrides=None, **kwargs):
        curated.append(overrides)
        raise RuntimeError("stop after the curation's overrides")

    monkeypatch.setattr(pipeline, "run_study", stop)
    (tmp_path / "p.yaml").write_text("series: [t1, t2, adc]\nchannels: [t1, t2, adc, gland]\n")
    with pytest.raises(RuntimeError, match="stop"):
        run_batch(tmp_path / "p.yaml", {"channels": [["adc"], ["t1", "gland"]]}, name="b",
                  reports_dir=tmp_path / "reports")
    assert curated == [{"channels": ["t1", "t2", "adc", "gland"]}]
