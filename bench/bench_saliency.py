"""Benchmark: the saliency summary (Grad-CAM, ROI fractions, randomisation check) of a test set.

The default profile's network (widths 64, 128; 4 channels; 64 px; untrained: the time does not
depend on the weights) on 219 random uint8 slices (the default test split's size), zero outside
a disc as with ``mask_background``, with random true and predicted labels and 2 examples per
class and kind. Times :func:`parotidlib.learn.saliency.saliency_summary` (maps of all slices,
their mask fractions, the maps of a randomised copy, the examples' predicted-class maps) after
one untimed warm-up call, median of ``--repeats``. Prints the seconds last. Target (issue 15):
under 30 s added to the report on the 2-core machine.

    python bench/bench_saliency.py [--slices 219] [--size 64] [--method gradcam] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from parotidlib.constants import CHANNELS, CLASSES
from parotidlib.learn.model import build_model
from parotidlib.learn.saliency import saliency_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=219)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(args.slices, len(CHANNELS), args.size, args.size),
                          dtype=np.uint8)
    yy, xx = np.mgrid[:args.size, :args.size]
    radius = rng.uniform(0.15, 0.45, args.slices) * args.size
    outside = (yy - args.size / 2) ** 2 + (xx - args.size / 2) ** 2 > radius[:, None, None] ** 2
    images[np.broadcast_to(outside[:, None], images.shape)] = 0
    labels = rng.integers(0, len(CLASSES), args.slices)
    predicted = np.where(rng.random(args.slices) < 0.7, labels,
                         rng.integers(0, len(CLASSES), args.slices))

    torch.manual_seed(0)
    model = build_model(len(CHANNELS)).to(memory_format=torch.channels_last).eval()

    def run() -> dict:
        return saliency_summary(model, images, labels, predicted, CHANNELS, per_class=2,
                                seed=0, method=args.method)

    run()  # warm-up: imports, allocator
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        summary = run()
        times.append(time.perf_counter() - start)
    check = summary["randomisation"]
    print(f"{args.slices} slices x {len(CHANNELS)} channels x {args.size} px, {args.method}, "
          f"{torch.get_num_threads()} torch threads, {len(summary['examples'])} examples; "
          f"runs: {', '.join(f'{t:.2f}' for t in times)} s; "
          f"(untrained network: mean Spearman {check['mean_spearman']})")
    print(f"saliency_summary seconds (median of {args.repeats}): {statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
