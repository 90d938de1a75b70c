"""Benchmark: curate the built-in 233-patient synthetic cohort at 224 px.

Generates the cohort into data/synthetic first if it is missing (not timed), curates it into
a temporary folder with all cores and prints seconds, slices and slices/s, then the slice
counts per class and split. The last line is the curation time in seconds.
Target: under 60 s on a 2-core machine.

Usage: python bench/bench_curate.py [--manifest PATH] [--jobs N] [--image-size PX]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from parotidlib.config import CurationConfig
from parotidlib.data.curate import curate_cohort
from parotidlib.paths import DEFAULT_COHORT_DIR


def _manifest(path: str | None) -> Path:
    if path:
        return Path(path)
    manifest = DEFAULT_COHORT_DIR / "manifest.csv"
    if not manifest.is_file():
        from parotidlib.synth import generate_cohort

        start = time.perf_counter()
        manifest = Path(generate_cohort(DEFAULT_COHORT_DIR, 233, 0))
        print(f"generated the synthetic cohort in {time.perf_counter() - start:.1f} s")
    return manifest


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="cohort manifest (default: data/synthetic)")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    manifest = _manifest(args.manifest)
    config = CurationConfig(image_size=args.image_size, curate_jobs=args.jobs)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        dataset = curate_cohort(manifest, Path(tmp) / "data", config, progress=False)
        seconds = time.perf_counter() - start
        slices = dataset.slices
    n, patients = len(slices), slices["patient_id"].nunique()
    print(f"cohort: {manifest} ({patients} patients with slices)")
    print(f"curate: {n} slices in {seconds:.1f} s ({n / seconds:.1f} slices/s), "
          f"{len(caught)} warnings, image {args.image_size} px, jobs {args.jobs or 'all'}")
    table = slices.pivot_table(index="label", columns="split", values="patient_id",
                               aggfunc="count", fill_value=0)
    print(table.to_string())
    print(f"{seconds:.2f}")
    return seconds


if __name__ == "__main__":
    main()
