"""Tables of the channel ablation (the paper's Table 3) from its members' run folders.

Each member (composition x seed) holds metrics.json and predictions.csv (see ``ablation``);
a cross-validated ablation (``ablation --folds k``) has one pooled out-of-fold table per
composition and seed instead (``ablation/pooled/<composition>__seed<k>.csv``), so its Table 3
rests on every patient. The paired comparison with the full model is a patient-level paired
bootstrap of the accuracy difference (``evaluation.paired``), McNemar's exact test on slices
beside it as a secondary column. Torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.config import COMPOSITIONS, REFERENCE
from parotidlib.evaluation.metrics import roc_curves, slice_accuracy
from parotidlib.evaluation.paired import paired_table
from parotidlib.evaluation.results import read_predictions
from parotidlib.evaluation.stats import wilson_interval
from parotidlib.report.paper import PAPER

#: Row letters of the paper's Table 3.
TABLE3_ROWS = dict(zip(COMPOSITIONS, "abcdefg", strict=True))


def _pooled_row(run_dir: Path, m: dict) -> dict:
    frame = read_predictions(run_dir / "ablation" / m["pooled"])
    acc = slice_accuracy(frame)
    roc = roc_curves(frame)
    return {"composition": m["composition"], "seed": int(m["seed"]),
            "predictions": m["pooled"], "accuracy": acc["value"],
            "ci_low": acc["ci95"][0], "ci_high": acc["ci95"][1],
            "successes": acc["successes"], "total": acc["total"],
            "micro_auc": float(roc.auc["micro"]), "patients": int(frame["patient_id"].nunique())}


def cross_validated(run_dir: str | Path) -> bool:
    """Whether the ablation batch was cross-validated (pooled out-of-fold tables)."""
    members = json.loads((Path(run_dir) / "ablation" / "members.json").read_text())
    return bool(members) and "pooled" in members[0]


def read_members(run_dir: str | Path) -> pd.DataFrame:
    """One row per finished member (or, cross-validated, per composition and seed pooled
    over its folds): composition, seed, test accuracy with counts, micro-AUC, and the
    predictions file the paired comparisons read."""
    run_dir = Path(run_dir)
    members = json.loads((run_dir / "ablation" / "members.json").read_text())
    if members and "pooled" in members[0]:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class without curve is named in the report
            return pd.DataFrame([_pooled_row(run_dir, m) for m in members])
    rows = []
    for m in members:
        metrics = json.loads((run_dir / "ablation" / m["run_dir"] / "metrics.json").read_text())
        test = metrics["slice"]["test"]
        rows.append({"composition": m["composition"], "seed": int(m["seed"]),
                     "predictions": f"{m['run_dir']}/predictions.csv",
                     "accuracy": test["accuracy"]["value"],
                     "ci_low": test["accuracy"]["ci95"][0], "ci_high": test["accuracy"]["ci95"][1],
                     "successes": test["accuracy"]["successes"], "total": test["accuracy"]["total"],
                     "micro_auc": test["micro_auc"]["value"]})
    return pd.DataFrame(rows)


def summary_table(members: pd.DataFrame) -> pd.DataFrame:
    """Per composition: mean test accuracy over seeds, its spread, a Wilson 95% CI, mean
    micro-AUC, and the paper's Table 3 accuracy beside them.

    The interval is Wilson's (1927) for the mean accuracy over the n test slices of ONE run:
    every seed scores the same test slices, so pooling the seeds' counts would pretend to
    k times more independent slices. The spread across seeds is the sd column.
    """
    rows = []
    for comp in [c for c in COMPOSITIONS if c in set(members["composition"])] + sorted(
            set(members["composition"]) - set(COMPOSITIONS)):
        g = members[members["composition"] == comp]
        n = int(g["total"].iloc[0])
        lo, hi = wilson_interval(int(round(g["accuracy"].mean() * n)), n)
        rows.append({
            "row": TABLE3_ROWS.get(comp, ""), "composition": comp.replace("+", " + "),
            "seeds": len(g),
            "accuracy (mean)": g["accuracy"].mean(),
            "accuracy (sd)": g["accuracy"].std(ddof=1) if len(g) > 1 else np.nan,
            "95% CI": f"[{lo:.3f}, {hi:.3f}]",
            "micro-AUC (mean)": g["micro_auc"].mean(),
            "paper accuracy": PAPER["table3"].get(comp, np.nan),
        })
    return pd.DataFrame(rows)


def paired_comparisons(run_dir: str | Path, members: pd.DataFrame,
                       reference: str = REFERENCE, resamples: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """Each composition against ``reference`` on the same slices, per training seed.

    The difference in slice accuracy with a 95% interval and a two-sided p from a paired
    bootstrap over patients (the same patients for both models: slices of a patient are
    correlated; Field & Welsh 2007), and McNemar's exact test on the slices as a secondary
    column, which treats the slices as independent and is optimistic
    (:func:`parotidlib.evaluation.paired.paired_table`). The single-split ablation compares
    the test slices, the cross-validated one every slice (pooled out of fold).
    """
    run_dir = Path(run_dir)

    def predictions(rel: str) -> pd.DataFrame:
        p = read_predictions(run_dir / "ablation" / rel)
        return p[p["split"] == "test"]  # the pooled out-of-fold rows are all "test"

    frames = []
    refs = members[members["composition"] == reference].set_index("seed")["predictions"]
    for s_, group in members.groupby("seed"):
        if s_ not in refs.index:
            continue
        ref = predictions(refs[s_])
        pairs = {m["composition"].replace("+", " + "): (predictions(m["predictions"]), ref)
                 for _, m in group.iterrows() if m["composition"] != reference}
        if pairs:
            table = paired_table(pairs, reference.replace("+", " + "), resamples, seed)
            table.insert(1, "seed", s_)
            frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
