"""The project's install files agree with each other."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_runtime_dependencies_as_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {_name(r) for r in pyproject["project"]["dependencies"]}
    dev = {_name(r) for r in pyproject["project"]["optional-dependencies"]["dev"]}

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            conda.add(_name(dep))
    conda -= {"python", "pip"}
    assert conda | pip == runtime | dev


def test_torch_pins_agree():
    pyproject = (ROOT / "pyproject.toml").read_text()
    env = (ROOT / "environment.yml").read_text()
    for pin in ("torch==2.14.1", "torchvision==0.29.1"):
        assert pin in pyproject and pin in env


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    assert "make test" in ci
    readme = (ROOT / "README.md").read_text()
    assert "make report" in readme and "make test" in readme


def test_generated_folders_are_ignored():
    ignore = (ROOT / ".gitignore").read_text().split()
    assert "/data/" in ignore and "/reports/*" in ignore
