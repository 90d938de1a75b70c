"""Figures drawn by the library, so notebooks and the HTML report show the same thing.

Submodules by topic: ``cohort`` (Figure 2), ``inputs`` (Figure 3, a patient's input strip),
``training`` (curves), ``evaluation`` (Figures 6-7, threshold sweep), ``external``
(reliability diagrams, decision curve), ``saliency`` (Grad-CAM examples), ``ablation``;
``style`` holds what they share (display names, class colours, font sizes).
``save_figure`` writes publication copies.
"""

from __future__ import annotations

from pathlib import Path

from parotidlib.io import atomic_path

#: Resolution of the PNG copies of every figure (publication quality).
PUBLICATION_DPI = 300


#: Footer stamped on every figure made from the built-in synthetic cohort.
SYNTHETIC_FOOTER = "Synthetic cohort (parotid study kit), not patient data"


def mark_synthetic(fig):
    """Stamp ``fig`` with SYNTHETIC_FOOTER in its lower right corner (once) and return it."""
    if not any(t.get_text() == SYNTHETIC_FOOTER for t in fig.texts):
        # Just below the figure's area: saving with bbox_inches="tight" takes it in without
        # covering axis labels.
        fig.text(0.995, -0.005, SYNTHETIC_FOOTER, ha="right", va="top", fontsize=7,
                 color="0.35")
    return fig


def save_figure(fig, run_dir: str | Path, name: str, dpi: int = PUBLICATION_DPI,
                synthetic: bool = False) -> list[Path]:
    """Save ``fig`` as ``run_dir/figures/<name>.png`` (``dpi``) and ``.pdf``, atomically.

    With ``synthetic=True`` the figure is first stamped as synthetic (``mark_synthetic``),
    so a figure taken into a paper or slide keeps its label.

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
    if synthetic:
        mark_synthetic(fig)
    written = []
    for ext in ("png", "pdf"):
        path = Path(run_dir) / "figures" / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        written.append(path)
    return written
