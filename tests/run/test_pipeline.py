"""Stage caching (in a run folder, across run folders, resuming), failure handling and run naming
of the papermill pipeline (dummy notebooks)."""

import json
import time
from pathlib import Path

import nbformat
import pytest

from parotidlib.run import provenance
from parotidlib.run.after_stage import export_html
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
    from parotidlib.run.stages import schedule_agrees

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


# --------------------------------------------------------------------------- issue 21
# Run names, run folders the kit did not make, reuse by copy, locks, stamps, keys, messages.


@pytest.mark.parametrize("bad", ["../../escaped/x", "/tmp/x", "a/b", "..", ".", ""])
def test_a_run_name_is_one_folder_name(chain, tmp_path, bad):
    from parotidlib.run.ablation import run_ablation
    from parotidlib.run.batch import run_batch
    from parotidlib.run.cv import run_cv
    from parotidlib.run.predict import run_predict

    reports = tmp_path / "deep" / "er" / "reports"
    with pytest.raises(ValueError, match="is not one folder name") as err:
        run_study(chain["params"], name=bad, reports_dir=reports, stages=chain["stages"],
                  notebooks_dir=chain["nbdir"])
    assert repr(bad) in str(err.value)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()
    for call in (lambda: run_batch(chain["params"], {"epochs": [1]}, name=bad,
                                   reports_dir=reports),
                 lambda: run_cv(chain["params"], folds=2, name=bad, reports_dir=reports),
                 lambda: run_ablation(chain["params"], name=bad, reports_dir=reports),
                 lambda: run_predict(tmp_path / "no-bundle.pt", tmp_path, name=bad,
                                     reports_dir=reports)):
        with pytest.raises(ValueError, match="is not one folder name"):
            call()
    assert not (tmp_path / "deep").exists()


def test_the_cli_refuses_a_run_name_that_is_a_path(tmp_path, capsys):
    from parotidlib.__main__ import main

    for bad in ("/tmp/x", "../../escaped/x"):
        assert main(["run", "--params", "params/smoke.yaml", "--name", bad,
                     "--reports-dir", str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and repr(bad) in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_folder_the_kit_did_not_make_is_never_written_into_or_cleaned(chain):
    nb = chain["nbdir"] / "a.ipynb"
    _notebook(nb, "from pathlib import Path\n"
                  "Path(run_dir, 'model').mkdir(exist_ok=True)\n"
                  "Path(run_dir, 'a.txt').write_text(str(epochs))\n")
    stages = (Stage("a", "a.ipynb", "a.txt", ("epochs",), stale=("model",)),)
    run = dict(reports_dir=chain["reports"], stages=stages, notebooks_dir=chain["nbdir"])
    mine = chain["reports"] / "mine"
    (mine / "model").mkdir(parents=True)
    (mine / "model" / "weights.bin").write_bytes(b"a user's own model")
    (mine / "params.yaml").write_text("mine: true\n")
    with pytest.raises(FileExistsError, match="was not made by this kit") as err:
        run_study(chain["params"], name="mine", **run)  # provenance.ForeignFolderError
    assert str(mine) in str(err.value)
    assert (mine / "model" / "weights.bin").read_bytes() == b"a user's own model"
    assert (mine / "params.yaml").read_text() == "mine: true\n"
    assert sorted(p.name for p in mine.iterdir()) == ["model", "params.yaml"]
    # an empty folder is the kit's to fill; a run folder of an earlier version (stamps, no
    # mark) is still the kit's
    from parotidlib.run.provenance import RUN_MARKER

    (chain["reports"] / "empty").mkdir()
    assert run_study(chain["params"], name="empty", **run).run_dir.joinpath(RUN_MARKER).is_file()
    (chain["reports"] / "empty" / RUN_MARKER).unlink()
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 2", "epochs: 3"))
    assert run_study(chain["params"], name="empty", **run).skipped == []


# Stage a writes a notebook (papermill rewrites it in place on a rerun), a text file in place
# and a checkpoint-like binary by rename, as the kit's writers do.
_WRITES = ("import os\nfrom pathlib import Path\n"
           "Path(run_dir, 'a.txt').write_text(str(epochs))\n"
           "Path(run_dir, 'model').mkdir(exist_ok=True)\n"
           "Path(run_dir, 'model', 'w.pt.tmp').write_bytes(bytes([epochs]) * 64)\n"
           "os.replace(Path(run_dir, 'model', 'w.pt.tmp'), Path(run_dir, 'model', 'w.pt'))\n"
           "print('trained', epochs, 'epochs')\n")


def test_reused_outputs_stay_unchanged_when_their_source_reruns(chain):
    import os

    _notebook(chain["nbdir"] / "a.ipynb", _WRITES)
    stages = (Stage("a", "a.ipynb", "a.txt", ("epochs",), outputs=("a.txt", "model")),)
    run = dict(reports_dir=chain["reports"], stages=stages, notebooks_dir=chain["nbdir"])
    first = run_study(chain["params"], name="run1", **run)
    second = run_study(chain["params"], name="run2", **run)
    assert second.reused == {"a": str(first.run_dir)}
    files = sorted(p.relative_to(second.run_dir) for p in second.run_dir.rglob("*")
                   if p.is_file() and ".stages" not in p.parts)
    before = {rel: (second.run_dir / rel).read_bytes() for rel in files}
    assert "trained 2 epochs" in before[Path("a.ipynb")].decode()
    same = {rel: os.path.samefile(first.run_dir / rel, second.run_dir / rel)
            for rel in (Path("a.ipynb"), Path("a.txt"), Path("model/w.pt"))}
    assert same == {Path("a.ipynb"): False, Path("a.txt"): False, Path("model/w.pt"): True}
    # the source reruns with other params: papermill rewrites its notebook in place
    chain["params"].write_text(chain["params"].read_text().replace("epochs: 2", "epochs: 3"))
    assert run_study(chain["params"], name="run1", **run).skipped == []
    assert "trained 3 epochs" in (first.run_dir / "a.ipynb").read_text()
    assert {rel: (second.run_dir / rel).read_bytes() for rel in files} == before


_WAITS = ("import time\nfrom pathlib import Path\n"
          "go = Path(run_dir).parent.parent / 'go'\n"
          "deadline = time.monotonic() + 120\n"
          "while not go.exists() and time.monotonic() < deadline: time.sleep(0.05)\n"
          "Path(run_dir, 'a.txt').write_text(str(epochs))\n")


def test_a_second_run_on_a_busy_run_folder_stops_at_once_naming_the_first(chain, tmp_path):
    """A real run in another process holds the folder; a second run there fails at once,
    naming its pid; killed with SIGKILL, it leaves no stale lock and the rerun completes."""
    import os
    import signal
    import subprocess
    import sys

    _notebook(chain["nbdir"] / "a.ipynb", _WAITS)
    stages = (Stage("a", "a.ipynb", "a.txt", ("epochs",)),)
    code = ("import sys\nfrom pathlib import Path\n"
            "from parotidlib.run.pipeline import run_study\n"
            "from parotidlib.run.stages import Stage\n"
            "run_study(sys.argv[1], name='run1', reports_dir=sys.argv[2], notebooks_dir="
            "Path(sys.argv[3]), stages=(Stage('a', 'a.ipynb', 'a.txt', ('epochs',)),))\n")
    first = subprocess.Popen([sys.executable, "-c", code, str(chain["params"]),
                              str(chain["reports"]), str(chain["nbdir"])],
                             start_new_session=True)
    run_dir = chain["reports"] / "run1"
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / ".stages" / "a.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (run_dir / ".stages" / "a.json").exists(), "the first run never started"
        start = time.monotonic()
        with pytest.raises(RuntimeError) as err:  # parotidlib.io.FolderLockedError
            run_study(chain["params"], name="run1", reports_dir=chain["reports"],
                      stages=stages, notebooks_dir=chain["nbdir"])
        assert time.monotonic() - start < 10
        assert f"process {first.pid}" in str(err.value) and str(run_dir) in str(err.value)
        assert not (run_dir / "a.txt").exists()  # the second run changed nothing
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    (tmp_path / "go").write_text("")
    result = run_study(chain["params"], name="run1", reports_dir=chain["reports"],
                       stages=stages, notebooks_dir=chain["nbdir"])
    assert result.skipped == [] and (run_dir / "a.txt").read_text() == "2"
    assert not (run_dir / ".parotidlib.lock").exists()


_FAILS_ON_FLAG = ("from pathlib import Path\n"
                  "if (Path(run_dir).parent.parent / 'fail').exists():\n"
                  "    raise RuntimeError('deliberate failure')\n" + _APPEND)


def test_an_unreadable_stamp_is_named_and_its_outputs_kept_aside_until_the_stage_succeeds(
        chain, tmp_path, caplog):
    stages = _resumable_chain(chain)
    _notebook(chain["nbdir"] / "a.ipynb", _FAILS_ON_FLAG)
    params = nbformat.read(str(chain["nbdir"] / "a.ipynb"), as_version=4)
    params.cells[0].source = "run_dir = '.'\nepochs = 1\nseed = 0"
    nbformat.write(params, str(chain["nbdir"] / "a.ipynb"))
    run = dict(name="run1", reports_dir=chain["reports"], stages=stages,
               notebooks_dir=chain["nbdir"])
    run_dir = run_study(chain["params"], **run).run_dir
    assert (run_dir / "model" / "log.txt").read_text() == "x"
    stamp = run_dir / ".stages" / "a.json"
    cut = stamp.read_text()[:40]
    stamp.write_text(cut)  # cut short (a full disk, a crash)
    (tmp_path / "fail").write_text("")
    with caplog.at_level("WARNING", logger="parotidlib.run.pipeline"):
        with pytest.raises(StageError):
            run_study(chain["params"], **run)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert str(stamp) in warning and "not valid JSON" in warning
    aside = list((run_dir / ".stages").glob("aside-a-*"))
    assert len(aside) == 1 and str(aside[0]) in warning
    assert (aside[0] / "model" / "log.txt").read_text() == "x"  # kept, not deleted
    assert (aside[0] / ".stages" / "a.json").read_text() == cut
    (tmp_path / "fail").unlink()
    result = run_study(chain["params"], **run)
    assert result.skipped == [] and (run_dir / "model" / "log.txt").read_text() == "x"
    assert not list((run_dir / ".stages").glob("aside-*"))  # removed once it succeeded


def test_a_stamp_with_wrong_types_is_named_instead_of_a_traceback(chain, caplog):
    first = _run(chain)
    stamp = first.run_dir / ".stages" / "b.json"
    content = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**content, "seconds": "abc"}))
    with caplog.at_level("WARNING", logger="parotidlib.run.pipeline"):
        again = _run(chain)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert str(stamp) in warning and "'seconds' is str" in warning
    assert again.skipped == ["a"] and chain["counter"].read_text() == "abb"
    assert json.loads(stamp.read_text())["complete"] is True
    assert not list((first.run_dir / ".stages").glob("aside-*"))
    from parotidlib.run.pipeline import stamp_problem
    from parotidlib.run.stages import STAGES

    train = STAGES[1]
    assert stamp_problem([], train) == "it holds a JSON list, not an object"
    assert "no 'complete'" in stamp_problem({"key": "k"}, train)
    assert "'complete' is str" in stamp_problem({"key": "k", "complete": "yes"}, train)
    assert "params are invalid" in stamp_problem(
        {"key": "k", "complete": True, "params": {"lr_decay_factor": "x"}}, train)
    assert stamp_problem({"key": "k", "complete": False, "resume_key": None}, train) is None


def test_stage_keys_cover_the_versions_of_the_libraries(monkeypatch):
    from parotidlib import params as P
    from parotidlib.run import provenance
    from parotidlib.run.pipeline import chain_keys
    from parotidlib.run.stages import STAGES

    params = P.resolve({})
    provenance.library_versions.cache_clear()
    real = provenance._version

    def keys(stages, upgraded=None):
        monkeypatch.setattr(provenance, "_version",
                            lambda name: "99.0" if name == upgraded else real(name))
        provenance.library_versions.cache_clear()
        return {k: v[0] for k, v in chain_keys(params, stages, cohort_fp="f" * 64).items()}

    try:
        before = keys(STAGES)
        after = keys(STAGES, "torch")
        assert all(after[s.name] != before[s.name] for s in STAGES)  # every stage reruns
        for library in ("torchvision", "scikit-learn", "numpy", "SimpleITK", "highdicom",
                        "pydicom"):  # the first key changes, so every key after it does too
            assert keys(STAGES[:1], library)["curate"] != before["curate"], library
        assert keys(STAGES[:1]) == {"curate": before["curate"]}
    finally:
        monkeypatch.undo()
        provenance.library_versions.cache_clear()  # no upgraded version left for later tests


def _mount_tmpfs(folder, size):
    """Mount a small tmpfs on ``folder`` (root only); False where the machine does not
    allow it."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.mark.parametrize("disk", ["tmpfs", "injected"])
def test_a_full_disk_during_the_html_export_names_the_stage_and_the_file(
        chain, tmp_path, monkeypatch, disk):
    import errno
    import subprocess

    from parotidlib.io import atomic_path

    _notebook(chain["nbdir"] / "r.ipynb", "print('report')\n")
    stages = (Stage("report", "r.ipynb", "report.html", after=(export_html,)),)
    reports = tmp_path / "small"
    if disk == "tmpfs":
        # the notebook and the stamps fit in 96 KiB; nbconvert's HTML (its styles alone are
        # hundreds of KiB) does not
        if not _mount_tmpfs(reports, "96k"):
            pytest.skip("cannot mount a tmpfs here (not root, or not allowed)")
    else:
        def full(path, text):
            with atomic_path(path):
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("parotidlib.report.html.write_text_atomic", full)
    try:
        with pytest.raises(StageError) as err:
            run_study(chain["params"], name="run1", reports_dir=reports, stages=stages,
                      notebooks_dir=chain["nbdir"])
        message = str(err.value)
        assert "stage 'report'" in message and "No space left on device" in message
        assert str(reports / "run1" / "report.html") in message
        assert "free some space" in message
        assert (reports / "run1" / "r.ipynb").is_file()  # the executed notebook is kept
    finally:
        if disk == "tmpfs":
            subprocess.run(["umount", str(reports)], check=False)
