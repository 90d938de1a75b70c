"""Tables and text of the predict chain's report (72-predict-report), from ``external.json``.

Every comparison is a table with the internal test (the training run's test patients,
computed by the same code from the bundle's copy of its predictions) and the external
cohort side by side, never one number tuned against the other. A cohort without histology
gets the per-patient predictions only, marked unvalidated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.evaluation.classes import is_paper, scheme_of
from parotidlib.evaluation.text import block_text as _ci
from parotidlib.evaluation.text import number_text, undefined_text
from parotidlib.report.figures.style import pretty_name

__all__ = ["calibration_frame", "cohort_shift", "diagnoses_frame", "model_frame",
           "params_frame", "summary_paragraph", "validation_tables"]

#: Column labels of the two cohorts.
INTERNAL, EXTERNAL = "internal test", "external"
#: The params of the predict chain (shown in its report).
PREDICT_KEYS = ("model", "cohort_manifest", "curate_jobs", "skip_invalid_patients",
                "predict_batch_size", "device", "bootstrap_resamples", "bootstrap_seed",
                "calibration_bins", "strip_patients")


def diagnoses_frame(results: Mapping[str, Any]) -> pd.DataFrame:
    """One row per patient: histology (or "none: unvalidated"), diagnosis, the slice counts
    the rule used, the malignant-slice count against the threshold, the patient's malignant
    probability and whether the diagnosis is right."""
    scheme = scheme_of(results)  # external.json's class_scheme; the paper's when absent
    rows = []
    for d in results["diagnoses"]:
        p_bad = ([d.get(f"p_{c}") for c in scheme.malignant] if not is_paper(scheme)
                 else [d.get("p_malignant")])
        rows.append({
            "patient": d["patient_id"],
            "histology": d["histology"] or "none (unvalidated)",
            "diagnosis": d["predicted_histology"],
            "correct": "" if d["correct"] is None else ("yes" if d["correct"] else "no"),
            "slices": d["n_slices"], "lesion slices": d["n_lesion_slices"],
            **{f"predicted {c}": d[f"n_pred_{c}"] for c in scheme.classes},
            "rule": d["rule"],
            "p(malignant)": (None if not p_bad or any(p is None for p in p_bad)
                             else round(float(sum(p_bad)), 3)),
        })
    return pd.DataFrame(rows).set_index("patient")


def write_outputs(run_dir: str | Path, predictions: pd.DataFrame,
                  results: Mapping[str, Any]) -> pd.DataFrame:
    """Write a predict run's ``predictions.csv``, ``external.json`` and ``patients.csv`` (each
    atomically) and return the patient diagnoses (:func:`diagnoses_frame`).

    Parameters
    ----------
    run_dir : path
        The predict run folder.
    predictions : pandas.DataFrame
        The slice predictions (:func:`parotidlib.learn.apply.predict_cohort`).
    results : mapping
        :func:`parotidlib.evaluation.external.compute_external_metrics`'s output.
    """
    from parotidlib.io import atomic_path, write_text_atomic

    run_dir = Path(run_dir)
    with atomic_path(run_dir / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False)
    write_text_atomic(run_dir / "external.json", json.dumps(results, indent=2))
    diagnoses = diagnoses_frame(results)
    with atomic_path(run_dir / "patients.csv") as tmp:
        diagnoses.to_csv(tmp)
    return diagnoses


def model_frame(results: Mapping[str, Any]) -> pd.DataFrame:
    """What the report says about the model applied (external.json's ``model``)."""
    frame = pd.Series({k: (", ".join(map(str, v)) if isinstance(v, list) else str(v))
                       for k, v in results.get("model", {}).items() if v is not None},
                      name="value").to_frame()
    frame.index.name = "model"
    return frame


def params_frame(params: Mapping[str, Any]) -> pd.DataFrame:
    """The predict chain's params (the training params are the bundle's)."""
    shown = {k: params[k] for k in PREDICT_KEYS if k in params}
    if shown.get("model"):
        shown["model"] = Path(str(shown["model"])).name
    if shown.get("cohort_manifest"):
        path = Path(str(shown["cohort_manifest"]))
        shown["cohort_manifest"] = f"{path.parent.name}/{path.name}"
    return pd.Series({k: str(v) for k, v in shown.items()}, name="value").to_frame()


def _blocks(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any] | None]:
    return {INTERNAL: results.get("internal"), EXTERNAL: results.get("external")}


def validation_tables(results: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The validation tables, internal test and external cohort side by side.

    Returns
    -------
    dict
        Title -> table: slice-level results, Table 4 (accuracy, sensitivity, specificity per
        binary task), Table 5 (patient accuracy per type), the external-minus-internal
        differences. Empty for an unvalidated cohort.
    """
    if not results.get("validated"):
        return {}
    blocks = _blocks(results)
    tables: dict[str, pd.DataFrame] = {}
    rows = {}
    for label, block in blocks.items():
        s = (block or {}).get("slice")
        rows[label] = {} if s is None else {
            "patients": s["patients"], "slices": s["slices"],
            "slice accuracy [95% Wilson CI] (k/n)": _ci(s["accuracy"]),
            "micro-AUC [95% bootstrap CI]": _ci(s["micro_auc"]),
            "macro-AUC": number_text(s, "macro_auc"),
            "patient accuracy, 3 types [95% Wilson CI]": _ci(block["patient"]["accuracy"])}
    tables["Slices and patients"] = _side(rows, "measure")
    rows = {}
    for label, block in blocks.items():
        rows[label] = {}
        for r in (block or {}).get("table4", []):
            task = r["task"].replace("_", " ")
            rows[label][(task, "accuracy")] = _ci(r["accuracy"])
            rows[label][(task, f"sensitivity ({r['positive']})")] = _ci(r.get("sensitivity"))
            rows[label][(task, "specificity")] = _ci(r.get("specificity"))
    tables["Table 4: binary tasks on slices (Wilson intervals; CC as in the paper)"] = \
        _side(rows, ("task", "measure"))
    rows = {}
    for label, block in blocks.items():
        rows[label] = {r["type"].replace("_", " "): f"{_ci(r['accuracy'])}"
                       for r in (block or {}).get("patient", {}).get("table5", [])}
    tables["Table 5: patient diagnosis by the rule of Figure 5"] = _side(rows, "tumour type")
    diff = results.get("difference")
    if diff:
        tables["External minus internal"] = pd.DataFrame(
            [{"measure": "slice accuracy", "difference [95% CI]": _ci(diff["slice_accuracy"]),
              "method": diff["slice_accuracy"]["method"]},
             {"measure": "patient accuracy (3 types)",
              "difference [95% CI]": _ci(diff["patient_accuracy"]),
              "method": diff["patient_accuracy"].get("method", "")}]).set_index("measure")
    return tables


def _side(rows: Mapping[str, Mapping[Any, Any]], index_name: Any) -> pd.DataFrame:
    frame = pd.DataFrame({label: pd.Series(values, dtype=object)
                          for label, values in rows.items()})
    frame = frame.fillna("not available")
    if isinstance(index_name, tuple):
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=list(index_name))
    else:
        frame.index.name = index_name
    return frame


def _calibration_rows(block: Mapping[str, Any] | None,
                      classes: tuple[str, ...], malignant: tuple[str, ...]
                      ) -> dict[tuple[str, str], str]:
    if not block:
        return {}
    cal = block["calibration"]
    items = [("slices", "malignant vs benign (lesion slices)",
              cal["slice"]["malignant_vs_benign"])]
    items += [("slices", f"{pretty_name(c)} vs rest", cal["slice"]["one_vs_rest"][c])
              for c in classes]
    items += [("patients", "malignant vs benign", cal["patient"]["malignant_vs_benign"])]
    # (a single malignant class's patients-vs-rest is malignant vs benign, the row above)
    items += [("patients", f"{pretty_name(h)} vs rest", cal["patient"]["one_vs_rest"][h])
              for h in classes[1:] if malignant != (h,)]
    out = {}
    for level, what, summary in items:
        if summary.get("brier") is None:
            out[(level, what)] = undefined_text(summary.get("undefined"))
            continue
        out[(level, what)] = (f"Brier {summary['brier']:.3f} · ECE {summary['ece']:.3f} · "
                              f"slope {_ci(summary['slope'], 2)} · "
                              f"intercept {_ci(summary['intercept'], 2)} (n {summary['n']})")
    return out


def calibration_frame(results: Mapping[str, Any]) -> pd.DataFrame:
    """Brier score, ECE, calibration slope and intercept (95% Wald CI), internal test and
    external side by side, for slices and patients; empty for an unvalidated cohort."""
    if not results.get("validated"):
        return pd.DataFrame()
    scheme = scheme_of(results)
    rows = {label: _calibration_rows(block, scheme.classes, scheme.malignant)
            for label, block in _blocks(results).items()}
    return _side(rows, ("level", "outcome"))


def cohort_shift(run_dir: str | Path) -> str | None:
    """How a synthetic cohort was drawn (its generator stamp): patients, seed and, for a
    shifted cohort, the scanner and case mixes; None for a cohort not made by the kit."""
    from parotidlib.data.sources import run_manifest
    from parotidlib.synth import STAMP_NAME

    try:
        stamp = json.loads((run_manifest(run_dir).parent / STAMP_NAME).read_text())
    except (OSError, ValueError, KeyError):
        return None
    text = f"synthetic cohort of {stamp.get('n_patients')} patients, seed {stamp.get('seed')}"
    mixes = [f"{name} mix " + ", ".join(f"{k} {v:.0%}" for k, v in stamp[name].items())
             for name in ("scanners", "histologies") if stamp.get(name)]
    if mixes:
        text += "; shifted against the training cohort's Tables 1-2: " + "; ".join(mixes)
    return text


def summary_paragraph(results: Mapping[str, Any], shift: str | None = None) -> str:
    """The report's opening paragraph (Markdown): what was applied to whom, and what moved.
    (The notebook's own note says whether the cohort is synthetic.)"""
    model = results.get("model", {})
    parts = []
    parts.append(f"The model of the training run `{model.get('training_run', 'unknown')}` "
                 f"(commit {model.get('git_commit', 'unknown')}, channels "
                 f"{', '.join(model.get('channels', []))}, malignant-slice threshold "
                 f"{results['malignant_threshold']}) was applied to {results['n_patients']} "
                 f"patient(s), {results['n_labelled_patients']} with histology.")
    if shift:
        parts.append(f"Cohort: {shift}.")
    if not results.get("validated"):
        parts.append("**Unvalidated.** No patient of this cohort has a histology: the "
                     "diagnoses below are the model's predictions, not validated results.")
        return " ".join(parts)
    ext, intl = results["external"], results.get("internal")
    e_acc = ext["slice"]["accuracy"]
    parts.append(f"Slice accuracy on the external patients: {_ci(e_acc)}.")
    if intl:
        diff = results["difference"]
        parts.append(f"Internal test of the training run: {_ci(intl['slice']['accuracy'])}; "
                     f"difference (external - internal) {_ci(diff['slice_accuracy'])}, "
                     f"patient diagnosis {_ci(diff['patient_accuracy'])}.")
        e_cal = ext["calibration"]["patient"]["malignant_vs_benign"]
        i_cal = intl["calibration"]["patient"]["malignant_vs_benign"]
        if e_cal.get("brier") is not None and i_cal.get("brier") is not None:
            parts.append(f"Calibration of the patients' malignant probability: Brier "
                         f"{e_cal['brier']:.3f} external vs {i_cal['brier']:.3f} internal, "
                         f"calibration slope {_ci(e_cal['slope'], 2)} vs "
                         f"{_ci(i_cal['slope'], 2)}.")
    else:
        parts.append("The bundle holds no internal test predictions: no comparison.")
    unlabelled = results["n_patients"] - results["n_labelled_patients"]
    if unlabelled:
        parts.append(f"{unlabelled} patient(s) without histology are diagnosed but not scored.")
    return " ".join(parts)
