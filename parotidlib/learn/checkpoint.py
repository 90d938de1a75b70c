"""Training checkpoints that load with ``torch.load(weights_only=True)``: writing, reading,
rebuilding the model (:func:`load_model`) and checking that one can be resumed.

A checkpoint is a plain dict (nanoGPT practice: everything needed to resume, and the resolved
config that produced it) holding only tensors, dicts, lists, numbers, strings and None, so the
safe unpickler of ``weights_only=True`` can read it and no code runs at load time. Random
number generator states are stored as tensors.

Keys: ``format_version``, ``epoch`` (epochs completed), ``model`` (state_dict), ``model_args``
(``in_channels``, ``num_classes``, ``widths``, ``blocks_per_stage``), ``optimizer``,
``scheduler``, ``scaler`` (state_dicts), ``rng`` (see :func:`capture_rng`), ``best_metric``,
``best_epoch``, ``select_metric``, ``config`` (TrainConfig as a dict), ``channels``,
``classes``, ``val_patient_ids``, ``history`` (column -> list), ``device``, ``amp_dtype``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from parotidlib.config import paper_lr_factor
from parotidlib.constants import CLASSES
from parotidlib.io import atomic_path
from parotidlib.learn.model import ReducedResNet

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """All RNG states as tensors: torch CPU, CUDA (every device), NumPy, Python, ``generators``."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng`; ``generators`` are set in place."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # A checkpoint from a machine with more GPUs restores the devices present.
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)
    npst = state["numpy"]
    np.random.set_state({
        "bit_generator": npst["bit_generator"],
        "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
        "has_gauss": npst["has_gauss"],
        "gauss": npst["gauss"],
    })
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    return Path(path)


class UnreadableTorchFileError(ValueError):
    """A ``torch.save`` file that the safe loader cannot read; the message says why (truncated
    or corrupt, or holding objects the safe unpickler refuses) and names the file."""


#: Parts of torch's messages that advise loading with the unsafe unpickler (or allowing more
#: of it): never passed on, since following them runs whatever code the file holds.
_UNSAFE_ADVICE = re.compile(r"weights_only|safe_globals|arbitrary code|trust", re.IGNORECASE)


def strip_unsafe_advice(message: str) -> str:
    """``message`` without torch's hints to retry with ``weights_only=False`` or to allow
    more globals (every sentence or line that mentions them), and without ANSI escapes."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    kept = []
    for line in message.splitlines():
        sentences = re.split(r"(?<=[.!?])\s+", line.strip())
        line = " ".join(p for p in sentences if p and not _UNSAFE_ADVICE.search(p))
        if line:
            kept.append(line)
    return " ".join(kept)


def _complete_zip(path: Path) -> bool:
    """Whether ``path`` is a complete zip archive (what ``torch.save`` writes) whose members
    all pass their CRC check."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError):
        return False


def describe_load_error(path: str | os.PathLike, exc: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words for the user: the file is
    truncated or corrupt, or it holds objects that the safe unpickler refuses (which are
    named; torch's advice to load it unsafely is left out), or torch's own message."""
    import pickle

    path = Path(path)
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        found = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\s+Please use|\n|$)", text,
                          re.DOTALL)
        detail = strip_unsafe_advice(found.group(1)).rstrip(".") if found else ""
        return ("it holds objects that the safe loader refuses"
                + (f" ({detail})" if detail else "")
                + "; the kit never loads such a file with the unsafe loader")
    if not _complete_zip(path):
        try:
            size = f"{path.stat().st_size} bytes"
        except OSError:
            size = "unreadable"
        return f"it is truncated or corrupt (not a complete torch file; {size})"
    return f"it cannot be read ({type(exc).__name__}: {strip_unsafe_advice(text)})"


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with an error that says what is wrong.

    Raises
    ------
    UnreadableTorchFileError
        The file is truncated or corrupt, or holds objects the safe unpickler refuses; the
        message names the file and never repeats torch's advice to load it unsafely.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # any unreadable file: say why, in our words
        raise UnreadableTorchFileError(f"{path}: {describe_load_error(path, exc)}") from None


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict with the safe unpickler (``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a checkpoint of this format, or truncated or corrupt
        (:class:`UnreadableTorchFileError`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint_path {str(path)!r} does not exist")
    ckpt = safe_load(path, map_location=map_location)
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint_path {str(path)!r} is not a parotidlib checkpoint of format "
            f"{FORMAT_VERSION} (format_version={version!r})"
        )
    return ckpt


def load_model(
    checkpoint_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ReducedResNet, dict[str, Any]]:
    """Rebuild the trained network from a checkpoint, in eval mode on ``device``.

    Parameters
    ----------
    checkpoint_path : path
        ``best.pt``, ``last.pt`` or an ``epoch_XXXX.pt`` written by ``train_model``.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    model : ReducedResNet
    meta : dict
        Everything of the checkpoint except the weights and optimiser/scheduler/scaler/RNG
        states: ``epoch``, ``config``, ``channels``, ``classes``, ``best_metric``,
        ``best_epoch``, ``select_metric``, ``val_patient_ids``, ``history``, ``model_args``...
    """
    ckpt = read_checkpoint(checkpoint_path, map_location="cpu")
    args = ckpt["model_args"]
    model = ReducedResNet(
        in_channels=int(args["in_channels"]),
        num_classes=int(args["num_classes"]),
        widths=tuple(int(w) for w in args["widths"]),
        blocks_per_stage=tuple(int(b) for b in args["blocks_per_stage"]),
    )
    model.load_state_dict(ckpt["model"])
    model.to(device=device, memory_format=torch.channels_last).eval()
    heavy = {"model", "optimizer", "scheduler", "scaler", "rng"}
    meta = {k: v for k, v in ckpt.items() if k not in heavy}
    logger.info("loaded %s (epoch %s) onto %s", checkpoint_path, meta.get("epoch"), device)
    return model, meta


# ----------------------------------------------------------------------------- resuming

#: Settings that may change between an interrupted run and its resumption: they do not change
#: the arithmetic (``epochs`` only extends the run; ``compile`` is speed only, and checkpoints
#: written before it existed lack it).
RESUME_MAY_DIFFER = frozenset({"epochs", "checkpoint_every", "num_threads", "device",
                               "compile"})
#: Settings that may change when the learning rate they give agrees on every epoch the
#: checkpoint has trained and on the epoch it resumes with.
LR_SCHEDULE = ("lr_decay_start", "lr_decay_every", "lr_decay_factor")


def check_resumable(ckpt: dict, config: dict[str, Any], channels: list[str],
                    val_patients: list, path: Path, classes: list[str] | None = None) -> None:
    """Raise ValueError unless ``ckpt`` comes from the same run as ``config`` and the data
    (and, when given, the same ``classes``: a checkpoint without them has the paper's).

    A learning-rate schedule that differs only after the checkpoint's epoch is accepted
    (:func:`parotidlib.config.paper_lr_factor` agrees on epochs ``0..ckpt["epoch"]``).
    """
    old = ckpt["config"]
    epoch = int(ckpt["epoch"])

    def factors(cfg: dict[str, Any]) -> list[float]:
        return [paper_lr_factor(e, cfg["lr_decay_start"], cfg["lr_decay_every"],
                                cfg["lr_decay_factor"]) for e in range(epoch + 1)]

    may_differ = set(RESUME_MAY_DIFFER)
    if all(k in old for k in LR_SCHEDULE) and factors(old) == factors(config):
        may_differ |= set(LR_SCHEDULE)
    changed = sorted(k for k in config if k not in may_differ and old.get(k) != config[k])
    problems = [f"{k}: {old.get(k)!r} -> {config[k]!r}" for k in changed]
    if list(ckpt["channels"]) != channels:
        problems.append(f"channels: {list(ckpt['channels'])} -> {channels}")
    if classes is not None and list(ckpt.get("classes") or CLASSES) != list(classes):
        problems.append(f"classes: {list(ckpt.get('classes') or CLASSES)} -> {list(classes)}")
    if list(ckpt["val_patient_ids"]) != val_patients:
        problems.append("val_patient_ids differ (the training data changed)")
    if problems:
        raise ValueError(
            f"cannot resume from {path}: " + "; ".join(problems)
            + ". Use another out_dir or resume=False."
        )


def clear_checkpoints(ckpt_dir: Path) -> None:
    """Remove the ``*.pt`` files of an earlier run (a fresh run must not mix with them)."""
    stale = sorted(Path(ckpt_dir).glob("*.pt"))
    if stale:
        logger.warning("resume=False: removing %d old checkpoints in %s", len(stale), ckpt_dir)
        for p in stale:
            p.unlink()


def cpu_copy(obj: Any) -> Any:
    """Deep copy of a checkpoint dict with every tensor cloned to the CPU."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj
