"""The study notebooks: thin, stripped, parameterised, in the order the pipeline runs them."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from parotidlib import params as P
from parotidlib.explore import NOTEBOOKS as EXPLORE_NOTEBOOKS
from parotidlib.run.stages import ABLATION_REPORT, CV_REPORT, PREDICT_STAGES, STAGES

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_stage_has_its_notebook_and_no_notebook_is_orphaned():
    expected = sorted([*(s.notebook for s in (*STAGES, *PREDICT_STAGES, ABLATION_REPORT,
                                              CV_REPORT)), *EXPLORE_NOTEBOOKS])
    assert expected == [p.name for p in BOOKS]


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_of_flat_literals_matching_the_library_defaults(path):
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters'"
    defaults = P.defaults()
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1
        name = node.targets[0].id
        value = ast.literal_eval(node.value)  # flat literals only
        if name == "run_dir":
            continue
        assert name in defaults, f"{path.name}: {name} is not a params key"
        expected = defaults[name]
        if isinstance(expected, tuple):
            expected = list(expected)
        assert value == expected, f"{path.name}: {name} = {value!r}, library default {expected!r}"


@pytest.mark.parametrize("path", BOOKS, ids=lambda p: p.name)
def test_notebook_defines_no_functions_or_classes(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), (
                f"{path.name} defines {getattr(node, 'name', 'a lambda')}: move it to parotidlib"
            )


@pytest.mark.parametrize("stage", [*STAGES, *PREDICT_STAGES, ABLATION_REPORT, CV_REPORT],
                         ids=lambda s: s.notebook)
def test_parameters_cell_declares_exactly_the_keys_its_stage_is_passed(stage):
    """The parameters cell is the notebook's whole interface: the pipeline passes a stage
    ``run_dir`` and its own keys, so papermill has nothing to warn about."""
    nb = nbformat.read(str(NOTEBOOKS / stage.notebook), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    declared = [node.targets[0].id for node in ast.parse(cell.source).body]
    assert sorted(declared) == sorted({"run_dir", *stage.keys}), stage.notebook
    assert len(declared) == len(set(declared)), f"{stage.notebook}: a key declared twice"


def test_notebooks_pass_ruff():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([ruff, "check", "--no-cache", str(NOTEBOOKS)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
