"""Figures drawn by the library, so notebooks and the HTML report show the same thing.

Submodules by topic: ``cohort`` (Figure 2), ``inputs`` (Figure 3), ``training`` (curves),
``evaluation`` (Figures 6-7, threshold sweep). ``save_figure`` writes publication copies.
"""

from __future__ import annotations

from pathlib import Path

from parotidlib.io import atomic_path

#: Resolution of the PNG copies of every figure (publication quality).
PUBLICATION_DPI = 300


def save_figure(fig, run_dir: str | Path, name: str, dpi: int = PUBLICATION_DPI) -> list[Path]:
    """Save ``fig`` as ``run_dir/figures/<name>.png`` (``dpi``) and ``.pdf``, atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    run_dir : path
        The run folder; figures go to its ``figures/`` subfolder.
    name : str
        File stem, e.g. ``"fig7_confusion_matrix"``.

    Returns
    -------
    list of Path
        The PNG and PDF paths.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    written = []
    for ext in ("png", "pdf"):
        path = Path(run_dir) / "figures" / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        written.append(path)
    return written
