"""The study's stages: one notebook each, what enters its key, what may resume, what runs
after it and how a batch runs it.

Each stage's notebook declares exactly :attr:`Stage.keys` (plus ``run_dir``) in its
``parameters`` cell, with the defaults of :mod:`parotidlib.config`; the pipeline passes it
those keys and no others, and they are the params its cache key covers (docs/design.md).
The pipeline (:mod:`.pipeline`) and the batches (:mod:`.batch`) read what a stage does from
its row here and never from its name, so adding a stage is a notebook, a config section and
one :class:`Stage` row; the stage tables of README.md and docs/design.md are generated from
these rows (:mod:`.stage_docs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parotidlib.config import (
    CurationConfig,
    RadiomicsConfig,
    RunConfig,
    SaliencyConfig,
    TrainConfig,
    field_names,
    section,
)
from parotidlib.run.after_stage import export_html, log_skipped_patients

#: How a batch (:mod:`.batch`) runs a stage: once for all its members, before them
#: (``shared``: curation), in every member's folder (``member``), or not at all (``none``: a
#: batch writes its own report).
BATCH_ROLES: tuple[str, ...] = ("shared", "member", "none")

#: Signature of :attr:`Stage.resume_agrees`: the params of the interrupted or shorter run, the
#: params of this one, and the run folder holding its outputs.
ResumeCheck = Callable[[Mapping[str, Any], Mapping[str, Any], Path], bool]
#: Signature of an :attr:`Stage.after` step: the stage and its run folder.
AfterStep = Callable[["Stage", Path], None]


@dataclass(frozen=True)
class Stage:
    """One notebook of the chain.

    Attributes
    ----------
    name, notebook : str
        Stage name and its notebook under ``notebooks/``.
    output : str
        The run-folder file whose presence marks the stage complete.
    keys : tuple of str
        The params the notebook declares and its results depend on: they enter its key.
    about : str
        What the stage does, in a few words (the generated stage tables).
    cohort_in_key : bool
        Whether the cohort's fingerprint enters the key too (the stage reads the cohort).
    resumable : tuple of str
        Keys that may change without discarding the stage's earlier outputs: the stage
        resumes from them (training: more epochs, another checkpoint interval).
    resume_checked : tuple of str
        Keys that may also change on resumption when :attr:`resume_agrees` says the change
        leaves what was already done as it was (training: a learning-rate schedule that
        agrees on every epoch already trained).
    resume_agrees : callable or None
        The check of :attr:`resume_checked` (:data:`ResumeCheck`); None: always agrees.
    stale : tuple of str
        Run-folder paths removed before the stage reruns with changed inputs (or --force);
        kept after a crash, so that an interrupted training resumes from its checkpoint.
    outputs : tuple of str
        Run-folder paths the stage writes besides its executed notebook (default: ``output``);
        what another run folder with the same cache key takes over instead of rerunning.
    after : tuple of callables
        Steps run once the notebook has succeeded (:data:`AfterStep`): exporting the report
        to HTML, saying which patients curation skipped.
    batch : str
        How a batch runs the stage, one of :data:`BATCH_ROLES`.
    """

    name: str
    notebook: str
    output: str
    keys: tuple[str, ...] = ()
    about: str = ""
    cohort_in_key: bool = False
    resumable: tuple[str, ...] = ()
    resume_checked: tuple[str, ...] = ()
    resume_agrees: ResumeCheck | None = None
    stale: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    after: tuple[AfterStep, ...] = ()
    batch: str = "none"

    def __post_init__(self) -> None:
        if self.batch not in BATCH_ROLES:
            raise ValueError(f"stage {self.name!r}: batch must be one of {BATCH_ROLES}, got "
                             f"{self.batch!r}")
        overlap = sorted(set(self.resumable + self.resume_checked) - set(self.keys))
        if overlap:
            raise ValueError(f"stage {self.name!r}: resumable keys {overlap} are not its keys")

    @property
    def written(self) -> tuple[str, ...]:
        """Every run-folder path the stage writes, its executed notebook included."""
        return (*(self.outputs or (self.output,)), self.notebook)

    @property
    def can_resume(self) -> bool:
        """Whether some change of params lets the stage resume from its outputs."""
        return bool(self.resumable or self.resume_checked)


def keys_of(*sources: type | str) -> tuple[str, ...]:
    """A stage's keys: every field of each config section given, and single keys of other
    sections (``"channels"``), in order and without repeats."""
    out: list[str] = []
    for source in sources:
        for key in (source,) if isinstance(source, str) else field_names(source):
            if key not in out:
                out.append(key)
    return tuple(out)


def _epochs_done(run_dir: Path) -> int:
    """Epochs recorded in model/history.csv (an upper bound of the last checkpoint's)."""
    try:
        return max(0, len((run_dir / "model" / "history.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def schedule_agrees(old: Mapping[str, Any], new: Mapping[str, Any], epochs_done: int) -> bool:
    """Whether two training params sets give the same learning rate in epochs
    ``0..epochs_done`` (the epochs a checkpoint has seen and the one it resumes with)."""
    a, b = section(old, TrainConfig), section(new, TrainConfig)
    return all(a.lr_factor(e) == b.lr_factor(e) for e in range(epochs_done + 1))


def training_resumes(old: Mapping[str, Any], new: Mapping[str, Any], run_dir: Path) -> bool:
    """:data:`ResumeCheck` of training: the schedule agrees on the epochs already trained."""
    return schedule_agrees(old, new, _epochs_done(run_dir))


#: Keys that change how fast a stage runs, not what it computes (left out of cache keys).
SPEED_KEYS = frozenset({"num_threads", "curate_jobs", "compile"})
#: Training params that may change between a checkpoint and its resumption when the
#: learning rate they give agrees on every epoch already trained.
LR_SCHEDULE_KEYS = ("lr_decay_start", "lr_decay_every", "lr_decay_factor")


STAGES: tuple[Stage, ...] = (
    Stage("curate", "10-curate.ipynb", "data/dataset.json",
          about="the cohort checked, aligned, cropped and split into slices",
          keys=keys_of(RunConfig, CurationConfig), cohort_in_key=True, outputs=("data",),
          after=(log_skipped_patients,), batch="shared"),
    Stage("train", "20-train.ipynb", "model/history.csv",
          about="the reduced ResNet18 trained, with checkpoints",
          keys=keys_of("channels", TrainConfig), resumable=("epochs", "checkpoint_every"),
          resume_checked=LR_SCHEDULE_KEYS, resume_agrees=training_resumes, stale=("model",),
          outputs=("model",), batch="member"),
    # The radiomics baseline is fitted and predicts here too: the statistics stage compares
    # it with the CNN on the same test patients.
    Stage("evaluate", "30-evaluate.ipynb", "predictions.csv",
          about="every slice predicted; the radiomics baseline fitted and applied",
          keys=keys_of("channels", "checkpoint", "predict_batch_size", "device",
                       RadiomicsConfig, "seed"),
          stale=("radiomics_predictions.csv", "radiomics.json"),
          outputs=("predictions.csv", "radiomics_predictions.csv", "radiomics.json"),
          batch="member"),
    # The statistics stage also writes the model bundle (learn/bundle.py): the decision
    # rule's threshold is fixed here, and `checkpoint` names the weights evaluated.
    Stage("statistics", "40-statistics.ipynb", "metrics.json",
          about="Tables 4-5, the decision rule, AUCs and intervals; the model bundle",
          keys=keys_of("malignant_threshold", "bootstrap_resamples", "bootstrap_seed",
                       "checkpoint"),
          outputs=("metrics.json", "bundle.pt"), batch="member"),
    # Where the network looks: Grad-CAM maps of the test slices with the evaluated
    # checkpoint (learn/explain.py), drawn by the report.
    Stage("saliency", "45-saliency.ipynb", "saliency.json",
          about="Grad-CAM maps of the test slices, their share in the ROI",
          keys=keys_of("checkpoint", "device", SaliencyConfig, "seed"),
          outputs=("saliency.json", "saliency_maps.npz")),
    # The report also writes the TRIPOD+AI checklist of the run (report/checklist.py).
    Stage("report", "50-report.ipynb", "report.html",
          about="every figure and table, paper beside run; the TRIPOD+AI checklist",
          outputs=("report.html", "figures", "checklist.md"), after=(export_html,)),
)

#: The predict chain (``python -m parotidlib predict``): a model bundle applied to another
#: cohort. Curation takes its input settings from the bundle (``model``), whose file's
#: SHA-256 stands for it in the cache keys (as the cohort's fingerprint for the manifest).
PREDICT_STAGES: tuple[Stage, ...] = (
    Stage("curate", "70-predict-curate.ipynb", "data/dataset.json",
          about="the cohort curated with the bundle's input settings, no split",
          keys=keys_of("model", "cohort_manifest", "curate_jobs", "skip_invalid_patients"),
          cohort_in_key=True, outputs=("data",), after=(log_skipped_patients,)),
    Stage("predict", "71-predict.ipynb", "external.json",
          about="every slice predicted, patients diagnosed, calibration",
          keys=keys_of("model", "predict_batch_size", "device", "bootstrap_resamples",
                       "bootstrap_seed", "calibration_bins"),
          outputs=("predictions.csv", "patients.csv", "external.json")),
    # The report also writes the TRIPOD+AI checklist of the evaluation (report/checklist.py).
    Stage("report", "72-predict-report.ipynb", "report.html",
          keys=keys_of("strip_patients"),
          about="internal beside external; the TRIPOD+AI checklist",
          outputs=("report.html", "figures", "checklist.md"), after=(export_html,)),
)

#: The ablation report notebook (run.ablation), declared like a stage.
ABLATION_REPORT = Stage("ablation", "60-ablation.ipynb", "ablation.html",
                        about="Table 3: the input compositions compared")
#: The cross-validation report notebook (run.cv), declared like a stage.
CV_REPORT = Stage("cv", "80-cv.ipynb", "cv.html", about="the folds' out-of-fold results pooled")


def batch_stages(role: str, stages: tuple[Stage, ...] = STAGES) -> tuple[Stage, ...]:
    """The stages a batch runs in ``role`` (:data:`BATCH_ROLES`), in chain order."""
    if role not in BATCH_ROLES:
        raise ValueError(f"role must be one of {BATCH_ROLES}, got {role!r}")
    return tuple(s for s in stages if s.batch == role)


def stage_named(name: str) -> Stage:
    """The stage called ``name`` (ValueError listing the stages otherwise)."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ValueError(f"no stage {name!r}; stages: {[s.name for s in STAGES]}")
