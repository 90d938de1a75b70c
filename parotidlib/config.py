"""Every setting of the kit, in one torch-free module: the config dataclasses and their checks.

A params file (``params/*.yaml``) is a flat mapping of the field names below;
:mod:`parotidlib.params` reads it, merges it over these defaults and builds each section.
Each stage of a run reads its own sections (``docs/design.md``, "Params"):

=========== ========================== ================================================
section     dataclass                  used by
=========== ========================== ================================================
run         :class:`RunConfig`         which cohort (``data.sources``)
curate      :class:`CurationConfig`    10-curate (``data.curate``, ``data.preprocess``);
                                       its ``series`` and ``labels_from`` are the
                                       study's series (:mod:`parotidlib.study`)
train       :class:`TrainConfig`       20-train (``learn.train``)
radiomics   :class:`RadiomicsConfig`   the radiomics baseline: 30-evaluate fits it
                                       (``radiomics.study``), 40-statistics compares it
saliency    :class:`SaliencyConfig`    45-saliency (``learn.explain``)
evaluate    :class:`EvaluationConfig`  30-evaluate (prediction) and 40-statistics
ablation    :class:`AblationConfig`    the channel ablation batch (``run.ablation``)
predict     :class:`PredictConfig`     70-72, a trained model applied to another cohort
batch       :class:`BatchConfig`       a grid of runs and its executor (``run.batch``)
=========== ========================== ================================================

The defaults are the quick CPU profile (``params/default.yaml``: 64 px, 24 epochs at a high
learning rate), so that a notebook opened in JupyterLab and run as it is finishes in minutes;
the paper's protocol (224 px, lr 1e-6, 1200 epochs; Xia et al. 2021, Methods) is
``params/paper.yaml``. Importing this module imports neither torch nor scikit-learn.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The checks live in parotidlib.checks (the study definition builds on them too); they are
# part of this module's API as well.
from parotidlib.checks import (  # noqa: F401
    ParamsError,
    check_bool,
    check_channels,
    check_channels_of_series,
    check_choice,
    check_int,
    check_labels_from,
    check_real,
    check_series,
    is_int,
    is_real,
)
from parotidlib.constants import CHANNELS, GLAND_CHANNEL, SERIES
from parotidlib.study import ClassScheme, Study, class_scheme


def _set(obj: Any, key: str, value: Any) -> None:
    object.__setattr__(obj, key, value)  # normalising a field of a frozen dataclass


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RunConfig:
    """Which cohort a run reads."""

    # Path to a cohort's manifest.csv (docs/cohort-format.md). Empty: the built-in synthetic
    # cohort under data/synthetic, generated on first use. Relative paths are resolved from
    # the project root.
    cohort_manifest: str = ""
    synth_patients: int = 233  # size of the built-in synthetic cohort (Table 1: 233)
    synth_seed: int = 0  # seed of the built-in synthetic cohort

    def __post_init__(self) -> None:
        check_int("synth_patients", self.synth_patients, 3)
        check_int("synth_seed", self.synth_seed, 0)


NORMALISATIONS: tuple[str, ...] = ("percentile", "minmax")


@dataclass(frozen=True)
class CurationConfig:
    """Curation: the cohort's series (the study definition, :mod:`parotidlib.study`), crops,
    normalisation, masking (:mod:`parotidlib.data.preprocess`) and the patient split
    (:mod:`parotidlib.data.split`)."""

    # The cohort's MR series (manifest columns); t1 among them (the reference grid).
    series: tuple[str, ...] = SERIES
    # "": every series has its own <series>_labels column; a series name: its label map gives
    # every series' regions of interest, carried over through the affines.
    labels_from: str = ""
    # How histologies map to the network's classes: paper (free, pleomorphic adenoma,
    # Warthin, malignant), benign_malignant, or a mapping histology -> class with optional
    # exclude, malignant_classes, benign_classes (parotidlib.study.class_scheme)
    classes: Any = "paper"
    image_size: int = 64  # side (px) of every channel after resizing (the paper: 224)
    channels: tuple[str, ...] = CHANNELS  # channels curated: a subset of series + gland, in order
    crop_margin_mm: float = 5.0  # margin around the ROI's bounding box (mm) before squaring
    mask_background: bool = True  # zero pixels outside the ROI (tumour or gland) mask
    min_tumor_area_mm2: float = 20.0  # smallest ROI area (mm^2) for a lesion or free slice
    normalisation: str = "percentile"  # "percentile": per-series window; "minmax": per crop
    percentile_low: float = 0.5  # lower percentile (of body voxels) mapped to 0
    percentile_high: float = 99.5  # upper percentile mapped to 1
    test_fraction: float = 0.09  # share of patients in the test set (233 -> 21, the paper's)
    split_seed: int = 0  # random state of the patient split
    cv_folds: int = 0  # 0: single random split; k >= 2: k patient-grouped folds
    fold: int = 0  # test fold when cv_folds >= 2
    # "": folds by StratifiedGroupKFold; a manifest column (e.g. scanner): one fold per value,
    # sorted as text, fold f holding out the f-th (leave-one-group-out; cv --group-by)
    cv_group_by: str = ""
    curate_jobs: int = 0  # worker processes over patients; 0 = all cores
    skip_invalid_patients: bool = False  # skip (and list) invalid patients instead of raising

    def __post_init__(self) -> None:
        _set(self, "series", check_series("series", self.series))
        check_labels_from(self.labels_from, self.series)
        _set(self, "channels", check_channels_of_series(self.channels, self.series))
        class_scheme(self.classes)
        check_int("image_size", self.image_size, 8)
        for key in ("crop_margin_mm", "min_tumor_area_mm2"):
            check_real(key, getattr(self, key), 0.0, math.inf, high_open=True)
        check_bool("mask_background", self.mask_background)
        check_bool("skip_invalid_patients", self.skip_invalid_patients)
        check_choice("normalisation", self.normalisation, NORMALISATIONS)
        low, high = self.percentile_low, self.percentile_high
        if not (is_real(low) and is_real(high) and 0 <= low < high <= 100):
            raise ParamsError(f"percentile_low and percentile_high must satisfy 0 <= low < high "
                              f"<= 100, got percentile_low={low!r}, percentile_high={high!r}")
        check_real("test_fraction", self.test_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_int("split_seed", self.split_seed, 0)
        if not is_int(self.cv_folds) or self.cv_folds < 0 or self.cv_folds == 1:
            raise ParamsError(f"cv_folds must be 0 or an integer >= 2, got {self.cv_folds!r}")
        check_int(f"fold (for cv_folds={self.cv_folds})", self.fold, 0,
                  max(self.cv_folds, 1) - 1)
        if not isinstance(self.cv_group_by, str) or (self.cv_group_by and self.cv_folds < 2):
            raise ParamsError(f"cv_group_by must be a manifest column with cv_folds >= 2 (the "
                              f"number of its values), got cv_group_by={self.cv_group_by!r}, "
                              f"cv_folds={self.cv_folds!r}")
        check_int("curate_jobs (0 = all cores)", self.curate_jobs, 0)

    @property
    def study(self) -> Study:
        """The series and label maps the cohort is read with."""
        return Study(self.series, self.labels_from)

    @property
    def class_scheme(self) -> ClassScheme:
        """How the cohort's histologies map to the network's classes."""
        return class_scheme(self.classes)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CurationConfig:
        """Build from a flat params mapping, taking only this class's keys (lists -> tuples)."""
        return section(params, cls)


OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


@dataclass(frozen=True)
class TrainConfig:
    """Training (:mod:`parotidlib.learn.train`); the paper's values are in params/paper.yaml.

    The augmentation magnitudes are the kit's: the paper names the transforms, not their sizes.
    """

    epochs: int = 24  # epochs to train (the paper: 1200)
    batch_size: int = 32  # slices per optimisation step (the paper: 32)
    lr: float = 1e-3  # base learning rate (the paper: 1e-6)
    optimizer: str = "adam"  # adam (the paper) | adamw | sgd (momentum 0.9)
    weight_decay: float = 1e-4  # L2 (adam, sgd) or decoupled (adamw) weight decay (paper: 0)
    lr_decay_start: int = 12  # first epoch (0-based) at the decayed rate (the paper: 600)
    lr_decay_every: int = 2  # epochs between decays (the paper: 100)
    lr_decay_factor: float = 0.8  # multiplier at each decay (the paper: 0.8)
    model_widths: tuple[int, ...] = (64, 128)  # channels per residual stage, one block each
    val_fraction: float = 0.1  # share of TRAINING patients held out for model selection
    select_metric: str = "val_accuracy"  # val_accuracy (max) | val_loss (min) -> best.pt
    seed: int = 0  # seeds initialisation, shuffling, augmentation and the validation split
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    # auto (on for cuda) | true | false (bools accepted); true on a CPU with AMX/AVX512-BF16
    # trains 2-4x faster in bfloat16 (bench/README.md)
    mixed_precision: str = "auto"
    checkpoint_every: int = 5  # epochs between epoch_XXXX.pt / last.pt checkpoints
    num_threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    # torch.compile the network for the training steps (speed only: validation, checkpoints and
    # resuming use the plain module). CUDA: bench/device_check.sh measures the gain; on a CPU
    # it needs a C++ compiler, and the first epoch spends tens of seconds compiling.
    compile: bool = False
    augment: bool = True  # apply the random augmentation below to training batches
    aug_flip: bool = True  # random horizontal and vertical flips (p = 0.5 each)
    aug_rotate_deg: float = 10.0  # rotation drawn from [-x, x] degrees
    aug_translate: float = 0.05  # shift drawn from [-x, x] x image size
    aug_scale: float = 0.1  # zoom drawn from [1 - x, 1 + x]
    aug_contrast: float = 0.2  # per-slice contrast factor from [1 - x, 1 + x]
    aug_channel_jitter: float = 0.1  # per-channel gain [1 - x, 1 + x] and offset [-x, x]

    def __post_init__(self) -> None:
        for key, minimum in (("epochs", 1), ("batch_size", 1), ("lr_decay_start", 0),
                             ("lr_decay_every", 1), ("seed", 0), ("checkpoint_every", 1),
                             ("num_threads", 0)):
            check_int(key, getattr(self, key), minimum)
        check_real("lr", self.lr, 0.0, math.inf, low_open=True, high_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_real("weight_decay", self.weight_decay, 0.0, math.inf, high_open=True)
        check_real("lr_decay_factor", self.lr_decay_factor, 0.0, 1.0, low_open=True)
        widths = self.model_widths
        if (not isinstance(widths, tuple | list) or not widths
                or not all(is_int(w) and w >= 1 for w in widths)):
            raise ParamsError(f"model_widths must be a non-empty list of integers >= 1, got "
                              f"{widths!r}")
        _set(self, "model_widths", tuple(int(w) for w in widths))
        check_real("val_fraction", self.val_fraction, 0.0, 1.0, high_open=True)
        check_choice("select_metric", self.select_metric, ("val_accuracy", "val_loss"))
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ParamsError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got "
                              f"{self.device!r}")
        mp = self.mixed_precision
        if isinstance(mp, bool):
            _set(self, "mixed_precision", str(mp).lower())
        elif not isinstance(mp, str) or mp.lower() not in ("auto", "true", "false"):
            raise ParamsError(f"mixed_precision must be 'auto', 'true', 'false' or a bool, got "
                              f"{mp!r}")
        else:
            _set(self, "mixed_precision", mp.lower())
        check_bool("compile", self.compile)
        check_bool("augment", self.augment)
        check_bool("aug_flip", self.aug_flip)
        for key, upper in (("aug_rotate_deg", 180.0), ("aug_translate", 0.5),
                           ("aug_scale", 0.5), ("aug_contrast", 1.0), ("aug_channel_jitter", 1.0)):
            check_real(key, getattr(self, key), 0.0, upper)

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings as plain Python values (tuples as lists), e.g. for a checkpoint."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        """Build from a flat params mapping, taking only this class's keys (lists -> tuples)."""
        return section(params, cls)

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` in (0-based) ``epoch`` (:func:`paper_lr_factor`)."""
        return paper_lr_factor(epoch, self.lr_decay_start, self.lr_decay_every,
                               self.lr_decay_factor)


def paper_lr_factor(epoch: int, start: int = 600, every: int = 100, factor: float = 0.8) -> float:
    """Multiplier of the base learning rate in (0-based) ``epoch`` under the paper's schedule.

    Xia et al. 2021: "the learning rate was 1e-6 for the first 600 epochs and was then
    multiplied by a factor of 0.8 every 100 epochs". ``1`` before ``start``, then
    ``factor ** (floor((epoch - start) / every) + 1)``: the first decay happens at ``start``.

    Examples
    --------
    >>> [paper_lr_factor(e) for e in (0, 599, 600, 699, 700)]
    [1.0, 1.0, 0.8, 0.8, 0.6400000000000001]
    """
    if epoch < start:
        return 1.0
    return factor ** ((epoch - start) // every + 1)


RADIOMICS_MODELS: tuple[str, ...] = ("logistic", "random_forest")


@dataclass(frozen=True)
class RadiomicsConfig:
    """The radiomics baseline on the same patients as the CNN (``radiomics.study``).

    Fitted and applied by 30-evaluate, compared with the CNN by 40-statistics.
    """

    radiomics: bool = True  # fit the radiomics baseline
    radiomics_model: str = "logistic"  # logistic | random_forest

    def __post_init__(self) -> None:
        check_bool("radiomics", self.radiomics)
        check_choice("radiomics_model", self.radiomics_model, RADIOMICS_MODELS)


SALIENCY_METHODS: tuple[str, ...] = ("gradcam", "gradcam++")


@dataclass(frozen=True)
class SaliencyConfig:
    """Where the network looks (45-saliency; ``learn.explain``).

    Grad-CAM of the last residual stage on the test slices, its share inside the tumour
    mask, the randomisation check and ``saliency_examples`` correctly and wrongly classified
    examples per class.
    """

    saliency: bool = True  # run the saliency analysis
    saliency_method: str = "gradcam"  # gradcam | gradcam++
    saliency_examples: int = 2  # correct and wrong examples per class in the figure

    def __post_init__(self) -> None:
        check_bool("saliency", self.saliency)
        check_choice("saliency_method", self.saliency_method, SALIENCY_METHODS)
        check_int("saliency_examples", self.saliency_examples, 0)


@dataclass(frozen=True)
class EvaluationConfig:
    """Prediction (30-evaluate) and statistics (40-statistics) settings."""

    # Figure 5's rule: more than this many malignant slices make a patient malignant.
    malignant_threshold: int = 2
    bootstrap_resamples: int = 1000  # patient-clustered bootstrap of the micro-AUC: resamples
    bootstrap_seed: int = 0  # and its seed
    checkpoint: str = "best"  # which checkpoint is evaluated: "best" (validation) or "last"
    predict_batch_size: int = 256  # slices per forward pass at prediction time

    def __post_init__(self) -> None:
        check_int("malignant_threshold", self.malignant_threshold, 0)
        check_int("bootstrap_resamples", self.bootstrap_resamples, 0)
        check_int("bootstrap_seed", self.bootstrap_seed, 0)
        check_choice("checkpoint", self.checkpoint, ("best", "last"))
        check_int("predict_batch_size", self.predict_batch_size, 1)


#: The paper's seven input compositions (Table 3, rows a-g), as "+"-joined channel names: the
#: ``compositions`` default for the paper's series (:func:`default_compositions`).
COMPOSITIONS: tuple[str, ...] = (
    "t1", "ce_t1", "t2", "t1+ce_t1", "t1+t2", "ce_t1+t2", "t1+ce_t1+t2+gland",
)
#: The proposed model (Table 3 row g), the reference of the paired comparisons.
REFERENCE = "t1+ce_t1+t2+gland"


def composition_channels(composition: str, series: tuple[str, ...] = SERIES
                         ) -> tuple[str, ...]:
    """``"t1+t2"`` -> ``("t1", "t2")``, checked like the ``channels`` param: a subset of
    ``series`` (the study's; the paper's by default) plus gland, in that order."""
    return check_channels(f"compositions entry {composition!r}", composition.split("+"),
                          (*series, GLAND_CHANNEL))


def default_compositions(series: tuple[str, ...] = SERIES) -> tuple[str, ...]:
    """The compositions an ablation compares when the params name none.

    The paper's series: its Table 3 (:data:`COMPOSITIONS`). Other series: each series alone,
    all series, and all series with the gland (the proposed model's counterpart).
    """
    series = tuple(series)
    if series == SERIES:
        return COMPOSITIONS
    every = "+".join(series)
    return tuple(dict.fromkeys((*series, every, f"{every}+{GLAND_CHANNEL}")))


_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _check_composition_names(composition: Any) -> None:
    """A composition's form, before the series are known: "+"-joined series names (or gland,
    last), none twice (:func:`composition_channels` checks them against the study's)."""
    names = composition.split("+") if isinstance(composition, str) else None
    series = [n for n in names or () if n != GLAND_CHANNEL]
    if (not names or len(set(names)) != len(names) or GLAND_CHANNEL in names[:-1]
            or any(not _CHANNEL_NAME.fullmatch(n) for n in series)):
        raise ParamsError(f"compositions entry {composition!r} must be '+'-joined series names "
                          f"(lower-case letters, digits and '_'), each once, {GLAND_CHANNEL!r} "
                          f"last if at all (e.g. 't1+t2+gland')")


@dataclass(frozen=True)
class AblationConfig:
    """Settings of the channel ablation batch (the paper's Table 3)."""

    seeds: tuple[int, ...] = (0,)  # training seeds per composition (mean and spread reported)
    # Input compositions to compare, "+"-joined channel names in the order of series + gland.
    # Not given: the paper's Table 3 for the paper's series, else each series alone, all
    # series, all + gland (config.default_compositions)
    compositions: tuple[str, ...] = COMPOSITIONS

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ParamsError("seeds must hold at least one seed, got ()")
        for seed in self.seeds:
            check_int("seeds entry", seed, 0)
        for key, values in (("seeds", self.seeds), ("compositions", self.compositions)):
            if len(set(values)) != len(values):
                raise ParamsError(f"{key} must not repeat a value, got {list(values)!r}")
        if not self.compositions:
            raise ParamsError("compositions must hold at least one composition, got ()")
        for comp in self.compositions:
            _check_composition_names(comp)


@dataclass(frozen=True)
class PredictConfig:
    """Settings of applying a trained model to another cohort (``python -m parotidlib
    predict``: notebooks 70-72). The curation settings come from the model bundle."""

    model: str = ""  # the model bundle (bundle.pt) applied; the predict command sets it
    calibration_bins: int = 10  # equal-width bins of the reliability diagrams and the ECE
    strip_patients: int = 12  # patients shown with their input crops (all when fewer)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise ParamsError(f"model must be the path of a model bundle (text), got "
                              f"{self.model!r}")
        check_int("calibration_bins", self.calibration_bins, 1)
        check_int("strip_patients", self.strip_patients, 0)


#: Executors of a batch (``run.batch``): this machine's processes, SLURM through submitit,
#: or submitit's local executor (the SLURM code path without a cluster: the tests use it).
EXECUTORS: tuple[str, ...] = ("local", "slurm", "submitit-local")
#: Keys of the ``cluster:`` section (submitit's parameters, with their units in the name).
CLUSTER_KEYS: tuple[str, ...] = (
    "partition", "time_min", "gpus_per_member", "cpus_per_member", "mem_gb", "account",
    "array_parallelism", "qos", "constraint", "setup", "max_requeues", "signal_delay_s",
)


@dataclass(frozen=True)
class BatchConfig:
    """A batch of runs (``run.batch``): a grid of params, where and how its members run."""

    # Params key -> list of values; every combination is one member (its own run folder).
    grid: dict = dataclasses.field(default_factory=dict)
    executor: str = "local"  # local | slurm | submitit-local
    jobs: int = 1  # members run at once by the local executor (cores divided between them)
    # SLURM settings (submitit): partition, time_min, gpus_per_member, cpus_per_member,
    # mem_gb, account, array_parallelism, qos, constraint, setup (shell lines before a member),
    # max_requeues (times a member that reaches its time limit is requeued to resume, default
    # 3), signal_delay_s (seconds before the limit at which it checkpoints, default 90)
    cluster: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Mapping):
            raise ParamsError(f"grid must be a mapping of params key -> list of values, got "
                              f"{self.grid!r}")
        own = set(field_names(BatchConfig))
        valid = {k for cls in SECTIONS.values() for k in field_names(cls)}
        for key, values in self.grid.items():
            if key not in valid or key in own:
                raise ParamsError(f"grid key {key!r} is not a params key a run can vary "
                                  f"(valid: the keys of params/default.yaml)")
            if not isinstance(values, list | tuple) or not values:
                raise ParamsError(f"grid[{key!r}] must be a non-empty list of values, got "
                                  f"{values!r}")
        check_choice("executor", self.executor, EXECUTORS)
        check_int("jobs", self.jobs, 1)
        if not isinstance(self.cluster, Mapping):
            raise ParamsError(f"cluster must be a mapping, got {self.cluster!r}")
        unknown = sorted(set(self.cluster) - set(CLUSTER_KEYS))
        if unknown:
            raise ParamsError(f"unknown cluster key(s) {unknown}; valid: {list(CLUSTER_KEYS)}")
        for key in ("time_min", "gpus_per_member", "cpus_per_member", "array_parallelism",
                    "max_requeues", "signal_delay_s"):
            if key in self.cluster:
                check_int(f"cluster.{key}", self.cluster[key],
                          0 if key.startswith("gpus") or key == "max_requeues" else 1)
        if "mem_gb" in self.cluster:
            check_real("cluster.mem_gb", self.cluster["mem_gb"], 0.0, math.inf, low_open=True)


#: Section name -> config dataclass; the params keys are the union of their fields. A params
#: mapping is validated section by section in this order, so the first invalid key reported
#: follows it.
SECTIONS: dict[str, type] = {
    "run": RunConfig,
    "curate": CurationConfig,
    "train": TrainConfig,
    "radiomics": RadiomicsConfig,
    "saliency": SaliencyConfig,
    "evaluate": EvaluationConfig,
    "ablation": AblationConfig,
    "predict": PredictConfig,
    "batch": BatchConfig,
}


def field_names(cls: type) -> tuple[str, ...]:
    """The field names (params keys) of a config dataclass."""
    return tuple(f.name for f in dataclasses.fields(cls))


def field_defaults(cls: type) -> dict[str, Any]:
    """Field name -> default value of a config dataclass."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def section(params: Mapping[str, Any], cls: type) -> Any:
    """Build one config dataclass from a flat params mapping (its own keys; lists -> tuples)."""
    names = set(field_names(cls))
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in names}
    try:
        return cls(**kwargs)
    except ParamsError:
        raise
    except (TypeError, ValueError) as exc:
        raise ParamsError(str(exc)) from exc
