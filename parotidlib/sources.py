"""Where a run's cohort comes from: a user's manifest, or the built-in synthetic cohort."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.constants import IMAGE_COLUMNS, LABEL_COLUMNS
from parotidlib.paths import PROJECT_ROOT, data_dir

logger = logging.getLogger(__name__)


def builtin_cohort_dir(n_patients: int, seed: int) -> Path:
    """Folder of the built-in synthetic cohort for a size and seed (233/0 is data/synthetic)."""
    if (n_patients, seed) == (233, 0):
        return data_dir() / "synthetic"
    return data_dir() / f"synthetic_n{n_patients}_s{seed}"


def manifest_path(params: Mapping[str, Any]) -> Path:
    """Return the manifest a run reads, generating the built-in cohort on first use.

    Parameters
    ----------
    params : mapping
        Resolved params; uses ``cohort_manifest``, ``synth_patients`` and ``synth_seed``.

    Returns
    -------
    Path
        Absolute path of the manifest.csv.
    """
    given = str(params.get("cohort_manifest") or "")
    if given:
        path = Path(given).expanduser()
        if not path.is_absolute():
            path = (PROJECT_ROOT / path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"cohort_manifest {given!r}: no such file ({path})")
        return path
    from parotidlib.synth import generate_cohort

    n, seed = int(params.get("synth_patients", 233)), int(params.get("synth_seed", 0))
    out = builtin_cohort_dir(n, seed)
    logger.info("built-in synthetic cohort: %d patients, seed %d, in %s", n, seed, out)
    return Path(generate_cohort(out, n_patients=n, seed=seed)).resolve()


def is_synthetic(manifest: Path) -> bool:
    """True when ``manifest`` is a cohort written by the built-in generator (its stamp file)."""
    from parotidlib.synth import STAMP_NAME

    return (Path(manifest).parent / STAMP_NAME).is_file()


def cohort_fingerprint(manifest: str | Path) -> str:
    """SHA-256 over the manifest and the content of every file it references.

    Used to tell whether curation must rerun, and printed in the report so a result can be
    traced to the exact cohort it came from.
    """
    manifest = Path(manifest)
    digest = hashlib.sha256(manifest.read_bytes())
    frame = pd.read_csv(manifest, dtype=str)
    for column in (*IMAGE_COLUMNS, *LABEL_COLUMNS):
        if column not in frame:
            continue
        for rel in frame[column].fillna(""):
            path = (manifest.parent / rel) if rel else None
            if path is not None and path.is_file():
                with path.open("rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()
