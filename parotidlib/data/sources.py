"""Where a run's cohort comes from: a user's manifest, or the built-in synthetic cohort."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parotidlib.data.manifest import image_sha256, manifest_files
from parotidlib.io import sha256_file, sha256_text
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


#: Marker file of a cohort imported from the synthetic cohort's DICOM export.
SYNTHETIC_MARKER = "SYNTHETIC.json"


def is_synthetic(manifest: Path) -> bool:
    """True when ``manifest`` is a cohort written by the built-in generator (its stamp file),
    or imported from the synthetic cohort's DICOM export (:data:`SYNTHETIC_MARKER`)."""
    from parotidlib.synth import STAMP_NAME

    folder = Path(manifest).parent
    return (folder / STAMP_NAME).is_file() or (folder / SYNTHETIC_MARKER).is_file()


def cohort_fingerprint(manifest: str | Path) -> str:
    """SHA-256 over the manifest and the content of every file it references.

    Used to tell whether curation must rerun, and printed in the report so a result can be
    traced to the exact cohort it came from. Paths are read as the cohort reader reads them
    (:func:`parotidlib.data.manifest.read_manifest_table`), and every file the image reader
    opens with a named file is covered (:func:`parotidlib.data.manifest.image_sha256`: the
    ``.img`` of an Analyze pair named by its ``.hdr``, an SPM ``.mat`` beside it).

    Raises
    ------
    FileNotFoundError
        A file the manifest names cannot be read (naming patient, column and path): a
        fingerprint that skipped it would call a changed cohort unchanged.
    """
    manifest = Path(manifest)
    parts = [sha256_file(manifest)]
    for pid, column, path in manifest_files(manifest):
        if not path.is_file():
            raise FileNotFoundError(f"cohort fingerprint: patient {pid!r}, column {column!r}: "
                                    f"file {str(path)!r} does not exist or is not a file")
        parts.append(f"{pid}\t{column}\t{image_sha256(path)}")
    return sha256_text(parts)


def run_manifest(run_dir: str | Path) -> Path:
    """The manifest of a run's cohort.

    Read from the run's ``cohort.json`` (written by the pipeline and by 10-curate), else from
    its curated ``data/dataset.json``.

    Raises
    ------
    FileNotFoundError
        Neither file exists: the run folder has not been curated (run 10-curate into it).
    """
    run_dir = Path(run_dir)
    for path in (run_dir / "cohort.json", run_dir / "data" / "dataset.json"):
        if path.is_file():
            return Path(json.loads(path.read_text())["manifest"])
    raise FileNotFoundError(f"{run_dir} has no cohort.json or data/dataset.json: run "
                            f"notebooks/10-curate.ipynb into this run folder first")


def run_is_synthetic(run_dir: str | Path) -> bool:
    """Whether a run's cohort is the built-in synthetic one: as its ``cohort.json`` records it
    (the pipeline writes ``synthetic``, so that a batch member on a node that cannot see the
    cohort knows), else looked up at the manifest (:func:`run_manifest`); raises
    FileNotFoundError rather than guess for a run folder that was never curated."""
    try:
        recorded = json.loads((Path(run_dir) / "cohort.json").read_text()).get("synthetic")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, bool):
        return recorded
    return is_synthetic(run_manifest(run_dir))
