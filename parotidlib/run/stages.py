"""The study's stages: one notebook each, the params it declares, and what marks it complete.

Each stage's notebook declares exactly :attr:`Stage.keys` (plus ``run_dir``) in its
``parameters`` cell, with the defaults of :mod:`parotidlib.config`; the pipeline passes it
those keys and no others, and they are the params its cache key covers (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from parotidlib.config import CurationConfig, RunConfig, TrainConfig, field_names


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
        The params the notebook declares and its results depend on.
    resumable : tuple of str
        Keys that may change without discarding the stage's earlier outputs: the stage
        resumes from them (training: more epochs, another checkpoint interval).
    stale : tuple of str
        Run-folder paths removed before the stage reruns with changed inputs (or --force);
        kept after a crash, so that an interrupted training resumes from its checkpoint.
    outputs : tuple of str
        Run-folder paths the stage writes besides its executed notebook (default: ``output``);
        what another run folder with the same cache key takes over instead of rerunning.
    """

    name: str
    notebook: str
    output: str
    keys: tuple[str, ...] = ()
    resumable: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def written(self) -> tuple[str, ...]:
        """Every run-folder path the stage writes, its executed notebook included."""
        return (*(self.outputs or (self.output,)), self.notebook)


#: Keys that change how fast a stage runs, not what it computes (left out of cache keys).
SPEED_KEYS = frozenset({"num_threads", "curate_jobs", "compile"})

STAGES: tuple[Stage, ...] = (
    Stage("curate", "10-curate.ipynb", "data/dataset.json",
          field_names(RunConfig) + field_names(CurationConfig), outputs=("data",)),
    Stage("train", "20-train.ipynb", "model/history.csv",
          ("channels",) + field_names(TrainConfig),
          resumable=("epochs", "checkpoint_every"), stale=("model",), outputs=("model",)),
    # The radiomics baseline is fitted and predicts here too: the statistics stage compares
    # it with the CNN on the same test patients.
    Stage("evaluate", "30-evaluate.ipynb", "predictions.csv",
          ("channels", "checkpoint", "predict_batch_size", "device", "radiomics",
           "radiomics_model", "seed"),
          stale=("radiomics_predictions.csv", "radiomics.json"),
          outputs=("predictions.csv", "radiomics_predictions.csv", "radiomics.json")),
    # The statistics stage also writes the model bundle (learn/bundle.py): the decision
    # rule's threshold is fixed here, and `checkpoint` names the weights evaluated.
    Stage("statistics", "40-statistics.ipynb", "metrics.json",
          ("malignant_threshold", "bootstrap_resamples", "bootstrap_seed", "checkpoint"),
          outputs=("metrics.json", "bundle.pt")),
    # Where the network looks: Grad-CAM maps of the test slices with the evaluated
    # checkpoint (learn/explain.py), drawn by the report.
    Stage("saliency", "45-saliency.ipynb", "saliency.json",
          ("checkpoint", "device", "saliency", "saliency_method", "saliency_examples", "seed"),
          outputs=("saliency.json", "saliency_maps.npz")),
    # The report also writes the TRIPOD+AI checklist of the run (report/checklist.py).
    Stage("report", "50-report.ipynb", "report.html",
          outputs=("report.html", "figures", "checklist.md")),
)

#: The predict chain (``python -m parotidlib predict``): a model bundle applied to another
#: cohort. Curation takes its input settings from the bundle (``model``), whose file's
#: SHA-256 stands for it in the cache keys (as the cohort's fingerprint for the manifest).
PREDICT_STAGES: tuple[Stage, ...] = (
    Stage("curate", "70-predict-curate.ipynb", "data/dataset.json",
          ("model", "cohort_manifest", "curate_jobs", "skip_invalid_patients"),
          outputs=("data",)),
    Stage("predict", "71-predict.ipynb", "external.json",
          ("model", "predict_batch_size", "device", "bootstrap_resamples", "bootstrap_seed",
           "calibration_bins"),
          outputs=("predictions.csv", "patients.csv", "external.json")),
    # The report also writes the TRIPOD+AI checklist of the evaluation (report/checklist.py).
    Stage("report", "72-predict-report.ipynb", "report.html", ("strip_patients",),
          outputs=("report.html", "figures", "checklist.md")),
)

#: The ablation report notebook (run.ablation), declared like a stage.
ABLATION_REPORT = Stage("ablation", "60-ablation.ipynb", "ablation.html")
#: The cross-validation report notebook (run.cv), declared like a stage.
CV_REPORT = Stage("cv", "80-cv.ipynb", "cv.html")


def stage_named(name: str) -> Stage:
    """The stage called ``name`` (ValueError listing the stages otherwise)."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise ValueError(f"no stage {name!r}; stages: {[s.name for s in STAGES]}")
