"""The import graph of ``parotidlib``, read from its source, and what a notebook runs of it.

Used twice: a test fails on any import cycle (:func:`find_cycle`), and the stage cache keys
each stage on the source of the modules its notebook imports, followed transitively
(:func:`stage_modules`, :func:`source_fingerprint`), so that editing a figure reruns the
report stage only. Imports anywhere in a module count (module level and inside functions).
"""

from __future__ import annotations

import ast
import graphlib
import json
from collections.abc import Iterable
from pathlib import Path

from parotidlib.io import sha256_text

PACKAGE = "parotidlib"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (packages too)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that ``tree`` imports (explicit targets, not parent packages)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known}


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package modules it imports explicitly (module- and function-level)."""
    files = module_files(package_dir)
    known = set(files)
    return {name: _imported(ast.parse(path.read_text(), str(path)), name,
                            path.name == "__init__.py", known) - {name}
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first = last), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure(modules: Iterable[str], graph: dict[str, set[str]]) -> set[str]:
    """Every module that importing ``modules`` executes: their imports, transitively, and the
    ``__init__`` of every package on the way."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen or module not in graph:
            continue
        seen.add(module)
        todo.extend(graph[module])
        todo.extend(_parents(module))
    return seen


def notebook_imports(notebook: Path, known: Iterable[str]) -> set[str]:
    """The package modules that the code cells of ``notebook`` import."""
    known = set(known)
    cells = json.loads(Path(notebook).read_text())["cells"]
    found: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"])
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        found |= _imported(ast.parse("\n".join(lines)), "__notebook__", False, known)
    return found


def stage_modules(notebook: str | Path, package_dir: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """Sorted names of the package modules that running ``notebook`` executes."""
    graph = import_graph(package_dir)
    return tuple(sorted(closure(notebook_imports(Path(notebook), graph), graph)))


def source_fingerprint(modules: Iterable[str], package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the names and source bytes of ``modules`` (order-independent)."""
    files = module_files(package_dir)
    return sha256_text(f"{name}\0{sha256_text(files[name].read_text())}"
                       for name in sorted(set(modules)))
