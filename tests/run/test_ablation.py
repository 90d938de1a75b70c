"""The channel ablation as a papermill batch: a two-composition smoke batch end to end."""

import json
from pathlib import Path

import pytest

from parotidlib.config import AblationConfig, composition_channels
from parotidlib.evaluation.stats import wilson_interval
from parotidlib.report import ablation as A
from parotidlib.run.ablation import member_name, run_ablation

ROOT = Path(__file__).resolve().parents[2]


def test_compositions_are_checked():
    assert composition_channels("t1+ce_t1+t2+gland") == ("t1", "ce_t1", "t2", "gland")
    with pytest.raises(ValueError, match="order"):
        composition_channels("t2+t1")
    with pytest.raises(ValueError, match="unknown"):
        composition_channels("t1+flair")
    with pytest.raises(ValueError, match="seeds"):
        AblationConfig(seeds=())
    assert member_name("t1+t2", 3) == "t1+t2__seed3"


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
    assert "Table 3" in text and "McNemar" in text and "data:image/png;base64" in text
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
    paired = A.paired_comparisons(run_dir, members)
    assert len(paired) == 1 and 0.0 <= paired.loc[0, "McNemar exact p"] <= 1.0


def test_resumed_batch_skips_finished_members(batch, monkeypatch):
    monkeypatch.setenv("PAROTIDLIB_DATA_DIR", str(batch["base"] / "data"))
    run_ablation(batch["params"], name="abl", reports_dir=batch["base"] / "reports")
    members = json.loads((batch["run_dir"] / "ablation" / "members.json").read_text())
    assert all(m["skipped"] == ["train", "evaluate", "statistics"] for m in members)
