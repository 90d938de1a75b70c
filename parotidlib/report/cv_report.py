"""Tables, text and figures of the cross-validation report (80-cv), from ``cv_metrics.json``.

The pooled out-of-fold results stand beside the paper's single-split numbers and the
profile's own single-split run, never tuned against them; the per-fold and per-seed tables
show the spread the pooled number hides. With the radiomics baseline, the section
:data:`RADIOMICS_SECTION` sets the two models side by side on the same out-of-fold slices,
with the paired differences (``cv_metrics.json``'s ``radiomics`` and ``cnn_vs_radiomics``).
When the folds are the values of a manifest column (``cv --group-by scanner``), the section
headed by ``grouping.label`` (``leave-one-scanner-out (internal-external validation)``) sets
the held-out groups side by side (:func:`group_frames`, :func:`group_paragraph`): the
internal-external validation of Steyerberg & Harrell (2016) that TRIPOD+AI (Collins et al.
2024) recommends for multicentre data.

The classes are those of the curated dataset the members were trained on
(:func:`cv_scheme`: ``cv_class_scheme.json``, which ``run.cv`` writes from the members' data);
a scheme other than the paper's is said in words (:func:`scheme_paragraph`) and its results
stand alone, without the paper's values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from parotidlib.evaluation.classes import SCHEME_KEY, is_paper, run_scheme, scheme_of
from parotidlib.evaluation.frames import model_column, table4_frame, table5_frame
from parotidlib.evaluation.paired import MCNEMAR_COLUMN
from parotidlib.evaluation.text import block_text, number_text
from parotidlib.report.paper import PAPER
from parotidlib.study import PAPER_CLASSES, ClassScheme

__all__ = ["CV_SCHEME", "RADIOMICS_SECTION", "cv_scheme", "draw_cv_figures", "fold_frame",
           "group_frames", "group_paragraph", "pooled_frame", "scheme_paragraph",
           "scheme_record",
           "radiomics_difference_frame", "radiomics_frame", "radiomics_paragraph",
           "single_split_metrics", "spread_frame", "summary_paragraph", "table4_by_seed",
           "table4_cnn_vs_radiomics", "table5_by_seed", "width_frame"]

#: The copy of the profile's newest single-split run's metrics (run.cv writes it).
SINGLE_SPLIT_METRICS = "single_split_metrics.json"
#: The class scheme of the members' curated data (run.cv writes it, :func:`scheme_record`).
CV_SCHEME = "cv_class_scheme.json"
_TYPES = ("pleomorphic_adenoma", "warthin", "malignant")
#: Heading of the report's comparison with the radiomics baseline (present only with one).
RADIOMICS_SECTION = "CNN vs radiomics, out of fold (all patients)"


def single_split_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The single-split run's metrics.json copied into the batch folder, None without one."""
    path = Path(run_dir) / SINGLE_SPLIT_METRICS
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def scheme_record(scheme: ClassScheme) -> dict[str, Any]:
    """The content of :data:`CV_SCHEME`: the scheme under ``class_scheme`` (as dataset.json
    records it, so that :func:`parotidlib.evaluation.classes.scheme_of` reads it)."""
    return {SCHEME_KEY: scheme.record()}


def cv_scheme(run_dir: str | Path) -> ClassScheme:
    """The class scheme of a cross-validation batch: the one its members' curated data
    record (:data:`CV_SCHEME`); for a batch folder without that file, its own curated data's
    (:func:`parotidlib.evaluation.classes.run_scheme`: the paper's when it has none)."""
    path = Path(run_dir) / CV_SCHEME
    if path.is_file():
        return scheme_of(json.loads(path.read_text()))
    return run_scheme(run_dir)


def _class_words(scheme: ClassScheme, cls: str) -> str:
    histologies = [h.replace("_", " ") for h, c in scheme.mapping if c == cls]
    words = cls.replace("_", " ")
    return words if histologies == [words] else f"{words} ({', '.join(histologies)})"


def scheme_paragraph(metrics: Mapping[str, Any]) -> str:
    """The class scheme of the cross-validation in words (Markdown): empty for the paper's
    four classes; else each lesion class, benign or malignant, with its histologies, the
    excluded histologies, and that the paper's values are not shown beside the results."""
    scheme = scheme_of(metrics)
    if is_paper(scheme):
        return ""
    benign = "; ".join(_class_words(scheme, c) for c in scheme.benign) or "none"
    malignant = "; ".join(_class_words(scheme, c) for c in scheme.malignant) or "none"
    text = (f"**Class scheme `{scheme.name}`**: the slices are {len(scheme.classes)} classes, "
            f"{', '.join(c.replace('_', ' ') for c in scheme.classes)}. Benign: {benign}. "
            f"Malignant: {malignant}.")
    if scheme.exclude:
        text += (" Left out of the study: "
                 f"{', '.join(h.replace('_', ' ') for h in scheme.exclude)}.")
    return text + (" The paper's four classes differ, so its values are not shown beside "
                   "these results, and a patient's diagnosis is right when it names the "
                   "patient's class.")


def _patient_label(metrics: Mapping[str, Any]) -> str:
    """The row of the exact patient diagnosis: the paper's three types, else the lesion
    classes of the scheme."""
    scheme = scheme_of(metrics)
    return ("patient accuracy (3 types)" if is_paper(scheme)
            else f"patient accuracy ({len(scheme.classes) - 1} classes)")


def _first_seed(metrics: Mapping[str, Any]) -> str:
    return str(metrics["seeds"][0])


def pooled_frame(metrics: Mapping[str, Any], single: Mapping[str, Any] | None = None
                 ) -> pd.DataFrame:
    """Pooled out-of-fold results per seed beside the paper's test split and the
    single-split run's (slice accuracy, micro- and macro-AUC, patient accuracy); the paper's
    column only for the paper's class scheme."""
    columns: dict[str, dict[str, str]] = {}
    patient = _patient_label(metrics)
    paper_acc, paper_ci = PAPER["slice_accuracy"]["test"]
    if is_paper(scheme_of(metrics)):
        columns["paper (21 test patients)"] = {
            "patients": "21", "slice accuracy [95% CI]": f"{paper_acc:.3f} "
            f"[{paper_ci[0]:.2f}, {paper_ci[1]:.2f}]",
            "micro-AUC [95% CI]": f"{PAPER['micro_auc']['test']:.2f}",
            "macro-AUC": "not reported", "patient accuracy (3 types)": (
                f"{sum(PAPER['table5'][t][1] for t in _TYPES)}/"
                f"{sum(PAPER['table5'][t][0] for t in _TYPES)} (Table 5)")}
    if single:
        test = single["slice"]["test"]
        columns[f"single split ({single.get('run', 'run')})"] = {
            "patients": str(test["patients"]),
            "slice accuracy [95% CI]": block_text(test["accuracy"]),
            "micro-AUC [95% CI]": block_text(test["micro_auc"]),
            "macro-AUC": number_text(test, "macro_auc"), patient: ""}
    for seed, block in metrics["per_seed"].items():
        s = block["slice"]
        columns[f"cross-validation, seed {seed} (all patients)"] = {
            "patients": str(s["patients"]), "slice accuracy [95% CI]": block_text(s["accuracy"]),
            "micro-AUC [95% CI]": block_text(s["micro_auc"]),
            "macro-AUC": number_text(s, "macro_auc"),
            patient: block_text(block["patient"]["accuracy"])}
    frame = pd.DataFrame(columns)
    frame.index.name = "measure"
    return frame


def table4_by_seed(metrics: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Table 4 on every patient's out-of-fold slices, one table per seed."""
    return {seed: table4_frame(block) for seed, block in metrics["per_seed"].items()}


def table5_by_seed(metrics: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Table 5 on every patient (out-of-fold diagnoses), one table per seed, with the
    paper's 21-patient counts beside for the paper's class scheme (another scheme's rows are
    not the paper's: they stand alone)."""
    paper = is_paper(scheme_of(metrics))
    out = {}
    for seed, block in metrics["per_seed"].items():
        frame = table5_frame(block)
        if not paper:
            out[seed] = frame
            continue
        frame["paper (correct/patients)"] = [
            f"{PAPER['table5'][t][1]}/{PAPER['table5'][t][0]}"
            for t in ("pleomorphic_adenoma", "warthin", "benign", "malignant")]
        out[seed] = frame
    return out


def fold_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per seed and fold: patients, slices, accuracy [Wilson CI], micro-AUC."""
    rows = [{"seed": r["seed"], "fold": r["fold"], "patients": r["patients"],
             "slices": r["slices"], "accuracy [95% Wilson CI] (k/n)": block_text(r["accuracy"]),
             "micro-AUC": number_text(r, "micro_auc")} for r in metrics["per_fold"]]
    return pd.DataFrame(rows).set_index(["seed", "fold"])


def spread_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Mean, sd, min and max of slice accuracy and micro-AUC over folds and over seeds."""
    rows = []
    for measure, by in metrics["spread"].items():
        for over, s in by.items():
            rows.append({"measure": measure.replace("_", " "), "over": over.replace("_", " "),
                         "n": s["n"], "mean": number_text(s, "mean"),
                         "sd": number_text(s, "sd"), "min": number_text(s, "min"),
                         "max": number_text(s, "max")})
    return pd.DataFrame(rows).set_index(["measure", "over"])


def width_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Width of the slice-accuracy interval: cross-validation against the single split."""
    w = metrics["interval_width"]
    rows = {"cross-validation (pooled, first seed)": (number_text(w, "cv"), w.get("cv_slices")),
            "single-split run": (number_text(w, "single_split"), w.get("single_split_slices")),
            "single split, expected at the CV accuracy": (
                number_text(w, "single_split_expected"), w.get("single_split_slices"))}
    rows["ratio (CV / single split)"] = (number_text(w, "ratio", 2), None)
    return pd.DataFrame([{"interval": k, "width": v[0],
                          "slices": "" if v[1] is None else str(int(v[1]))}
                         for k, v in rows.items()]).set_index("interval")


def summary_paragraph(metrics: Mapping[str, Any]) -> str:
    """Opening paragraph (Markdown) of cv.html."""
    seed = _first_seed(metrics)
    block = metrics["per_seed"][seed]["slice"]
    w = metrics["interval_width"]
    how = (f"{metrics['folds']}-fold cross-validation" if "grouping" not in metrics else
           f"{metrics['grouping']['label'].capitalize()}, {metrics['folds']} groups,")
    text = (f"{how} over all {metrics['n_patients']} "
            f"patients ({len(metrics['seeds'])} seed(s)): every patient is predicted once per "
            f"seed by a model that never saw it. Pooled out-of-fold slice accuracy (seed "
            f"{seed}): {block_text(block['accuracy'])}; micro-AUC "
            f"{block_text(block['micro_auc'])}.")
    if w.get("ratio") is not None:
        text += (f" Its interval is {w['ratio']:.2f} times as wide as the single-split "
                 f"run's ({number_text(w, 'cv')} against {number_text(w, 'single_split')}).")
    return text


def _group_column(row: Mapping[str, Any], patient: str) -> dict[str, str]:
    s = row["slice"]
    hist = row.get("histology", {})
    types = tuple(hist)  # the lesion classes in the scheme's order (the paper's: _TYPES)
    label = ("PA / Warthin / malignant" if types == _TYPES
             else " / ".join(t.replace("_", " ") for t in types))
    return {"patients": str(row["patients"]),
            f"patients {label}": "/".join(str(hist.get(t, "")) for t in types),
            "slices": str(row["slices"]),
            "slice accuracy [95% Wilson CI]": block_text(s["accuracy"]),
            "micro-AUC [95% CI]": block_text(s["micro_auc"]),
            "macro-AUC": number_text(s, "macro_auc"),
            patient: block_text(row["patient_accuracy"])}


def group_frames(metrics: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Each held-out group's results side by side, with the pooled ones, one table per seed
    (columns: ``<group> (fold f)`` and ``pooled (all groups)``); empty for k folds."""
    if "per_group" not in metrics:
        return {}
    out = {}
    patient, lesions = _patient_label(metrics), scheme_of(metrics).classes[1:]
    for seed, pooled in metrics["per_seed"].items():
        columns = {f"{r['group']} (fold {r['fold']})": _group_column(r, patient)
                   for r in metrics["per_group"] if str(r["seed"]) == seed}
        hist = {t: sum(r["histology"].get(t, 0) for r in metrics["per_group"]
                       if str(r["seed"]) == seed) for t in lesions}
        columns["pooled (all groups)"] = _group_column({
            "patients": pooled["slice"]["patients"], "histology": hist,
            "slices": pooled["slice"]["slices"], "slice": pooled["slice"],
            "patient_accuracy": pooled["patient"]["accuracy"]}, patient)
        frame = pd.DataFrame(columns)
        frame.index.name = f"held out by {metrics['grouping']['column']}"
        out[seed] = frame
    return out


def group_paragraph(metrics: Mapping[str, Any]) -> str:
    """What the grouped validation is and its spread over groups (Markdown); empty for k
    folds."""
    if "grouping" not in metrics:
        return ""
    column = metrics["grouping"]["column"]
    spread = metrics["spread"]["slice_accuracy"]["per_fold"]
    text = ("**Synthetic cohort**: these numbers come from the kit's synthetic data, not from "
            "patients. " if metrics.get("synthetic") else "")
    text += (
        f"Each of the {metrics['folds']} values of the manifest column `{column}` was held out "
        f"once: a model trained on the patients of the other {column}s (its validation "
        "patients drawn from them, stratified by histology) predicted every patient of the "
        f"held-out {column}. This is internal-external validation (Steyerberg & Harrell "
        "2016), the check TRIPOD+AI recommends for data from several centres or scanners: "
        f"how the model does on a {column} it has not seen. Slice accuracy over the held-out "
        f"groups (all seeds): mean {number_text(spread, 'mean')}, from "
        f"{number_text(spread, 'min')} to {number_text(spread, 'max')}. The groups differ in "
        "size and case mix, so their intervals differ in width; a small group's interval is "
        "wide, and its slices are correlated within patients (the Wilson interval treats "
        "them as independent).")
    return text


def draw_cv_figures(run_dir: str | Path, predictions: pd.DataFrame, synthetic: bool,
                    scheme: ClassScheme = PAPER_CLASSES) -> list[str]:
    """Confusion matrices and ROC curves of the pooled out-of-fold slices (first seed), over
    the classes of ``scheme`` (default the paper's four)."""
    import warnings

    from parotidlib.evaluation.metrics import confusion, roc_curves
    from parotidlib.report.figures import save_figure
    from parotidlib.report.figures.evaluation import plot_confusion_matrices, plot_roc

    seed = sorted(predictions["seed"].unique())[0]
    part = predictions[predictions["seed"] == seed]
    title = f"Out-of-fold slices, seed {seed}" + (" (synthetic cohort)" if synthetic else "")
    save_figure(plot_confusion_matrices(confusion(part["true_label"], part["predicted_label"],
                                                  scheme),
                                        classes=scheme.classes, title=title),
                run_dir, "cv_confusion_matrix", synthetic=synthetic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class without slices is named in the legend
        roc = roc_curves(part, scheme=scheme)
    save_figure(plot_roc(roc, title=title, classes=scheme.classes), run_dir, "cv_roc",
                synthetic=synthetic)
    return ["cv_confusion_matrix", "cv_roc"]


# --------------------------------------------------------------------------- radiomics


def _synthetic_suffix(metrics: Mapping[str, Any]) -> str:
    return " (synthetic cohort)" if metrics.get("synthetic") else ""


def _model_column(block: Mapping[str, Any], patient: str) -> dict[str, str]:
    s = block["slice"]
    col = {"patients": str(s["patients"]), "slices": str(s["slices"]),
           **model_column(s, block)}
    col[patient] = block_text(block["patient"]["accuracy"])
    return col


def radiomics_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The CNN and the radiomics baseline side by side on the pooled out-of-fold slices of
    every patient, per seed (slice accuracy and AUCs, Table 4 accuracies, Table 5); empty
    without a baseline (``radiomics: false``)."""
    if "radiomics" not in metrics:
        return pd.DataFrame()
    suffix, patient = _synthetic_suffix(metrics), _patient_label(metrics)
    columns: dict[str, dict[str, str]] = {}
    for seed, block in metrics["per_seed"].items():
        columns[f"CNN, seed {seed}{suffix}"] = _model_column(block, patient)
        columns[f"radiomics, seed {seed}{suffix}"] = _model_column(
            metrics["radiomics"]["per_seed"][seed], patient)
    frame = pd.DataFrame(columns)
    frame.index.name = "out-of-fold, all patients"
    return frame


def radiomics_difference_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """CNN minus radiomics on the same out-of-fold slices, one row per seed: the
    patient-level paired bootstrap of the accuracy and micro-AUC differences, and McNemar's
    exact slice test as a secondary column (it treats slices as independent); empty without
    a baseline."""
    if "cnn_vs_radiomics" not in metrics:
        return pd.DataFrame()
    rows = []
    for seed, cmp in metrics["cnn_vs_radiomics"]["per_seed"].items():
        acc, auc, mc = cmp["accuracy"], cmp["micro_auc"], cmp["mcnemar"]
        rows.append({
            "seed": seed, "patients": acc["n_patients"], "slices": acc["n_slices"],
            "accuracy: CNN minus radiomics [95% CI]": block_text(acc),
            "accuracy: bootstrap p (two-sided, by patient)": number_text(acc, "p_two_sided"),
            "micro-AUC: CNN minus radiomics [95% CI]": block_text(auc),
            "micro-AUC: bootstrap p (two-sided, by patient)": number_text(auc, "p_two_sided"),
            "slices only CNN / only radiomics correct": (
                f"{mc['only_cnn_correct']}/{mc['only_radiomics_correct']}"),
            MCNEMAR_COLUMN: f"{mc['pvalue']:.3g}"})
    return pd.DataFrame(rows).set_index("seed")


def table4_cnn_vs_radiomics(metrics: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Table 4 of the CNN and of the radiomics baseline on every patient's out-of-fold
    slices, one table per seed, the two models' rows of each task together; empty without
    a baseline."""
    if "radiomics" not in metrics:
        return {}
    out = {}
    for seed, block in metrics["per_seed"].items():
        both = pd.concat({"CNN": table4_frame(block),
                          "radiomics": table4_frame(metrics["radiomics"]["per_seed"][seed])},
                         names=["model"])
        tasks = list(dict.fromkeys(both.index.get_level_values("task")))
        both = both.swaplevel("model", "task")
        out[seed] = both.loc[[(t, m) for t in tasks for m in ("CNN", "radiomics")]]
    return out


def radiomics_paragraph(metrics: Mapping[str, Any]) -> str:
    """What the comparison is, its first seed's result and the caveat on McNemar (Markdown);
    empty without a baseline."""
    if "radiomics" not in metrics:
        return ""
    seed = _first_seed(metrics)
    cmp = metrics["cnn_vs_radiomics"]["per_seed"][seed]
    model = metrics["radiomics"].get("info", {}).get("model")
    text = ("**Synthetic cohort**: these numbers come from the kit's synthetic data, not from "
            "patients. " if metrics.get("synthetic") else "")
    text += (
        f"In every fold the radiomics baseline{f' ({model})' if model else ''} was fitted on "
        "the training patients of that fold's member, as the CNN was, and predicted the same "
        "held-out patients; its out-of-fold slices are pooled per seed as the CNN's. The "
        "differences are CNN minus radiomics on the same out-of-fold slices, CNN seed s "
        "against radiomics seed s, with a patient-level paired bootstrap (patients "
        f"resampled, the same for both models). Seed {seed}: accuracy difference "
        f"{block_text(cmp['accuracy'])} (p {number_text(cmp['accuracy'], 'p_two_sided')}), "
        f"micro-AUC difference {block_text(cmp['micro_auc'])} (p "
        f"{number_text(cmp['micro_auc'], 'p_two_sided')}). McNemar's exact test on slices is "
        "secondary: the slices of a patient are correlated and it treats them as "
        "independent, so its p-value overstates the evidence. Nothing is tuned to make "
        "either side win.")
    return text
