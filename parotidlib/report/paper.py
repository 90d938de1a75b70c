"""The paper's published values (Xia et al. 2021, Front. Oncol. 11:632104), in one place, and
the side-by-side comparisons of a run with them (headline table, slice counts, Results text).

A quantity that a small run leaves undefined (docs/metrics.md, "Undefined quantities") is
shown as ``undefined (<reason>)`` and said so in the Results text; nothing here assumes that
every class or tumour type is present.

The published values stand beside a run's only where the run's tasks and classes are the
paper's, i.e. for the paper's class scheme (the ``classes`` param's default). A run with
another scheme (metrics.json's ``class_scheme``) gets its own results alone, with a sentence
saying that its scheme differs from the paper's (:func:`scheme_note`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from parotidlib.evaluation.classes import is_paper, scheme_of
from parotidlib.evaluation.stats import UNDEFINED_KEY
from parotidlib.evaluation.text import block_text, undefined_text
from parotidlib.study import PAPER_CLASSES, ClassScheme

#: Published values (Xia et al. 2021: Abstract, Results, Tables 3-5, Methods).
PAPER: dict[str, Any] = {
    "slice_accuracy": {"train": (0.9294, (0.91, 0.93)), "test": (0.8218, (0.77, 0.86))},
    "micro_auc": {"train": 0.98, "test": 0.93},
    # Methods: slices per class in the training and test sets.
    "slices": {
        "train": {"free": 902, "pleomorphic_adenoma": 714, "warthin": 558, "malignant": 861},
        "test": {"free": 89, "pleomorphic_adenoma": 57, "warthin": 36, "malignant": 93},
    },
    # Test patients (Methods, Table 5); train = Table 1 minus test. The Methods text prints
    # 83/58/73 training patients, which sums to 214, not the stated 212.
    "patients": {
        "train": {"pleomorphic_adenoma": 82, "warthin": 58, "malignant": 72},
        "test": {"pleomorphic_adenoma": 8, "warthin": 5, "malignant": 8},
    },
    "table4": {
        "benign_vs_malignant": {"accuracy": (0.882, (0.827, 0.921)),
                                "sensitivity": (0.946, (0.873, 0.980)),
                                "specificity": (0.817, (0.721, 0.887))},
        "pleomorphic_vs_warthin": {"accuracy": (0.634, (0.533, 0.725)),
                                   "sensitivity": (0.695, (0.560, 0.805)),
                                   "specificity": (0.529, (0.354, 0.698))},
        "lesion_vs_none": {"accuracy": (1.0, (0.986, 1.0)),
                           "sensitivity": (1.0, (0.948, 1.0)),
                           "specificity": (1.0, (0.975, 1.0))},
    },
    "table5": {"pleomorphic_adenoma": (8, 6), "warthin": (5, 3), "benign": (13, 12),
               "malignant": (8, 8)},
    # Table 3: test accuracy per input composition.
    "table3": {"t1": 0.706, "ce_t1": 0.739, "t2": 0.707, "t1+ce_t1": 0.702, "t1+t2": 0.798,
               "ce_t1+t2": 0.776, "t1+ce_t1+t2+gland": 0.822},
    "training_time": "about 2 hours, 1200 epochs on one GTX 1080 Ti",
}

#: Table 4 cells whose printed value matches another measure of the paper's own counts.
PAPER_TABLE4_AS_PRINTED = {("pleomorphic_vs_warthin", "sensitivity"): "ppv",
                           ("pleomorphic_vs_warthin", "specificity"): "npv"}

def _fmt(value: float | None, ci: tuple[float, float] | list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    if ci is not None:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _reason(block: Mapping[str, Any] | None) -> str:
    return (block or {}).get(UNDEFINED_KEY) or "not computed"


def scheme_note(scheme: ClassScheme) -> str | None:
    """None for the paper's class scheme; else a sentence saying that the run's scheme
    differs from the paper's and that its results are shown alone."""
    if is_paper(scheme):
        return None
    return (f"This run's class scheme ({scheme.name}: "
            f"{', '.join(c.replace('_', ' ') for c in scheme.classes)}) differs from the "
            f"paper's four classes (free, pleomorphic adenoma, Warthin, malignant), so its "
            f"tasks and classes are not the paper's: its results are shown alone, without "
            f"the published values.")


def _run_only(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The quantities of :func:`paper_vs_run` for this run alone (another class scheme)."""
    rows = []
    for split in ("train", "test"):
        rows.append((f"Slice accuracy, {split} [95% CI]",
                     block_text(metrics["slice"][split]["accuracy"], counts=False)))
        auc = metrics["slice"][split]["micro_auc"]
        rows.append((f"Micro-AUC, {split}" + (" [95% CI]" if auc.get("ci95") else ""),
                     block_text(auc, counts=False)))
    for row in metrics.get("table4", []):
        for measure in ("accuracy", "sensitivity", "specificity"):
            rows.append((f"Table 4 {row['task'].replace('_', ' ')}: {measure}",
                         block_text(row.get(measure), counts=False)))
    for row in metrics.get("patient", {}).get("table5", []):
        ours = f"{row['correct']} / {row['patients']}"
        if not row["patients"]:
            ours += f", {undefined_text(_reason(row.get('accuracy')))}"
        rows.append((f"Table 5 {row['type'].replace('_', ' ')}: correct / patients", ours))
    return pd.DataFrame(rows, columns=["quantity", "this run"]).set_index("quantity")


def paper_vs_run(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Headline numbers of the paper beside this run's, one row per quantity.

    Parameters
    ----------
    metrics : mapping
        A run's metrics.json (docs/metrics.md).

    Returns
    -------
    DataFrame
        Columns ``quantity``, ``paper``, ``this run``; for a run of another class scheme
        (metrics.json's ``class_scheme``) ``quantity`` and ``this run`` only.
    """
    if not is_paper(scheme_of(metrics)):
        return _run_only(metrics)
    rows = []
    for split in ("train", "test"):
        acc = metrics["slice"][split]["accuracy"]
        paper_acc, paper_ci = PAPER["slice_accuracy"][split]
        rows.append((f"Slice accuracy, {split} [95% CI]", _fmt(paper_acc, paper_ci),
                     block_text(acc, counts=False)))
        auc = metrics["slice"][split]["micro_auc"]
        rows.append((f"Micro-AUC, {split}" + (" [95% CI]" if auc.get("ci95") else ""),
                     _fmt(PAPER["micro_auc"][split]), block_text(auc, counts=False)))
    for row in metrics.get("table4", []):
        paper_row = PAPER["table4"].get(row["task"], {})
        for measure in ("accuracy", "sensitivity", "specificity"):
            # The paper's pleomorphic-vs-Warthin "sensitivity"/"specificity" (0.695, 0.529)
            # are reproduced by 41/59 and 18/34, i.e. the PPV and NPV of its own confusion
            # matrix; compare like with like and say so.
            key = PAPER_TABLE4_AS_PRINTED.get((row["task"], measure), measure)
            block = row.get(key)
            pv = paper_row.get(measure)
            label = f"Table 4 {row['task'].replace('_', ' ')}: {measure}"
            if key != measure:
                label += f" as printed (= {key.upper()})"
            rows.append((label, _fmt(*pv) if pv else "n/a", block_text(block, counts=False)))
    for row in metrics.get("patient", {}).get("table5", []):
        paper = PAPER["table5"].get(row["type"])
        ours = f"{row['correct']} / {row['patients']}"
        if not row["patients"]:
            ours += f", {undefined_text(_reason(row.get('accuracy')))}"
        rows.append((f"Table 5 {row['type'].replace('_', ' ')}: correct / patients",
                     f"{paper[1]} / {paper[0]}" if paper else "n/a", ours))
    return pd.DataFrame(rows, columns=["quantity", "paper", "this run"]).set_index("quantity")


def slice_counts_vs_paper(slices: pd.DataFrame,
                          scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """Slices per class and split in this run beside the paper's (Methods); for another
    class scheme the run's counts per class of the scheme alone (no ``paper`` column)."""
    counts = slices.groupby(["split", "label"]).size()
    paper = is_paper(scheme)
    rows = []
    for split in ("train", "test"):
        for cls in scheme.classes:
            rows.append({"split": split, "class": cls,
                         **({"paper": PAPER["slices"][split][cls]} if paper else {}),
                         "this run": int(counts.get((split, cls), 0))})
        rows.append({"split": split, "class": "total",
                     **({"paper": sum(PAPER["slices"][split].values())} if paper else {}),
                     "this run": int(counts.loc[split].sum()) if split in counts.index else 0})
    return pd.DataFrame(rows).set_index(["split", "class"])


def results_paragraph(metrics: Mapping[str, Any]) -> str:
    """A Markdown paragraph that reads like the paper's Results, with this run's numbers.

    The paper's values follow in parentheses; a synthetic run says so in its first words. A
    quantity the run leaves undefined is said to be undefined, with its reason. A run of
    another class scheme gets its own numbers alone, after :func:`scheme_note`.
    """
    scheme = scheme_of(metrics)
    if not is_paper(scheme):
        return _results_alone(metrics, scheme)
    s = metrics["slice"]
    tr, te = s["train"], s["test"]
    prefix = "On the synthetic cohort, the" if metrics.get("synthetic") else "The"

    def percent(block: Mapping[str, Any]) -> str:
        if block.get("value") is None:
            return undefined_text(_reason(block))
        return f"{100 * block['value']:.2f}%"

    def auc(block: Mapping[str, Any], with_ci: bool) -> str:
        if block.get("value") is None:
            return undefined_text(_reason(block))
        ci = block.get("ci95") if with_ci else None
        if ci:
            return f"{block['value']:.2f} (95% CI [{ci[0]:.2f}, {ci[1]:.2f}], patient bootstrap)"
        reason = block.get(f"ci95_{UNDEFINED_KEY}") if with_ci else None
        return f"{block['value']:.2f}" + (f" (95% CI undefined: {reason})" if reason else "")

    acc_ci = te["accuracy"].get("ci95")
    acc_ci_text = f"95% CI [{acc_ci[0]:.2f}, {acc_ci[1]:.2f}]; " if acc_ci else ""
    text = (
        f"{prefix} accuracy of slice classification was "
        f"{percent(tr['accuracy'])} for the training set "
        f"({tr['accuracy'].get('successes')}/{tr['accuracy'].get('total')} slices; "
        f"paper 92.94%) and {percent(te['accuracy'])} "
        f"({acc_ci_text}"
        f"{te['accuracy'].get('successes')}/{te['accuracy'].get('total')} slices) for the test "
        f"set (paper 82.18% [0.77, 0.86]). The micro-AUC was {auc(tr['micro_auc'], False)} for "
        f"the training set and {auc(te['micro_auc'], True)} for the test set "
        f"(paper 0.98 and 0.93)."
    )
    rows = {r["task"]: r for r in metrics.get("table4", [])}
    if "benign_vs_malignant" in rows and "pleomorphic_vs_warthin" in rows:

        def accuracy(block: Mapping[str, Any], paper: str) -> str:
            if block.get("value") is None:
                return f"an accuracy that is undefined ({_reason(block)}; paper {paper})"
            return f"an accuracy of {block['value']:.3f} (paper {paper})"

        bm, pw = rows["benign_vs_malignant"], rows["pleomorphic_vs_warthin"]
        text += (
            f" Benign and malignant test slices were told apart with "
            f"{accuracy(bm['accuracy'], '0.882')}; pleomorphic adenoma and Warthin "
            f"tumour with {accuracy(pw['accuracy'], '0.634')}."
        )
    t5 = {r["type"]: r for r in metrics.get("patient", {}).get("table5", [])}
    if t5:
        parts = [f"{r['correct']} of {r['patients']} {k.replace('_', ' ')}"
                 for k, r in t5.items() if k != "benign" and r["patients"]]
        absent = [f"{k.replace('_', ' ')} ({_reason(r.get('accuracy'))})"
                  for k, r in t5.items() if k != "benign" and not r["patients"]]
        if parts:
            text += (" At the patient level, the decision rule of Figure 5 classified "
                     + ", ".join(parts) + " test patients correctly")
        else:
            text += " At the patient level, the decision rule of Figure 5 had no test patient"
        if absent:
            text += "; its accuracy is undefined for " + " and ".join(absent)
        text += " (paper: 6 of 8, 3 of 5, 8 of 8)."
    return text


def _percent(block: Mapping[str, Any]) -> str:
    if block.get("value") is None:
        return undefined_text(_reason(block))
    return f"{100 * block['value']:.2f}%"


def _results_alone(metrics: Mapping[str, Any], scheme: ClassScheme) -> str:
    """:func:`results_paragraph` for a run of another class scheme: no published values."""
    tr, te = metrics["slice"]["train"], metrics["slice"]["test"]
    prefix = "On the synthetic cohort, the" if metrics.get("synthetic") else "The"
    auc = te["micro_auc"]
    auc_text = (undefined_text(_reason(auc)) if auc.get("value") is None
                else f"{auc['value']:.2f}")
    text = (f"{scheme_note(scheme)} {prefix} accuracy of slice classification over the "
            f"{len(scheme.classes)} classes was {_percent(tr['accuracy'])} for the training "
            f"set and {_percent(te['accuracy'])} "
            f"({te['accuracy'].get('successes')}/{te['accuracy'].get('total')} slices) for "
            f"the test set; the test micro-AUC was {auc_text}.")
    rows = {r["task"]: r for r in metrics.get("table4", [])}
    if "benign_vs_malignant" in rows:
        acc = rows["benign_vs_malignant"]["accuracy"]
        text += (" Benign and malignant test slices were told apart with an accuracy of "
                 + (f"{acc['value']:.3f}." if acc.get("value") is not None
                    else f"{undefined_text(_reason(acc))}."))
    parts = [f"{r['correct']} of {r['patients']} {r['type'].replace('_', ' ')}"
             for r in metrics.get("patient", {}).get("table5", [])
             if r["type"] in scheme.classes and r["patients"]]
    if parts:
        text += (" At the patient level, the decision rule of Figure 5 classified "
                 + ", ".join(parts) + " test patients correctly.")
    return text
