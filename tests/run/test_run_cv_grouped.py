"""Leave-one-group-out cross-validation (run/cv.py ``group_by``; ``cv --group-by scanner``):
the refusals before anything runs, and one smoke-profile run end to end."""

import json
from pathlib import Path

import pandas as pd
import pytest

from parotidlib.evaluation.cv import read_cv_predictions
from parotidlib.params import valid_keys
from parotidlib.run import cv as CV
from parotidlib.run.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCANNERS = ("GE Signa HDxt 1.5T", "Siemens Skyra 3T", "Siemens Verio 3T")


def _params(tmp_path: Path, manifest: pd.DataFrame) -> Path:
    """A smoke profile reading ``manifest`` (written beside it; the image files are not
    needed before the batch starts)."""
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    params = tmp_path / "loso.yaml"
    params.write_text((ROOT / "params" / "smoke.yaml").read_text().replace(
        'cohort_manifest: ""', f'cohort_manifest: "{tmp_path / "manifest.csv"}"'))
    return params


def _manifest(per_scanner: tuple[int, int, int] = (2, 2, 2)) -> pd.DataFrame:
    hist = [h for h, n in zip(("pleomorphic_adenoma", "warthin", "malignant"), per_scanner,
                              strict=True) for _ in range(n)]
    rows = [{"patient_id": f"P{len(SCANNERS) * i + s:02d}", "histology": h, "scanner": name}
            for s, name in enumerate(SCANNERS) for i, h in enumerate(hist)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("edit, kwargs, match", [
    (None, {"group_by": "site"}, r"no such column; the columns are \['patient_id', "
                                 r"'histology', 'scanner'\]"),
    (None, {"group_by": "scanner", "folds": 5},
     r"--folds 5 does not match the 3 values of 'scanner'"),
    ("no_warthin", {"group_by": "scanner"},
     r"group 'Siemens Verio 3T' has no warthin patient \(pleomorphic_adenoma 2, warthin 0, "
     r"malignant 4\)"),
    ("missing", {"group_by": "scanner"}, r"1 patient\(s\) have no value in it \(e\.g\. P00\)"),
    (None, {"group_by": "scanner", "min_group_patients": 7},
     r"group 'GE Signa HDxt 1.5T' has 6 patient\(s\)"),
])
def test_a_grouping_that_cannot_be_validated_is_refused_before_anything_runs(
        tmp_path, edit, kwargs, match):
    manifest = _manifest()
    if edit == "no_warthin":
        manifest.loc[(manifest["scanner"] == SCANNERS[2])
                     & (manifest["histology"] == "warthin"), "histology"] = "malignant"
    elif edit == "missing":
        manifest.loc[manifest["patient_id"] == "P00", "scanner"] = ""
    with pytest.raises(ValueError, match=match):
        CV.run_cv(_params(tmp_path, manifest), reports_dir=tmp_path / "reports", **kwargs)
    assert not (tmp_path / "reports").exists()  # no batch folder, nothing curated


def test_grouped_folds_and_the_check_of_the_pooled_folds(tmp_path):
    params = _params(tmp_path, _manifest())
    table, groups = CV.grouped_folds(params, "scanner")
    assert table["group"].tolist() == list(SCANNERS) and table["patients"].tolist() == [6] * 3
    pooled = pd.DataFrame({"patient_id": groups.index, "seed": 0,
                           "fold": groups.map({g: f for f, g in enumerate(SCANNERS)})})
    CV.check_grouped_folds(pooled, table, groups)
    pooled.loc[0, "fold"] = 2  # a patient of GE held out with Verio
    with pytest.raises(ValueError, match=r"fold 2 \('Siemens Verio 3T'\) held out 1 "
                                         r"patient\(s\) of another group"):
        CV.check_grouped_folds(pooled, table, groups)


def test_the_cli_passes_the_column_and_leaves_folds_to_the_groups():
    args = build_parser().parse_args(["cv", "--group-by", "scanner"])
    assert args.group_by == "scanner" and args.folds is None
    assert build_parser().parse_args(["cv"]).group_by is None


@pytest.fixture(scope="module")
def loso(tmp_path_factory):
    base = tmp_path_factory.mktemp("loso")
    params = base / "loso.yaml"
    # 28 patients, seed 2: every scanner has every histology (20 GE, 4 Skyra, 4 Verio)
    params.write_text((ROOT / "params" / "smoke.yaml").read_text()
                      .replace("epochs: 2", "epochs: 1")
                      .replace("synth_patients: 12", "synth_patients: 28")
                      .replace("synth_seed: 0", "synth_seed: 2"))
    mp = pytest.MonkeyPatch()
    mp.setenv("PAROTIDLIB_DATA_DIR", str(base / "data"))
    try:
        html = CV.run_cv(params, seeds=[0], group_by="scanner", min_group_patients=4,
                         executor="submitit-local", reports_dir=base / "reports")
        yield {"html": html, "run_dir": html.parent}
    finally:
        mp.undo()


@pytest.mark.skipif(CV.GROUP_KEY not in valid_keys(),
                    reason=f"needs the curation params key {CV.GROUP_KEY} (config.py)")
def test_every_patient_is_held_out_once_with_its_own_scanner(loso):
    run_dir = loso["run_dir"]
    assert run_dir.name == "loso_by-scanner"
    slices = pd.read_csv(run_dir / "data" / "slices.csv", dtype={"patient_id": str})
    scanner = slices.drop_duplicates("patient_id").set_index("patient_id")["scanner"]
    assert sorted(scanner.unique()) == list(SCANNERS)
    pooled = read_cv_predictions(run_dir / "cv_predictions.csv")
    assert len(pooled) == len(slices) and pooled["patient_id"].nunique() == 28
    assert not pooled.duplicated(["patient_id", "slice_index", "side"]).any()
    for fold, name in enumerate(SCANNERS):  # fold f holds out the f-th scanner, all of it
        held_out = set(pooled.loc[pooled["fold"] == fold, "patient_id"])
        assert held_out == set(scanner.index[scanner == name])
        member = pd.read_csv(run_dir / "folds" / f"fold{fold}__seed0" / "data" / "slices.csv",
                             dtype={"patient_id": str})
        assert set(member.loc[member["split"] == "test", "patient_id"]) == held_out
        assert set(member.loc[member["split"] == "train", "scanner"]) == set(SCANNERS) - {name}

    metrics = json.loads((run_dir / "cv_metrics.json").read_text())
    assert metrics["folds"] == 3 and metrics["grouping"]["column"] == "scanner"
    rows = metrics["per_group"]
    assert [r["group"] for r in rows] == list(SCANNERS)
    assert [r["patients"] for r in rows] == [int((scanner == s).sum()) for s in SCANNERS]
    for r in rows:
        part = pooled[pooled["fold"] == r["fold"]]
        assert r["slice"]["accuracy"]["successes"] == int(
            (part["true_label"] == part["predicted_label"]).sum())
    text = loso["html"].read_text()
    for part in ("Leave-one-scanner-out (internal-external validation)",
                 "Siemens Skyra 3T (fold 1)", "pooled (all groups)", "Synthetic cohort"):
        assert part in text, part
