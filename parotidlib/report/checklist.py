"""The TRIPOD+AI 2024 reporting checklist of a run folder (``checklist.md``; torch-free).

TRIPOD+AI (Collins et al. 2024) lists what a report of a clinical prediction model that uses
regression or machine learning should say: 52 items under 27 numbers (1, 2, 3a-3c, ..., 27c),
each marked D (development), E (evaluation) or D;E (both). This module answers every item the
kit knows from a run folder's own files, and marks the others:

- ``"from the run"``: the answer was read from the run (``data/dataset.json``,
  ``data/slices.csv``, ``metrics.json``, ``radiomics.json``, ``bundle.pt``, ``params.yaml``,
  ``cohort.json``, ``external.json``) or states what the kit's code does (the split, the
  training loop, the decision rule), never a fact about the study it cannot see;
- ``"to be completed by the authors"``: what only the study's authors know (title, ethics,
  funding, registration, interpretation, the clinical setting, how histology was assessed),
  with what the kit can suggest where it can;
- ``"not applicable"``: an item for the other kind of report (an E-only item in a development
  run, a D-only item in an evaluation of an existing model).

:func:`study_checklist` answers a study run (``make report``, ``python -m parotidlib run``),
which develops a model and evaluates it on a held-out test split of the same cohort;
:func:`evaluation_checklist` answers a predict run (``python -m parotidlib predict``,
notebooks 70-72), which applies a trained model's bundle to another cohort. Both return
:class:`ChecklistItem` rows in the statement's order (:data:`ITEMS`);
:func:`checklist_markdown` and :func:`write_checklist` write them as Markdown and
:func:`checklist_frame` as a table.

The topics are short paraphrases written for this kit, not the statement's item text: read
the statement for each item's full wording. No answer names a patient, a date of a single
patient or an absolute path: counts and ranges only, cohorts by their folder name.

References
----------
Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement. BMJ 2024;385:e078378.
    doi:10.1136/bmj-2023-078378.
Xia X, Feng B, Wang J, et al. Deep learning for differentiating benign from malignant parotid
    lesions on MR images. Front Oncol 2021;11:632104.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib import __version__
from parotidlib.constants import CHANNELS, CLASSES, HISTOLOGIES
from parotidlib.evaluation.text import block_text
from parotidlib.io import sha256_file, write_text_atomic
from parotidlib.notebook import manifest_label, synthetic_note

logger = logging.getLogger(__name__)

__all__ = [
    "AUTHORS",
    "CHECKLIST_NAME",
    "CITATION",
    "FROM_RUN",
    "ITEMS",
    "ITEM_NUMBERS",
    "NOT_APPLICABLE",
    "ChecklistItem",
    "checklist_frame",
    "checklist_markdown",
    "evaluation_checklist",
    "study_checklist",
    "write_checklist",
]

#: The statement every checklist follows, as its header cites it.
CITATION = ("Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement. BMJ "
            "2024;385:e078378. doi:10.1136/bmj-2023-078378")
#: The file :func:`write_checklist` writes into a run folder.
CHECKLIST_NAME = "checklist.md"

#: Statuses of an item.
FROM_RUN = "from the run"
AUTHORS = "to be completed by the authors"
NOT_APPLICABLE = "not applicable"
STATUSES: tuple[str, ...] = (FROM_RUN, AUTHORS, NOT_APPLICABLE)
#: Applicability codes of the statement: development, evaluation, both.
APPLIES: tuple[str, ...] = ("D", "E", "D;E")

#: How an answer on the kit's synthetic cohort starts (5a); :func:`checklist_markdown`
#: labels a checklist synthetic when an answer starts so and it is not told otherwise.
SYNTHETIC_PREFIX = "Synthetic data:"
SYNTHETIC_NOTE = synthetic_note("checklist")

#: The built-in generator's stamp beside a synthetic cohort's manifest
#: (``parotidlib.synth.generate.STAMP_NAME``; not imported, to keep this module light).
SYNTH_STAMP = ".synth_stamp.json"
#: Optional manifest columns read as the centre (hospital) of a patient, lower case.
#: (not ``site``: in head and neck data it usually names the tumour's site)
CENTRE_COLUMNS: tuple[str, ...] = ("centre", "center", "institution", "hospital")
#: Fewer patients with a date than this and a date column is not summarised (a range over a
#: handful of patients comes close to giving their dates).
MIN_DATED_PATIENTS = 5
#: Figures a study run's report stage draws that item 23a points to (report/run_figures.py).
STUDY_FIGURES: tuple[str, ...] = ("fig6_roc_test", "fig7_confusion_matrix_test",
                                  "fig5_threshold_sweep", "training_curves")
#: Figures of a predict run's report stage that item 23a points to.
PREDICT_FIGURES: tuple[str, ...] = ("external_confusion_matrix", "external_roc",
                                    "calibration_malignant", "calibration_one_vs_rest",
                                    "decision_curve")

_PRETTY = {"free": "free (tumour-free contralateral gland)",
           "pleomorphic_adenoma": "pleomorphic adenoma", "warthin": "Warthin tumour",
           "malignant": "malignant", "benign": "benign (pleomorphic adenoma or Warthin)",
           "lesion": "lesion"}
_CHANNEL_TEXT = {
    "t1": "t1, the T1-weighted crop of the region of interest",
    "ce_t1": "ce_t1, the contrast-enhanced T1-weighted crop (resampled onto the T1 grid)",
    "t2": "t2, the T2-weighted crop (resampled onto the T1 grid)",
    "gland": "gland, the T1-weighted crop of the ipsilateral parotid gland with its tumour",
}
_RADIOMICS_MODELS = {"logistic": "multinomial logistic regression",
                     "random_forest": "random forest"}
_TASK_TEXT = {"benign_vs_malignant": "benign vs malignant",
              "pleomorphic_vs_warthin": "pleomorphic adenoma vs Warthin",
              "lesion_vs_none": "free vs lesion"}


@dataclass(frozen=True)
class ChecklistItem:
    """One item of the TRIPOD+AI checklist as answered for a run.

    Attributes
    ----------
    number : str
        The statement's item number (``"1"``, ``"3a"``, ..., ``"27c"``).
    section : str
        The statement's section and subsection (``"Methods: data"``).
    topic : str
        What the item asks, as a short paraphrase (not the statement's wording).
    applies : str
        ``"D"`` (development), ``"E"`` (evaluation) or ``"D;E"`` (both).
    answer : str
        The answer (Markdown), or what the authors have to add.
    status : str
        One of :data:`STATUSES`.
    """

    number: str
    section: str
    topic: str
    applies: str
    answer: str = ""
    status: str = AUTHORS

    def __post_init__(self) -> None:
        if self.applies not in APPLIES:
            raise ValueError(f"item {self.number}: applies must be one of {list(APPLIES)}, "
                             f"got {self.applies!r}")
        if self.status not in STATUSES:
            raise ValueError(f"item {self.number}: status must be one of {list(STATUSES)}, "
                             f"got {self.status!r}")


# The statement's items in its order (Collins et al. 2024, Table 1): number, section, topic
# in our words, applicability.
_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("1", "Title", "study named as developing or evaluating a prediction model, with its "
     "population and outcome", "D;E"),
    ("2", "Abstract", "abstract following TRIPOD+AI for Abstracts", "D;E"),
    ("3a", "Introduction: background", "care context, rationale and models that exist "
     "already", "D;E"),
    ("3b", "Introduction: background", "target population, intended use in the care pathway "
     "and intended users", "D;E"),
    ("3c", "Introduction: background", "known health inequalities between groups", "D;E"),
    ("4", "Introduction: objectives", "aims, and whether the study develops, evaluates or "
     "both", "D;E"),
    ("5a", "Methods: data", "data sources of development and evaluation, and how "
     "representative they are", "D;E"),
    ("5b", "Methods: data", "dates of the data collected", "D;E"),
    ("6a", "Methods: participants", "setting of care, number and place of the centres",
     "D;E"),
    ("6b", "Methods: participants", "eligibility of participants", "D;E"),
    ("6c", "Methods: participants", "treatments received and how they were handled", "D;E"),
    ("7", "Methods: data preparation", "pre-processing and quality checks of the data",
     "D;E"),
    ("8a", "Methods: outcome", "what the outcome is, how and when it was assessed", "D;E"),
    ("8b", "Methods: outcome", "who assessed a subjective outcome", "D;E"),
    ("8c", "Methods: outcome", "blinding of the outcome assessment", "D;E"),
    ("9a", "Methods: predictors", "choice of candidate predictors and any pre-selection",
     "D"),
    ("9b", "Methods: predictors", "definition of every predictor, how and when measured",
     "D;E"),
    ("9c", "Methods: predictors", "who assessed subjective predictors", "D;E"),
    ("10", "Methods: sample size", "how the study size was reached and justified", "D;E"),
    ("11", "Methods: missing data", "how missing data were handled", "D;E"),
    ("12a", "Methods: analytical methods", "how the data were used and split", "D"),
    ("12b", "Methods: analytical methods", "how predictors were handled (scaling, "
     "transformation)", "D"),
    ("12c", "Methods: analytical methods", "model type, building steps, tuning and internal "
     "validation", "D"),
    ("12d", "Methods: analytical methods", "heterogeneity across clusters such as centres",
     "D;E"),
    ("12e", "Methods: analytical methods", "performance measures, plots and model "
     "comparisons", "D;E"),
    ("12f", "Methods: analytical methods", "model updating after evaluation", "E"),
    ("12g", "Methods: analytical methods", "how the predictions evaluated were computed",
     "E"),
    ("13", "Methods: class imbalance", "methods for class imbalance and any recalibration",
     "D;E"),
    ("14", "Methods: fairness", "approaches to model fairness", "D;E"),
    ("15", "Methods: model output", "what the model outputs and how thresholds were set",
     "D"),
    ("16", "Methods: training versus evaluation", "differences between development and "
     "evaluation data", "D;E"),
    ("17", "Methods: ethical approval", "ethics approval and consent", "D;E"),
    ("18a", "Open science", "funding and the funders' role", "D;E"),
    ("18b", "Open science", "conflicts of interest", "D;E"),
    ("18c", "Open science", "where the protocol is, or that there is none", "D;E"),
    ("18d", "Open science", "registration, or that there is none", "D;E"),
    ("18e", "Open science", "availability of the data", "D;E"),
    ("18f", "Open science", "availability of the code", "D;E"),
    ("19", "Patient and public involvement", "involvement of patients and the public",
     "D;E"),
    ("20a", "Results: participants", "flow of participants and how many have the outcome",
     "D;E"),
    ("20b", "Results: participants", "characteristics of participants per data source",
     "D;E"),
    ("20c", "Results: participants", "predictor distributions of the evaluation data beside "
     "the development data", "E"),
    ("21", "Results: model development", "participants and outcome events in each analysis",
     "D;E"),
    ("22", "Results: model specification", "the full model and how to obtain predictions "
     "from it", "D"),
    ("23a", "Results: model performance", "performance with confidence intervals, subgroups "
     "and plots", "D;E"),
    ("23b", "Results: model performance", "heterogeneity of performance across clusters",
     "D;E"),
    ("24", "Results: model updating", "results of any model updating", "E"),
    ("25", "Discussion: interpretation", "overall interpretation of the results", "D;E"),
    ("26", "Discussion: limitations", "limitations and their effect on the results", "D;E"),
    ("27a", "Discussion: usability", "handling poor-quality or missing input data in use",
     "D"),
    ("27b", "Discussion: usability", "user interaction and the expertise needed", "D"),
    ("27c", "Discussion: usability", "next steps and generalisability", "D;E"),
)

#: The statement's items in order, unanswered (status "to be completed by the authors").
ITEMS: tuple[ChecklistItem, ...] = tuple(ChecklistItem(*row) for row in _TABLE)
#: Their numbers, in order.
ITEM_NUMBERS: tuple[str, ...] = tuple(item.number for item in ITEMS)

_AUTHORS_ONLY = "Only the study's authors can answer this item."


# --------------------------------------------------------------------------- reading a run


def _require(run_dir: Path, rel: str, made_by: str, kind: str) -> Path:
    path = run_dir / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the checklist of a {kind} run needs "
                                f"{rel} (written by {made_by}); run it into {run_dir} first")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def _optional_json(path: Path) -> Any | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        logger.warning("%s cannot be read as JSON; the checklist leaves it out", path)
        return None


def _read_slices(path: Path) -> pd.DataFrame:
    text = {c: str for c in ("patient_id", "label", "side", "histology", "tumor_side",
                             "scanner", "sex", "split")}
    return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])


def _load_params(run_dir: Path, params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is not None:
        return dict(params)
    path = run_dir / "params.yaml"
    if not path.is_file():
        return {}
    from parotidlib.params import load_params

    return load_params(path)


def bundle_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata of a model bundle (``bundle.pt``) without its weights.

    The bundle (:mod:`parotidlib.learn.bundle`) is a ``torch.save`` file; it is read with
    ``torch.load(weights_only=True)`` (torch's restricted unpickler: no code of the file runs),
    imported here so that building the rest of the checklist needs no torch.

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
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable bundle: the item says so
        from parotidlib.learn.checkpoint import describe_load_error

        logger.warning("cannot read the metadata of %s: %s", path,
                       describe_load_error(path, exc))
        return None
    if not isinstance(raw, Mapping):
        return None
    meta = {k: v for k, v in raw.items() if k != "model"}
    internal = meta.get("internal_test")
    if isinstance(internal, Mapping):
        meta["internal_test"] = {k: internal.get(k) for k in ("run", "synthetic")}
    return meta


def _commit_from_name(name: str, predict: bool = False) -> str | None:
    """The commit in a default run-folder name: ``<date>_<profile>_<commit>[-dirty]`` for a
    study run, ``<date>_predict_<cohort folder>_<commit>[-dirty]`` for a predict run
    (:func:`parotidlib.run.provenance.default_run_name`, :func:`parotidlib.run.predict.
    run_predict`); None for any other name (``make external`` names its folder after the
    training run, whose commit that is)."""
    commit = r"([0-9a-f]{7,40}(?:-dirty)?|nogit)"
    middle = r"predict_.+" if predict else r"(?!predict_).+"
    match = re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}_{middle}_{commit}", name)
    return match.group(1) if match else None


@dataclass
class _Run:
    """What the checklist reads from a run folder, read once."""

    run_dir: Path
    params: dict[str, Any]
    synthetic: bool
    dataset: dict[str, Any]
    slices: pd.DataFrame
    cohort: dict[str, Any]

    @property
    def patients(self) -> pd.DataFrame:
        """One row per curated patient that has a slice (slices.csv)."""
        return self.slices.drop_duplicates("patient_id").reset_index(drop=True)

    @property
    def manifest(self) -> str | None:
        return self.cohort.get("manifest") or self.dataset.get("manifest")

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return list(self.dataset.get("skipped_patients") or [])


def _read_run(run_dir: str | Path, params: Mapping[str, Any] | None, synthetic: bool,
              kind: str, curated_by: str) -> _Run:
    run_dir = Path(run_dir)
    dataset = _read_json(_require(run_dir, "data/dataset.json", curated_by, kind))
    slices = _read_slices(_require(run_dir, "data/slices.csv", curated_by, kind))
    return _Run(run_dir=run_dir, params=_load_params(run_dir, params),
                synthetic=bool(synthetic), dataset=dataset, slices=slices,
                cohort=_optional_json(run_dir / "cohort.json") or {})


# --------------------------------------------------------------------------- text helpers


def _pct(k: int, n: int) -> str:
    return f"{k} ({100 * k / n:.1f}%)" if n else f"{k}"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _by(frame: pd.DataFrame, column: str, order: Sequence[str]) -> str:
    counts = frame[column].fillna("").value_counts()
    parts = [f"{_PRETTY.get(g, g)} {int(counts.get(g, 0))}" for g in order]
    parts += [f"{_PRETTY.get(g, g) or 'none'} {int(k)}" for g, k in counts.items()
              if g not in order]
    return ", ".join(parts)


def _patients_by_histology(patients: pd.DataFrame) -> str:
    return f"{len(patients)} patients ({_by(patients, 'histology', HISTOLOGIES)})"


def _slices_by_class(slices: pd.DataFrame) -> str:
    labels = slices["label"].fillna("")
    counts = labels.value_counts()
    parts = [f"{_PRETTY[c].split(' (')[0]} {int(counts.get(c, 0))}" for c in CLASSES]
    if int(counts.get("", 0)):
        parts.append(f"lesion without histology {int(counts[''])}")
    return f"{len(slices)} slices ({', '.join(parts)})"


def _splits(run: _Run) -> list[str]:
    order = ["train", "test", "external"]
    present = list(dict.fromkeys(run.slices["split"].dropna()))
    return [s for s in order if s in present] + [s for s in present if s not in order]


def _per_split(run: _Run) -> str:
    patients = run.patients
    parts = []
    for split in _splits(run):
        part = patients[patients["split"] == split]
        slices = run.slices[run.slices["split"] == split]
        parts.append(f"{split}: {_patients_by_histology(part)}, {_slices_by_class(slices)}")
    return "; ".join(parts)


def _scanners(patients: pd.DataFrame) -> str:
    counts = patients["scanner"].fillna("unknown").value_counts()
    n = len(patients)
    listing = ", ".join(f"{name} {_pct(int(k), n)}" for name, k in counts.items())
    return f"{len(counts)} scanner(s) ({listing})"


def _centres(patients: pd.DataFrame) -> tuple[str | None, str]:
    """The centre column of the manifest, if any, and its patient counts."""
    for column in patients.columns:
        if column.lower() in CENTRE_COLUMNS:
            counts = patients[column].fillna("unknown").astype(str).value_counts()
            listing = ", ".join(f"{name} {int(k)}" for name, k in counts.items())
            return column, f"{len(counts)} centre(s) in the manifest column `{column}` " \
                           f"({listing})"
    return None, "the manifest has no centre column (one of " + \
        ", ".join(f"`{c}`" for c in CENTRE_COLUMNS) + ")"


def _parse_dates(values: pd.Series) -> pd.Series:
    """Dates of a manifest column: ISO text or DICOM-style ``YYYYMMDD`` (text or integers);
    anything else (e.g. ``03/04/2016``, ambiguous between day and month first) is NaT."""
    text = values.dropna().astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    compact = pd.to_datetime(text.where(text.str.fullmatch(r"\d{8}")), format="%Y%m%d",
                             errors="coerce")
    iso = pd.to_datetime(text.where(text.str.fullmatch(r"\d{4}-\d{2}-\d{2}.*")),
                         format="ISO8601", errors="coerce")
    return compact.fillna(iso).dropna()


def _dates(patients: pd.DataFrame) -> str | None:
    """The range of every date column of the curated manifest (a column named ``date`` or
    ``*_date*``), as years only; None without one.

    Only the first and last year over all patients are given, never a patient's date, and a
    column with fewer than :data:`MIN_DATED_PATIENTS` dated patients is not summarised.
    """
    parts = []
    for column in patients.columns:
        name = column.lower()
        if not re.search(r"(^|_)date(_|$)", name):
            continue
        if "birth" in name:
            parts.append(f"`{column}` looks like a birth date and is not summarised: remove it "
                         f"from the manifest (personal data)")
            continue
        values = _parse_dates(patients[column])
        if len(values) < MIN_DATED_PATIENTS:
            parts.append(f"`{column}` has a readable date (ISO 8601 or YYYYMMDD) for "
                         f"{len(values)} patient(s), fewer than {MIN_DATED_PATIENTS}: not "
                         f"summarised")
            continue
        parts.append(f"`{column}` from {values.min():%Y} to {values.max():%Y} "
                     f"({len(values)} of {len(patients)} patients with a date)")
    return "; ".join(parts) if parts else None


def _skipped(run: _Run) -> str:
    """The patients skipped by validation: count and the manifest columns of their problems
    (not the problems' text, which names the patient and its files)."""
    skipped = run.skipped
    allowed = run.dataset.get("config", {}).get("skip_invalid_patients",
                                                run.params.get("skip_invalid_patients"))
    if not skipped:
        rule = ("with `skip_invalid_patients: true` an invalid patient would have been skipped "
                "and listed" if allowed else
                "with `skip_invalid_patients: false` any invalid patient would have stopped "
                "curation")
        return f"No patient was skipped by validation ({rule})."
    columns: collections.Counter[str] = collections.Counter()
    for entry in skipped:
        found = set()
        for problem in entry.get("problems", []):
            match = re.search(r"\bcolumn ([^,:]+)", str(problem))
            found.add(f"`{match.group(1)}`" if match else "the patient's row")
        columns.update(found)
    reasons = ", ".join(f"{col} {k}" for col, k in sorted(columns.items()))
    return (f"{len(skipped)} patient(s) of the manifest were skipped as invalid "
            f"(`skip_invalid_patients: true`); patients with a problem by manifest column: "
            f"{reasons}. The problems of each patient are listed in `data/dataset.json` and "
            f"the report (they name the patients).")


def _n_manifest(run: _Run) -> int:
    total = run.dataset.get("counts", {}).get("patients", {}).get("total", {}).get("all")
    curated = int(total) if total is not None else run.slices["patient_id"].nunique()
    return curated + len(run.skipped)


def _synthetic_source(run: _Run) -> str:
    stamp = None
    if run.manifest:
        stamp = _optional_json(Path(run.manifest).parent / SYNTH_STAMP)
    text = f"{SYNTHETIC_PREFIX} the kit's built-in physics-based synthetic cohort " \
           f"({manifest_label(run.manifest)}; docs/synthetic-cohort.md), not patients"
    if isinstance(stamp, Mapping):
        text += f": {stamp.get('n_patients')} patients drawn with seed {stamp.get('seed')}"
        mixes = [f"{name} " + ", ".join(f"{k} {v:.0%}" for k, v in stamp[name].items())
                 for name in ("scanners", "histologies") if stamp.get(name)]
        if mixes:
            text += " and the shifted mixes " + "; ".join(mixes)
    elif not run.params.get("cohort_manifest"):
        text += (f": synth_patients {run.params.get('synth_patients')}, synth_seed "
                 f"{run.params.get('synth_seed')}")
    return text


def _source(run: _Run) -> str:
    """Where the data come from (item 5a)."""
    patients = run.patients
    if run.synthetic:
        head = _synthetic_source(run)
    else:
        fingerprint = run.cohort.get("fingerprint") or run.dataset.get("cohort_sha256")
        head = (f"The cohort of the manifest {manifest_label(run.manifest)} "
                f"(docs/cohort-format.md; cohort fingerprint SHA-256 "
                f"{(fingerprint or 'not recorded')[:16]}...)")
    _, centres = _centres(patients)
    return (f"{head}. {_n_manifest(run)} patients in the manifest, "
            f"{_patients_by_histology(patients)} curated; {_scanners(patients)}; {centres}.")


def _suggest(text: str) -> str:
    return f"{_AUTHORS_ONLY} The kit suggests: {text}"


def _figures(run_dir: Path, names: Sequence[str]) -> str:
    present = [f"`figures/{n}.png`" for n in names if (run_dir / "figures" / f"{n}.png").is_file()]
    if present:
        return "Plots: " + ", ".join(present) + "."
    return ("Plots: drawn by the report stage into `figures/` (" +
            ", ".join(f"`{n}`" for n in names) + "); not present in this folder yet.")


def _sha256(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


# --------------------------------------------------------------------------- shared answers


def _eligibility(run: _Run, channels: Sequence[str], predict: bool) -> str:
    config = run.dataset.get("config", {})
    if predict:
        series = sorted({"t1" if c == "gland" else c for c in channels},
                        key=["t1", "ce_t1", "t2"].index)
        needs = (f"the model's input channels ({', '.join(channels)}) need the series "
                 f"{', '.join(series)} and their label maps for every patient (the predict "
                 f"command refuses a cohort that lacks one before anything runs); histology "
                 f"may be empty, and such a patient is diagnosed but not scored")
    else:
        needs = ("a patient needs the three MR series (T1, contrast-enhanced T1, T2), a label "
                 "map of each with the tumour and the gland of its side, a histology "
                 "(pleomorphic adenoma, Warthin tumour or malignant), tumour side, age, sex and "
                 "scanner")
    return (f"The kit's inclusion rules (docs/cohort-format.md): {needs}; every file must "
            f"pass validation (readable 3-D NIfTI, valid affine, label map on its series' "
            f"grid, label values 0-3, the tumour on the side the manifest gives). Slices: a "
            f"lesion slice has a tumour area of at least "
            f"{config.get('min_tumor_area_mm2', '?')} mm^2 on T1; a free slice is a slice of "
            f"the contralateral tumour-free gland with at least that gland area. "
            f"{_skipped(run)} The clinical eligibility of the cohort (who was imaged and "
            f"operated on, inclusion and exclusion criteria): to be completed by the authors.")


def _preparation(run: _Run) -> str:
    c = run.dataset.get("config", {})
    if c.get("normalisation") == "minmax":
        scaling = "each crop scaled by its own minimum and maximum (`normalisation: minmax`)"
    else:
        scaling = (f"each series scaled by its own window, the {c.get('percentile_low')} and "
                   f"{c.get('percentile_high')} percentiles of its body voxels (> 0), clipped "
                   f"to [0, 1] (`normalisation: percentile`)")
    mask = ("pixels outside the region-of-interest mask set to 0 (`mask_background: true`)"
            if c.get("mask_background") else
            "the background around the region of interest kept (`mask_background: false`)")
    n_warn = len(run.dataset.get("warnings") or [])
    no_free = len(run.dataset.get("patients_without_free_slices") or [])
    return (f"Curation (`parotidlib.data.curate`, `data.preprocess`): CE-T1, T2 and their "
            f"label maps resampled onto the T1 grid through the affines (linear for images, "
            f"nearest neighbour for labels); {scaling}; square crops of the region of "
            f"interest plus a {c.get('crop_margin_mm')} mm margin, {mask}, put in "
            f"radiological orientation, resized bilinearly to {c.get('image_size')} x "
            f"{c.get('image_size')} px and stored as uint8; channels "
            f"{', '.join(run.dataset.get('channels', []))}; lesion and free slices with a "
            f"region of at least {c.get('min_tumor_area_mm2')} mm^2. Quality checks: every "
            f"patient validated before curation (files, grids, label values, tumour side "
            f"against `tumor_side`); {n_warn} curation warning(s) recorded in "
            f"`data/dataset.json` (odd but usable data, e.g. a series without the region on a "
            f"slice where T1 has it); {no_free} patient(s) without free slices; the SHA-256 "
            f"of `images.npy` and `slices.csv` recorded. The same pipeline runs for every "
            f"patient; whether data quality differs between sociodemographic groups was not "
            f"examined by the kit.")


def _outcome(run: _Run) -> str:
    labelled = run.patients["histology"].notna().sum()
    return (f"Outcome: the histology of each patient's parotid lesion (manifest column "
            f"`histology`): pleomorphic adenoma, Warthin tumour or malignant; benign = "
            f"pleomorphic adenoma or Warthin ({labelled} curated patients with a histology). "
            f"Slice labels: a lesion slice takes its patient's histology, a slice of the "
            f"contralateral tumour-free gland is `free` (four classes: "
            f"{', '.join(CLASSES)}). How and when histology was assessed (surgical specimen "
            f"or biopsy, by whom, the time between MR and histology): to be completed by the "
            f"authors.")


def _predictors(channels: Sequence[str], run: _Run) -> str:
    listing = "; ".join(_CHANNEL_TEXT.get(c, c) for c in channels)
    columns = [c for c in run.slices.columns if c.endswith(("_tr_ms", "_te_ms"))
               or c in ("pixel_size_mm", "slice_thickness_mm", "field_strength_t")]
    protocol = (f"the scan parameters in the manifest ({', '.join(f'`{c}`' for c in columns)}) "
                f"are summarised per scanner in the report's Table 2"
                if columns else "the manifest holds no scan-parameter columns")
    return (f"The model's inputs are image channels, one slice each: {listing}. Each is cut "
            f"around the tumour (the gland for free slices and the gland channel) drawn on "
            f"that series' label map, as in the paper's Figure 3. No clinical variable (age, "
            f"sex) is an input. MR acquisition: {protocol}. How and when the images and "
            f"contours were obtained, and whether contouring was blind to histology: to be "
            f"completed by the authors.")


def _dates_answer(run: _Run) -> tuple[str, str]:
    dates = _dates(run.patients)
    if dates:
        return FROM_RUN, (f"Date columns of the curated manifest, range over all patients (by "
                          f"year): {dates}. End of follow-up: not applicable to a diagnosis "
                          f"at imaging unless the authors say otherwise.")
    if run.synthetic:
        return FROM_RUN, ("Synthetic cohort: generated by the kit, so there is no period of "
                          "data collection.")
    return AUTHORS, ("The curated manifest holds no date column; give the first and last "
                     "date of data collection.")


def _setting(run: _Run) -> tuple[str, str]:
    _, centres = _centres(run.patients)
    if run.synthetic:
        return FROM_RUN, (f"Synthetic cohort: no care setting and no centres; the generator "
                          f"simulates scanners of the paper's Table 2: "
                          f"{_scanners(run.patients)}.")
    return AUTHORS, (f"From the data: {centres}; {_scanners(run.patients)}. The care setting "
                     f"(e.g. a tertiary hospital's head and neck service) and the place of "
                     f"each centre: to be completed by the authors.")


def _characteristics(run: _Run) -> str:
    patients = run.patients
    parts = []
    groups = [("all", patients)]
    if len(_splits(run)) > 1:
        groups += [(s, patients[patients["split"] == s]) for s in _splits(run)]
    for name, part in groups:
        age = pd.to_numeric(part["age"], errors="coerce")
        # quartiles, not the range: the youngest and oldest ages are single patients' values
        age_text = (f"age mean {age.mean():.1f} (interquartile range "
                    f"{age.quantile(0.25):.1f}-{age.quantile(0.75):.1f}) years"
                    if age.notna().any() else "age not given")
        parts.append(f"{name}: {len(part)} patients, {age_text}, sex "
                     f"{_by(part, 'sex', ('M', 'F'))}, tumour side "
                     f"{_by(part, 'tumor_side', ('left', 'right', 'both'))}, histology "
                     f"{_by(part, 'histology', HISTOLOGIES)}")
    return "; ".join(parts)


def _code(commit: str | None, version: str | None, source: str) -> str:
    dirty = commit is not None and commit.endswith("-dirty")
    version_text = version or f"{__version__} (the version writing this checklist)"
    text = (f"The analysis code is the parotid study kit (parotidlib) version "
            f"{version_text}, git commit {commit or 'not recorded'} ({source})")
    if dirty:
        text += ("; the checkout had uncommitted changes, so the commit alone does not "
                 "reproduce the run")
    return text + (". The executed notebooks in this run folder are the record of the run. "
                   "Where the code is published and under which licence: to be completed by "
                   "the authors.")


# --------------------------------------------------------------------------- study run


def _train_counts(run: _Run) -> tuple[int, int]:
    train = run.patients[run.patients["split"] == "train"]
    fraction = float(run.params.get("val_fraction", 0.0) or 0.0)
    n_val = math.ceil(fraction * len(train)) if fraction > 0 else 0
    return len(train), n_val


def _split_answer(run: _Run) -> str:
    c = run.dataset.get("config", {})
    n_train, n_val = _train_counts(run)
    n_test = int((run.patients["split"] == "test").sum())
    if c.get("cv_folds"):
        how = (f"fold {c.get('fold')} of {c.get('cv_folds')} patient-grouped folds stratified "
               f"by histology (scikit-learn `StratifiedGroupKFold`, shuffled with split_seed "
               f"{c.get('split_seed')}) is the test set, the other folds the training set")
    else:
        how = (f"round(patients x test_fraction) patients (test_fraction "
               f"{c.get('test_fraction')}, at least 1) drawn at random for the test set with "
               f"scikit-learn `train_test_split` (random_state = split_seed "
               f"{c.get('split_seed')}), stratified by histology (without stratification, "
               f"and with a warning, when a histology has too few patients)")
    val = (f"Model selection uses a validation set of whole training patients: val_fraction "
           f"{run.params.get('val_fraction')} of them, rounded up by scikit-learn "
           f"({n_val} of {n_train}), stratified by the patient's tumour class and drawn with "
           f"the training seed {run.params.get('seed')} (`data.split."
           f"split_validation_patients`); the CNN trains on the other "
           f"{n_train - n_val} training patients."
           if n_val else
           "No validation patients (val_fraction 0): the checkpoint is the last epoch.")
    return (f"Patient-level split (`parotidlib.data.split.split_patients`): {how}. Every "
            f"slice of a patient lies in one split, which curation checks (no leakage). "
            f"Here: {n_train} training and {n_test} test patients. {val} The test patients "
            f"are used only for the final evaluation. The kit makes no sample-size "
            f"calculation.")


def _model_answer(run: _Run, bundle: Mapping[str, Any] | None,
                  radiomics: Mapping[str, Any] | None, history: pd.DataFrame | None) -> str:
    p = run.params
    widths = list(p.get("model_widths", ()))
    n_in = len(run.params.get("channels") or run.dataset.get("channels", []))
    schedule = (f"lr {p.get('lr')} multiplied by {p.get('lr_decay_factor')} every "
                f"{p.get('lr_decay_every')} epochs from epoch {p.get('lr_decay_start')} "
                f"(counted from 0)")
    if p.get("augment"):
        aug = (f"random flips ({'on' if p.get('aug_flip') else 'off'}), rotation up to "
               f"{p.get('aug_rotate_deg')} degrees, shift up to {p.get('aug_translate')} of "
               f"the image, zoom {p.get('aug_scale')}, contrast {p.get('aug_contrast')}, "
               f"per-channel gain and offset {p.get('aug_channel_jitter')} (`learn.augment`)")
    else:
        aug = "none (`augment: false`)"
    checkpoint = p.get("checkpoint", "best")
    _, n_val = _train_counts(run)
    if checkpoint == "best" and not n_val:
        chosen = ("`best.pt`, which without validation patients (val_fraction 0) is the last "
                  "epoch's checkpoint")
    elif checkpoint == "best":
        chosen = (f"the epoch with the best {p.get('select_metric')} on the validation "
                  f"patients (`best.pt`)")
    else:
        chosen = "the last epoch (`last.pt`)"
    if bundle and bundle.get("epoch") is not None:
        chosen += f": epoch {bundle['epoch']}"
    trained = f" ({len(history)} epochs trained)" if history is not None else ""
    text = (f"A convolutional neural network, the paper's reduced ResNet18 "
            f"(`parotidlib.learn.model.ReducedResNet`): the ResNet18 stem (7 x 7 convolution, "
            f"batch norm, ReLU, max-pool), {len(widths)} residual stage(s) of one basic block "
            f"each with widths {widths}, global average pooling and a linear layer to the four "
            f"classes; {n_in} input channel(s). Training (`learn.train`): cross-entropy, "
            f"optimiser {p.get('optimizer')}, weight decay {p.get('weight_decay')}, batch "
            f"{p.get('batch_size')}, {p.get('epochs')} epochs{trained}, {schedule}, seed "
            f"{p.get('seed')}; augmentation of training batches: {aug}. Weights evaluated: "
            f"{chosen}. The CNN's hyperparameters are the params file's, not tuned in the run. "
            f"Internal validation: the held-out test split (12a).")
    if not p.get("radiomics", True):
        text += " No radiomics baseline in this run (`radiomics: false`)."
    elif radiomics:
        model = radiomics.get("model")
        chosen_params = ", ".join(f"{k} {v}" for k, v in (radiomics.get("params") or {}).items())
        text += (f" Radiomics baseline (`radiomics.baseline`, `radiomics.json`): "
                 f"{radiomics.get('n_features')} IBSI features per slice of the same inputs, a "
                 f"scikit-learn pipeline (median imputation, scaling, SelectKBest, a "
                 f"{_RADIOMICS_MODELS.get(model, model)} with balanced class weights) tuned by "
                 f"grid search over patient-grouped 3-fold inner cross-validation on the "
                 f"training slices (balanced accuracy); chosen: {chosen_params} (inner-CV "
                 f"balanced accuracy {_num(radiomics.get('cv_score'))}).")
    else:
        text += " No `radiomics.json` in this run folder: the radiomics baseline is not described."
    return text


def _open_science(run: _Run) -> dict[str, tuple[str, str]]:
    """Items 17, 18a-18d and 19, which only the authors can answer in either report."""
    return {
        "17": (AUTHORS, "Ethics approval and consent (or its waiver): to be completed by the "
                        "authors." + (" None is needed for the synthetic cohort."
                                      if run.synthetic else "")),
        "18a": (AUTHORS, "Funding and the funders' role: to be completed by the authors."),
        "18b": (AUTHORS, "Conflicts of interest: to be completed by the authors."),
        "18c": (AUTHORS, "Where the protocol can be read, or that there is none: to be "
                         "completed by the authors."),
        "18d": (AUTHORS, "Registration, or that the study was not registered: to be "
                         "completed by the authors."),
        "19": (AUTHORS, "Patient and public involvement, or that there was none: to be "
                        "completed by the authors."),
    }


def _measures_study(run: _Run, metrics: Mapping[str, Any]) -> str:
    p = run.params
    text = (f"Slice level (`evaluation.metrics`): four-class accuracy with the Wilson 95% "
            f"interval; one-vs-rest ROC AUC per class, micro- and macro-averaged, the "
            f"micro-AUC with a patient-clustered percentile bootstrap interval "
            f"({p.get('bootstrap_resamples')} resamples, seed {p.get('bootstrap_seed')}); "
            f"confusion matrices (Figure 7) and ROC curves (Figure 6). Table 4: benign vs "
            f"malignant, pleomorphic adenoma vs Warthin and free vs lesion slices, accuracy "
            f"(Wilson) and sensitivity, specificity, PPV, NPV (Wilson with continuity "
            f"correction). Patient level: the decision rule of Figure 5, Table 5 per "
            f"histology (Wilson), the patient confusion matrix, and a sweep of the rule's "
            f"threshold from 0 to 10 malignant slices (sensitivity and specificity for "
            f"malignant).")
    if metrics.get("cnn_vs_radiomics"):
        text += (" Model comparison: the radiomics baseline on the same test slices, CNN "
                 "minus radiomics accuracy and micro-AUC with a patient-level paired "
                 "bootstrap (`evaluation.paired`), McNemar's exact test on slices as a "
                 "secondary measure.")
    else:
        text += " No model comparison: metrics.json has no `cnn_vs_radiomics` section."
    saliency = _optional_json(run.run_dir / "saliency.json")
    if saliency and saliency.get("computed"):
        check = saliency["randomisation"]
        verdict = "informative" if check["informative"] else "not informative"
        text += (f" Where the network looks: {saliency['method_name']} maps of "
                 f"`{saliency['layer']}` for the true class of each test slice, the share of "
                 f"the map inside the region of interest (the nonzero T1 pixels) per class, "
                 f"and the model-parameter randomisation check (Adebayo et al. 2018; mean "
                 f"Spearman correlation {_num(check['mean_spearman'], 2)}: {verdict}).")
    found = _evaluations_of(run.run_dir)
    where = (f" It exists for this run: {', '.join(f'`{name}`' for name in found)} (beside "
             f"this run folder when the checklist was written)." if found else
             " None was found beside this run folder when the checklist was written.")
    return text + (" Calibration and clinical utility are not assessed in a study run; the "
                   "external-validation report (`python -m parotidlib predict`, `make "
                   "external`) gives Brier score, calibration intercept and slope, ECE, "
                   "reliability diagrams and a decision curve for the applied-to cohort and "
                   "for this run's internal test predictions carried by its bundle." + where)


def _evaluations_of(run_dir: Path) -> list[str]:
    """The predict run folders beside ``run_dir`` that applied its model (their
    ``external.json`` names it as the training run)."""
    found = []
    for path in sorted(run_dir.parent.glob("*/external.json")):
        results = _optional_json(path)
        model = results.get("model") if isinstance(results, Mapping) else None
        if isinstance(model, Mapping) and model.get("training_run") == run_dir.name:
            found.append(path.parent.name)
    return found


def _class_balance(run: _Run) -> str:
    train = run.slices[run.slices["split"] == "train"]
    counts = train["label"].value_counts()
    n = len(train)
    shares = ", ".join(f"{_PRETTY[c].split(' (')[0]} {_pct(int(counts.get(c, 0)), n)}"
                       for c in CLASSES)
    text = (f"No class-imbalance method in the CNN's training (`learn.train`): an unweighted "
            f"cross-entropy over a uniform random permutation of the training slices each "
            f"epoch, without class weights, re-sampling or over-sampling, and no "
            f"recalibration afterwards. Only the splits are stratified: the test split by "
            f"histology (12a) and the validation patients by tumour class. Training slices: "
            f"{shares}.")
    if run.params.get("radiomics", True):
        text += (" The radiomics baseline uses balanced class weights (`class_weight="
                 "\"balanced\"`) and is tuned by balanced accuracy.")
    return text


def _output_answer(run: _Run, metrics: Mapping[str, Any]) -> str:
    threshold = metrics.get("patient", {}).get("malignant_threshold",
                                               run.params.get("malignant_threshold"))
    return (f"Per slice: the softmax probabilities of the four classes (`prob_<class>` in "
            f"predictions.csv) and the predicted class, their argmax. Per patient: the rule "
            f"of the paper's Figure 5 (`evaluation.decision`): malignant when more than "
            f"`malignant_threshold` = {threshold} slices are predicted malignant, otherwise the "
            f"benign type with more predicted slices (a tie goes to the type with the larger "
            f"summed probability, then to pleomorphic adenoma); free slices count for neither. "
            f"The threshold is the params file's `malignant_threshold` (default 2, the paper's "
            f"\"more than two slices\"); the kit does not tune it, and the threshold sweep of "
            f"Figure 5 on the test patients is shown for information only. When and how the "
            f"authors chose the value (before seeing test results or not): to be completed by "
            f"the authors.")


def _development_events(run: _Run) -> str:
    n_train, n_val = _train_counts(run)
    text = _per_split(run)
    if n_val:
        text += (f". Of the training patients, {n_val} are held out as validation patients for "
                 f"model selection and {n_train - n_val} train the weights")
    malignant = run.patients[run.patients["histology"] == "malignant"]
    events = ", ".join(f"{split} {int((malignant['split'] == split).sum())}"
                       for split in _splits(run))
    counted = run.dataset.get("counts", {}).get("patients", {}).get("total", {}).get("all")
    extra = ""
    if counted is not None and int(counted) != len(run.patients):
        extra = (f" ({int(counted) - len(run.patients)} curated patient(s) gave no slice and "
                 f"are left out of these counts)")
    return (f"Counted from `data/slices.csv`: {text}. Outcome events (malignant patients): "
            f"{events}{extra}.")


def _performance_study(run: _Run, metrics: Mapping[str, Any]) -> str:
    test = metrics.get("slice", {}).get("test")
    if not test:
        return "metrics.json has no `slice.test` section: no performance to report."
    label = "Synthetic data. " if run.synthetic else ""
    text = (f"{label}Internal test split ({test.get('patients')} patients, "
            f"{test.get('slices')} slices): four-class slice accuracy (Wilson 95% CI) "
            f"{block_text(test.get('accuracy'))}; micro-AUC (patient-clustered bootstrap) "
            f"{block_text(test.get('micro_auc'))}; macro-AUC "
            f"{_num(test.get('macro_auc'))}.")
    rows = [f"{_TASK_TEXT.get(row.get('task'), row.get('task'))} accuracy "
            f"{block_text(row.get('accuracy'))}, sensitivity {block_text(row.get('sensitivity'))}, "
            f"specificity {block_text(row.get('specificity'))}"
            for row in metrics.get("table4", [])]
    if rows:
        text += " Table 4 (test slices): " + "; ".join(rows) + "."
    patient = metrics.get("patient", {})
    table5 = [f"{_PRETTY.get(row.get('type'), row.get('type'))} {block_text(row.get('accuracy'))}"
              for row in patient.get("table5", [])]
    if table5:
        text += (f" Table 5 (test patients, rule of Figure 5 with threshold "
                 f"{patient.get('malignant_threshold')}): " + "; ".join(table5) + ".")
    train = metrics.get("slice", {}).get("train")
    if train:
        text += f" Training slices: accuracy {block_text(train.get('accuracy'))}."
    radiomics = metrics.get("radiomics")
    comparison = metrics.get("cnn_vs_radiomics")
    if radiomics and comparison:
        acc = comparison.get("accuracy", {})
        auc = comparison.get("micro_auc", {})
        mcnemar = comparison.get("mcnemar", {})
        text += (f" Radiomics baseline on the same test slices: accuracy "
                 f"{block_text(radiomics.get('slice', {}).get('test', {}).get('accuracy'))}, "
                 f"micro-AUC "
                 f"{block_text(radiomics.get('slice', {}).get('test', {}).get('micro_auc'))}; CNN "
                 f"minus radiomics: accuracy {block_text(acc)} (paired patient bootstrap, p "
                 f"{_num(acc.get('p_two_sided'))}), micro-AUC {block_text(auc)} (p "
                 f"{_num(auc.get('p_two_sided'))}); McNemar exact p "
                 f"{_num(mcnemar.get('pvalue'))} (slices treated as independent).")
    else:
        text += " No radiomics comparison in metrics.json."
    return f"{text} {_figures(run.run_dir, STUDY_FIGURES)}"


def _bundle_answer(run_dir: Path, bundle: Mapping[str, Any] | None) -> tuple[str, str]:
    path = run_dir / "bundle.pt"
    if not path.is_file():
        return FROM_RUN, ("`bundle.pt` is missing from this run folder (the statistics stage "
                          "`40-statistics` writes it): the model cannot be shared as one file "
                          "yet.")
    text = (f"The full model is one file, `bundle.pt` (SHA-256 {sha256_file(path)}, "
            f"{path.stat().st_size} bytes; `parotidlib.learn.bundle`): the network's "
            f"weights and architecture, the input channels and their order, the curation "
            f"settings its inputs must be made with, the class names, the decision rule's "
            f"threshold, the kit's version and commit and the training cohort's fingerprint")
    if bundle:
        text += (f" (here: channels {', '.join(bundle.get('channels', []))}, threshold "
                 f"{bundle.get('malignant_threshold')}, checkpoint {bundle.get('checkpoint')} "
                 f"at epoch {bundle.get('epoch')})")
    text += (". It loads with `torch.load(weights_only=True)` (no code runs) through "
             "`parotidlib.learn.bundle.load_bundle`; to apply it to new patients: `python -m "
             "parotidlib predict --model <this run folder> --cohort <manifest.csv>`, which "
             "curates the cohort with the bundle's settings and writes the predictions, the "
             "diagnoses and a report. Access restrictions: to be completed by the authors.")
    return FROM_RUN, text


def _usability() -> str:
    return ("Input checks of the kit: before anything runs, the predict command refuses a "
            "bundle of unknown format and a cohort that cannot supply one of the model's "
            "channels (a series or label map missing), naming the channels, the manifest "
            "columns and the patients; every patient is then validated as in 6b (files, "
            "grids, label values, tumour side), and an invalid patient stops curation, or "
            "with `skip_invalid_patients: true` is skipped and listed in the report. The "
            "model's input settings always come from the bundle. Images that pass these "
            "checks but are of poor quality (motion, artefacts, wrong sequence) are not "
            "detected: how users should judge them is to be completed by the authors.")


def study_checklist(run_dir: str | Path, params: Mapping[str, Any] | None = None,
                    synthetic: bool = False) -> list[ChecklistItem]:
    """The TRIPOD+AI checklist of a study run (development with internal validation).

    Parameters
    ----------
    run_dir : path
        A study run folder (``make report``, ``python -m parotidlib run``) with at least
        ``data/dataset.json``, ``data/slices.csv`` and ``metrics.json``; ``bundle.pt``,
        ``radiomics.json``, ``model/history.csv``, ``cohort.json`` and ``figures/`` are used
        when present, and an item says what is missing otherwise.
    params : mapping, optional
        The run's resolved params (a notebook's ``nb.params``); default the run's
        ``params.yaml``.
    synthetic : bool
        Whether the cohort is the kit's synthetic one (``nb.synthetic``); the answers say so.

    Returns
    -------
    list of ChecklistItem
        The 52 items of :data:`ITEMS`, in order, answered.

    Raises
    ------
    FileNotFoundError
        A required file is missing; the message names it and the notebook that writes it.
    """
    run = _read_run(run_dir, params, synthetic, "study", "notebooks/10-curate.ipynb")
    metrics = _read_json(_require(run.run_dir, "metrics.json",
                                  "notebooks/40-statistics.ipynb", "study"))
    if run.synthetic != bool(metrics.get("synthetic", run.synthetic)):
        logger.warning("metrics.json says synthetic=%s, the caller %s; the checklist labels "
                       "the run synthetic if either does", metrics.get("synthetic"),
                       run.synthetic)
        run.synthetic = True
    bundle = bundle_metadata(run.run_dir / "bundle.pt")
    radiomics = _optional_json(run.run_dir / "radiomics.json")
    if radiomics is None and isinstance(metrics.get("radiomics"), Mapping):
        radiomics = metrics["radiomics"].get("info")
    history_path = run.run_dir / "model" / "history.csv"
    history = pd.read_csv(history_path) if history_path.is_file() else None
    channels = list(run.params.get("channels") or run.dataset.get("channels", []))
    commit = (bundle or {}).get("git_commit") or _commit_from_name(run.run_dir.name)
    commit_source = ("recorded in `bundle.pt` by the statistics stage" if bundle and
                     bundle.get("git_commit") else "from the run folder's name"
                     if commit else "no bundle and no commit in the folder name")
    n_test = int((run.patients["split"] == "test").sum())
    synthetic_note = " The run is on synthetic data." if run.synthetic else ""

    answers: dict[str, tuple[str, str]] = {
        "1": (AUTHORS, _suggest("the development and internal validation of a deep-learning "
                                "model (a reduced ResNet18) that classifies MR slices of "
                                "parotid lesions and diagnoses patients as benign or "
                                "malignant (pleomorphic adenoma, Warthin tumour, malignant)."
                                + synthetic_note)),
        "2": (AUTHORS, "Write the abstract after TRIPOD+AI for Abstracts; item 23a gives "
                       "the results with intervals."),
        "3a": (AUTHORS, _suggest("the study reproduced is Xia et al. 2021 (Front Oncol "
                                 "11:632104); preoperative distinction of benign and malignant "
                                 "parotid tumours guides the extent of surgery.")),
        "4": (AUTHORS, _suggest("this run develops a model and validates it internally on a "
                                "held-out test split of the same cohort (development); an "
                                "external evaluation is a separate predict run.")),
        "5a": (FROM_RUN, _source(run) + " Rationale and representativeness of the data: to "
                                        "be completed by the authors."),
        "5b": _dates_answer(run),
        "6a": _setting(run),
        "6b": (FROM_RUN, _eligibility(run, channels, predict=False)),
        "6c": (AUTHORS, f"The kit records no treatment. It keeps patients whose contralateral "
                        f"gland is missing (e.g. after resection) without free slices: "
                        f"{len(run.dataset.get('patients_without_free_slices') or [])} such "
                        f"patient(s) here. Treatments before imaging and how they were "
                        f"handled: to be completed by the authors."),
        "7": (FROM_RUN, _preparation(run)),
        "8a": (FROM_RUN, _outcome(run)),
        "8b": (AUTHORS, "Histology is assessed by pathologists: their number and "
                        "qualifications are to be completed by the authors."),
        "8c": (AUTHORS, "Whether the pathologists knew the MR findings: to be completed by "
                        "the authors."),
        "9a": (FROM_RUN, f"The inputs are images, not pre-selected variables: the channels "
                         f"{', '.join(channels)} (params `channels`), "
                         + ("the paper's composition (Table 3 row g); the paper's Table 3 "
                            "compares others"
                            if tuple(channels) == tuple(CHANNELS) else
                            "one of the compositions the paper's Table 3 compares, not the "
                            "paper's proposed model (all four channels)")
                         + ", which the kit's ablation batch (`python -m parotidlib ablation`) "
                           "reruns. No predictor was selected on the data."),
        "9b": (FROM_RUN, _predictors(channels, run)),
        "9c": (AUTHORS, "The tumour and gland contours that define every crop are drawn by "
                        "readers: their number, qualifications and blinding to histology are "
                        "to be completed by the authors."),
        "10": (FROM_RUN, f"The study size is the cohort's: {_per_split(run)}. How the size "
                         f"was arrived at and any sample-size calculation: to be completed by "
                         f"the authors (the kit computes none)."),
        "11": (FROM_RUN, f"Complete-case: a patient without a required series, label map, "
                         f"region or histology fails validation and is never imputed. "
                         f"{_skipped(run)} Slices are omitted only by the rules of 6b."),
        "12a": (FROM_RUN, _split_answer(run)),
        "12b": (FROM_RUN, "Image intensities only (7): each series' window (or per-crop "
                          "min-max) scales the crop to [0, 1], stored as uint8 and divided by "
                          "255 at the network's input; no further standardisation or "
                          "transformation. Crops are resized to a fixed size."),
        "12c": (FROM_RUN, _model_answer(run, bundle, radiomics, history)),
        "12d": (FROM_RUN, f"Not examined: the run reports no performance per scanner or "
                          f"centre. The cohort has {_scanners(run.patients)}; the scanner of "
                          f"every slice is in `data/slices.csv`."),
        "12e": (FROM_RUN, _measures_study(run, metrics)),
        "13": (FROM_RUN, _class_balance(run)),
        "14": (AUTHORS, "The kit applies no fairness method and reports no performance by "
                        "age or sex (both are in `data/slices.csv`): to be completed by the "
                        "authors."),
        "15": (FROM_RUN, _output_answer(run, metrics)),
        "16": (FROM_RUN, f"Internal evaluation only: the {n_test} test patients are a "
                         f"held-out random split of the same cohort (12a), curated by the same "
                         f"code with the same settings, so setting, eligibility, outcome and "
                         f"predictors are the same as in development. An evaluation on "
                         f"other data is a predict run (`python -m parotidlib predict`)."),
        **_open_science(run),
        "18e": ((FROM_RUN, "The data are synthetic: the kit regenerates them byte for byte "
                           "from its generator settings (5a; `python -m parotidlib synth`).")
                if run.synthetic else
                (AUTHORS, "Availability of the images, contours and histology: to be "
                          "completed by the authors. The run folder holds the curated crops "
                          "and per-slice tables, which are patient data.")),
        "18f": (FROM_RUN, _code(commit, (bundle or {}).get("kit_version"), commit_source)),
        "20a": (FROM_RUN, (f"{'Synthetic data. ' if run.synthetic else ''}Cohort manifest "
                           f"{_n_manifest(run)} patients -> skipped by validation "
                           f"{len(run.skipped)} -> curated {len(run.patients)} -> "
                           f"{_per_split(run)}. Every curated patient has the outcome "
                           f"(histology); no follow-up.")),
        "20b": (FROM_RUN, (f"{'Synthetic data. ' if run.synthetic else ''}"
                           f"{_characteristics(run)}. Scanners: {_scanners(run.patients)}. "
                           f"The report shows Table 1 and the scanner table.")),
        "21": (FROM_RUN, ("Synthetic data. " if run.synthetic else "")
               + _development_events(run)),
        "22": _bundle_answer(run.run_dir, bundle),
        "23a": (FROM_RUN, _performance_study(run, metrics)),
        "23b": (FROM_RUN, "Not examined (12d)."),
        "24": (NOT_APPLICABLE, "A development run: no model updating."),
        "25": (AUTHORS, "Interpretation: to be completed by the authors."
                        + (" Results on the synthetic cohort check the pipeline, not a "
                           "clinical claim." if run.synthetic else "")),
        "26": (AUTHORS, _suggest(f"one held-out split of {n_test} test patients (wide "
                                 f"intervals); the slices of a patient are correlated (the "
                                 f"AUC interval is patient-clustered, the Wilson intervals of "
                                 f"slice proportions are not); no external validation in this "
                                 f"run; contours are needed as input.")),
        "27a": (FROM_RUN, _usability()),
        "27b": (AUTHORS, _suggest("users must supply the three MR series with tumour and "
                                  "gland contours (label maps) of every series; the model "
                                  "sees only the contoured crops. The expertise needed to "
                                  "contour is for the authors to state.")),
        "27c": (AUTHORS, _suggest("external validation on other centres and scanners "
                                  "(`python -m parotidlib predict`).")),
    }
    return _answered(answers, kind="D")


def _answered(answers: Mapping[str, tuple[str, str]], kind: str) -> list[ChecklistItem]:
    """:data:`ITEMS` with the answers; an item for the other kind of report is not
    applicable, an item without an answer is the authors'."""
    other = ("An evaluation item ({applies} only): this run develops the model; its "
             "evaluation on other data is a predict run." if kind == "D" else
             "A development item ({applies} only): see the checklist of the training run.")
    out = []
    for item in ITEMS:
        if item.number in answers:
            status, answer = answers[item.number]
        elif kind not in item.applies.split(";"):
            status = NOT_APPLICABLE
            answer = other.format(applies=item.applies)
        else:
            status, answer = AUTHORS, _AUTHORS_ONLY
        out.append(replace(item, status=status, answer=answer))
    return out


# --------------------------------------------------------------------------- predict run


def _development_run(run: _Run) -> Path | None:
    """The training run folder of the bundle applied (``params['model']``'s folder), when it
    is a study run folder that is still here."""
    model = run.params.get("model")
    if not model:
        return None
    folder = Path(model) if Path(model).is_dir() else Path(model).parent
    return folder if (folder / "data" / "slices.csv").is_file() else None


def _shares(frame: pd.DataFrame, column: str, order: Sequence[str]) -> str:
    counts = frame[column].fillna("").value_counts()
    n = len(frame)
    keys = [*order, *(k for k in counts.index if k not in order)]
    return ", ".join(f"{_PRETTY.get(k, k) or 'none'} {_pct(int(counts.get(k, 0)), n)}"
                     for k in keys if counts.get(k, 0) or k in order)


def _comparison(run: _Run, development: Path | None, bundle: Mapping[str, Any] | None,
                results: Mapping[str, Any]) -> str:
    """This cohort beside the development cohort, where the kit can see both."""
    here = run.patients
    labelled = here[here["histology"].notna()]
    parts = [f"This cohort: histology {_shares(labelled, 'histology', HISTOLOGIES)} of "
             f"{len(labelled)} patients with one; {_scanners(here)}"]
    area = pd.to_numeric(run.slices.loc[run.slices["label"] != "free", "tumor_area_mm2"],
                         errors="coerce")
    if development is not None:
        dev = _read_slices(development / "data" / "slices.csv")
        dev_patients = dev.drop_duplicates("patient_id")
        dev_area = pd.to_numeric(dev.loc[dev["label"] != "free", "tumor_area_mm2"],
                                 errors="coerce")
        parts.append(f"development cohort (the training run's `data/slices.csv`): histology "
                     f"{_shares(dev_patients, 'histology', HISTOLOGIES)} of "
                     f"{len(dev_patients)} patients; {_scanners(dev_patients)}")
        if area.notna().any() and dev_area.notna().any():
            parts.append(f"median tumour area of the lesion slices {area.median():.0f} mm^2 "
                         f"here against {dev_area.median():.0f} mm^2 in development")
    else:
        counts = (bundle or {}).get("training_counts", {}).get("patients", {}).get("total")
        if counts:
            n = counts.get("all", 0)
            shares = ", ".join(f"{_PRETTY[h]} {_pct(int(counts.get(h, 0)), n)}"
                               for h in HISTOLOGIES)
            parts.append(f"development cohort (the bundle's counts; its run folder is not "
                         f"here, so its scanners are unknown): histology {shares} of {n} "
                         f"patients")
        else:
            internal = (results.get("internal") or {}).get("patient", {}).get("table5", [])
            rows = {r.get("type"): r.get("patients") for r in internal}
            if rows:
                n = sum(int(rows.get(h) or 0) for h in HISTOLOGIES)
                shares = ", ".join(f"{_PRETTY[h]} {_pct(int(rows.get(h) or 0), n)}"
                                   for h in HISTOLOGIES)
                parts.append(f"the development run's internal test patients (carried by the "
                             f"bundle): histology {shares} of {n}; the rest of the "
                             f"development cohort is not known here")
            else:
                parts.append("the development cohort is not known here (neither its run "
                             "folder nor the bundle's counts)")
    return "; ".join(parts) + "."


def _calibration_text(block: Mapping[str, Any] | None) -> str:
    if not block:
        return "not computed"
    return (f"n {block.get('n')}, Brier {_num(block.get('brier'))}, intercept "
            f"{block_text(block.get('intercept'))}, slope {block_text(block.get('slope'))}, ECE "
            f"{_num(block.get('ece'))} ({block.get('n_bins')} bins)")


def _performance_external(run: _Run, results: Mapping[str, Any]) -> str:
    label = "Synthetic data. " if run.synthetic else ""
    if not results.get("validated") or not results.get("external"):
        return (f"{label}Unvalidated: no patient of this cohort has a histology, so no "
                f"performance can be given; `patients.csv` holds the "
                f"{results.get('n_patients')} diagnoses.")
    ext = results["external"]
    sl = ext.get("slice", {})
    text = (f"{label}This cohort ({results.get('n_labelled_patients')} patients with "
            f"histology, {sl.get('slices')} slices): four-class slice accuracy (Wilson) "
            f"{block_text(sl.get('accuracy'))}; micro-AUC (patient-clustered bootstrap) "
            f"{block_text(sl.get('micro_auc'))}; patient diagnosis accuracy "
            f"{block_text(ext.get('patient', {}).get('accuracy'))}.")
    rows = [f"{_TASK_TEXT.get(r.get('task'), r.get('task'))} {block_text(r.get('accuracy'))}"
            for r in ext.get("table4", [])]
    if rows:
        text += " Table 4 accuracy: " + "; ".join(rows) + "."
    table5 = [f"{_PRETTY.get(r.get('type'), r.get('type'))} {block_text(r.get('accuracy'))}"
              for r in ext.get("patient", {}).get("table5", [])]
    if table5:
        text += " Table 5: " + "; ".join(table5) + "."
    cal = ext.get("calibration", {})
    text += (f" Calibration, patients' malignant probability: "
             f"{_calibration_text(cal.get('patient', {}).get('malignant_vs_benign'))}; "
             f"lesion slices, malignant vs benign: "
             f"{_calibration_text(cal.get('slice', {}).get('malignant_vs_benign'))}.")
    internal = results.get("internal")
    if internal:
        icl = internal.get("calibration", {}).get("patient", {}).get("malignant_vs_benign")
        text += (f" Internal test of the training run, same code: slice accuracy "
                 f"{block_text(internal.get('slice', {}).get('accuracy'))}, patient accuracy "
                 f"{block_text(internal.get('patient', {}).get('accuracy'))}, patients' "
                 f"calibration {_calibration_text(icl)}.")
    diff = results.get("difference") or {}
    if diff:
        text += (f" External minus internal: slice accuracy "
                 f"{block_text(diff.get('slice_accuracy'))} (patient-clustered bootstrap), "
                 f"patient accuracy {block_text(diff.get('patient_accuracy'))} (Newcombe).")
    return f"{text} {_figures(run.run_dir, PREDICT_FIGURES)}"


def _measures_external(run: _Run, results: Mapping[str, Any]) -> str:
    p = run.params
    how = results.get("patient_probability") or "mean of its lesion slices' probabilities"
    return (f"For the patients with histology, by the code of the study run (`evaluation."
            f"external`): slice accuracy (Wilson), micro-AUC (patient-clustered bootstrap, "
            f"{p.get('bootstrap_resamples')} resamples, seed {p.get('bootstrap_seed')}), "
            f"Table 4, Table 5 and the exact three-type patient accuracy, each beside the "
            f"training run's internal test; external minus internal accuracy (slices: "
            f"patient-clustered bootstrap of each cohort; patients: Newcombe's hybrid score "
            f"interval). Calibration at slice and patient level (malignant vs benign, and each "
            f"class one-vs-rest): Brier score, calibration intercept and slope (logistic "
            f"recalibration, Wald 95% intervals), expected calibration error and reliability "
            f"diagrams with {p.get('calibration_bins')} equal-width bins. Clinical utility: "
            f"the decision curve (net benefit) of the patients' malignant probability. A "
            f"patient's probability is the {how}.")


def evaluation_checklist(run_dir: str | Path, params: Mapping[str, Any] | None = None,
                         synthetic: bool = False) -> list[ChecklistItem]:
    """The TRIPOD+AI checklist of a predict run (a trained model evaluated on another cohort).

    Parameters
    ----------
    run_dir : path
        A predict run folder (``python -m parotidlib predict``, notebooks 70-72) with at
        least ``data/dataset.json``, ``data/slices.csv`` and ``external.json``
        (docs/metrics.md#externaljson); the bundle applied (``params['model']``) and its
        training run folder are used when they are still there.
    params : mapping, optional
        The run's resolved params (``nb.params``); default the run's ``params.yaml``.
    synthetic : bool
        Whether the applied-to cohort is the kit's synthetic one (``nb.synthetic``).

    Returns
    -------
    list of ChecklistItem
        The 52 items of :data:`ITEMS`, in order: the E and D;E items answered, the D-only
        items not applicable (they belong to the training run's checklist).

    Raises
    ------
    FileNotFoundError
        A required file is missing; the message names it and the notebook that writes it.
    """
    run = _read_run(run_dir, params, synthetic, "predict", "notebooks/70-predict-curate.ipynb")
    results = _read_json(_require(run.run_dir, "external.json", "notebooks/71-predict.ipynb",
                                  "predict"))
    if results.get("synthetic"):
        run.synthetic = True
    model = results.get("model") or {}
    bundle_path = Path(run.params["model"]) if run.params.get("model") else None
    if bundle_path is not None and bundle_path.is_dir():
        bundle_path = bundle_path / "bundle.pt"
    bundle = bundle_metadata(bundle_path) if bundle_path is not None else None
    bundle_sha = _sha256(bundle_path) if bundle_path is not None else None
    development = _development_run(run)
    training_run = model.get("training_run") or "unknown"
    channels = list(model.get("channels") or run.dataset.get("channels", []))
    threshold = results.get("malignant_threshold", model.get("malignant_threshold"))
    unlabelled = int(run.patients["histology"].isna().sum())
    predict_commit = _commit_from_name(run.run_dir.name, predict=True)
    trained = (bundle or {}).get("training_counts", {}).get("patients", {})
    development_counts = (
        "the training run's item 21; the bundle counts " + ", ".join(
            f"{split} {trained[split].get('all')} patients ({trained[split].get('malignant')} "
            f"malignant)" for split in ("train", "test") if split in trained)
        if trained else "the training run's item 21")
    dev_synthetic = model.get("training_cohort_synthetic")
    dev_note = ("the training cohort was synthetic too" if dev_synthetic else
                "the training cohort was not synthetic" if dev_synthetic is False else
                "whether the training cohort was synthetic is not recorded")

    answers: dict[str, tuple[str, str]] = {
        "1": (AUTHORS, _suggest(f"the external evaluation of an existing deep-learning model "
                                f"(the reduced ResNet18 of the training run `{training_run}`) "
                                f"for diagnosing parotid lesions on MR as benign or "
                                f"malignant." + (" The run is on synthetic data."
                                                 if run.synthetic else ""))),
        "2": (AUTHORS, "Write the abstract after TRIPOD+AI for Abstracts; item 23a gives "
                       "the results with intervals."),
        "4": (AUTHORS, _suggest(f"this run evaluates the model of `{training_run}` on another "
                                f"cohort without changing it (evaluation).")),
        "5a": (FROM_RUN, f"Evaluation data: {_source(run)} Development data: the training "
                         f"run `{training_run}` (training cohort fingerprint SHA-256 "
                         f"{(model.get('training_cohort_fingerprint') or 'not recorded')[:16]}"
                         f"...; {dev_note}). Rationale and representativeness: to be "
                         f"completed by the authors."),
        "5b": _dates_answer(run),
        "6a": _setting(run),
        "6b": (FROM_RUN, _eligibility(run, channels, predict=True)),
        "6c": (AUTHORS, "The kit records no treatment: to be completed by the authors."),
        "7": (FROM_RUN, "Curated with the bundle's input settings, not the params file's "
                        "(`learn.apply.curation_for`), and no split: every patient is in the "
                        "split `external`. " + _preparation(run)),
        "8a": (FROM_RUN, _outcome(run) + (f" {unlabelled} patient(s) without histology are "
                                          f"diagnosed but not scored." if unlabelled else
                                          " Every curated patient has a histology.")),
        "8b": (AUTHORS, "Histology is assessed by pathologists: their number and "
                        "qualifications are to be completed by the authors."),
        "8c": (AUTHORS, "Whether the pathologists knew the MR findings or the model's output: "
                        "to be completed by the authors."),
        "9b": (FROM_RUN, _predictors(channels, run)),
        "9c": (AUTHORS, "The tumour and gland contours that define every crop are drawn by "
                        "readers: their number, qualifications and blinding are to be "
                        "completed by the authors."),
        "10": (FROM_RUN, f"The study size is the cohort's: {_per_split(run)}. How the size "
                         f"was arrived at and any sample-size calculation: to be completed by "
                         f"the authors (the kit computes none)."),
        "11": (FROM_RUN, f"Complete-case for the images: {_skipped(run)} Missing histology: "
                         f"{unlabelled} patient(s), diagnosed and listed but left out of every "
                         f"performance measure; nothing is imputed."),
        "12d": (FROM_RUN, f"Not examined: no performance per scanner or centre. This cohort "
                          f"has {_scanners(run.patients)}."),
        "12e": (FROM_RUN, _measures_external(run, results)),
        "12f": (FROM_RUN, f"No updating: the model bundle is applied unchanged (weights, "
                          f"input settings and the decision threshold {threshold}); no "
                          f"recalibration or refitting."),
        "12g": (FROM_RUN, f"The bundle `bundle.pt` of the training run `{training_run}` "
                          f"(SHA-256 {bundle_sha or 'unknown: the file is not here any more'}; "
                          f"kit version {model.get('kit_version')}, commit "
                          f"{model.get('git_commit')}; checkpoint {model.get('checkpoint')} at "
                          f"epoch {model.get('epoch')}) applied by `python -m parotidlib "
                          f"predict --model <run folder or bundle.pt> --cohort "
                          f"<manifest.csv>` (notebooks 70-72): the cohort curated with the "
                          f"bundle's settings, the network's softmax probabilities per slice "
                          f"(`predictions.csv`), the rule of Figure 5 per patient "
                          f"(`patients.csv`)."),
        "13": (FROM_RUN, "Nothing is done for class imbalance in the evaluation; the model "
                         "was trained without a class-imbalance method (the training run's "
                         "item 13) and is not recalibrated. The class mix of this cohort "
                         "beside development: item 16."),
        "14": (AUTHORS, "The kit applies no fairness method and reports no performance by "
                        "age or sex: to be completed by the authors."),
        "16": (FROM_RUN, "Same eligibility rules, outcome definition and predictors as in "
                         "development by construction (the bundle's channels and curation "
                         "settings, the same validation). " + _comparison(
                             run, development, bundle, results)
               + " Differences of setting: to be completed by the authors."),
        **_open_science(run),
        "18e": ((FROM_RUN, "The data are synthetic: the kit regenerates them from its "
                           "generator settings (5a).") if run.synthetic else
                (AUTHORS, "Availability of the images, contours and histology: to be "
                          "completed by the authors.")),
        "18f": (FROM_RUN, _code(predict_commit, None, "from this predict run's folder name"
                                if predict_commit else "the predict run records none")
                + f" The model was trained by version {model.get('kit_version')}, commit "
                  f"{model.get('git_commit')}."),
        "20a": (FROM_RUN, f"{'Synthetic data. ' if run.synthetic else ''}Cohort manifest "
                          f"{_n_manifest(run)} patients -> skipped by validation "
                          f"{len(run.skipped)} -> curated {len(run.patients)} "
                          f"({_patients_by_histology(run.patients)}; without histology "
                          f"{unlabelled}) -> {results.get('n_labelled_patients')} scored. No "
                          f"follow-up."),
        "20b": (FROM_RUN, f"{'Synthetic data. ' if run.synthetic else ''}"
                          f"{_characteristics(run)}. Scanners: {_scanners(run.patients)}."),
        "20c": (FROM_RUN, _comparison(run, development, bundle, results)),
        "21": (FROM_RUN, f"{'Synthetic data. ' if run.synthetic else ''}Evaluation only: "
                         f"{_per_split(run)}; scored: {results.get('n_labelled_patients')} "
                         f"patients with histology, of whom "
                         f"{int((run.patients['histology'] == 'malignant').sum())} malignant "
                         f"(outcome events). Development: {development_counts}."),
        "23a": (FROM_RUN, _performance_external(run, results)),
        "23b": (FROM_RUN, "Not examined (12d)."),
        "24": (NOT_APPLICABLE, "No model updating was done (12f)."),
        "25": (AUTHORS, "Interpretation: to be completed by the authors."
                        + (" Results on a synthetic cohort check the pipeline, not a clinical "
                           "claim." if run.synthetic else "")),
        "26": (AUTHORS, _suggest("one evaluation cohort; slices of a patient are correlated; "
                                 "contours are needed as input.")),
        "27c": (AUTHORS, _suggest("evaluation in further centres and scanners.")),
    }
    return _answered(answers, kind="E")


# --------------------------------------------------------------------------- output


def checklist_markdown(items: Sequence[ChecklistItem], title: str,
                       synthetic: bool | None = None, heading_level: int = 1) -> str:
    """The checklist as a Markdown document, one list per section.

    Parameters
    ----------
    items : sequence of ChecklistItem
        From :func:`study_checklist` or :func:`evaluation_checklist`.
    title : str
        The document's title.
    synthetic : bool, optional
        Put the synthetic-data label under the header; default: when an answer says the
        data are synthetic (:data:`SYNTHETIC_PREFIX`).
    heading_level : int
        Markdown level of the title (sections one below), e.g. 3 inside a report.

    Returns
    -------
    str
    """
    if synthetic is None:
        synthetic = any(item.answer.startswith(SYNTHETIC_PREFIX) or
                        f" {SYNTHETIC_PREFIX}" in item.answer for item in items)
    head = "#" * heading_level
    counts = collections.Counter(item.status for item in items)
    lines = [
        f"{head} {title}", "",
        f"The items and their numbers are those of the TRIPOD+AI statement ({CITATION}). "
        f"The topics are short paraphrases, not the statement's wording: read the statement "
        f"for each item's full text. D: development, E: evaluation. Answers *{FROM_RUN}* "
        f"were written by parotidlib {__version__} from this run folder's files and the "
        f"kit's code; items *{AUTHORS}* need what only the authors know, and items "
        f"*{NOT_APPLICABLE}* belong to the other kind of report.", "",
    ]
    if synthetic:
        lines += [f"> {SYNTHETIC_NOTE}", ""]
    lines += [", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ".", ""]
    section = None
    for item in items:
        if item.section.split(":")[0] != section:
            if section is not None:
                lines.append("")
            section = item.section.split(":")[0]
            lines += [f"{head}# {section}", ""]
        if ":" in item.section:
            topic = f"{item.section.split(':', 1)[1].strip().capitalize()}: {item.topic}"
        else:
            topic = item.topic[:1].upper() + item.topic[1:]
        lines.append(f"- **{item.number}** {topic} ({item.applies}): *{item.status}*.  ")
        lines.append(f"  {item.answer}")
    return "\n".join(lines) + "\n"


def write_checklist(run_dir: str | Path, items: Sequence[ChecklistItem],
                    title: str | None = None, synthetic: bool | None = None) -> Path:
    """Write the checklist into ``run_dir/checklist.md`` atomically and return its path.

    Parameters
    ----------
    run_dir : path
        The run folder.
    items : sequence of ChecklistItem
    title : str, optional
        Default ``Reporting checklist (TRIPOD+AI 2024): <run folder name>``.
    synthetic : bool, optional
        As in :func:`checklist_markdown`.
    """
    run_dir = Path(run_dir)
    title = title or f"Reporting checklist (TRIPOD+AI 2024): {run_dir.name}"
    return write_text_atomic(run_dir / CHECKLIST_NAME,
                             checklist_markdown(items, title, synthetic=synthetic))


def checklist_frame(items: Sequence[ChecklistItem]) -> pd.DataFrame:
    """The checklist as a table for a notebook: one row per item, indexed by its number,
    columns section, topic, applies, status, answer."""
    frame = pd.DataFrame([asdict(item) for item in items],
                         columns=["number", "section", "topic", "applies", "status", "answer"])
    return frame.set_index("number")
