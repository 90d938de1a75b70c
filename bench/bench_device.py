"""GPU readiness: the project's training figures on one device, measured in one run.

Run by ``bench/device_check.sh`` (which sets up the environment first); phases, each within
the time left of ``--budget-s``:

1. training throughput of the project's step (``parotidlib.learn.train.train_step``: data on
   the device as uint8, augmentation there) against the plain-PyTorch baseline of
   ``bench_train.py`` (DataLoader, per-sample torchvision transforms, NCHW fp32), in fp32 and
   with bf16 autocast (``mixed_precision: true``), runs interleaved (``bench_train.rates``);
2. the paper protocol through the real ``train_model`` (``params/paper.yaml``'s settings:
   about 3035 training slices, 224 px, batch 32, validation every epoch) for as many epochs as
   ``--protocol-time`` allows: seconds per epoch (median after the first) and the 1200-epoch
   time they imply; peak GPU memory of that run;
3. determinism: two identical short ``train_model`` runs (same seed), their loss histories and
   final weights compared;
4. ``torch.compile`` (``--compile``; auto: on CUDA): the bf16 step compiled (mode ``default``,
   else ``max-autotune-no-cudagraphs``), and the protocol again with ``compile: true``.

Usage::

    python bench/bench_device.py                  # device auto: CUDA if present
    python bench/bench_device.py --quick          # tiny smoke run on the CPU (< 60 s)
    python bench/bench_device.py --quick --compile yes   # also compile on the CPU (slow)

The last line printed holds the figures, e.g. ``device=NVIDIA H200 step_fp32=5200img/s (4.1x
baseline) step_bf16=... epoch_s=... protocol_1200_min=... deterministic=yes ...``; a line
``figures so far: ...`` follows each phase, for a run cut short.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from bench_train import (  # bench/ is on sys.path when this file runs as a script
    BaselineRunner,
    ProjectRunner,
    protocol_data,
    protocol_epoch_seconds,
    rates,
    sync,
)

from parotidlib.config import TrainConfig
from parotidlib.data.split import split_validation_patients
from parotidlib.learn.device import resolve_device, torch_settings
from parotidlib.learn.train import compile_for_training, train_model
from parotidlib.params import load_params

ROOT = Path(__file__).resolve().parent.parent
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")

#: Settings by profile: the full run (meant for a GPU) and --quick (a CPU smoke run).
PROFILES: dict[str, dict] = {
    "full": {"size": 224, "n_slices": 3000, "iters": 50, "rounds": 3, "warmup": 10,
             "protocol_size": 224, "protocol_slices": 3035, "protocol_epochs": 40,
             "protocol_time": 60.0, "compile_time": 150.0, "det_slices": 640, "det_epochs": 2,
             "budget_s": 420.0},
    "quick": {"size": 32, "n_slices": 256, "iters": 3, "rounds": 1, "warmup": 1,
              "protocol_size": 32, "protocol_slices": 416, "protocol_epochs": 3,
              "protocol_time": 8.0, "compile_time": 60.0, "det_slices": 416, "det_epochs": 2,
              "budget_s": 50.0},
}


#: The figures line's keys, in order; a key whose phase has not run reads ``pending``.
KEYS = ("profile", "step_fp32", "step_bf16", "compile_bf16", "epoch_s", "protocol_1200_min",
        "epoch_s_compile", "protocol_1200_min_compile", "deterministic", "peak_mem_GiB",
        "baseline", "compile_mode", "compile_first_step_s", "total_s")


class Figures:
    """The figures line, filled phase by phase (a failed phase leaves ``error:<Type>``)."""

    def __init__(self, device_name: str) -> None:
        self.items: dict[str, str] = {"device": device_name, **dict.fromkeys(KEYS, "pending")}
        self.failed = False

    def set(self, **items: str) -> None:
        self.items.update(items)

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.items.items())

    def phase(self, keys: tuple[str, ...], fn, *args) -> None:
        """Run ``fn(*args)``; on an exception, its type stands in for ``keys``."""
        try:
            fn(*args)
        except Exception as exc:  # one phase failing must not lose the others' figures
            traceback.print_exc()
            self.failed = True
            self.set(**{k: f"error:{type(exc).__name__}" for k in keys})
        print(f"figures so far: {self.line()}", flush=True)


def timed_left(deadline: float, wanted: float) -> float:
    """Seconds a phase may take: ``wanted``, or what is left before ``deadline``."""
    return max(0.0, min(wanted, deadline - time.perf_counter()))


def per_epoch(seconds: list[float]) -> float:
    """Median seconds per epoch after the first (which warms up, or compiles)."""
    return statistics.median(seconds[1:] or seconds)


def cuda_peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}"


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- phases

def step_data(p: dict) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(p["size"])
    images = rng.integers(0, 256, (p["n_slices"], 4, p["size"], p["size"]), dtype=np.uint8)
    return images, rng.integers(0, 4, p["n_slices"])


def measure_steps(figs: Figures, p: dict, cfg: TrainConfig, device: torch.device,
                  workers: int, state: dict) -> None:
    """Phase 1: baseline, project fp32, project bf16 autocast (img/s, interleaved)."""
    images, labels = step_data(p)
    cfg32 = dataclasses.replace(cfg, mixed_precision="false")
    cfg16 = dataclasses.replace(cfg, mixed_precision="true")
    runners = {"baseline": BaselineRunner(images, labels, cfg32, device, workers),
               "fp32": ProjectRunner(images, labels, cfg32, device),
               "bf16": ProjectRunner(images, labels, cfg16, device)}
    print(f"steps at {p['size']} px: {p['n_slices']} slices, batch {cfg.batch_size}, "
          f"autocast of step_bf16: {runners['bf16'].amp_dtype}", flush=True)
    r = rates(runners, p["iters"], p["rounds"], p["warmup"], cfg.batch_size, device)
    base = state["baseline"] = r["baseline"]
    state["bf16"] = r["bf16"]
    figs.set(step_fp32=f"{r['fp32']:.0f}img/s ({r['fp32'] / base:.1f}x baseline)",
             step_bf16=f"{r['bf16']:.0f}img/s ({r['bf16'] / base:.1f}x)",
             baseline=f"{base:.0f}img/s")


def measure_compiled_step(figs: Figures, p: dict, cfg: TrainConfig, device: torch.device,
                          state: dict) -> None:
    """Phase 4a: the bf16 step with the network compiled, beside the eager bf16 step."""
    images, labels = step_data(p)
    cfg16 = dataclasses.replace(cfg, mixed_precision="true")
    eager = ProjectRunner(images, labels, cfg16, device)
    for mode in COMPILE_MODES:
        runner = ProjectRunner(images, labels, cfg16, device)
        plain = runner.model
        try:
            runner.model = compile_for_training(plain, None if mode == "default" else mode)
            t0 = time.perf_counter()
            runner.step()  # compiles
            sync(device)
            compile_s = time.perf_counter() - t0
            r = rates({"compile_bf16": runner, "bf16": eager}, p["iters"], p["rounds"],
                      p["warmup"], cfg.batch_size, device)
        except Exception:
            traceback.print_exc()
            print(f"torch.compile mode {mode!r} failed; trying the next", flush=True)
            torch._dynamo.reset()
            continue
        base = state.get("baseline")
        ratio = f"{r['compile_bf16'] / base:.1f}x" if base else "n/a"
        print(f"compiled step (mode {mode}): first step {compile_s:.1f} s; "
              f"{r['compile_bf16']:.0f} img/s vs eager bf16 {r['bf16']:.0f} img/s", flush=True)
        figs.set(compile_bf16=f"{r['compile_bf16']:.0f}img/s ({ratio}; "
                              f"{r['compile_bf16'] / r['bf16']:.2f}x eager bf16)",
                 compile_mode=mode, compile_first_step_s=f"{compile_s:.0f}")
        return
    figs.set(compile_bf16="failed(all modes)")


def measure_protocol(figs: Figures, p: dict, pcfg: TrainConfig, device: torch.device,
                     paper_epochs: int, limit_s: float, suffix: str = "") -> None:
    """Phases 2 and 4b: seconds per epoch of ``train_model`` on the paper protocol."""
    _, labels, patients = protocol_data(p["protocol_slices"], 1, pcfg.val_fraction)
    val = split_validation_patients(labels, patients, pcfg.val_fraction, pcfg.seed)
    n_train = int((~np.isin(patients, val)).sum())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    secs = protocol_epoch_seconds(p["protocol_slices"], p["protocol_size"], pcfg,
                                  p["protocol_epochs"], time_limit_s=limit_s)
    epoch_s = per_epoch(secs)
    minutes = epoch_s * paper_epochs / 60
    print(f"protocol{suffix} via train_model on {device}: {n_train} training slices, "
          f"{p['protocol_size']} px, batch {pcfg.batch_size}, mixed_precision "
          f"{pcfg.mixed_precision}, compile {pcfg.compile}: epochs "
          f"{', '.join(f'{s:.2f}' for s in secs)} s -> {epoch_s:.3f} s/epoch -> "
          f"{paper_epochs} epochs ~ {minutes:.1f} min (target < 5 min on one H100-class GPU)",
          flush=True)
    only_one = "(1 epoch only)" if len(secs) < 2 else ""
    figs.set(**{f"epoch_s{suffix}": f"{epoch_s:.3f}{only_one}",
                f"protocol_{paper_epochs}_min{suffix}": f"{minutes:.1f}{only_one}"})
    if not suffix:
        figs.set(peak_mem_GiB=cuda_peak_gib(device))


def measure_determinism(figs: Figures, p: dict, pcfg: TrainConfig) -> None:
    """Phase 3: two identical short runs; identical loss histories and final weights?"""
    images, labels, patients = protocol_data(p["det_slices"], p["protocol_size"],
                                             pcfg.val_fraction)
    cfg = dataclasses.replace(pcfg, epochs=p["det_epochs"], checkpoint_every=p["det_epochs"])
    runs = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            result = train_model(images, labels, patients, cfg, tmp, progress=False)
            weights = torch.load(result.last_checkpoint, weights_only=True)["model"]
        runs.append((result.history, weights))
    (h1, w1), (h2, w2) = runs
    diffs = [0.0]
    same = True
    for col in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        a, b = h1[col].to_numpy(float), h2[col].to_numpy(float)
        same &= bool(np.array_equal(a, b, equal_nan=True))
        if not (np.isnan(a).all() and np.isnan(b).all()):
            diffs.append(float(np.nanmax(np.abs(a - b))))
    for k in w1:
        same &= torch.equal(w1[k], w2[k])
        if w1[k].is_floating_point():
            diffs.append((w1[k].double() - w2[k].double()).abs().max().item())
    worst = max(d for d in diffs if not math.isnan(d))
    print(f"determinism: 2 runs x {p['det_epochs']} epochs on {len(images)} slices (training "
          f"and validation) at {p['protocol_size']} px: losses {h1['train_loss'].tolist()} vs "
          f"{h2['train_loss'].tolist()}; max abs diff {worst:.3g}", flush=True)
    figs.set(deterministic=f"{'yes' if same else 'no'} (max abs diff {worst:.3g})")


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, choices=("auto", "cuda", "cpu"),
                        help="default: auto (cpu with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny CPU smoke run (< 60 s)")
    parser.add_argument("--compile", choices=("auto", "yes", "no"), default="auto",
                        help="measure torch.compile (auto: on CUDA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--workers", type=int, default=-1, help="baseline DataLoader workers")
    for key, value in PROFILES["full"].items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None,
                            help=f"default {value} (--quick: {PROFILES['quick'][key]})")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    profile = PROFILES["quick" if args.quick else "full"]
    p = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in profile.items()}
    deadline = t_start + p["budget_s"]

    device = resolve_device(args.device or ("cpu" if args.quick else "auto"))
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    name = (torch.cuda.get_device_name(device) if cuda
            else f"cpu x{torch.get_num_threads()} threads")
    workers = args.workers if args.workers >= 0 else (min(8, os.cpu_count() or 1) if cuda else 0)
    paper = TrainConfig.from_params(load_params(ROOT / "params" / "paper.yaml"))
    pcfg = dataclasses.replace(paper, device=str(device), num_threads=args.threads)
    step_cfg = dataclasses.replace(pcfg, epochs=1)
    do_compile = args.compile == "yes" or (args.compile == "auto" and cuda)
    print(f"device {device} ({name}); torch {torch.__version__}; python {sys.version.split()[0]}"
          f"; profile {'quick' if args.quick else 'full'}: {p}; paper network widths "
          f"{paper.model_widths}, optimizer {paper.optimizer}, lr {paper.lr}", flush=True)

    figs = Figures(name)
    figs.set(profile=f"quick({p['size']}px)" if args.quick else "full")
    state: dict = {}
    with torch_settings(device, args.threads):
        figs.phase(("step_fp32", "step_bf16"), measure_steps, figs, p, step_cfg, device,
                   workers, state)
        free(device)
    figs.phase(("epoch_s", "protocol_1200_min", "peak_mem_GiB"), measure_protocol, figs, p,
               pcfg, device, paper.epochs, timed_left(deadline, p["protocol_time"]))
    free(device)
    figs.phase(("deterministic",), measure_determinism, figs, p, pcfg)
    free(device)
    compile_keys = ("compile_bf16", "epoch_s_compile", "protocol_1200_min_compile")
    if not do_compile:
        figs.set(**dict.fromkeys(compile_keys, "skipped(--compile yes to measure)"))
    elif deadline - time.perf_counter() < 30:
        figs.set(**dict.fromkeys(compile_keys, "skipped(time budget)"))
    else:
        with torch_settings(device, args.threads):
            figs.phase(("compile_bf16",), measure_compiled_step, figs, p, step_cfg, device,
                       state)
            free(device)
        limit = timed_left(deadline, p["compile_time"])
        if limit < 20:
            figs.set(**dict.fromkeys(compile_keys[1:], "skipped(time budget)"))
        else:
            figs.phase(("epoch_s_compile", "protocol_1200_min_compile"), measure_protocol, figs, p,
                       dataclasses.replace(pcfg, compile=True), device, paper.epochs, limit,
                       "_compile")
    figs.set(total_s=f"{time.perf_counter() - t_start:.0f}")
    figs.items = {k: v for k, v in figs.items.items() if v != "pending"}
    print(figs.line(), flush=True)
    return 1 if figs.failed else 0


if __name__ == "__main__":
    sys.exit(main())
