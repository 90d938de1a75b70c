"""The HTML report: showing saved figures in a notebook and exporting the executed report
notebook to one self-contained HTML file.

The report itself is the executed ``notebooks/50-report.ipynb`` (or another report
notebook), exported by nbconvert with code hidden and figures embedded. The run-folder facts
the report prints are read by :mod:`parotidlib.report.runfolder`.
"""

from __future__ import annotations

from pathlib import Path

from parotidlib.io import write_text_atomic


def export_html(notebook: str | Path, html: str | Path) -> Path:
    """Export an executed notebook to one self-contained HTML file with code hidden.

    nbconvert's HTMLExporter embeds the notebook's image outputs as base64, so the file has
    no external references to the run folder.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    return write_text_atomic(html, body)


def show_figures(run_dir: str | Path, names: list[str], width: int = 720) -> None:
    """Display saved figures (``figures/<name>.png``) inline; missing ones are named, not fatal."""
    from IPython.display import Image, Markdown, display

    for name in names:
        path = Path(run_dir) / "figures" / f"{name}.png"
        if path.exists():
            display(Image(filename=str(path), width=width, alt=name.replace("_", " ")))
        else:
            display(Markdown(f"*Figure `{name}` was not produced in this run.*"))
