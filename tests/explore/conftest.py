"""Fixtures of the explorer tests: a tiny synthetic cohort and a tiny but real run folder on it
(curated, trained one epoch, predicted, radiomics baseline, saliency maps, params.yaml)."""

import json
import warnings

import numpy as np
import pytest
import yaml

from parotidlib.config import CurationConfig, TrainConfig
from parotidlib.data.curate import curate_cohort
from parotidlib.learn.explain import run_saliency, write_saliency
from parotidlib.learn.predict import predict_run
from parotidlib.learn.train import train_model
from parotidlib.radiomics.study import radiomics_baseline
from parotidlib.synth import generate_cohort


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """The manifest of 6 tiny synthetic patients (the built-in generator, 1/4 of the pixels)."""
    base = tmp_path_factory.mktemp("explore_cohort")
    return generate_cohort(base / "cohort", n_patients=6, seed=3, jobs=1, pixel_scale=4)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_cohort):
    """A run folder on :func:`tiny_cohort` with every file the run explorer reads."""
    run = tmp_path_factory.mktemp("explore_run") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = curate_cohort(tiny_cohort, run / "data", CurationConfig(
            image_size=16, test_fraction=0.34, curate_jobs=1), progress=False)
        train = ds.indices("train")
        train_model(np.asarray(ds.images)[train], ds.labels[train],
                    ds.slices["patient_id"].to_numpy()[train],
                    TrainConfig(epochs=1, batch_size=8, lr=1e-3, model_widths=(4, 8),
                                val_fraction=0.0, checkpoint_every=1),
                    run / "model", channels=ds.channels, progress=False)
        predictions = predict_run(run, batch_size=64, device="cpu")
        predictions.to_csv(run / "predictions.csv", index=False)
        baseline, _ = radiomics_baseline(run / "data", seed=0)
        baseline.to_csv(run / "radiomics_predictions.csv", index=False)
        write_saliency(run, run_saliency(run, predictions, device="cpu"), synthetic=True)
    (run / "params.yaml").write_text(yaml.safe_dump({"epochs": 1, "malignant_threshold": 2}))
    (run / "cohort.json").write_text(json.dumps({"manifest": str(tiny_cohort),
                                                 "fingerprint": "f" * 64}))
    return run
