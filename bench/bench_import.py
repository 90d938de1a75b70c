"""Benchmark: import the built-in 233-patient synthetic cohort exported as DICOM.

Writes the export once (``synth --format dicom`` from the NIfTI cohort under data/, kept for
reruns), then imports it from scratch into a fresh cohort folder and prints the import's
wall-clock seconds last. Target (issue tracker): under 3 minutes on the 2-core machine.

    python bench/bench_import.py [--patients 233] [--seed 0] [--work data/bench_dicom]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
import warnings
from pathlib import Path

from parotidlib.data.sources import builtin_cohort_dir
from parotidlib.dicom.importer import import_dicom
from parotidlib.paths import data_dir
from parotidlib.synth.dicom import write_dicom_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=233)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=data_dir() / "bench_dicom")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    export = args.work / "dicom"
    start = time.perf_counter()
    write_dicom_cohort(export, n_patients=args.patients, seed=args.seed,
                       nifti_dir=builtin_cohort_dir(args.patients, args.seed))
    print(f"export (or reuse) of {args.patients} patients as DICOM: "
          f"{time.perf_counter() - start:.1f} s")
    cohort = args.work / "cohort"
    shutil.rmtree(cohort, ignore_errors=True)
    start = time.perf_counter()
    result = import_dicom(export, cohort, clinical=export / "clinical.csv", progress=False)
    seconds = time.perf_counter() - start
    print(f"imported {len(result.imported)}, refused {len(result.refused)} -> {result.manifest}")
    print(f"import of {args.patients} patients: {seconds:.1f} s")


if __name__ == "__main__":
    main()
