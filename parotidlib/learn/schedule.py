"""The optimiser and the learning-rate schedule of the paper (Xia et al. 2021, "Deep-Learning
Network Structure"): Adam (Kingma & Ba 2015), "the learning rate was 1e-6 for the first 600
epochs and was then multiplied by a factor of 0.8 every 100 epochs".

Epochs are counted from 0 here: epochs 0-599 train at ``lr``, 600-699 at ``0.8 lr``,
700-799 at ``0.64 lr``, ..., 1100-1199 at ``0.8**6 lr``. The scheduler is a
``torch.optim.lr_scheduler.LambdaLR`` stepped once per epoch, so its ``last_epoch`` is the
index of the epoch about to run and it survives a checkpoint (state_dict of plain numbers).

The schedule itself is not part of that state: the lambda is a ``functools.partial`` of
:func:`paper_lr_factor`, whose instance ``__dict__`` (all that ``LambdaLR.state_dict`` keeps of
a callable object) is empty and is ignored when a checkpoint's is loaded into it. A resumed
run therefore follows the schedule it is built with (the config, which
``learn.checkpoint.check_resumable`` compares with the checkpoint's) from the position the
checkpoint saved.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from parotidlib.config import OPTIMIZERS, paper_lr_factor

__all__ = ["OPTIMIZERS", "build_optimizer", "build_scheduler", "paper_lr", "paper_lr_factor"]


def paper_lr(
    epoch: int, lr: float = 1e-6, start: int = 600, every: int = 100, factor: float = 0.8
) -> float:
    """Learning rate of (0-based) ``epoch`` under the paper's schedule."""
    return lr * paper_lr_factor(epoch, start, every, factor)


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
    """``LambdaLR`` with :func:`paper_lr_factor`; call ``step()`` once after every epoch.

    The lambda, ``functools.partial(paper_lr_factor, start=..., every=..., factor=...)``, is
    picklable and keeps its schedule out of ``state_dict()``: ``load_state_dict`` restores the
    position (``last_epoch``, the base learning rates) and never the schedule, also from a
    checkpoint of an older kit that saved one (module docstring).
    """
    return LambdaLR(optimizer, lr_lambda=functools.partial(paper_lr_factor, start=start,
                                                           every=every, factor=factor))
