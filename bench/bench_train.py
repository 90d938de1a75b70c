"""Training throughput: the project's training step against a plain PyTorch baseline.

Project path (``parotidlib.learn.train.train_step``): the slices held in memory on the device as
one uint8 tensor, batches indexed there, batched per-sample augmentation on the device
(``parotidlib.learn.augment``), channels_last, autocast as the run's ``mixed_precision`` says.

Baseline, measured in the same run on the same random data and the same network: NCHW
float32, a ``torch.utils.data.Dataset`` returning float tensors (uint8 -> float per slice),
per-sample torchvision v2 transforms (flips, RandomAffine, contrast + per-channel jitter as a
per-sample callable since v2.ColorJitter takes 1 or 3 channels), ``DataLoader`` with default
collate (``--workers``: 0 on CPU, where workers would take the two cores from the model; 8 on
CUDA, with pinned memory).

On CUDA (or with ``--protocol``) the real ``train_model`` loop also runs a few epochs of the
paper protocol (about 3000 training slices at 224 px, batch 32, validation every epoch) and
the 1200-epoch time is extrapolated from its seconds per epoch.

Usage::

    python bench/bench_train.py              # sizes 64 and 224 px, device auto
    python bench/bench_train.py 64 --iters 30
    python bench/bench_train.py 224 --device cuda

The last line printed is the speed-ratios, e.g. ``speedup_64px=1.9x speedup_224px=1.6x``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from parotidlib.config import TrainConfig
from parotidlib.learn.augment import BatchAugment
from parotidlib.learn.device import resolve_amp_dtype, resolve_device
from parotidlib.learn.model import build_model
from parotidlib.learn.schedule import build_optimizer
from parotidlib.learn.train import train_model, train_step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- baseline

class PerSampleIntensity:
    """Contrast (blend with the per-channel mean) and per-channel gain/offset, one slice."""

    def __init__(self, contrast: float, jitter: float) -> None:
        self.contrast, self.jitter = contrast, jitter

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[0]
        factor = 1.0 + (2.0 * torch.rand(()) - 1.0) * self.contrast
        mean = x.mean(dim=(-2, -1), keepdim=True)
        x = (mean + factor * (x - mean)).clamp(0, 1)
        gain = 1.0 + (2.0 * torch.rand(c, 1, 1) - 1.0) * self.jitter
        offset = (2.0 * torch.rand(c, 1, 1) - 1.0) * self.jitter
        return (x * gain + offset).clamp(0, 1)


class SliceDataset(Dataset):
    """The textbook Dataset: one float tensor (C, H, W) in [0, 1] and its label per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).float().div_(255.0)
        return self.transform(x), int(self.labels[i])


class BaselineRunner:
    """Plain PyTorch: DataLoader of per-sample transformed float tensors, NCHW float32."""

    def __init__(self, images, labels, cfg, device, workers) -> None:
        transform = v2.Compose([
            v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
            v2.RandomAffine(degrees=cfg.aug_rotate_deg, translate=(cfg.aug_translate,) * 2,
                            scale=(1 - cfg.aug_scale, 1 + cfg.aug_scale)),
            PerSampleIntensity(cfg.aug_contrast, cfg.aug_channel_jitter),
        ])
        self.loader = DataLoader(
            SliceDataset(images, labels, transform), batch_size=cfg.batch_size, shuffle=True,
            num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
            persistent_workers=workers > 0,
        )
        self.batches = iter(self.loader)
        torch.manual_seed(0)
        self.model = build_model(images.shape[1]).to(device).train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.device = device

    def step(self) -> None:
        try:
            xb, yb = next(self.batches)
        except StopIteration:  # next epoch
            self.batches = iter(self.loader)
            xb, yb = next(self.batches)
        xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        loss = F.cross_entropy(self.model(xb), yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


# ----------------------------------------------------------------------------- project

class ProjectRunner:
    """The project's path: in-memory uint8 tensor on the device + ``train_step``."""

    def __init__(self, images, labels, cfg, device) -> None:
        self.amp_dtype = resolve_amp_dtype(cfg.mixed_precision, device)
        self.x = torch.from_numpy(images).to(device)
        self.y = torch.from_numpy(labels).to(device)
        torch.manual_seed(0)
        self.model = build_model(images.shape[1], widths=cfg.model_widths)
        self.model.to(device=device, memory_format=torch.channels_last).train()
        self.opt = build_optimizer(self.model.parameters(), cfg.optimizer, cfg.lr,
                                   fused=device.type == "cuda")
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.augment = BatchAugment(cfg)
        self.gen = torch.Generator(device=device).manual_seed(1)
        self.perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        self.perm = self.perm.to(device)
        self.batch_size, self.n_batches, self.i = cfg.batch_size, len(images) // cfg.batch_size, 0

    def step(self) -> None:
        start = (self.i % self.n_batches) * self.batch_size
        idx = self.perm[start:start + self.batch_size]
        train_step(self.model, self.x[idx], self.y[idx], self.opt, self.scaler, self.augment,
                   self.gen, self.amp_dtype)
        self.i += 1


def rates(runners: dict, batches: int, rounds: int, warmup: int, batch_size: int,
          device: torch.device) -> dict[str, float]:
    """Median images/s over ``rounds`` rounds of ``batches`` steps, runners interleaved so
    that load from other processes on a shared machine hits them alike."""
    for runner in runners.values():
        for _ in range(warmup):
            runner.step()
    seen: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(batches):
                runner.step()
            sync(device)
            seen[name].append(batches * batch_size / (time.perf_counter() - t0))
    spread = "; ".join(f"{name} " + " ".join(f"{v:.0f}" for v in vals)
                       for name, vals in seen.items())
    print(f"       rounds (img/s): {spread}", flush=True)
    return {name: statistics.median(v) for name, v in seen.items()}


def protocol_data(n_train: int, size: int, val_fraction: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random uint8 slices (4 channels), labels and patients (about 13 slices each), enough
    that about ``n_train`` of them stay for training once the validation patients are out."""
    n = math.ceil(n_train / (1 - val_fraction))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 4, size, size), dtype=np.uint8)
    labels = np.arange(n) % 4
    patients = np.arange(n) // 13  # about 13 slices a patient
    return images, labels, patients


class _TimeUp(Exception):
    """Raised from ``on_epoch_end`` to stop a timed ``train_model`` run."""


def protocol_epoch_seconds(n_train: int, size: int, cfg: TrainConfig, epochs: int,
                           time_limit_s: float | None = None) -> list[float]:
    """Seconds per epoch of the real ``train_model`` loop (with validation) on random data;
    with ``time_limit_s`` the run stops after the first epoch that ends past it."""
    images, labels, patients = protocol_data(n_train, size, cfg.val_fraction)
    run_cfg = dataclasses.replace(cfg, epochs=epochs, checkpoint_every=epochs)
    seconds: list[float] = []
    t0 = time.perf_counter()

    def timed(epoch: int, row) -> None:
        seconds.append(row["seconds"])
        if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
            raise _TimeUp

    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(_TimeUp):
        train_model(images, labels, patients, run_cfg, tmp, progress=False, on_epoch_end=timed)
    return seconds


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[64, 224],
                        help="image sizes in px (default: 64 224)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-slices", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=0,
                        help="timed batches per round (0: by device and size)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--warmup", type=int, default=0, help="untimed batches (0: by device)")
    parser.add_argument("--workers", type=int, default=-1, help="baseline DataLoader workers")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--mixed-precision", default="auto", help="the project's setting")
    parser.add_argument("--protocol", choices=("auto", "yes", "no"), default="auto",
                        help="also time train_model epochs (auto: on CUDA)")
    parser.add_argument("--protocol-size", type=int, default=224)
    parser.add_argument("--protocol-epochs", type=int, default=3)
    parser.add_argument("--paper-epochs", type=int, default=1200)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    workers = args.workers if args.workers >= 0 else (min(8, os.cpu_count() or 1) if cuda else 0)
    warmup = args.warmup or (10 if cuda else 2)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); torch {torch.__version__}; {args.n_slices} slices x 4 "
          f"channels, batch {args.batch_size}; baseline DataLoader workers={workers}")
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=1e-4,
                      mixed_precision=args.mixed_precision)
    amp = resolve_amp_dtype(cfg.mixed_precision, device)
    extra_bf16 = device.type == "cpu" and amp is None  # also show the CPU with bf16 autocast
    ratios, bf16_ratios = [], []
    for size in args.sizes:
        batches = args.iters or (50 if cuda else (8 if size <= 96 else 2))
        rng = np.random.default_rng(size)
        images = rng.integers(0, 256, (args.n_slices, 4, size, size), dtype=np.uint8)
        labels = rng.integers(0, 4, args.n_slices)
        runners = {"baseline": BaselineRunner(images, labels, cfg, device, workers),
                   "project": ProjectRunner(images, labels, cfg, device)}
        if extra_bf16:
            cfg16 = dataclasses.replace(cfg, mixed_precision="true")
            runners["project_bf16"] = ProjectRunner(images, labels, cfg16, device)
        r = rates(runners, batches, args.rounds, warmup, args.batch_size, device)
        base, ours = r["baseline"], r["project"]
        print(f"{size:4d} px  baseline {base:8.1f} img/s   project (autocast {amp}) "
              f"{ours:8.1f} img/s   ratio {ours / base:.2f}x   "
              f"epoch of {args.n_slices} slices ~ {args.n_slices / ours:.1f} s", flush=True)
        ratios.append(f"speedup_{size}px={ours / base:.1f}x")
        if extra_bf16:
            ours16 = r["project_bf16"]
            print(f"{size:4d} px  project with mixed_precision=true (bf16 autocast) "
                  f"{ours16:8.1f} img/s   ratio {ours16 / base:.2f}x", flush=True)
            bf16_ratios.append(f"speedup_bf16_{size}px={ours16 / base:.1f}x")
        del runners, images

    if args.protocol == "yes" or (args.protocol == "auto" and cuda):
        pcfg = dataclasses.replace(cfg, lr=1e-6, device=str(device))
        secs = protocol_epoch_seconds(args.n_slices, args.protocol_size, pcfg,
                                      args.protocol_epochs)
        per_epoch = statistics.median(secs[1:] or secs)  # the first epoch warms up
        total_min = per_epoch * args.paper_epochs / 60
        print(f"paper protocol via train_model on {device}: {args.n_slices} training slices, "
              f"{args.protocol_size} px, batch {args.batch_size}: epochs "
              f"{', '.join(f'{s:.2f}' for s in secs)} s -> {per_epoch:.2f} s/epoch -> "
              f"{args.paper_epochs} epochs ~ {total_min:.1f} min"
              + (" (target < 5 min on one H100)" if cuda else ""))
    if bf16_ratios:
        print(" ".join(bf16_ratios))
    print(" ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
