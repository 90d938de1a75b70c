"""What a run is about to do, said before it starts: the profile and an estimate of its duration.

Nothing is measured or profiled here: the estimate is arithmetic on the params. The training
work of a profile is compared with the quick CPU profile's (the library defaults,
``params/default.yaml``: 24 epochs at 64 px, about a minute of training on two CPU cores for
the built-in cohort; bench/README.md): epochs times pixels per slice. A profile of more than
ten times that work is a GPU job; the paper's protocol (1200 epochs at 224 px) is about 600
times it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parotidlib.config import CurationConfig, TrainConfig, field_defaults

_BASE = field_defaults(TrainConfig)["epochs"] * field_defaults(CurationConfig)["image_size"] ** 2


def training_work(params: Mapping[str, Any]) -> float:
    """Training work of ``params`` relative to the quick CPU profile (epochs x pixels)."""
    return params["epochs"] * params["image_size"] ** 2 / _BASE


def duration_class(params: Mapping[str, Any]) -> str:
    """``"CPU minutes"``, ``"CPU hours (GPU minutes)"`` or ``"GPU hours (days on a CPU)"``."""
    work = training_work(params)
    if work <= 10:
        return "CPU minutes"
    if work <= 100:
        return "CPU hours (GPU minutes)"
    return "GPU hours (days on a CPU)"


def describe_profile(params: Mapping[str, Any], path: str | Path) -> str:
    """One line for the console: which profile, its size, and how long it should take."""
    cohort = params["cohort_manifest"] or (
        f"built-in synthetic cohort ({params['synth_patients']} patients)")
    text = (f"params {Path(path).name}: {params['epochs']} epochs at {params['image_size']} px, "
            f"batch {params['batch_size']}, lr {params['lr']:g}, device {params['device']}, "
            f"cohort {cohort}; training is {training_work(params):.3g}x the quick CPU "
            f"profile's work: expect {duration_class(params)}")
    if params["device"] == "cpu" and training_work(params) > 100:
        text += " (device is 'cpu': this will take days; use a GPU or params/default.yaml)"
    return text
