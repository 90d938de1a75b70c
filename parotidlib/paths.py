"""Paths from one place (cookiecutter-data-science practice)."""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root (the folder holding pyproject.toml) for an editable install.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Generated data; PAROTIDLIB_DATA_DIR moves it (tests use a temporary folder).
DATA_DIR = Path(os.environ.get("PAROTIDLIB_DATA_DIR", PROJECT_ROOT / "data"))
#: Run folders; PAROTIDLIB_REPORTS_DIR (or the CLI's --reports-dir) moves them.
REPORTS_DIR = PROJECT_ROOT / "reports"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = PROJECT_ROOT / "params"
#: The built-in synthetic cohort that every run uses unless `cohort_manifest` is set.
DEFAULT_COHORT_DIR = DATA_DIR / "synthetic"


def data_dir() -> Path:
    """The generated-data folder, read at call time (PAROTIDLIB_DATA_DIR overrides it)."""
    return Path(os.environ.get("PAROTIDLIB_DATA_DIR", PROJECT_ROOT / "data"))


def reports_dir() -> Path:
    """The run-folder root, read at call time (PAROTIDLIB_REPORTS_DIR overrides it)."""
    return Path(os.environ.get("PAROTIDLIB_REPORTS_DIR", REPORTS_DIR))
