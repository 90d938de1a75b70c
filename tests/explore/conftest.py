"""Fixtures of the explorer tests: a tiny synthetic cohort and a tiny but real run folder on it
(curated, trained one epoch, predicted, radiomics baseline, saliency maps, params.yaml); a tiny
synthetic cohort of another study (DWI and ADC, five histologies) and a three-class run on it
(series t1, t2 and ADC, the benign_malignant scheme)."""

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


def _trained(manifest, run, **curation):
    """Curate ``manifest`` into ``run/data`` (16 px, a third of the patients in test, the
    ``curation`` settings), train one epoch of a tiny network on the dataset's classes and
    predict: (dataset, predictions)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = curate_cohort(manifest, run / "data", CurationConfig(
            image_size=16, test_fraction=0.34, curate_jobs=1, **curation), progress=False)
        train = ds.indices("train")
        train_model(np.asarray(ds.images)[train], ds.labels[train],
                    ds.slices["patient_id"].to_numpy()[train],
                    TrainConfig(epochs=1, batch_size=8, lr=1e-3, model_widths=(4, 8),
                                val_fraction=0.0, checkpoint_every=1),
                    run / "model", channels=ds.channels, classes=ds.classes, progress=False)
        return ds, predict_run(run, batch_size=64, device="cpu")


#: The other study's cohort: the paper's three histologies and two more (one per patient or so).
STUDY_MIX = {"pleomorphic_adenoma": 1.0, "warthin": 1.0, "malignant": 1.0,
             "basal_cell_adenoma": 1.0, "mucoepidermoid_carcinoma": 1.0}
#: The other study's series (an ADC map among them).
STUDY_SERIES = ("t1", "t2", "adc")


@pytest.fixture(scope="session")
def study_cohort(tmp_path_factory):
    """The manifest of 7 tiny synthetic patients with DWI and ADC series (``diffusion=True``)
    and five histologies (:data:`STUDY_MIX`)."""
    base = tmp_path_factory.mktemp("explore_study_cohort")
    return generate_cohort(base / "cohort", n_patients=7, seed=3, jobs=1, pixel_scale=4,
                           histologies=STUDY_MIX, diffusion=True)


@pytest.fixture(scope="session")
def study_run(tmp_path_factory, study_cohort):
    """A run folder on :func:`study_cohort` curated with series t1, t2 and ADC (channels
    t1, t2, adc, gland) under the benign_malignant scheme (classes free, benign, malignant),
    trained one epoch and predicted; the predictions' probabilities then replaced by seeded
    random ones (predicted label their argmax), so that the decisions depend on the
    threshold (a one-epoch model predicts one class everywhere)."""
    run = tmp_path_factory.mktemp("explore_study_run") / "run"
    ds, predictions = _trained(study_cohort, run, series=STUDY_SERIES,
                               channels=(*STUDY_SERIES, "gland"), classes="benign_malignant")
    probabilities = np.random.default_rng(0).dirichlet(np.full(len(ds.classes), 0.4),
                                                       size=len(predictions))
    for j, name in enumerate(ds.classes):
        predictions[f"prob_{name}"] = probabilities[:, j]
    predictions["predicted_label"] = np.asarray(ds.classes)[probabilities.argmax(axis=1)]
    predictions.to_csv(run / "predictions.csv", index=False)
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_cohort):
    """A run folder on :func:`tiny_cohort` with every file the run explorer reads."""
    run = tmp_path_factory.mktemp("explore_run") / "run"
    _, predictions = _trained(tiny_cohort, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions.to_csv(run / "predictions.csv", index=False)
        baseline, _ = radiomics_baseline(run / "data", seed=0)
        baseline.to_csv(run / "radiomics_predictions.csv", index=False)
        write_saliency(run, run_saliency(run, predictions, device="cpu"), synthetic=True)
    (run / "params.yaml").write_text(yaml.safe_dump({"epochs": 1, "malignant_threshold": 2}))
    (run / "cohort.json").write_text(json.dumps({"manifest": str(tiny_cohort),
                                                 "fingerprint": "f" * 64}))
    return run
