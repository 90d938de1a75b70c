"""Benchmark: per-slice radiomics features of a curated dataset (parotidlib.radiomics).

Runs ``dataset_features`` on the newest curated dataset of a default run
(``reports/*default*/data``), all its channels, or, when there is none, on random images
with random blob ROIs of the default dataset's shape (2600 x 4 x 64 x 64, seed 0). Prints
the dataset, the slices, ROIs and features, and the seconds; the last line is the seconds.
Target: well under 60 s on a 2-core machine.

Usage: python bench/bench_radiomics.py [--data DIR] [--jobs N] [--bins N] [--random]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from parotidlib.constants import CHANNELS
from parotidlib.paths import REPORTS_DIR
from parotidlib.radiomics.features import dataset_features


def _default_data() -> Path | None:
    candidates = [p for p in REPORTS_DIR.glob("*default*/data")
                  if (p / "dataset.json").is_file() and (p / "images.npy").is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def _random_images(n: int = 2600, size: int = 64, seed: int = 0) -> np.ndarray:
    """Random uint8 textures, each channel zero outside a smooth random blob."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, len(CHANNELS), size, size), dtype=np.uint8)
    blobs = ndimage.gaussian_filter(rng.random((n, len(CHANNELS), size, size)),
                                    (0, 0, 6, 6))
    texture = ndimage.gaussian_filter(rng.random((n, len(CHANNELS), size, size)),
                                      (0, 0, 1, 1))
    for k in range(n):
        for c in range(len(CHANNELS)):
            blob = blobs[k, c]
            inside = blob > np.quantile(blob, rng.uniform(0.3, 0.8))
            t = texture[k, c]
            t = (t - t.min()) / (np.ptp(t) or 1.0)
            images[k, c] = np.where(inside, np.round(1 + 254 * t), 0).astype(np.uint8)
    return images


def main() -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a curated data/ folder (default: newest reports/"
                                       "*default*/data)")
    parser.add_argument("--random", action="store_true", help="random images, not a dataset")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (0 = all cores)")
    parser.add_argument("--bins", type=int, default=32, help="fixed bin number")
    args = parser.parse_args()
    data = None if args.random else (Path(args.data) if args.data else _default_data())
    if data is not None:
        from parotidlib.data.dataset import load_dataset

        dataset = load_dataset(data)
        images, channels = dataset.images, list(dataset.channels)
        print(f"dataset: {data}")
    else:
        images, channels = _random_images(), list(CHANNELS)
        print("dataset: random images with random blob ROIs (no curated default run found)")
    start = time.perf_counter()
    table = dataset_features(images, channels, n_bins=args.bins, jobs=args.jobs)
    seconds = time.perf_counter() - start
    n, c = images.shape[:2]
    empty = int(table.filter(like="_stat_mean").isna().to_numpy().sum())
    print(f"radiomics: {n} slices x {c} channels ({n * c} ROIs, {empty} with < 2 pixels), "
          f"{table.shape[1]} features, image {images.shape[-1]} px, {args.bins} bins, "
          f"jobs {args.jobs}: {seconds:.1f} s ({1000 * seconds / max(n * c, 1):.2f} ms/ROI)")
    print(f"{seconds:.2f}")
    return seconds


if __name__ == "__main__":
    main()
