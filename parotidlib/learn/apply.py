"""Applying a model bundle to another cohort: what it needs, how the cohort is curated for
it, and its slice predictions (the predict chain, notebooks 70-72).

The cohort is curated with the bundle's input settings (:data:`.bundle.INPUT_SETTINGS`: the
image size, channels, crop margin, normalisation, masking and minimum tumour area the model
was trained with) and without a split (every patient ``"external"``,
``curate_cohort(external=True)``); only the job count and ``skip_invalid_patients`` are the
user's. Predictions come out in the columns of a training run's ``predictions.csv``, with an
empty ``true_label`` on the lesion slices of patients without histology.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.config import CurationConfig
from parotidlib.constants import GLAND_CHANNEL, REFERENCE_SERIES
from parotidlib.data.dataset import load_dataset
from parotidlib.data.manifest import read_manifest_table
from parotidlib.data.split import EXTERNAL
from parotidlib.learn.bundle import INPUT_SETTINGS, Bundle, BundleError
from parotidlib.learn.device import resolve_device
from parotidlib.learn.predict import predict_proba, predictions_frame
from parotidlib.study import QUANTITATIVE, Study

logger = logging.getLogger(__name__)

__all__ = ["bundle_frame", "check_cohort", "cohort_columns", "curation_for", "model_record",
           "predict_cohort"]


def cohort_columns(study: Study, channel: str) -> tuple[str, ...]:
    """The manifest columns a model channel needs, after the study it was trained with.

    The series' image (the gland channel: T1's, the grid it is cropped from), the label map
    its regions of interest come from (its own, or ``labels_from``'s) and, for a quantitative
    series (the ADC), its scale column.
    """
    series = REFERENCE_SERIES if channel == GLAND_CHANNEL else channel
    columns = [series, f"{study.labels_of(series)}_labels"]
    if series in QUANTITATIVE:
        columns.append(QUANTITATIVE[series].scale_column)
    return tuple(columns)


def check_cohort(bundle: Bundle, manifest: str | Path) -> None:
    """Refuse a cohort that cannot supply every input channel of the model.

    A channel needs the columns :func:`cohort_columns` names after the bundle's study
    (``series``, ``labels_from``) in every patient's row. Raises :class:`.bundle.BundleError`
    naming the channels, the manifest columns and up to five patients that lack them.
    """
    table = read_manifest_table(manifest)
    missing: list[str] = []
    study = bundle.curation.study
    for channel in bundle.channels:
        for column in cohort_columns(study, channel):
            if column not in table.columns:
                missing.append(f"{channel} (no column {column!r})")
                continue
            empty = table.loc[table[column].astype(str).str.strip() == "", "patient_id"]
            if len(empty):
                shown = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
                missing.append(f"{channel} ({column!r} empty for {len(empty)} patient(s): "
                               f"{shown})")
    if missing:
        lacking = [c for c in bundle.channels if any(m.startswith(f"{c} ") for m in missing)]
        raise BundleError(f"the model in {bundle.path} needs the input channel(s) "
                          f"{list(bundle.channels)}; the cohort {manifest} cannot supply "
                          f"{lacking}: {'; '.join(missing)}")


def curation_for(bundle: Bundle, curate_jobs: int = 0, skip_invalid_patients: bool = False
                 ) -> CurationConfig:
    """The curation settings of a cohort the bundle is applied to: the bundle's input
    settings, the given job count and invalid-patient handling."""
    return dataclasses.replace(bundle.curation, curate_jobs=curate_jobs,
                               skip_invalid_patients=skip_invalid_patients)


def predict_cohort(bundle: Bundle, run_dir: str | Path, batch_size: int = 256,
                   device: str = "auto") -> pd.DataFrame:
    """Slice predictions of the bundle's model for the cohort curated into ``run_dir/data``.

    Raises
    ------
    BundleError
        The curated dataset was made with other input settings than the bundle's.

    Returns
    -------
    pandas.DataFrame
        predictions.csv: patient_id, slice_index, true_label (empty on unknown lesion
        slices), z_mm, side, histology, split (``"external"``), prob_<class>,
        predicted_label.
    """
    dataset = load_dataset(Path(run_dir) / "data")
    made_with = {k: dataset.meta["config"].get(k) for k in INPUT_SETTINGS}
    wanted = {k: v for k, v in dataclasses.asdict(bundle.curation).items()
              if k in INPUT_SETTINGS}
    wanted = {k: list(v) if isinstance(v, tuple) else v for k, v in wanted.items()}
    differ = {k: (made_with[k], wanted[k]) for k in INPUT_SETTINGS if made_with[k] != wanted[k]}
    if differ:
        raise BundleError(f"the dataset {dataset.path} was curated with other input settings "
                          f"than the model in {bundle.path} needs (setting: (dataset, model)): "
                          f"{differ}; curate the cohort again with 70-predict-curate")
    bundle.require_channels(dataset.channels, where=f"the dataset {dataset.path}")
    if set(dataset.slices["split"]) != {EXTERNAL}:
        logger.warning("%s holds %s splits, not only %r: every slice is predicted",
                       dataset.path, sorted(set(dataset.slices["split"])), EXTERNAL)
    images = load_dataset(dataset.path, channels=bundle.channels).images
    dev = resolve_device(device)
    probs = predict_proba(bundle.model, np.asarray(images), batch_size=batch_size, device=dev)
    slices = dataset.slices.copy()
    return predictions_frame(slices, probs, bundle.classes)


def model_record(bundle: Bundle) -> dict[str, Any]:
    """What a report says about the model applied (no weights; JSON-able)."""
    meta = bundle.meta
    internal = meta.get("internal_test") or {}
    return {"bundle": bundle.path.name, "training_run": internal.get("run"),
            "training_cohort_synthetic": internal.get("synthetic"),
            "kit_version": meta.get("kit_version"), "git_commit": meta.get("git_commit"),
            "training_cohort_fingerprint": meta.get("training_cohort_fingerprint"),
            "checkpoint": meta.get("checkpoint"), "epoch": meta.get("epoch"),
            "channels": list(bundle.channels), "malignant_threshold": bundle.malignant_threshold}


def bundle_frame(bundle: Bundle) -> pd.DataFrame:
    """The model applied, for the report: its record and the input settings it imposes."""
    record = model_record(bundle)
    rows = {**{k: v for k, v in record.items() if v is not None},
            **{f"input: {k}": v for k, v in dataclasses.asdict(bundle.curation).items()
               if k in INPUT_SETTINGS and k != "channels"}}
    counts = bundle.meta.get("training_counts", {}).get("patients", {})
    if counts:
        rows["training patients (train / test)"] = (
            f"{counts.get('train', {}).get('all', '?')} / {counts.get('test', {}).get('all', '?')}")
    frame = pd.Series({k: (", ".join(map(str, v)) if isinstance(v, list) else str(v))
                       for k, v in rows.items()}, name="value").to_frame()
    frame.index.name = "model"
    return frame
