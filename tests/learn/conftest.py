"""Fixtures of the learn tests: tiny trained run folders."""

import json
import warnings

import numpy as np
import pytest

from parotidlib.config import CurationConfig, TrainConfig
from parotidlib.constants import CHANNELS
from parotidlib.data.curate import curate_cohort
from parotidlib.learn.train import train_model
from parotidlib.synth import generate_cohort


@pytest.fixture(scope="session")
def make_tiny_run(tmp_path_factory):
    """``make_tiny_run(channels)``: a run folder (data/, model/, cohort.json) trained for one
    epoch on 6 tiny synthetic patients at 16 px."""

    def make(channels: tuple[str, ...] = CHANNELS):
        base = tmp_path_factory.mktemp("tiny_run")
        manifest = generate_cohort(base / "cohort", n_patients=6, seed=3, jobs=1,
                                   pixel_scale=4)
        run = base / "run"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = curate_cohort(manifest, run / "data", CurationConfig(
                image_size=16, channels=tuple(channels), test_fraction=0.34, curate_jobs=1),
                progress=False)
        train = ds.indices("train")
        train_model(np.asarray(ds.images)[train], ds.labels[train],
                    ds.slices["patient_id"].to_numpy()[train],
                    TrainConfig(epochs=1, batch_size=8, lr=1e-3, model_widths=(4, 8),
                                val_fraction=0.0, checkpoint_every=1),
                    run / "model", channels=ds.channels, progress=False)
        (run / "cohort.json").write_text(json.dumps({"manifest": str(manifest),
                                                     "fingerprint": "f" * 64}))
        return run

    return make


@pytest.fixture(scope="session")
def run_dir(make_tiny_run):
    """A tiny run trained on the channels t1, ce_t1, gland (a composition of Table 3)."""
    return make_tiny_run(("t1", "ce_t1", "gland"))
