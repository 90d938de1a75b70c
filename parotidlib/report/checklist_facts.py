"""The facts of a run folder that the TRIPOD+AI checklist's templates use (torch-free).

:func:`gather_facts` reads a study run (``kind="D"``) or a predict run (``kind="E"``) once
and returns named facts: the run's records as they are (``metrics.json``, ``external.json``,
``radiomics.json``, ``saliency.json``, ``model/training.json``, the bundle's metadata, the
params) and summaries of its tables as text (patients per split and histology, scanners,
centres, date ranges by year, characteristics). :mod:`parotidlib.report.checklist` renders the
answers of ``checklist.yaml`` with them.

No summary names a patient, a single patient's date or an absolute path: counts, shares,
quartiles and ranges of years over at least :data:`MIN_DATED_PATIENTS` patients, the cohort
by its folder name (:func:`parotidlib.notebook.manifest_label`).

References
----------
Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement. BMJ 2024;385:e078378.
    doi:10.1136/bmj-2023-078378.
"""

from __future__ import annotations

import collections
import functools
import importlib.resources
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from parotidlib import __version__
from parotidlib.constants import CHANNELS, HISTOLOGIES, SERIES
from parotidlib.io import sha256_file
from parotidlib.notebook import manifest_label
from parotidlib.study import PAPER_CLASSES, ClassScheme, Study

logger = logging.getLogger(__name__)

__all__ = ["CENTRE_COLUMNS", "MIN_DATED_PATIENTS", "TRAINING_RECORD", "checklist_data",
           "gather_facts"]

#: The built-in generator's stamp beside a synthetic cohort's manifest
#: (``parotidlib.synth.generate.STAMP_NAME``; not imported, to keep this module light).
SYNTH_STAMP = ".synth_stamp.json"
#: What training records of its loss and sampling (``parotidlib.learn.train.TRAINING_RECORD``
#: in the run's ``model/`` folder; not imported: it needs torch).
TRAINING_RECORD = "model/training.json"
#: Optional manifest columns read as the centre (hospital) of a patient, lower case.
#: (not ``site``: in head and neck data it usually names the tumour's site)
CENTRE_COLUMNS: tuple[str, ...] = ("centre", "center", "institution", "hospital")
#: Fewer patients with a date than this and a date column is not summarised (a range over a
#: handful of patients comes close to giving their dates).
MIN_DATED_PATIENTS = 5


@functools.cache
def checklist_data() -> dict[str, Any]:
    """The items, words and answer templates of ``checklist.yaml`` (package data)."""
    text = importlib.resources.files("parotidlib.report").joinpath("checklist.yaml").read_text()
    return yaml.safe_load(text)


_PRETTY: dict[str, str] = checklist_data()["words"]["pretty"]


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
    if not (run_dir / "params.yaml").is_file():
        return {}
    from parotidlib.params import load_params

    return load_params(run_dir / "params.yaml")


def _bundle(path: Path | None) -> dict[str, Any] | None:
    """The bundle's metadata (:func:`parotidlib.learn.bundle.bundle_metadata`, which needs
    torch, imported only when there is a bundle to read)."""
    if path is None or not path.is_file():
        return None
    from parotidlib.learn.bundle import bundle_metadata

    return bundle_metadata(path)


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


# --------------------------------------------------------------------------- summaries


def _pct(k: int, n: int) -> str:
    return f"{k} ({100 * k / n:.1f}%)" if n else f"{k}"


def _by(frame: pd.DataFrame, column: str, order: Sequence[str]) -> str:
    counts = frame[column].fillna("").value_counts()
    parts = [f"{_PRETTY.get(g, g)} {int(counts.get(g, 0))}" for g in order]
    parts += [f"{_PRETTY.get(g, g) or 'none'} {int(k)}" for g, k in counts.items()
              if g not in order]
    return ", ".join(parts)


def _shares(frame: pd.DataFrame, column: str, order: Sequence[str]) -> str:
    counts = frame[column].fillna("").value_counts()
    keys = [*order, *(k for k in counts.index if k not in order)]
    return ", ".join(f"{_PRETTY.get(k, k) or 'none'} {_pct(int(counts.get(k, 0)), len(frame))}"
                     for k in keys if counts.get(k, 0) or k in order)


def _patients_by_histology(patients: pd.DataFrame) -> str:
    return f"{len(patients)} patients ({_by(patients, 'histology', HISTOLOGIES)})"


def _splits(frame: pd.DataFrame) -> list[str]:
    """The splits present, train, test and external first."""
    present = list(dict.fromkeys(frame["split"].dropna()))
    order = ["train", "test", "external"]
    return [s for s in order if s in present] + [s for s in present if s not in order]


def _class_word(name: str) -> str:
    """A class in the answers' words: the paper's names, another by its words."""
    return _PRETTY.get(name, name.replace("_", " ")).split(" (")[0]


def _scheme(dataset: Mapping[str, Any]) -> ClassScheme:
    """The class scheme dataset.json records; the paper's for a dataset made before it."""
    record = dataset.get("class_scheme")
    return ClassScheme.from_record(record) if record else PAPER_CLASSES


def _malignant(patients: pd.DataFrame, scheme: ClassScheme) -> pd.Series:
    """Whether each patient's histology is of a malignant class of the scheme."""
    return patients["histology"].map(
        lambda h: isinstance(h, str) and h in scheme.histologies
        and scheme.class_of(h) in scheme.malignant).astype(bool)


def _scheme_facts(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The class scheme, the excluded histologies with their patients, and the study's
    series, as the answers name them; the paper's scheme and series say nothing new."""
    scheme = _scheme(dataset)
    paper = (scheme.classes == PAPER_CLASSES.classes
             and scheme.malignant == PAPER_CLASSES.malignant)
    members = {c: [h for h, k in scheme.mapping if k == c] for c in scheme.classes[1:]}
    words = "; ".join(
        f"{_class_word(c)} ({'malignant' if c in scheme.malignant else 'benign'}: "
        f"{', '.join(_PRETTY.get(h, h.replace('_', ' ')) for h in members[c])})"
        for c in scheme.classes[1:])
    excluded = dataset.get("excluded_histologies") or {}
    study = Study.from_config(dataset.get("config", {}))
    return {"classes": list(scheme.classes), "scheme": scheme.name, "paper_scheme": paper,
            "scheme_text": None if paper else f"`classes: {scheme.name}`: {words}",
            "excluded": ", ".join(f"{_PRETTY.get(h, h.replace('_', ' '))} {int(n)}"
                                  for h, n in excluded.items()) or None,
            "study_series": list(study.series), "labels_from": study.labels_from,
            "paper_series": study.series == SERIES and not study.labels_from}


def _per_split(slices: pd.DataFrame, classes: Sequence[str] = PAPER_CLASSES.classes) -> str:
    """Patients and slices of each split: ``train: 9 patients (...), 45 slices (...)``."""
    parts = []
    for split in _splits(slices):
        part = slices[slices["split"] == split]
        counts = part["label"].fillna("").value_counts()
        labels = [f"{_class_word(c)} {int(counts.get(c, 0))}" for c in classes]
        if int(counts.get("", 0)):
            labels.append(f"lesion without histology {int(counts[''])}")
        parts.append(f"{split}: {_patients_by_histology(part.drop_duplicates('patient_id'))}, "
                     f"{len(part)} slices ({', '.join(labels)})")
    return "; ".join(parts)


def _scanners(patients: pd.DataFrame) -> str:
    counts = patients["scanner"].fillna("unknown").value_counts()
    listing = ", ".join(f"{name} {_pct(int(k), len(patients))}" for name, k in counts.items())
    return f"{len(counts)} scanner(s) ({listing})"


def _centres(patients: pd.DataFrame) -> str:
    """The patients of each centre of the manifest's centre column, if it has one."""
    for column in patients.columns:
        if column.lower() in CENTRE_COLUMNS:
            counts = patients[column].fillna("unknown").astype(str).value_counts()
            listing = ", ".join(f"{name} {int(k)}" for name, k in counts.items())
            return f"{len(counts)} centre(s) in the manifest column `{column}` ({listing})"
    return ("the manifest has no centre column (one of "
            + ", ".join(f"`{c}`" for c in CENTRE_COLUMNS) + ")")


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
    ``*_date*``), as years only; None without one. Only the first and last year over all
    patients are given, never a patient's date, and a column with fewer than
    :data:`MIN_DATED_PATIENTS` dated patients is not summarised."""
    parts = []
    for column in patients.columns:
        if not re.search(r"(^|_)date(_|$)", column.lower()):
            continue
        if "birth" in column.lower():
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


def _skipped(dataset: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The patients skipped by validation: their count, whether skipping was allowed, and the
    manifest columns of their problems (not the problems' text, which names the patient)."""
    skipped = list(dataset.get("skipped_patients") or [])
    columns: collections.Counter[str] = collections.Counter()
    for entry in skipped:
        found = set()
        for problem in entry.get("problems", []):
            match = re.search(r"\bcolumn ([^,:]+)", str(problem))
            found.add(f"`{match.group(1)}`" if match else "the patient's row")
        columns.update(found)
    return {"n": len(skipped), "reasons": ", ".join(f"{c} {k}" for c, k in sorted(columns.items())),
            "allowed": dataset.get("config", {}).get("skip_invalid_patients",
                                                     params.get("skip_invalid_patients"))}


def _characteristics(patients: pd.DataFrame) -> str:
    """Age (mean and quartiles: the extremes are single patients' values), sex, tumour side
    and histology of all patients and, with several splits, of each split."""
    groups = [("all", patients)]
    if len(_splits(patients)) > 1:
        groups += [(s, patients[patients["split"] == s]) for s in _splits(patients)]
    parts = []
    for name, part in groups:
        age = pd.to_numeric(part["age"], errors="coerce")
        age_text = (f"age mean {age.mean():.1f} (interquartile range {age.quantile(0.25):.1f}-"
                    f"{age.quantile(0.75):.1f}) years" if age.notna().any() else "age not given")
        parts.append(f"{name}: {len(part)} patients, {age_text}, sex {_by(part, 'sex', ('M', 'F'))}"
                     f", tumour side {_by(part, 'tumor_side', ('left', 'right', 'both'))}, "
                     f"histology {_by(part, 'histology', HISTOLOGIES)}")
    return "; ".join(parts)


def _synthetic_stamp(manifest: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    """The generator's stamp beside a synthetic cohort's manifest and its shifted mixes."""
    stamp = _optional_json(Path(manifest).parent / SYNTH_STAMP) if manifest else None
    if not isinstance(stamp, Mapping):
        return None, []
    return dict(stamp), [f"{name} " + ", ".join(f"{k} {v:.0%}" for k, v in stamp[name].items())
                         for name in ("scanners", "histologies") if stamp.get(name)]


def _evaluations_of(run_dir: Path) -> list[str]:
    """The predict run folders beside ``run_dir`` whose ``external.json`` names it as the
    training run."""
    found = []
    for path in sorted(run_dir.parent.glob("*/external.json")):
        results = _optional_json(path)
        model = results.get("model") if isinstance(results, Mapping) else None
        if isinstance(model, Mapping) and model.get("training_run") == run_dir.name:
            found.append(path.parent.name)
    return found


def _development(slices: pd.DataFrame, params: Mapping[str, Any],
                 bundle: Mapping[str, Any] | None, results: Mapping[str, Any]) -> dict[str, Any]:
    """What is known of the development cohort of a predict run's model: its run folder
    (``params['model']``'s, when still here), else the bundle's counts, else the internal test
    patients the bundle carries."""
    model = Path(params["model"]) if params.get("model") else None
    folder = (model if model.is_dir() else model.parent) if model is not None else None
    facts: dict[str, Any] = {"dev": None, "dev_bundle": None, "dev_internal": None}
    if folder is not None and (folder / "data" / "slices.csv").is_file():
        dev = _read_slices(folder / "data" / "slices.csv")
        patients = dev.drop_duplicates("patient_id")
        area, dev_area = (pd.to_numeric(s.loc[s["label"] != "free", "tumor_area_mm2"],
                                        errors="coerce") for s in (slices, dev))
        facts["dev"] = {"shares": _shares(patients, "histology", HISTOLOGIES),
                        "n": len(patients), "scanners": _scanners(patients),
                        "area": (f"{area.median():.0f}", f"{dev_area.median():.0f}")
                        if area.notna().any() and dev_area.notna().any() else None}
        return facts
    counts = (bundle or {}).get("training_counts", {}).get("patients", {}).get("total")
    rows = {r.get("type"): r.get("patients")
            for r in (results.get("internal") or {}).get("patient", {}).get("table5", [])}
    if counts:
        n, key = counts.get("all", 0), "dev_bundle"
    elif rows:
        counts = {h: rows.get(h) or 0 for h in HISTOLOGIES}
        n, key = sum(int(v) for v in counts.values()), "dev_internal"
    else:
        return facts
    facts[key] = {"n": n, "shares": ", ".join(f"{_PRETTY[h]} {_pct(int(counts.get(h, 0)), n)}"
                                              for h in HISTOLOGIES)}
    return facts


# --------------------------------------------------------------------------- facts


def gather_facts(run_dir: str | Path, params: Mapping[str, Any] | None, synthetic: bool,
                 kind: str) -> dict[str, Any]:
    """Everything the answer templates of ``checklist.yaml`` use, read once from a run folder.

    Parameters
    ----------
    run_dir : path
        A study run folder (``kind="D"``) or a predict run folder (``kind="E"``).
    params : mapping, optional
        The run's resolved params; default the run's ``params.yaml``.
    synthetic : bool
        Whether the cohort is the kit's synthetic one; ``metrics.json`` or ``external.json``
        saying so makes it True too.
    kind : {"D", "E"}

    Returns
    -------
    dict
        Named facts (numbers, records of the run, and summaries of its tables as text).

    Raises
    ------
    FileNotFoundError
        A required file is missing; the message names it and the notebook that writes it.
    """
    run_dir = Path(run_dir)
    label, curated_by = (("study", "notebooks/10-curate.ipynb") if kind == "D" else
                         ("predict", "notebooks/70-predict-curate.ipynb"))
    dataset = _read_json(_require(run_dir, "data/dataset.json", curated_by, label))
    slices = _read_slices(_require(run_dir, "data/slices.csv", curated_by, label))
    p = _load_params(run_dir, params)
    patients = slices.drop_duplicates("patient_id").reset_index(drop=True)
    cohort = _optional_json(run_dir / "cohort.json") or {}
    manifest = cohort.get("manifest") or dataset.get("manifest")
    counted = dataset.get("counts", {}).get("patients", {}).get("total", {}).get("all")
    scheme = _scheme_facts(dataset)
    f: dict[str, Any] = {
        **scheme, "kind": kind, "p": p, "config": dataset.get("config", {}),
        "words": checklist_data()["words"], "suggest": checklist_data()["suggest"],
        "version": __version__,
        "manifest": manifest_label(manifest), "skipped": _skipped(dataset, p),
        "fingerprint": cohort.get("fingerprint") or dataset.get("cohort_sha256"),
        "n_counted": None if counted is None else int(counted), "n_patients": len(patients),
        "by_histology": _patients_by_histology(patients), "scanners": _scanners(patients),
        "centres": _centres(patients), "dates": _dates(patients),
        "per_split": _per_split(slices, scheme["classes"]),
        "characteristics": _characteristics(patients),
        "curated_channels": dataset.get("channels", []),
        "n_warnings": len(dataset.get("warnings") or []),
        "no_free": len(dataset.get("patients_without_free_slices") or []),
        "labelled": int(patients["histology"].notna().sum()),
        "protocol_columns": [c for c in slices.columns if c.endswith(("_tr_ms", "_te_ms")) or c
                             in ("pixel_size_mm", "slice_thickness_mm", "field_strength_t")],
        "figure_names": checklist_data()["figures"][kind],
        "figures_present": [f"figures/{n}.png" for n in checklist_data()["figures"][kind]
                            if (run_dir / "figures" / f"{n}.png").is_file()]}
    f["n_manifest"] = (f["n_counted"] if counted is not None else
                       slices["patient_id"].nunique()) + f["skipped"]["n"]
    if kind == "D":
        f.update(_study_facts(run_dir, p, dataset, slices, patients, bool(synthetic)))
    else:
        f.update(_evaluation_facts(run_dir, p, dataset, slices, patients, bool(synthetic)))
    f["label"] = "Synthetic data. " if f["synthetic"] else ""
    f["stamp"], f["stamp_mixes"] = (_synthetic_stamp(manifest) if f["synthetic"]
                                    else (None, []))
    return f


def _study_facts(run_dir: Path, p: Mapping[str, Any], dataset: Mapping[str, Any],
                 slices: pd.DataFrame, patients: pd.DataFrame, synthetic: bool
                 ) -> dict[str, Any]:
    metrics = _read_json(_require(run_dir, "metrics.json", "notebooks/40-statistics.ipynb",
                                  "study"))
    if synthetic != bool(metrics.get("synthetic", synthetic)):
        logger.warning("metrics.json says synthetic=%s, the caller %s; the checklist labels "
                       "the run synthetic if either does", metrics.get("synthetic"), synthetic)
        synthetic = True
    bundle = _bundle(run_dir / "bundle.pt")
    radiomics = _optional_json(run_dir / "radiomics.json")
    if radiomics is None and isinstance(metrics.get("radiomics"), Mapping):
        radiomics = metrics["radiomics"].get("info")
    history = run_dir / "model" / "history.csv"
    train = slices[slices["split"] == "train"]
    n_train = int((patients["split"] == "train").sum())
    val_fraction = float(p.get("val_fraction", 0.0) or 0.0)
    commit = (bundle or {}).get("git_commit") or _commit_from_name(run_dir.name)
    saliency = _optional_json(run_dir / "saliency.json")
    malignant = patients[_malignant(patients, _scheme(dataset))]
    classes = _scheme(dataset).classes
    test = metrics.get("slice", {}).get("test")
    path = run_dir / "bundle.pt"
    return {
        "synthetic": synthetic, "bundle": bundle, "radiomics": radiomics,
        "radiomics_params": ", ".join(f"{k} {v}" for k, v in
                                      ((radiomics or {}).get("params") or {}).items()),
        "training": _optional_json(run_dir / TRAINING_RECORD),
        "epochs_trained": len(pd.read_csv(history)) if history.is_file() else None,
        "channels": list(p.get("channels") or dataset.get("channels", [])),
        "paper_channels": tuple(p.get("channels") or dataset.get("channels", []))
        == tuple(CHANNELS),
        "widths": list(p.get("model_widths", ())), "commit": commit,
        "kit_version": (bundle or {}).get("kit_version"),
        "commit_source": ("recorded in `bundle.pt` by the statistics stage" if bundle and
                          bundle.get("git_commit") else "from the run folder's name"
                          if commit else "no bundle and no commit in the folder name"),
        "n_train": n_train, "n_test": int((patients["split"] == "test").sum()),
        "n_val": math.ceil(val_fraction * n_train) if val_fraction > 0 else 0,
        "threshold": metrics.get("patient", {}).get("malignant_threshold",
                                                    p.get("malignant_threshold")),
        "auc_method": ((test or {}).get("micro_auc") or {}).get("method")
        or "patient-clustered percentile bootstrap",
        "saliency": saliency if saliency and saliency.get("computed") else None,
        "evaluations": _evaluations_of(run_dir),
        "train_shares": ", ".join(
            f"{_class_word(c)} {_pct(int((train['label'] == c).sum()), len(train))}"
            for c in classes),
        "events": ", ".join(f"{s} {int((malignant['split'] == s).sum())}"
                            for s in _splits(slices)),
        "bundle_file": {"sha256": sha256_file(path), "size": path.stat().st_size}
        if path.is_file() else None,
        "test": test, "train": metrics.get("slice", {}).get("train"),
        "patient": metrics.get("patient", {}), "table4": metrics.get("table4", []),
        "table5": metrics.get("patient", {}).get("table5", []),
        "radiomics_test": (metrics["radiomics"].get("slice", {}).get("test", {})
                           if metrics.get("radiomics") else None),
        "comparison": metrics.get("cnn_vs_radiomics")}


def _evaluation_facts(run_dir: Path, p: Mapping[str, Any], dataset: Mapping[str, Any],
                      slices: pd.DataFrame, patients: pd.DataFrame, synthetic: bool
                      ) -> dict[str, Any]:
    results = _read_json(_require(run_dir, "external.json", "notebooks/71-predict.ipynb",
                                  "predict"))
    model = results.get("model") or {}
    bundle_path = Path(p["model"]) if p.get("model") else None
    if bundle_path is not None and bundle_path.is_dir():
        bundle_path = bundle_path / "bundle.pt"
    bundle = _bundle(bundle_path)
    channels = list(model.get("channels") or dataset.get("channels", []))
    commit = _commit_from_name(run_dir.name, predict=True)
    trained = (bundle or {}).get("training_counts", {}).get("patients", {})
    labelled = patients[patients["histology"].notna()]
    return {
        "synthetic": synthetic or bool(results.get("synthetic")), "results": results,
        "model": model, "training_run": model.get("training_run") or "unknown",
        "bundle_sha": sha256_file(bundle_path) if bundle_path is not None
        and bundle_path.is_file() else None,
        "channels": channels, "commit": commit, "kit_version": None,
        "series": [s for s in Study.from_config(dataset.get("config", {})).series
                   if s in channels or (s == "t1" and "gland" in channels)],
        "commit_source": ("from this predict run's folder name" if commit else
                          "the predict run records none"),
        "threshold": results.get("malignant_threshold", model.get("malignant_threshold")),
        "unlabelled": int(patients["histology"].isna().sum()),
        "n_malignant": int(_malignant(patients, _scheme(dataset)).sum()),
        "trained": {s: trained[s] for s in ("train", "test") if s in trained},
        "here_shares": _shares(labelled, "histology", HISTOLOGIES),
        **_development(slices, p, bundle, results)}
