"""What every study notebook does first, in one call: :func:`start`.

A notebook's ``parameters`` cell declares every key it uses (papermill injects the run's values
after it); :func:`start` validates them through :mod:`parotidlib.params`, sets the display
options, finds the run folder and the cohort, and shows whether the results are synthetic.
Light on purpose (no torch, no figures): every stage imports it, and a stage's cache key
covers the modules it imports (docs/design.md, "Stage cache").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parotidlib import params as P
from parotidlib.data import sources

SYNTHETIC_NOTE = (
    "**Synthetic data.** Every number and figure in this report comes from the kit's "
    "physics-based synthetic cohort, not from patients. It checks that the pipeline works "
    "and shows what it measures; it says nothing about clinical performance."
)


@dataclass(frozen=True)
class Session:
    """A notebook's run: its folder, its resolved params and whether the cohort is synthetic."""

    run_dir: Path
    params: dict[str, Any]
    synthetic: bool
    #: The cohort's manifest.csv (resolved only by the notebook that curates).
    manifest: Path | None = None

    def section(self, cls: type) -> Any:
        """The run's settings as one config dataclass of :mod:`parotidlib.config`."""
        return P.section(self.params, cls)


def start(namespace: Mapping[str, Any], *, cohort: bool = False, params_file: bool = False,
          show: bool = True) -> Session:
    """Set up a study notebook from its namespace (the ``parameters`` cell's variables).

    Parameters
    ----------
    namespace : mapping
        The notebook's ``globals()``; ``run_dir`` and the params keys are read from it.
    cohort : bool
        Resolve the cohort manifest (generating the built-in synthetic cohort on first use);
        the curation notebook does, the others read the run's ``cohort.json``.
    params_file : bool
        Take the params from the run's ``params.yaml`` (the report shows the whole run's).
    show : bool
        Display the synthetic-data note (or the cohort's path) as Markdown.
    """
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)
    run_dir = Path(namespace["run_dir"])
    params = (P.load_params(run_dir / "params.yaml") if params_file
              else P.from_namespace(namespace))
    manifest = sources.manifest_path(params) if cohort else None
    synthetic = (sources.is_synthetic(manifest) if manifest is not None
                 else sources.run_is_synthetic(run_dir))
    if show:
        from IPython.display import Markdown, display

        text = SYNTHETIC_NOTE if synthetic else (
            f"Cohort: `{manifest}`" if manifest is not None else "Cohort: real data.")
        display(Markdown(text))
    return Session(run_dir=run_dir, params=params, synthetic=synthetic, manifest=manifest)
