"""Stage caching (in a run folder, across run folders, resuming), failure handling and run naming
of the papermill pipeline (dummy notebooks)."""

import json
import time

import nbformat
import pytest

from parotidlib.run import provenance
from parotidlib.run.pipeline import StageError, run_study
from parotidlib.run.stages import Stage


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("run_dir = '.'\nepochs = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture
def chain(tmp_path):
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    counter = tmp_path / "counter.txt"
    for name in ("a", "b"):
        _notebook(nbdir / f"{name}.ipynb",
                  "from pathlib import Path\n"
                  f"Path(run_dir, '{name}.txt').write_text(str(epochs))\n"
                  f"with open({str(counter)!r}, 'a') as fh: fh.write('{name}')\n")
    manifest = tmp_path / "cohort" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("patient_id,histology\n")
    params = tmp_path / "p.yaml"
    params.write_text(f"cohort_manifest: {manifest}\nepochs: 2\n")
    stages = (Stage("a", "a.ipynb", "a.txt", ("epochs",)),
              Stage("b", "b.ipynb", "b.txt", ("epochs",)))
    return dict(nbdir=nbdir, params=params, stages=stages, counter=counter, reports=tmp_path / "r")


def _run(chain, **kw):
    return run_study(chain["params"], name="run1", reports_dir=chain["reports"],
                     stages=chain["stages"], notebooks_dir=chain["nbdir"], **kw)


def test_chain_runs_then_skips_unchanged_stages_and_force_reruns(chain):
    result = _run(chain)
    run_dir = result.run_dir
    assert (run_dir / "a.txt").read_text() == "2"  # params reached the notebook
    assert (run_dir / "a.ipynb").exists() and (run_dir / "params.yaml").exists()
    assert set(json.loads((run_dir / "timing.json").read_text())) == {"a", "b"}
    assert chain["counter"].read_text() == "ab"

    again = _run(chain)
    assert again.skipped == ["a", "b"]
    assert chain["counter"].read_text() == "ab"

    _run(chain, force=True)
    assert chain["counter"].read_text() == "abab"


def test_changed_params_or_notebook_rerun_from_that_stage(chain):
    _run(chain)
    nb = chain["nbdir"] / "b.ipynb"
    _notebook(nb, nbformat.read(str(nb), as_version=4).cells[1].source + "\n# edited\n")
    result = _run(chain)
    assert result.skipped == ["a"]
    assert chain["counter"].read_text() == "abb"
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 2", "epochs: 3"))
    result = _run(chain)
    assert result.skipped == []
    assert (result.run_dir / "b.txt").read_text() == "3"


def test_failing_stage_stops_the_run_and_keeps_its_notebook(chain):
    _notebook(chain["nbdir"] / "a.ipynb", "raise RuntimeError('deliberate failure')")
    with pytest.raises(StageError) as err:
        _run(chain)
    assert "'a'" in str(err.value) and "a.ipynb" in str(err.value)
    kept = nbformat.read(str(err.value.notebook), as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in kept.cells for o in c.get("outputs", []))
    assert not (chain["reports"] / "run1" / "b.ipynb").exists()


def test_cli_exit_codes(chain, tmp_path, capsys):
    from parotidlib.__main__ import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    assert main(["run", "--params", str(bad)]) == 2
    assert "unknown params key" in capsys.readouterr().err


def test_default_run_name(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "git_commit", lambda short=True: "abc1234")
    name = provenance.default_run_name(tmp_path / "default.yaml")
    assert name.endswith("_default_abc1234") and name[:4].isdigit()


def test_stage_keys_depend_only_on_the_params_of_that_stage():
    from parotidlib import params as P
    from parotidlib.run.pipeline import stage_key
    from parotidlib.run.stages import STAGES

    train, stats = STAGES[1], STAGES[3]
    base = P.resolve({})
    threshold = P.resolve({"malignant_threshold": 3})
    threads = P.resolve({"num_threads": 2})
    channels = P.resolve({"channels": ["t1", "t2"]})
    assert stage_key(train, base, "up") == stage_key(train, threshold, "up")
    assert stage_key(stats, base, "up") != stage_key(stats, threshold, "up")
    assert stage_key(train, base, "up") == stage_key(train, threads, "up")
    assert stage_key(train, base, "up") != stage_key(train, channels, "up")
    assert stage_key(train, base, "up") != stage_key(train, base, "other upstream")


def test_stale_outputs_are_removed_on_changed_inputs_but_kept_after_a_crash(chain):
    nb = chain["nbdir"] / "a.ipynb"
    _notebook(nb, "from pathlib import Path\n"
                  "out = Path(run_dir, 'model'); out.mkdir(exist_ok=True)\n"
                  "with open(out / 'log.txt', 'a') as fh: fh.write('x')\n"
                  "Path(run_dir, 'a.txt').write_text(str(epochs))\n")
    stages = (Stage("a", "a.ipynb", "a.txt", ("epochs",), stale=("model",)),)
    run = dict(name="run1", reports_dir=chain["reports"], stages=stages,
               notebooks_dir=chain["nbdir"])
    result = run_study(chain["params"], **run)
    log = result.run_dir / "model" / "log.txt"
    assert log.read_text() == "x"
    # changed params: the earlier model is stale and removed before the rerun
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 2", "epochs: 3"))
    run_study(chain["params"], **run)
    assert log.read_text() == "x"
    # a crash leaves a pending stamp with the same key: what the interrupted stage wrote is
    # kept for it to resume
    stamp_path = result.run_dir / ".stages" / "a.json"
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({"key": stamp["key"], "complete": False}))
    run_study(chain["params"], **run)
    assert log.read_text() == "xx"
    # a crash, then changed params: the interrupted stage's outputs are stale
    stamp_path.write_text(json.dumps({"key": stamp["key"], "complete": False}))
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 3", "epochs: 4"))
    run_study(chain["params"], **run)
    assert log.read_text() == "x"


def test_stage_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(StageError("train", "/r/20-train.ipynb", "boom")))
    assert err.stage == "train" and "20-train.ipynb" in str(err) and "boom" in str(err)


def test_a_stage_matching_another_run_folder_is_reused_not_rerun(chain):
    first = _run(chain)
    second = run_study(chain["params"], name="run2", reports_dir=chain["reports"],
                       stages=chain["stages"], notebooks_dir=chain["nbdir"])
    assert chain["counter"].read_text() == "ab"  # nothing executed again
    assert second.reused == {"a": str(first.run_dir), "b": str(first.run_dir)}
    assert (second.run_dir / "b.txt").read_text() == "2"
    assert (second.run_dir / "b.ipynb").exists()
    stamp = json.loads((second.run_dir / ".stages" / "a.json").read_text())
    assert stamp["reused_from"] == str(first.run_dir) and stamp["complete"]
    # a changed notebook b: a is still reused, b runs in the new folder
    nb = chain["nbdir"] / "b.ipynb"
    _notebook(nb, nbformat.read(str(nb), as_version=4).cells[1].source + "\n# edited\n")
    third = run_study(chain["params"], name="run3", reports_dir=chain["reports"],
                      stages=chain["stages"], notebooks_dir=chain["nbdir"])
    assert list(third.reused) == ["a"] and chain["counter"].read_text() == "abb"
    # --force reuses nothing
    forced = run_study(chain["params"], name="run4", reports_dir=chain["reports"],
                       stages=chain["stages"], notebooks_dir=chain["nbdir"], force=True)
    assert forced.reused == {} and chain["counter"].read_text() == "abbab"


# A stage that appends to model/log.txt the way the kit writes files (atomically, never in
# place), so a hard-linked copy in another run folder is never changed.
_APPEND = ("import os\nfrom pathlib import Path\n"
           "out = Path(run_dir, 'model'); out.mkdir(exist_ok=True)\n"
           "log = out / 'log.txt'\n"
           "text = log.read_text() if log.exists() else ''\n"
           "(out / 'log.tmp').write_text(text + 'x')\n"
           "os.replace(out / 'log.tmp', log)\n"
           "Path(run_dir, 'a.txt').write_text(str(epochs))\n")


def _resumable_chain(chain):
    nb = chain["nbdir"] / "a.ipynb"
    _notebook(nb, _APPEND)
    params = nbformat.read(str(nb), as_version=4)
    params.cells[0].source = "run_dir = '.'\nepochs = 1\nseed = 0"
    nbformat.write(params, str(nb))
    chain["params"].write_text(chain["params"].read_text() + "seed: 0\n")
    return (Stage("a", "a.ipynb", "a.txt", ("epochs", "seed"), resumable=("epochs",),
                  stale=("model",), outputs=("model", "a.txt")),)


def test_raising_a_resumable_param_resumes_in_place_and_across_run_folders(chain):
    stages = _resumable_chain(chain)
    run = dict(reports_dir=chain["reports"], stages=stages, notebooks_dir=chain["nbdir"])
    first = run_study(chain["params"], name="run1", **run)
    log = first.run_dir / "model" / "log.txt"
    assert log.read_text() == "x" and first.resumed == []
    # more epochs: the stage reruns on top of what it wrote
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 2", "epochs: 3"))
    again = run_study(chain["params"], name="run1", **run)
    assert again.resumed == ["a"] and log.read_text() == "xx"
    # more epochs in a new run folder: it starts from run1's outputs, run1 keeps its own
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 3", "epochs: 4"))
    other = run_study(chain["params"], name="run2", **run)
    assert other.resumed == ["a"] and other.reused == {}
    assert (other.run_dir / "model" / "log.txt").read_text() == "xxx"
    assert log.read_text() == "xx"
    # a non-resumable param changed: the old outputs are stale and removed
    chain["params"].write_text(chain["params"].read_text().replace("seed: 0", "seed: 1"))
    fresh = run_study(chain["params"], name="run1", **run)
    assert fresh.resumed == [] and log.read_text() == "x"


def test_only_the_stages_keys_reach_its_notebook(chain):
    _notebook(chain["nbdir"] / "a.ipynb",
              "from pathlib import Path\n"
              "Path(run_dir, 'a.txt').write_text(repr(sorted(k for k in globals() "
              "if not k.startswith('_') and k not in ('In', 'Out', 'exit', 'quit', "
              "'get_ipython', 'open', 'Path'))))\n")
    result = _run(chain)
    assert (result.run_dir / "a.txt").read_text() == "['epochs', 'run_dir']"


def test_schedule_change_after_the_trained_epochs_keeps_the_checkpoint():
    from parotidlib.run.pipeline import schedule_agrees

    old = {"lr_decay_start": 12, "lr_decay_every": 2, "lr_decay_factor": 0.8}
    assert schedule_agrees(old, {**old, "lr_decay_start": 20}, epochs_done=10)
    assert not schedule_agrees(old, {**old, "lr_decay_start": 20}, epochs_done=12)
    assert not schedule_agrees(old, {**old, "lr_decay_factor": 0.5}, epochs_done=12)
    assert schedule_agrees(old, {**old, "lr_decay_factor": 0.5}, epochs_done=11)


def test_rerunning_a_complete_run_writes_nothing(chain):
    """So a finished run can be looked up again in a read-only (shared) reports folder."""
    first = _run(chain)
    files = [p for p in first.run_dir.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    time.sleep(0.01)
    again = _run(chain)
    assert again.skipped == ["a", "b"]
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert sorted(p for p in first.run_dir.rglob("*") if p.is_file()) == sorted(files)
