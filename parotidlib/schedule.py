"""The training protocol: its settings (:class:`TrainConfig`, re-exported by
``parotidlib.train``), the optimiser and the learning-rate schedule of the paper (Xia et al.
2021, "Deep-Learning Network Structure"): Adam (Kingma & Ba 2015), "the learning rate was 1e-6
for the first 600 epochs and was then multiplied by a factor of 0.8 every 100 epochs".

Epochs are counted from 0 here: epochs 0-599 train at ``lr``, 600-699 at ``0.8 lr``,
700-799 at ``0.64 lr``, ..., 1100-1199 at ``0.8**6 lr``. The scheduler is a
``torch.optim.lr_scheduler.LambdaLR`` stepped once per epoch, so its ``last_epoch`` is the
index of the epoch about to run and it survives a checkpoint (state_dict of plain numbers).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

#: Optimisers that ``TrainConfig.optimizer`` may name.
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    ) and math.isfinite(float(value))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings; the field names are the flat params keys.

    Defaults are the paper's protocol (Xia et al. 2021), 1200 epochs included; the
    augmentation magnitudes are the kit's, as the paper does not give them.
    """

    epochs: int = 1200  # epochs to train (the paper: 1200)
    batch_size: int = 32  # slices per optimisation step (the paper: 32)
    lr: float = 1e-6  # base learning rate (the paper: 1e-6)
    optimizer: str = "adam"  # adam (the paper) | adamw | sgd (momentum 0.9)
    weight_decay: float = 0.0  # L2 (adam, sgd) or decoupled (adamw) weight decay
    lr_decay_start: int = 600  # first epoch (0-based) at the decayed rate (the paper: 600)
    lr_decay_every: int = 100  # epochs between decays (the paper: 100)
    lr_decay_factor: float = 0.8  # multiplier at each decay (the paper: 0.8)
    model_widths: tuple[int, ...] = (64, 128)  # channels per residual stage, one block each
    val_fraction: float = 0.1  # share of TRAINING patients held out for model selection
    select_metric: str = "val_accuracy"  # val_accuracy (max) | val_loss (min) -> best.pt
    seed: int = 0  # seeds initialisation, shuffling, augmentation and the validation split
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    # auto (on for cuda) | true | false (bools accepted); true on a CPU with AMX/AVX512-BF16
    # trains 2-4x faster in bfloat16 (bench/README.md)
    mixed_precision: str = "auto"
    checkpoint_every: int = 10  # epochs between epoch_XXXX.pt / last.pt checkpoints
    num_threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    augment: bool = True  # apply the random augmentation below to training batches
    aug_flip: bool = True  # random horizontal and vertical flips (p = 0.5 each)
    aug_rotate_deg: float = 10.0  # rotation drawn from [-x, x] degrees
    aug_translate: float = 0.05  # shift drawn from [-x, x] x image size
    aug_scale: float = 0.1  # zoom drawn from [1 - x, 1 + x]
    aug_contrast: float = 0.2  # per-slice contrast factor from [1 - x, 1 + x]
    aug_channel_jitter: float = 0.1  # per-channel gain [1 - x, 1 + x] and offset [-x, x]

    def __post_init__(self) -> None:
        def bad(key: str, allowed: str) -> ValueError:
            return ValueError(f"{key} must be {allowed}, got {getattr(self, key)!r}")

        for key, minimum in (("epochs", 1), ("batch_size", 1), ("lr_decay_start", 0),
                             ("lr_decay_every", 1), ("seed", 0), ("checkpoint_every", 1),
                             ("num_threads", 0)):
            if not _is_int(getattr(self, key)) or getattr(self, key) < minimum:
                raise bad(key, f"an integer >= {minimum}")
        if not _is_real(self.lr) or self.lr <= 0:
            raise bad("lr", "a finite number > 0")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {OPTIMIZERS}")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a finite number >= 0")
        if not _is_real(self.lr_decay_factor) or not 0 < self.lr_decay_factor <= 1:
            raise bad("lr_decay_factor", "in (0, 1]")
        widths = self.model_widths
        if (not isinstance(widths, tuple | list) or not widths
                or not all(_is_int(w) and w >= 1 for w in widths)):
            raise bad("model_widths", "a non-empty list of integers >= 1")
        object.__setattr__(self, "model_widths", tuple(int(w) for w in widths))
        if not _is_real(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise bad("val_fraction", "in [0, 1)")
        if self.select_metric not in ("val_accuracy", "val_loss"):
            raise bad("select_metric", "'val_accuracy' or 'val_loss'")
        try:
            ok = self.device == "auto" or torch.device(self.device).type in ("cpu", "cuda", "mps")
        except (RuntimeError, TypeError):
            ok = False
        if not ok:
            raise bad("device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        mp = self.mixed_precision
        if isinstance(mp, bool):
            object.__setattr__(self, "mixed_precision", str(mp).lower())
        elif not isinstance(mp, str) or mp.lower() not in ("auto", "true", "false"):
            raise bad("mixed_precision", "'auto', 'true', 'false' or a bool")
        else:
            object.__setattr__(self, "mixed_precision", mp.lower())
        for key in ("augment", "aug_flip"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, "true or false")
        for key, upper in (("aug_rotate_deg", 180.0), ("aug_translate", 0.5),
                           ("aug_scale", 0.5), ("aug_contrast", 1.0), ("aug_channel_jitter", 1.0)):
            value = getattr(self, key)
            if not _is_real(value) or not 0 <= value <= upper:
                raise bad(key, f"in [0, {upper:g}]")

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings as plain Python values (tuples as lists), e.g. for a checkpoint."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        """Build from a flat params mapping, taking only this class's keys (lists -> tuples)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in params.items() if k in names}
        return cls(**kwargs)


def paper_lr_factor(epoch: int, start: int = 600, every: int = 100, factor: float = 0.8) -> float:
    """Multiplier of the base learning rate in (0-based) ``epoch``.

    ``1`` before ``start``, then ``factor ** (floor((epoch - start) / every) + 1)``: the
    first decay happens at ``start`` itself.

    Examples
    --------
    >>> [paper_lr_factor(e) for e in (0, 599, 600, 699, 700)]
    [1.0, 1.0, 0.8, 0.8, 0.6400000000000001]
    """
    if epoch < start:
        return 1.0
    return factor ** ((epoch - start) // every + 1)


def paper_lr(
    epoch: int, lr: float = 1e-6, start: int = 600, every: int = 100, factor: float = 0.8
) -> float:
    """Learning rate of (0-based) ``epoch`` under the paper's schedule."""
    return lr * paper_lr_factor(epoch, start, every, factor)


class _StepAfter:
    """Picklable, state_dict-friendly callable for ``LambdaLR`` (its __dict__ is saved)."""

    def __init__(self, start: int, every: int, factor: float) -> None:
        self.start, self.every, self.factor = start, every, factor

    def __call__(self, epoch: int) -> float:
        return paper_lr_factor(epoch, self.start, self.every, self.factor)


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str = "adam",
    lr: float = 1e-6,
    weight_decay: float = 0.0,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """The named optimiser: ``adam`` (the paper), ``adamw`` or ``sgd`` (momentum 0.9).

    ``fused=True`` selects the single-kernel Adam/AdamW update (CUDA only), which removes
    most of the per-step launch overhead of a small network.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    extra = {"fused": True} if fused else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **extra)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **extra)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, start: int = 600, every: int = 100, factor: float = 0.8
) -> LambdaLR:
    """``LambdaLR`` with :func:`paper_lr_factor`; call ``step()`` once after every epoch."""
    return LambdaLR(optimizer, lr_lambda=_StepAfter(start, every, factor))
