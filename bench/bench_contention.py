"""Training speed on a shared machine: a training step alone and beside busy processes.

Each measurement runs in a fresh Python process (OpenMP reads its settings when torch loads),
which times ``--steps`` training steps of the kit's network (``train_step``: 64 px, batch 32,
four channels, the paper's reduced ResNet18) after ``--warmup`` steps, first alone, then
beside ``--busy`` processes that each spin one core (started and stopped by this script).
Two environments are compared in the same run:

* ``default``: torch's defaults, no thread setting (what the kit did before);
* ``kit``: the environment the kit now gives every kernel, batch member and SLURM job
  (:func:`parotidlib.threads.thread_environment`: ``OMP_NUM_THREADS`` = the CPUs this
  process may use, ``OMP_WAIT_POLICY=PASSIVE``).

Target (issue tracker): beside three busy processes the kit's step takes at most 2.2 times
its time alone, and alone it is no slower than the default. The last line is
``ratio_busy_over_alone_kit=...x``.

    python bench/bench_contention.py [--busy 3] [--steps 30] [--warmup 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np, torch
from parotidlib.config import TrainConfig
from parotidlib.learn.augment import BatchAugment
from parotidlib.learn.model import build_model
from parotidlib.learn.schedule import build_optimizer
from parotidlib.learn.train import train_step
steps, warmup = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
cfg = TrainConfig(batch_size=32)
model = build_model(4, widths=cfg.model_widths).to(memory_format=torch.channels_last).train()
opt = build_optimizer(model.parameters(), cfg.optimizer, cfg.lr)
scaler = torch.amp.GradScaler("cpu", enabled=False)
augment = BatchAugment(cfg)
gen = torch.Generator().manual_seed(1)
x = torch.randint(0, 255, (32, 4, 64, 64), dtype=torch.uint8)
y = torch.randint(0, 4, (32,))
times = []
for i in range(steps + warmup):
    t = time.perf_counter()
    train_step(model, x, y, opt, scaler, augment, gen, None)
    if i >= warmup:
        times.append(time.perf_counter() - t)
print(json.dumps({"median_ms": 1000 * float(np.median(times)), "threads": torch.get_num_threads()}))
"""

def spin(stop) -> None:
    while not stop.is_set():
        pass


def measure(env: dict[str, str], steps: int, warmup: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(warmup)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    from bench_explore import cpu_model  # the machine line every bench prints

    from parotidlib.threads import thread_environment

    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    envs = {"default": base, "kit": {**base, **thread_environment()}}
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"kit environment {thread_environment()}")
    samples: dict[str, dict[str, list[float]]] = {n: {"alone": [], "busy": []} for n in envs}
    threads = {}
    for _ in range(args.repeats):  # interleaved, so that drift of the machine hits both
        for name, env in envs.items():
            alone = measure(env, args.steps, args.warmup)
            threads[name] = alone["threads"]
            stop = multiprocessing.Event()
            spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True)
                        for _ in range(args.busy)]
            for p in spinners:
                p.start()
            time.sleep(0.5)
            try:
                busy = measure(env, args.steps, args.warmup)
            finally:
                stop.set()
                for p in spinners:
                    p.join(5)
                    if p.is_alive():
                        p.kill()
            samples[name]["alone"].append(alone["median_ms"])
            samples[name]["busy"].append(busy["median_ms"])
    results = {}
    for name, runs in samples.items():
        alone, busy = statistics.median(runs["alone"]), statistics.median(runs["busy"])
        results[name] = {"alone_ms": alone, "busy_ms": busy}
        print(f"{name:8s} threads {threads[name]}: alone {alone:.0f} ms/step, beside "
              f"{args.busy} busy processes {busy:.0f} ms/step ({busy / alone:.2f}x); medians of "
              f"{args.repeats}: alone {[round(v) for v in runs['alone']]}, busy "
              f"{[round(v) for v in runs['busy']]}")
    kit, default = results["kit"], results["default"]
    print(f"alone: kit / default = {kit['alone_ms'] / default['alone_ms']:.2f} (target <= 1, "
          f"noise aside); beside busy processes: kit / default = "
          f"{kit['busy_ms'] / default['busy_ms']:.2f}; default "
          f"{default['busy_ms'] / default['alone_ms']:.2f}x its time alone, kit target <= 2.2x")
    print(f"ratio_busy_over_alone_kit={kit['busy_ms'] / kit['alone_ms']:.2f}x")


if __name__ == "__main__":
    main()
