"""Look before you trust: a cohort and a run, interactively (JupyterLab, or Voila as an app).

Modules, one job each:

* :mod:`.cases`      a cohort read lazily: the patient table, a patient's series at one world
  position with its contours (no widget code; what the viewer draws);
* :mod:`.cohort_app` the cohort explorer's widgets (``notebooks/00-explore-cohort.ipynb``);
* :mod:`.runs`       a run folder read lazily, the decisions at any threshold from
  :mod:`parotidlib.evaluation`, and why a piece is missing;
* :mod:`.run_app`    the run explorer's widgets (``notebooks/90-explore-run.ipynb``).

The notebooks call :func:`cohort_explorer` and :func:`run_explorer`; ``make lab`` opens them
in JupyterLab and ``make explore`` serves them with Voila. Nothing here writes into a cohort
or a run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parotidlib.constants import SERIES

#: The explorer notebooks (not pipeline stages).
NOTEBOOKS: tuple[str, ...] = ("00-explore-cohort.ipynb", "90-explore-run.ipynb")


def _resolve(path: str | Path) -> Path:
    """A path as given: absolute, relative to the working folder, or to the project root."""
    from parotidlib.paths import PROJECT_ROOT

    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (PROJECT_ROOT / path).resolve()


def cohort_explorer(cohort_manifest: str = "", synth_patients: int = 233, synth_seed: int = 0,
                    series: Sequence[str] = SERIES, labels_from: str = "",
                    classes: Any = "paper", **kwargs: Any):
    """The :class:`~parotidlib.explore.cohort_app.CohortExplorer` of a cohort manifest, or of
    the built-in synthetic cohort (generated on first use) when ``cohort_manifest`` is "".

    ``series``, ``labels_from`` and ``classes`` are the params of the same names
    (params/default.yaml; :class:`parotidlib.study.Study`, :func:`parotidlib.study.class_scheme`),
    checked as the pipeline checks them (:class:`parotidlib.checks.ParamsError` naming the
    value).
    """
    from parotidlib.data.sources import manifest_path
    from parotidlib.explore.cohort_app import CohortExplorer
    from parotidlib.study import Study, class_scheme

    study, scheme = Study(tuple(series), labels_from or ""), class_scheme(classes)
    manifest = (_resolve(cohort_manifest) if cohort_manifest else
                manifest_path({"cohort_manifest": "", "synth_patients": synth_patients,
                               "synth_seed": synth_seed}))
    return CohortExplorer(manifest, study=study, scheme=scheme, **kwargs)


def newest_run(reports: Path | None = None) -> Path:
    """The most recently modified run folder under ``reports/`` that holds predictions.

    Raises
    ------
    FileNotFoundError
        There is none: the message says to run ``make report`` or to set ``run_dir``.
    """
    from parotidlib.paths import reports_dir

    reports = reports or reports_dir()
    runs = sorted((p.parent for p in reports.glob("*/predictions.csv")),
                  key=lambda p: (p / "predictions.csv").stat().st_mtime)
    if not runs:
        raise FileNotFoundError(f"no run folder with predictions.csv under {reports}: run "
                                f"`make report` first, or set run_dir to a run folder")
    return runs[-1]


def run_explorer(run_dir: str = "", malignant_threshold: int = 2):
    """The :class:`~parotidlib.explore.run_app.RunExplorer` of ``run_dir`` (default: the
    newest run folder under reports/), starting at ``malignant_threshold``."""
    from parotidlib.explore.run_app import RunExplorer

    folder = _resolve(run_dir) if run_dir else newest_run()
    return RunExplorer(folder, threshold=malignant_threshold)
