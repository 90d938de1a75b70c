"""Where the network runs: the device, the autocast dtype, torch's threads and determinism."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must be available."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} is not available (no CUDA); use 'auto' or 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available (no MPS); use 'auto' or 'cpu'")
    return dev


def resolve_amp_dtype(mixed_precision: str | bool, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for float32.

    ``auto`` is on for CUDA only. On CUDA bfloat16 where supported (no loss scaling needed),
    else float16 with a GradScaler; on CPU bfloat16; on MPS float16.
    """
    mp = str(mixed_precision).lower()
    on = device.type == "cuda" if mp == "auto" else mp == "true"
    if not on:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device.type == "mps" else torch.bfloat16


@contextlib.contextmanager
def torch_settings(device: torch.device, num_threads: int) -> Iterator[None]:
    """Thread count and determinism settings for the run, restored afterwards."""
    prev = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    try:
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        if device.type == "cpu":
            # Bit-identical reruns and resumes on CPU.
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif device.type == "cuda":
            # Fixed input size: let cuDNN pick the fastest kernels (not bit-reproducible).
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(prev[0])
        torch.use_deterministic_algorithms(prev[1], warn_only=prev[2])
        torch.backends.cudnn.benchmark = prev[3]
