"""Where a run's results come from: the git commit, the run folder's name and its mark of
origin, and the versions of the kit and its dependencies (printed in every report; those
that results depend on are part of every stage key)."""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import subprocess
from pathlib import Path

from parotidlib.paths import PROJECT_ROOT

#: The file that marks a folder as made by the kit (a run, batch or predict folder): written
#: first, before anything else goes into the folder. Only such a folder is ever cleaned.
RUN_MARKER = ".parotidlib-run.json"

#: Distributions whose versions every stage key covers: an upgrade of any of them reruns
#: the stages (the same set for all stages, for simplicity: curation resamples with numpy,
#: scipy and scikit-image and reads with nibabel, SimpleITK, pydicom and highdicom; training,
#: evaluation and saliency compute with torch, torchvision and grad-cam; the radiomics
#: baseline and the statistics with scikit-learn).
KEY_LIBRARIES = ("numpy", "scipy", "scikit-image", "nibabel", "SimpleITK", "pydicom",
                 "highdicom", "torch", "torchvision", "grad-cam", "scikit-learn")


class ForeignFolderError(FileExistsError):
    """A folder the kit was asked to write into exists and was not made by the kit."""


def check_run_name(name: str, what: str = "run name") -> str:
    """Refuse a run or batch name that is not one plain folder name; return it.

    A run folder is ``<reports folder>/<name>``: a name with a path separator, ``.`` or
    ``..``, or an absolute path would put it elsewhere (outside the reports folder, or
    ignoring ``--reports-dir``).

    Raises
    ------
    ValueError
        The name is empty, ``.`` or ``..``, absolute, or holds a path separator or a NUL
        character; the message names it.
    """
    seps = {os.sep, *((os.altsep,) if os.altsep else ()), "/"}
    if (not isinstance(name, str) or name in ("", ".", "..") or os.path.isabs(name)
            or any(sep in name for sep in seps) or "\0" in name):
        raise ValueError(f"{what} {name!r} is not one folder name: give a plain name (no "
                         f"'/', not '.' or '..', not an absolute path); the folder goes into "
                         f"the reports folder, which --reports-dir chooses")
    return name


def is_kit_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` was made by the kit: it holds :data:`RUN_MARKER`, or (folders of
    earlier versions) stage stamps ``.stages/`` of its own or of run folders inside it."""
    folder = Path(folder)
    if (folder / RUN_MARKER).is_file() or (folder / ".stages").is_dir():
        return True
    return any(p.is_dir() for p in folder.glob("*/*/.stages"))


def claim_folder(folder: str | os.PathLike, kind: str = "run",
                 what: str = "the run folder") -> Path:
    """Make ``folder`` (with its parents) or check that the kit made it; mark it as the kit's.

    A folder that exists, holds anything besides a lock file and is not the kit's
    (:func:`is_kit_folder`) is refused: the kit writes into, and cleans up, only folders it
    made. The mark (:data:`RUN_MARKER`) is written only when absent, so a finished run looked
    up again writes nothing.

    Parameters
    ----------
    folder : path
        The run (or batch) folder.
    kind : str
        Recorded in the mark: ``run``, ``batch``, ``member``.
    what : str
        What the folder is, for the message.

    Returns
    -------
    Path

    Raises
    ------
    ForeignFolderError
        The folder exists with content and was not made by the kit (or is not a folder).
    """
    from parotidlib.io import LOCK_NAME

    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise ForeignFolderError(f"{what} {folder} exists and is not a folder")
        if not is_kit_folder(folder) and any(p.name != LOCK_NAME for p in folder.iterdir()):
            raise ForeignFolderError(
                f"{what} {folder} exists and was not made by this kit (it has no {RUN_MARKER} "
                f"and no .stages/): the kit writes into, and cleans up, only folders it made; "
                f"choose another name (--name) or reports folder (--reports-dir)")
    return mark_folder(folder, kind)


def mark_folder(folder: str | os.PathLike, kind: str = "run") -> Path:
    """Make ``folder`` (with its parents) and write the kit's mark into it unless present.

    For folders the kit itself lays out inside one it has claimed (a batch's members); use
    :func:`claim_folder` for a folder a user names. In a read-only folder of an earlier
    version (known by its stamps) the mark is left out.
    """
    from parotidlib import __version__
    from parotidlib.io import write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / RUN_MARKER).is_file():
        record = {"made_by": "parotidlib", "kind": kind, "kit_version": __version__}
        try:
            write_text_atomic(folder / RUN_MARKER, json.dumps(record, indent=2) + "\n")
        except OSError:
            if not is_kit_folder(folder):
                raise
    return folder


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


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Distribution -> installed version, for :data:`KEY_LIBRARIES` (``"not installed"``
    for an absent one); what the stage keys cover besides the kit's own source."""
    return {name: _version(name) for name in KEY_LIBRARIES}
