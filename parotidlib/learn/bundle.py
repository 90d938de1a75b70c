"""A trained model as one self-describing file: the model bundle (``<run>/bundle.pt``).

Everything needed to apply a run's model to new patients travels with its weights: the
network's settings, the input channels and their order, the curation settings the inputs must
be made with (image size, crop margin, normalisation and percentiles, masking, minimum tumour
area), the class names and the class scheme that mapped the training cohort's histologies to
them (a cohort the model is applied to is mapped with it), the decision rule's
malignant-slice threshold, the kit's version and git commit, and the training cohort's
fingerprint. The file holds plain tensors, dicts, lists,
numbers and strings only, so it loads with ``torch.load(weights_only=True)`` and runs no code.

The statistics stage (40-statistics) writes it, once the decision rule's threshold is fixed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from parotidlib import __version__
from parotidlib.config import CurationConfig, section
from parotidlib.constants import CLASSES
from parotidlib.io import atomic_path
from parotidlib.learn.checkpoint import describe_load_error, read_checkpoint
from parotidlib.learn.model import ReducedResNet
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

#: Format tag of a bundle; :func:`load_bundle` refuses any other.
BUNDLE_FORMAT = "parotidlib.model-bundle/1"
BUNDLE_NAME = "bundle.pt"
#: Curation settings a new cohort must be curated with to be fed to the model (the rest of
#: CurationConfig, the split and the job count, do not change a slice). The series and their
#: label maps (parotidlib.study) come first: the channels are checked against them. The class
#: scheme (``classes``) gives the slices' labels: a cohort's histologies are mapped with the
#: model's.
INPUT_SETTINGS = ("series", "labels_from", "classes", "image_size", "channels",
                  "crop_margin_mm", "mask_background", "min_tumor_area_mm2", "normalisation",
                  "percentile_low", "percentile_high")


class BundleError(ValueError):
    """A bundle cannot be read or cannot be applied; the message says what is missing."""


@dataclass(frozen=True)
class Bundle:
    """A loaded model bundle."""

    path: Path
    model: ReducedResNet
    channels: tuple[str, ...]
    curation: CurationConfig
    classes: tuple[str, ...]
    malignant_threshold: int
    meta: dict[str, Any]

    @property
    def class_scheme(self) -> ClassScheme:
        """The class scheme of the training dataset (``meta["class_scheme"]``; a bundle
        written before the scheme existed: its curation's, the paper's)."""
        record = self.meta.get("class_scheme")
        return ClassScheme.from_record(record) if record else self.curation.class_scheme

    def internal_predictions(self):
        """The training run's test predictions (a predictions.csv frame), None when the
        bundle holds none."""
        import pandas as pd

        internal = self.meta.get("internal_test")
        if not internal:
            return None
        return pd.DataFrame(internal["predictions"])

    def require_channels(self, available: Iterable[str], where: str = "the target cohort"
                         ) -> None:
        """Refuse a target that cannot supply every input channel of the model."""
        missing = [c for c in self.channels if c not in set(available)]
        if missing:
            raise BundleError(f"the model in {self.path} needs the input channel(s) "
                              f"{list(self.channels)}; {where} cannot supply {missing}")


def write_bundle(run_dir: str | Path, checkpoint: str = "best", malignant_threshold: int = 2,
                 git_commit: str = "unknown") -> Path:
    """Write ``run_dir/bundle.pt`` from the run's checkpoint and curated dataset.

    Parameters
    ----------
    run_dir : path
        A run folder with ``model/checkpoints/<checkpoint>.pt`` and ``data/dataset.json``.
    checkpoint : str
        ``"best"`` or ``"last"``: the weights the run was evaluated with.
    malignant_threshold : int
        The decision rule's threshold (Figure 5) the run's patient results used.
    git_commit : str
        The kit's commit (``parotidlib.run.provenance.git_commit``).

    Raises
    ------
    ValueError
        The checkpoint's classes are not the dataset's (a model trained on another
        curation).
    """
    run_dir = Path(run_dir)
    ckpt = read_checkpoint(run_dir / "model" / "checkpoints" / f"{checkpoint}.pt")
    dataset = json.loads((run_dir / "data" / "dataset.json").read_text())
    curation = {k: dataset["config"][k] for k in INPUT_SETTINGS if k in dataset["config"]}
    curation["channels"] = list(ckpt.get("channels") or dataset["channels"])
    classes = list(ckpt.get("classes") or CLASSES)
    scheme = dataset.get("class_scheme") or PAPER_CLASSES.record()
    if classes != list(dataset.get("classes") or CLASSES):
        raise ValueError(f"the checkpoint {checkpoint!r} of {run_dir} was trained on the "
                         f"classes {classes}, but {run_dir / 'data'} has "
                         f"{dataset.get('classes')} (class scheme {scheme['name']!r})")
    cohort = {}
    if (run_dir / "cohort.json").is_file():
        cohort = json.loads((run_dir / "cohort.json").read_text())
    bundle = {
        "format": BUNDLE_FORMAT,
        "model": ckpt["model"],
        "model_args": ckpt["model_args"],
        "channels": curation["channels"],
        "curation": curation,
        "classes": classes,
        "class_scheme": scheme,
        "malignant_threshold": int(malignant_threshold),
        "checkpoint": checkpoint,
        "epoch": int(ckpt["epoch"]),
        "train_config": ckpt.get("config", {}),
        "kit_version": __version__,
        "git_commit": git_commit,
        "training_cohort_fingerprint": cohort.get("fingerprint") or dataset.get("cohort_sha256"),
        "training_counts": dataset.get("counts", {}),
    }
    internal = _internal_test(run_dir, classes)
    if internal is not None:
        bundle["internal_test"] = internal
    path = run_dir / BUNDLE_NAME
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)
    return path


#: Columns of the training run's test predictions kept in the bundle (``internal_test``),
#: with ``prob_<class>`` of each of the model's classes after ``split``.
INTERNAL_COLUMNS = ("patient_id", "slice_index", "true_label", "histology", "split",
                    "predicted_label")


def _internal_test(run_dir: Path, classes: list[str]) -> dict[str, Any] | None:
    """The training run's test-split predictions (predictions.csv) as plain lists, so that an
    external report shows the internal results beside its own, computed the same way, from
    the bundle file alone."""
    import pandas as pd

    path = run_dir / "predictions.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"patient_id": str, "split": str, "true_label": str,
                                     "predicted_label": str, "histology": str})
    test = table[table["split"] == "test"]
    wanted = [*INTERNAL_COLUMNS[:-1], *(f"prob_{c}" for c in classes), INTERNAL_COLUMNS[-1]]
    columns = [c for c in wanted if c in test.columns]
    synthetic = None
    try:
        from parotidlib.data.sources import run_is_synthetic

        synthetic = bool(run_is_synthetic(run_dir))
    except (OSError, ValueError, KeyError):
        pass
    return {"run": run_dir.name, "synthetic": synthetic,
            "predictions": {c: test[c].tolist() for c in columns}}


def load_bundle(source: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle file, or the bundle of a run folder, with the safe unpickler.

    Raises
    ------
    BundleError
        No bundle there, one that is truncated or corrupt, holds objects the safe unpickler
        refuses (torch's advice to load it unsafely is never repeated), or is of a format
        this kit does not know; the message names the file.
    """
    path = Path(source)
    if path.is_dir():
        path = path / BUNDLE_NAME
    raw = _read_bundle(path)
    found = raw.get("format")
    if found != BUNDLE_FORMAT:
        raise BundleError(f"{path} has bundle format {found!r}; this kit reads "
                          f"{BUNDLE_FORMAT!r}")
    args = raw["model_args"]
    if len(raw["classes"]) != int(args["num_classes"]):
        raise BundleError(f"{path} names {len(raw['classes'])} classes {list(raw['classes'])} "
                          f"but its network has {args['num_classes']} outputs")
    model = ReducedResNet(in_channels=int(args["in_channels"]),
                          num_classes=int(args["num_classes"]),
                          widths=tuple(int(w) for w in args["widths"]),
                          blocks_per_stage=tuple(int(b) for b in args["blocks_per_stage"]))
    model.load_state_dict(raw["model"])
    model.to(device=device, memory_format=torch.channels_last).eval()
    curation = section(raw["curation"], CurationConfig)
    meta = {k: v for k, v in raw.items() if k not in ("model",)}
    return Bundle(path=path, model=model, channels=tuple(raw["channels"]), curation=curation,
                  classes=tuple(raw["classes"]),
                  malignant_threshold=int(raw["malignant_threshold"]), meta=meta)


def _read_bundle(path: Path) -> Mapping[str, Any]:
    """The dict of a bundle file, read with the safe unpickler (``weights_only=True``).

    Raises
    ------
    BundleError
        No file there, one that is truncated or corrupt, or that holds objects the safe
        unpickler refuses or anything but a dict; torch's advice to load it unsafely is never
        repeated.
    """
    if not path.is_file():
        raise BundleError(f"no model bundle at {path} (a run folder's statistics stage "
                          f"writes {BUNDLE_NAME})")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or objects the loader refuses
        why = describe_load_error(path, exc)
        if "truncated" in why:
            why += ": copy it again, or rerun the statistics stage of the run that wrote it"
        raise BundleError(f"{path} is not a model bundle: {why}") from None
    if not isinstance(raw, Mapping):
        raise BundleError(f"{path} is not a model bundle: it holds a {type(raw).__name__}, "
                          f"not a dict")
    return raw


def bundle_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata of a model bundle without its weights, for a report or checklist.

    The file is read with ``torch.load(weights_only=True)`` (torch's restricted unpickler:
    no code of the file runs) and its format is not checked, so that a report can describe
    any bundle it finds.

    Parameters
    ----------
    path : path
        The bundle file.

    Returns
    -------
    dict or None
        Every key of the bundle except ``model`` (the weights); ``internal_test`` keeps only
        ``run`` and ``synthetic``. None when the file is absent or unreadable (logged).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        raw = _read_bundle(path)
    except BundleError as exc:
        logger.warning("cannot read the metadata of %s: %s", path, exc)
        return None
    meta = {k: v for k, v in raw.items() if k != "model"}
    internal = meta.get("internal_test")
    if isinstance(internal, Mapping):
        meta["internal_test"] = {k: internal.get(k) for k in ("run", "synthetic")}
    return meta
