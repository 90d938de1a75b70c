"""The import graph of parotidlib (acyclic, torch-free config and statistics) and the modules
each stage's notebook runs (what its cache key covers)."""

import shutil
import subprocess
import sys

import pytest

from parotidlib.run.imports import (
    PACKAGE_DIR,
    closure,
    find_cycle,
    import_graph,
    source_fingerprint,
    stage_modules,
)
from parotidlib.run.pipeline import stage_key
from parotidlib.run.stages import STAGES, stage_named

NOTEBOOKS = PACKAGE_DIR.parent / "notebooks"


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "parotidlib.data.curate" in graph and graph["parotidlib.data.curate"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_a_cycle_is_found_including_imports_inside_functions(tmp_path):
    package = tmp_path / "parotidlib"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from parotidlib.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from parotidlib import a\n")
    graph = import_graph(package)
    assert graph["parotidlib.a"] == {"parotidlib.sub.b"}
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"parotidlib.a", "parotidlib.sub.b"}


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return set(out)


def test_config_and_params_validation_import_neither_torch_nor_sklearn():
    loaded = _modules_after("from parotidlib import params\n"
                            "params.load_params('params/paper.yaml')\nparams.resolve({})")
    assert "parotidlib.config" in loaded
    assert "torch" not in loaded and "sklearn" not in loaded


def test_statistics_never_import_torch():
    loaded = _modules_after("import parotidlib.evaluation.results, parotidlib.evaluation.frames,"
                            " parotidlib.evaluation.stats, parotidlib.evaluation.decision")
    assert "torch" not in loaded
    graph = import_graph()
    statistics = closure([m for m in graph if m.startswith("parotidlib.evaluation")], graph)
    assert not [m for m in statistics if m.startswith("parotidlib.learn")]


def test_each_stage_runs_the_modules_of_its_own_step():
    modules = {s.name: set(stage_modules(NOTEBOOKS / s.notebook)) for s in STAGES}
    assert "parotidlib.data.curate" in modules["curate"]
    assert "parotidlib.learn.train" in modules["train"]
    assert "parotidlib.learn.predict" in modules["evaluate"]
    assert "parotidlib.evaluation.results" in modules["statistics"]
    figures = {m for m in modules["report"] if m.startswith("parotidlib.report.figures")}
    assert "parotidlib.report.figures.training" in figures
    assert "parotidlib.learn.explain" in modules["saliency"]
    for name in ("curate", "train", "evaluate", "statistics", "saliency"):
        assert not modules[name] & figures, name
        assert not {"parotidlib.report.html", "parotidlib.report.runfolder"} & modules[name], name
    assert "parotidlib.learn.train" not in modules["curate"] | modules["statistics"]


@pytest.fixture
def package_copy(tmp_path):
    package = tmp_path / "parotidlib"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def _keys(package):
    from parotidlib import params as P

    params, keys, upstream = P.resolve({}), {}, ""
    for stage in STAGES:
        upstream = keys[stage.name] = stage_key(stage, params, upstream, "fp",
                                                package_dir=package)
    return keys


def test_editing_the_training_loop_reruns_training_and_what_follows(package_copy):
    before = _keys(package_copy)
    assert before == _keys(PACKAGE_DIR)
    train = package_copy / "learn" / "train.py"
    train.write_text(train.read_text() + "\n# edited\n")
    after = _keys(package_copy)
    assert after["curate"] == before["curate"]
    for name in ("train", "evaluate", "statistics", "saliency", "report"):
        assert after[name] != before[name], name


def test_editing_the_report_module_changes_the_report_key_only(package_copy):
    before = _keys(package_copy)
    paper = package_copy / "report" / "paper.py"
    paper.write_text(paper.read_text() + "\n# edited\n")
    after = _keys(package_copy)
    assert [n for n in after if after[n] != before[n]] == ["report"]


def test_source_fingerprint_covers_names_and_content(package_copy):
    mods = ["parotidlib.config"]
    first = source_fingerprint(mods, package_copy)
    (package_copy / "config.py").write_text((package_copy / "config.py").read_text() + "#\n")
    assert source_fingerprint(mods, package_copy) != first
    assert stage_named("train").resumable == ("epochs", "checkpoint_every")
