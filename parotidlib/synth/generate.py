"""Write the synthetic cohort: NIfTI volumes, label maps and manifest.csv (docs/cohort-format.md).

The cohort is written into a temporary folder beside ``out_dir`` (``.<name>.XXXXXXXX.partial``,
owned by this process: :func:`parotidlib.io.make_temp_dir`) and moved into place only when
complete, so an interrupted run never leaves a manifest pointing at missing or partial
files; the next generation beside it removes such leftovers of dead runs. Generations into
the same folder take turns (a lock file ``.<name>.lock`` beside it). A stamp file
(:data:`STAMP_NAME`) records the generator version and settings; asking again for the same
cohort returns at once. Files are byte-identical for the same settings: every patient has its
own seeded random stream, BLAS runs single-threaded, and the gzip header carries no time
stamp or file name.
"""

from __future__ import annotations

import concurrent.futures as cf
import gzip
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from parotidlib.config import check_bool, check_int, check_real
from parotidlib.constants import MANIFEST_COLUMNS, SERIES
from parotidlib.data.manifest import manifest_files
from parotidlib.io import (
    folder_lock,
    make_temp_dir,
    release_temp_dir,
    remove_stale_temp_dirs,
    sha256_file,
)
from parotidlib.processes import worker_pool
from parotidlib.progress import tqdm  # a widget in a notebook, plain text in a run
from parotidlib.synth.composition import PatientSpec, check_mix, draw_patients
from parotidlib.synth.diffusion import DIFFUSION_SERIES
from parotidlib.synth.patient import simulate_patient

__all__ = ["DIFFUSION_COLUMNS", "DIFFUSION_OPTIONAL_COLUMNS", "GENERATOR_VERSION",
           "OPTIONAL_COLUMNS", "STAMP_NAME", "CohortExistsError", "generate_cohort",
           "write_nifti"]

logger = logging.getLogger(__name__)

#: Bump when the output for given settings changes.
GENERATOR_VERSION = "1.0"
STAMP_NAME = ".synth_stamp.json"
MANIFEST_NAME = "manifest.csv"
#: Optional manifest columns written after the required ones.
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "field_strength_t", "t1_tr_ms", "t1_te_ms", "t2_tr_ms", "t2_te_ms", "ce_t1_tr_ms",
    "ce_t1_te_ms", "ce_t1_flip_deg", "pixel_size_mm", "slice_thickness_mm",
    "t2_pixel_size_mm", "t2_slice_thickness_mm",
)
#: The diffusion series' image and label-map columns (``diffusion=True`` only), written after
#: the required columns, in their pattern: ``adc``, ``dwi``, ``adc_labels``, ``dwi_labels``.
DIFFUSION_COLUMNS: tuple[str, ...] = (*DIFFUSION_SERIES, *(f"{s}_labels" for s in DIFFUSION_SERIES))
#: The diffusion acquisition columns (``diffusion=True`` only), written last; the ADC's unit
#: and the b-value are named as the DICOM importer names them (docs/dicom-import.md).
DIFFUSION_OPTIONAL_COLUMNS: tuple[str, ...] = (
    "adc_scale_mm2_s", "dwi_b_value_s_mm2", "dwi_tr_ms", "dwi_te_ms", "dwi_pixel_size_mm",
    "dwi_slice_thickness_mm",
)
#: gzip level of the .nii.gz files (1: fast; higher levels save only ~2 % on noisy images).
GZIP_LEVEL = 1


#: Suffixes of the temporary siblings of a cohort folder: the cohort being written, and the
#: previous cohort being replaced.
_STAGING_SUFFIX, _OLD_SUFFIX = ".partial", ".old"


class CohortExistsError(FileExistsError):
    """``out_dir`` holds files that are not a cohort written by this generator."""


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, labels: bool = False
                ) -> None:
    """Write a deterministic ``.nii.gz`` (no time stamp or name in the gzip header).

    Parameters
    ----------
    path : Path
        Destination (written directly; callers write into a staging folder).
    data : ndarray
        int16 image or uint8 label map.
    affine : ndarray (4, 4)
        Voxel-to-world RAS+ affine (mm); stored as sform and qform (code "scanner").
    labels : bool
        Mark the volume as a label map (NIfTI intent ``label``).
    """
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="scanner")
    img.header["descrip"] = f"parotidlib synthetic {GENERATOR_VERSION}".encode()
    if labels:
        img.header.set_intent("label")
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0))


def _patient_files(pid: str, series: tuple[str, ...] = SERIES) -> dict[str, str]:
    files = {s: f"{pid}/{s}.nii.gz" for s in series}
    files.update({f"{s}_labels": f"{pid}/{s}_labels.nii.gz" for s in series})
    return files


def _write_patient(spec: PatientSpec, seed: int, pixel_scale: float, folder: str,
                   diffusion: bool = False) -> dict:
    """Simulate and write one patient; return its manifest row (worker entry point)."""
    with threadpool_limits(1):  # same BLAS summation order in every process: same bytes
        patient = simulate_patient(spec, seed, pixel_scale, diffusion=diffusion)
    written = (*SERIES, *DIFFUSION_SERIES) if diffusion else SERIES
    files = _patient_files(spec.patient_id, written)
    (Path(folder) / spec.patient_id).mkdir(parents=True, exist_ok=True)
    for series in written:
        write_nifti(Path(folder) / files[series], patient.images[series],
                    patient.affines[series])
        write_nifti(Path(folder) / files[f"{series}_labels"], patient.labels[series],
                    patient.affines[series], labels=True)
    row = {"patient_id": spec.patient_id, "histology": spec.histology,
           "tumor_side": spec.tumor_side, "age": spec.age, "sex": spec.sex,
           "scanner": spec.scanner, **files}
    row.update(patient.manifest_fields())
    if diffusion:
        row.update(patient.diffusion_fields())
    return row


#: Stamp keys written only for a shifted cohort or one with diffusion series (absent in a
#: default cohort's stamp, whose bytes are unchanged from earlier versions).
_MIX_KEYS = ("scanners", "histologies", "diffusion")


def _stamp(n_patients: int, seed: int, pixel_scale: float,
           scanners: dict[str, float] | None = None,
           histologies: dict[str, float] | None = None, diffusion: bool = False) -> dict:
    stamp = {"generator": "parotidlib.synth", "version": GENERATOR_VERSION,
             "n_patients": n_patients, "seed": seed, "pixel_scale": pixel_scale}
    for key, mix in zip(_MIX_KEYS[:2], (scanners, histologies), strict=True):
        if mix is not None:
            stamp[key] = dict(mix)
    if diffusion:
        stamp["diffusion"] = True
    return stamp


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, stamp: dict) -> bool:
    """True if ``folder`` holds the cohort ``stamp`` describes, with every file present."""
    found = _read_stamp(folder)
    manifest = folder / MANIFEST_NAME
    if found is None or not manifest.is_file():
        return False
    keys = set(stamp) | set(_MIX_KEYS)  # a default request never matches a shifted cohort
    if {k: found.get(k) for k in keys} != {k: stamp.get(k) for k in keys}:
        return False
    if found.get("manifest_sha256") != sha256_file(manifest):
        return False
    try:
        files = manifest_files(manifest)
    except ValueError:
        return False
    # the manifest is the one the stamp hashed: every file it names must be there (the
    # diffusion columns are no part of manifest_files' FILE_COLUMNS: checked here)
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    extra = [folder / rel for col in DIFFUSION_COLUMNS if col in table.columns
             for rel in table[col]]
    return bool(files) and all(path.is_file() for path in [*(p for _, _, p in files), *extra])


def _is_ours(folder: Path) -> bool:
    """True if ``folder`` holds only what this generator writes (any settings)."""
    found = _read_stamp(folder)
    if found is None or found.get("generator") != "parotidlib.synth":
        return False
    return all(p.name in (STAMP_NAME, MANIFEST_NAME) or (p.is_dir() and p.name.startswith("SYN"))
               for p in folder.iterdir())


def _validate(n_patients: int, seed: int, jobs: int | None, pixel_scale: float) -> None:
    """Refuse bad settings (:mod:`parotidlib.config`'s checks: numpy integers accepted, bools
    refused, one message naming the argument)."""
    check_int("n_patients", n_patients, minimum=1)
    check_int("seed", seed, minimum=0)
    if jobs is not None:
        check_int("jobs", jobs, minimum=1)
    check_real("pixel_scale", pixel_scale, 1.0, 8.0)


def _simulate_all(specs: list[PatientSpec], seed: int, pixel_scale: float, folder: Path,
                  jobs: int, diffusion: bool = False) -> list[dict]:
    args = (seed, pixel_scale, str(folder), diffusion)
    progress = tqdm(total=len(specs), desc="synthetic cohort", unit="patient",
                    disable=len(specs) < 2)
    rows = []
    with progress:
        if jobs == 1:
            for spec in specs:
                rows.append(_write_patient(spec, *args))
                progress.update()
        else:
            # fork on Linux: works from scripts without a __main__ guard and starts fast (the
            # workers use numpy/scipy only); elsewhere the platform default (spawn on macOS)
            # The workers die with this process (parotidlib.processes).
            method = "fork" if sys.platform.startswith("linux") else None
            with worker_pool(jobs, method) as pool:
                futures = [pool.submit(_write_patient, spec, *args) for spec in specs]
                for future in cf.as_completed(futures):
                    rows.append(future.result())
                    progress.update()
    return sorted(rows, key=lambda r: r["patient_id"])


def generate_cohort(out_dir: str | os.PathLike, n_patients: int = 233, seed: int = 0,
                    jobs: int | None = None, *, pixel_scale: float = 1.0,
                    scanners: Mapping[str, float] | None = None,
                    histologies: Mapping[str, float] | None = None,
                    diffusion: bool = False) -> Path:
    """Generate the physics-based synthetic parotid MRI cohort (or reuse it); return the manifest.

    Composition follows Xia et al. 2021, Table 1 and Table 2 (see
    :mod:`parotidlib.synth.composition`); every patient has T1, CE-T1 and T2 series
    (int16 NIfTI, RAS+ affines, each on its own grid) with label maps (uint8: 0 background,
    1 right gland, 2 left gland, 3 tumour) on the same grids, simulated from tissue MR
    parameters with the sequences' signal equations (:mod:`parotidlib.synth.signal`).

    Parameters
    ----------
    out_dir : path
        Cohort folder. Created if absent; if it already holds this exact cohort (same
        generator version, ``n_patients``, ``seed``, ``pixel_scale``, ``scanners`` and
        ``histologies``) nothing is done;
        a cohort written by this generator with other settings is replaced; a folder with
        any other content is refused. Staging folders that generations which died left
        beside it (``.<name>.XXXXXXXX.partial``, ``.<name>.XXXXXXXX.old``) are removed
        first; those of a live generation are kept. Two generations into the same folder
        take turns: the second waits for the first's lock (``.<name>.lock`` beside the
        folder, :func:`parotidlib.io.folder_lock`) and then finds the cohort complete.
    n_patients : int
        Cohort size (>= 1; >= 3 gives every histology). 233 reproduces Table 1's counts.
    seed : int
        Cohort seed (>= 0). The same seed gives byte-identical files.
    jobs : int, optional
        Worker processes; None uses ``os.cpu_count()``. The output does not depend on it.
    pixel_scale : float
        Multiplies every pixel size (1 to 8), making smaller volumes for tests and quick
        looks. Keep 1 for the study cohort.
    scanners : mapping, optional
        Shifted scanner mix for an external-validation cohort: scanner name (a key of
        :data:`~parotidlib.synth.scanners.SCANNERS`) -> weight, e.g.
        ``{"Siemens Skyra 3T": 1.0}``. None: Table 2's mix.
    histologies : mapping, optional
        Shifted case mix: histology -> weight. None: Table 1's counts. Both mixes are
        recorded in the stamp (only when given), so a folder holding the default cohort is
        never taken for a shifted one or the reverse; see
        :data:`~parotidlib.synth.composition.EXTERNAL_SHIFT` for a ready-made shift. The
        further histologies (:data:`~parotidlib.synth.composition.FURTHER_HISTOLOGIES`:
        ``basal_cell_adenoma``, ``mucoepidermoid_carcinoma``) appear only when named here.
    diffusion : bool
        Also write the diffusion series of every patient from the same anatomy
        (:mod:`parotidlib.synth.diffusion`): ``dwi`` (b = 800 s/mm²) and ``adc`` (µm²/s) on one
        EPI grid, with ``dwi_labels`` and ``adc_labels`` (:data:`DIFFUSION_COLUMNS`, after
        the required columns) and the acquisition (:data:`DIFFUSION_OPTIONAL_COLUMNS`, last).
        The T1, CE-T1 and T2 files are those of the cohort without diffusion. Recorded in the
        stamp only when true.

    Returns
    -------
    Path
        ``out_dir / "manifest.csv"``.

    Raises
    ------
    CohortExistsError
        ``out_dir`` is not empty and was not written by this generator.

    Examples
    --------
    >>> manifest = generate_cohort("data/synthetic", n_patients=233, seed=0)  # doctest: +SKIP
    >>> from parotidlib.synth.composition import EXTERNAL_SHIFT
    >>> external = generate_cohort("data/synthetic_external", seed=1,
    ...                            **EXTERNAL_SHIFT)  # doctest: +SKIP
    """
    _validate(n_patients, seed, jobs, pixel_scale)
    scanners = None if scanners is None else check_mix(scanners, "scanners")
    histologies = None if histologies is None else check_mix(histologies, "histologies")
    out_dir = Path(out_dir)
    diffusion = check_bool("diffusion", diffusion)
    stamp = _stamp(int(n_patients), int(seed), float(pixel_scale), scanners, histologies,
                   diffusion)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # One generation at a time per folder: a second one waits, then finds the cohort complete.
    with folder_lock(out_dir, "the synthetic cohort", wait=True,
                     lock_file=lock_file_of(out_dir)):
        return _generate(out_dir, stamp, n_patients, seed, jobs, pixel_scale, scanners,
                         histologies, diffusion)


def lock_file_of(out_dir: str | os.PathLike) -> Path:
    """The lock file of a cohort folder: beside it (``.<name>.lock``), because the folder
    itself is replaced as a whole when a cohort is written."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.lock"


def _generate(out_dir: Path, stamp: dict, n_patients: int, seed: int, jobs: int | None,
              pixel_scale: float, scanners: dict[str, float] | None,
              histologies: dict[str, float] | None, diffusion: bool = False) -> Path:
    """:func:`generate_cohort` under its folder's lock."""
    _remove_leftovers(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise CohortExistsError(f"out_dir {str(out_dir)!r} exists and is not a folder")
        if _is_complete(out_dir, stamp):
            logger.info("synthetic cohort in %s is up to date (%d patients, seed %d)",
                        out_dir, n_patients, seed)
            return out_dir / MANIFEST_NAME
        if any(out_dir.iterdir()) and not _is_ours(out_dir):
            raise CohortExistsError(
                f"out_dir {str(out_dir)!r} is not empty and is not a synthetic cohort written "
                f"by parotidlib.synth (no {STAMP_NAME} or other files in it); refusing to "
                f"overwrite it: choose an empty or new folder")
    workers = min(int(jobs or os.cpu_count() or 1), int(n_patients))
    logger.info("generating synthetic cohort: %d patients, seed %d, %d worker(s) -> %s",
                n_patients, seed, workers, out_dir)
    # an ordinary folder (0o777 less the umask), as the cohort it becomes
    staging = make_temp_dir(out_dir.parent, f".{out_dir.name}.", _STAGING_SUFFIX)
    start = time.perf_counter()
    try:
        specs = draw_patients(int(n_patients), int(seed), scanners=scanners,
                              histologies=histologies)
        rows = _simulate_all(specs, int(seed), float(pixel_scale), staging, workers, diffusion)
        columns = [*MANIFEST_COLUMNS, *OPTIONAL_COLUMNS]
        if diffusion:
            columns = [*MANIFEST_COLUMNS, *DIFFUSION_COLUMNS, *OPTIONAL_COLUMNS,
                       *DIFFUSION_OPTIONAL_COLUMNS]
        frame = pd.DataFrame(rows, columns=columns)
        frame.to_csv(staging / MANIFEST_NAME, index=False, lineterminator="\n")
        stamp["manifest_sha256"] = sha256_file(staging / MANIFEST_NAME)
        (staging / STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        _swap_into_place(staging, out_dir, stamp)
        logger.info("synthetic cohort written to %s in %.1f s", out_dir,
                    time.perf_counter() - start)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir / MANIFEST_NAME


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the staging and replaced-cohort folders that dead generations left beside
    ``out_dir`` (never those of a live one: :func:`parotidlib.io.remove_stale_temp_dirs`)."""
    for suffix in (_STAGING_SUFFIX, _OLD_SUFFIX):
        remove_stale_temp_dirs(out_dir.parent, f".{out_dir.name}.", suffix)


def _swap_into_place(staging: Path, out_dir: Path, stamp: dict) -> None:
    """Move the finished cohort onto ``out_dir`` (replacing an empty folder or an old cohort)."""
    old = None
    if out_dir.exists():
        if _is_complete(out_dir, {k: stamp[k] for k in stamp if k != "manifest_sha256"}):
            return  # a concurrent run finished the same cohort first
        if any(out_dir.iterdir()):
            if not _is_ours(out_dir):
                raise CohortExistsError(f"out_dir {str(out_dir)!r} gained foreign content "
                                        f"while the cohort was generated; not replacing it")
            old = make_temp_dir(out_dir.parent, f".{out_dir.name}.", _OLD_SUFFIX)
            os.replace(out_dir, old / "cohort")
        else:
            out_dir.rmdir()
    release_temp_dir(staging)  # the owner file is no part of the cohort
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
