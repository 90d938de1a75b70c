"""The study notebooks: thin, stripped, parameterised, in the order the pipeline runs them."""

import ast
from pathlib import Path

import nbformat
import pytest

from parotidlib import params as P
from parotidlib.pipeline import STAGES

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_stage_has_its_notebook_and_no_notebook_is_orphaned():
    expected = sorted([s.notebook for s in STAGES] + ["60-ablation.ipynb"])
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
