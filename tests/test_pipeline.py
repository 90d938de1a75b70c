"""Stage caching, failure handling and run naming of the papermill pipeline (dummy notebooks)."""

import json

import nbformat
import pytest

from parotidlib import pipeline
from parotidlib.pipeline import Stage, StageError, run_study


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
    stages = (Stage("a", "a.ipynb", "a.txt"), Stage("b", "b.ipynb", "b.txt"))
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
    monkeypatch.setattr(pipeline, "git_commit", lambda short=True: "abc1234")
    name = pipeline.default_run_name(tmp_path / "default.yaml")
    assert name.endswith("_default_abc1234") and name[:4].isdigit()


def test_stage_keys_depend_only_on_the_params_of_that_stage():
    from parotidlib import params as P
    from parotidlib.pipeline import STAGES, stage_key

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
    stages = (Stage("a", "a.ipynb", "a.txt", stale=("model",)),)
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
