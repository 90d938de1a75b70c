"""Where the network looks, for a run: the saliency summary of its test slices, stored and read.

:func:`run_saliency` applies :func:`parotidlib.learn.saliency.saliency_summary` (Grad-CAM or
Grad-CAM++ of the last residual stage, the maps' share inside the tumour mask per class, the
model-parameter randomisation check of Adebayo et al. 2018, examples per class) to the test
slices of a run folder with the checkpoint 30-evaluate used, the predicted classes taken from
``predictions.csv``. :func:`write_saliency` stores it in two files of the run folder (written
by the ``saliency`` stage, ``45-saliency``; drawn by ``50-report``):

* ``saliency.json``: the summary without arrays, plus ``computed`` (False, with a
  ``reason``, under ``saliency: false`` or for a model without an MR series channel),
  ``checkpoint``, ``synthetic``, ``mask_background`` (of the curation) and, per example,
  ``patient_id``, ``slice_index`` and ``side`` of the slice (the pseudonymous ids of the
  cohort, as in predictions.csv);
* ``saliency_maps.npz``: ``images`` (the examples' input slices, uint8 N x C x H x W),
  ``maps`` (their true-class maps, N x H x W float32), ``maps_predicted`` (predicted-class
  maps) and ``channels``.

:func:`read_saliency` reads both back and checks they agree, importing no torch (the report
stage's figures need neither torch nor the network); the report's words and per-class table
are made from them by :mod:`parotidlib.report.saliency_text`.

References
----------
Selvaraju RR, et al. Grad-CAM. ICCV 2017. doi:10.1109/ICCV.2017.74
Adebayo J, et al. Sanity checks for saliency maps. NeurIPS 2018.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.constants import CLASSES, GLAND_CHANNEL
from parotidlib.data.dataset import load_dataset
from parotidlib.io import atomic_path, write_text_atomic

#: Columns identifying a slice in slices.csv and predictions.csv.
SLICE_KEY: tuple[str, ...] = ("patient_id", "slice_index", "side")
SALIENCY_JSON = "saliency.json"
SALIENCY_MAPS = "saliency_maps.npz"


def _test_positions(slices: pd.DataFrame, predictions: pd.DataFrame) -> tuple[np.ndarray,
                                                                             pd.DataFrame]:
    """Dataset row of every test prediction (one-to-one, by patient, slice and side)."""
    missing = [c for c in (*SLICE_KEY, "split", "true_label", "predicted_label")
               if c not in predictions]
    if missing:
        raise ValueError(f"predictions.csv lacks the columns {missing}")
    test = predictions[predictions["split"] == "test"].reset_index(drop=True)
    table = slices[list(SLICE_KEY)].reset_index(drop=True).copy()
    table["_row"] = np.arange(len(table))
    keyed = test[list(SLICE_KEY)].astype({"slice_index": table["slice_index"].dtype})
    twice = keyed.duplicated(keep=False)
    if twice.any():
        raise ValueError(f"predictions.csv lists {int(twice.sum())} test rows for slices it "
                         f"lists more than once (first: {keyed[twice].iloc[0].to_dict()})")
    joined = keyed.merge(table, on=list(SLICE_KEY), how="left", validate="one_to_one")
    unknown = joined["_row"].isna()
    if unknown.any():
        first = test.loc[unknown.to_numpy(), list(SLICE_KEY)].iloc[0].to_dict()
        raise ValueError(f"{int(unknown.sum())} test slices of predictions.csv are not in the "
                         f"curated dataset (first: {first}); predictions.csv does not belong "
                         f"to this run's data/")
    rows = joined["_row"].to_numpy(dtype=np.int64)
    labels = slices["label"].to_numpy()[rows]
    wrong = labels != test["true_label"].to_numpy()
    if wrong.any():
        raise ValueError(f"{int(wrong.sum())} test slices of predictions.csv have another label "
                         f"than the curated dataset's (first: "
                         f"{test.loc[wrong, list(SLICE_KEY)].iloc[0].to_dict()})")
    return rows, test


def saliency_unavailable(channels: Sequence[str]) -> str | None:
    """Why a model with these input channels gets no saliency analysis (None: it does).

    The region of interest is read off the first MR series channel of the study
    (:func:`~parotidlib.learn.saliency.roi_reference_channel`); a model of the ``gland``
    channel alone has none.
    """
    if all(c == GLAND_CHANNEL for c in channels):
        return (f"no saliency analysis: the model's channels {list(channels)} include no MR "
                f"series to take the tumour's region of interest from")
    return None


def model_channels(run_dir: str | Path, checkpoint: str = "best") -> tuple[str, ...]:
    """The input channels of a run's trained network (its checkpoint's ``channels``)."""
    from parotidlib.learn.predict import load_run_model

    _, meta, _ = load_run_model(run_dir, checkpoint, "cpu")
    return tuple(meta.get("channels") or ())


def run_saliency(run_dir: str | Path, predictions: pd.DataFrame, checkpoint: str = "best",
                 method: str = "gradcam", per_class: int = 2, seed: int = 0,
                 batch_size: int = 64, device: str = "auto") -> dict[str, Any]:
    """The saliency summary of a run's test slices with its trained network.

    Parameters
    ----------
    run_dir : path
        Run folder with ``data/`` and ``model/checkpoints/<checkpoint>.pt``.
    predictions : DataFrame
        The run's ``predictions.csv`` (30-evaluate); its test rows give the slices explained
        and their predicted classes.
    checkpoint : {"best", "last"}
        The weights explained (those 30-evaluate predicted with).
    method : {"gradcam", "gradcam++"}
    per_class, seed, batch_size
        As :func:`parotidlib.learn.saliency.saliency_summary`.
    device : str
        ``auto`` (cuda, then mps, then cpu) or an explicit device.

    Returns
    -------
    dict
        :func:`~parotidlib.learn.saliency.saliency_summary`'s dict plus ``checkpoint``,
        ``channels``, ``images`` (the examples' slices) and, per example, the slice's
        ``patient_id``, ``slice_index`` and ``side``.
    """
    from parotidlib.learn.predict import load_run_model
    from parotidlib.learn.saliency import METHODS, saliency_summary

    run_dir = Path(run_dir)
    if method not in METHODS:
        raise ValueError(f"saliency_method must be one of {sorted(METHODS)}, got {method!r}")
    model, meta, dev = load_run_model(run_dir, checkpoint, device)
    channels = tuple(meta.get("channels") or ())
    dataset = load_dataset(run_dir / "data", channels=channels or None)
    channels = tuple(dataset.channels)
    reason = saliency_unavailable(channels)
    if reason:
        raise ValueError(reason)
    rows, test = _test_positions(dataset.slices, predictions)
    images = np.asarray(dataset.images[rows])
    summary = saliency_summary(model, images, test["true_label"].to_numpy(),
                               test["predicted_label"].to_numpy(), channels,
                               per_class=per_class, seed=seed, method=method,
                               batch_size=batch_size, device=dev,
                               classes=tuple(dataset.meta.get("classes") or meta.get("classes")
                                             or CLASSES))
    picked = np.array([e["index"] for e in summary["examples"]], dtype=np.int64)
    for example in summary["examples"]:
        row = test.iloc[example["index"]]
        example.update(patient_id=str(row["patient_id"]), slice_index=int(row["slice_index"]),
                       side=str(row["side"]))
    summary.update(mask_background=bool(dataset.meta.get("config", {})
                                        .get("mask_background", True)),
                   checkpoint=checkpoint, channels=list(channels),
                   images=images[picked] if picked.size else images[:0])
    return summary


def write_saliency(run_dir: str | Path, summary: Mapping[str, Any] | None,
                   synthetic: bool, reason: str = "saliency: false") -> Path:
    """Write ``saliency.json`` (and ``saliency_maps.npz`` when computed), each atomically.

    ``summary`` None records that the stage computed nothing, and ``reason`` why (``saliency:
    false``, or :func:`saliency_unavailable`'s reason); the maps file of an earlier run is then
    removed, so that the report never shows stale maps. Returns the JSON file's path.
    """
    run_dir = Path(run_dir)
    maps_path = run_dir / SALIENCY_MAPS
    if summary is None:
        maps_path.unlink(missing_ok=True)
        return write_text_atomic(run_dir / SALIENCY_JSON, json.dumps(
            {"computed": False, "reason": reason, "synthetic": bool(synthetic)}, indent=2))
    arrays = {"images": np.asarray(summary["images"], dtype=np.uint8),
              "maps": np.asarray(summary["maps"], dtype=np.float32),
              "maps_predicted": np.asarray(summary["maps_predicted"], dtype=np.float32),
              "channels": np.asarray(summary["channels"], dtype=str)}
    with atomic_path(maps_path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: savez would append ".npz" to a name
            np.savez_compressed(handle, **arrays)
    record = {k: v for k, v in summary.items() if k not in arrays}
    record.update(computed=True, synthetic=bool(synthetic), n_examples=len(summary["examples"]))
    return write_text_atomic(run_dir / SALIENCY_JSON, json.dumps(record, indent=2))


def read_saliency(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """``(summary, arrays)`` of a run's saliency files; None without ``saliency.json`` or when
    the stage ran with ``saliency: false`` (``summary["computed"]`` False: arrays empty)."""
    run_dir = Path(run_dir)
    path = run_dir / SALIENCY_JSON
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if not summary.get("computed"):
        return summary, {}
    maps_path = run_dir / SALIENCY_MAPS
    if not maps_path.is_file():
        raise FileNotFoundError(f"{path} says the saliency was computed, but {maps_path} is "
                                f"missing: rerun the saliency stage (--force)")
    with np.load(maps_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    n = len(summary["examples"])
    for key in ("images", "maps", "maps_predicted"):
        if arrays[key].shape[0] != n:
            raise ValueError(f"{maps_path}: {key} holds {arrays[key].shape[0]} examples, "
                             f"{path} lists {n}")
    return summary, arrays
