"""Where a run's results come from: the git commit, the run folder's default name, and the
versions of the kit and its dependencies (printed in every report)."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
from pathlib import Path

from parotidlib.paths import PROJECT_ROOT


def git_commit(short: bool = True) -> str:
    """The project's git commit (``nogit`` outside a checkout), ``-dirty`` if modified."""
    try:
        args = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
        commit = subprocess.run(
            args, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def default_run_name(params_path: Path) -> str:
    """``<date>_<params name>_<git commit>``, e.g. ``2026-11-27_default_481a55d``."""
    return f"{_dt.date.today():%Y-%m-%d}_{Path(params_path).stem}_{git_commit()}"


def environment_summary() -> dict[str, str]:
    """Package versions, git commit, device and platform, for the report."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "git_commit": git_commit(), "cpu_count": str(os.cpu_count())}
    for pkg in ("parotidlib", "torch", "torchvision", "numpy", "scipy", "nibabel", "pandas",
                "scikit-learn", "statsmodels", "matplotlib", "seaborn", "papermill"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    return info
