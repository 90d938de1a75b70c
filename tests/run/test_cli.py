"""The command line: synth writes a cohort; errors exit non-zero with one line."""

from pathlib import Path

import pandas as pd
import pytest

from parotidlib.run.cli import DEFAULT_PARAMS, build_parser, main


def test_synth_writes_a_readable_cohort(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", "--out", str(out), "--patients", "3", "--seed", "1", "--jobs", "1"]) == 0
    assert str(out / "manifest.csv") in capsys.readouterr().out
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 3 and set(manifest["histology"]) == {
        "pleomorphic_adenoma", "warthin", "malignant"}


def test_synth_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("not a cohort")
    assert main(["synth", "--out", str(tmp_path), "--patients", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert (tmp_path / "mine.txt").read_text() == "not a cohort"


def test_bad_params_file_exits_2(tmp_path, capsys):
    assert main(["run", "--params", str(tmp_path / "missing.yaml")]) == 2
    assert "params file not found" in capsys.readouterr().err


def test_synth_as_dicom_and_import_dicom_from_the_command_line(tmp_path, capsys):
    export, cohort = tmp_path / "D", tmp_path / "C"
    assert main(["synth", "--format", "dicom", "--out", str(export), "--patients", "3",
                 "--seed", "2", "--jobs", "1", "--contours-on", "t1"]) == 0
    assert (export / "clinical.csv").is_file()
    assert main(["import-dicom", str(export), "--out", str(cohort), "--clinical",
                 str(export / "clinical.csv")]) == 0
    out = capsys.readouterr().out
    assert "imported 3 patient(s)" in out and "import report" in out
    assert (cohort / "manifest.csv").is_file() and (tmp_path / "C.key").is_file()
    assert main(["import-dicom", str(export), "--out", str(export / "inside"), "--clinical",
                 str(export / "clinical.csv")]) == 1  # never written into the export
    assert "inside the DICOM export" in capsys.readouterr().err


def test_synth_writes_a_shifted_cohort(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "external"
    assert main(["synth", "--out", str(out), "--patients", "5", "--seed", "1", "--jobs", "1",
                 "--external-shift"]) == 0
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert set(manifest["scanner"]) == {"Siemens Skyra 3T"}
    assert "shifted" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path / "x"), "--patients", "5",
                 "--histologies", "warthin"]) == 1
    assert "NAME=WEIGHT" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["run"], ["ablation"], ["batch"], ["cv"], ["external"],
                                     ["predict", "--model", "m", "--cohort", "c"]])
def test_commands_writing_run_folders_share_their_folder_options(command, tmp_path):
    """--params, --force and --reports-dir (and --name but for external) come from one parent
    parser, with the same defaults everywhere (predict's params default to none given)."""
    parser = build_parser()
    args = parser.parse_args(command)
    assert args.params == (None if command[0] == "predict" else DEFAULT_PARAMS)
    assert (args.force, args.reports_dir, getattr(args, "name", None)) == (False, None, None)
    given = parser.parse_args([*command, "--params", "p.yaml", "--force", "--reports-dir",
                               str(tmp_path)])
    assert (given.params, given.force, given.reports_dir) == (Path("p.yaml"), True, tmp_path)
    assert hasattr(args, "name") == (command[0] != "external")
