"""Tables of the channel ablation (the paper's Table 3) from its members' run folders.

Each member (composition x seed) holds metrics.json and predictions.csv (see ``ablation``).
Torch-free: reads files, computes summaries and McNemar's exact test (statsmodels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.config import COMPOSITIONS, REFERENCE
from parotidlib.evaluation.results import read_predictions
from parotidlib.evaluation.stats import mcnemar_exact, wilson_interval
from parotidlib.report.paper import PAPER

#: Row letters of the paper's Table 3.
TABLE3_ROWS = dict(zip(COMPOSITIONS, "abcdefg", strict=True))
_KEYS = ["patient_id", "slice_index", "side"]


def read_members(run_dir: str | Path) -> pd.DataFrame:
    """One row per finished member: composition, seed, test accuracy with counts, micro-AUC."""
    run_dir = Path(run_dir)
    members = json.loads((run_dir / "ablation" / "members.json").read_text())
    rows = []
    for m in members:
        metrics = json.loads((run_dir / "ablation" / m["run_dir"] / "metrics.json").read_text())
        test = metrics["slice"]["test"]
        rows.append({"composition": m["composition"], "seed": int(m["seed"]),
                     "run_dir": m["run_dir"],
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
                       reference: str = REFERENCE) -> pd.DataFrame:
    """McNemar's exact test of each composition against ``reference`` on the same test slices.

    Pairs are formed per seed (same seed, same test slices). Slices of one patient are
    correlated, so the p-values treat clustered slices as independent and are optimistic.
    """
    run_dir = Path(run_dir)

    def correct(member_dir: str) -> pd.Series:
        p = read_predictions(run_dir / "ablation" / member_dir / "predictions.csv")
        p = p[p["split"] == "test"]
        keys = [k for k in _KEYS if k in p]
        return pd.Series((p["true_label"] == p["predicted_label"]).to_numpy(),
                         index=pd.MultiIndex.from_frame(p[keys]))

    rows = []
    refs = members[members["composition"] == reference].set_index("seed")["run_dir"]
    for _, m in members[members["composition"] != reference].iterrows():
        if m["seed"] not in refs.index:
            continue
        a, b = correct(m["run_dir"]), correct(refs[m["seed"]])
        a, b = a.align(b, join="inner")
        test = mcnemar_exact(a.to_numpy(), b.to_numpy())
        rows.append({"composition": m["composition"].replace("+", " + "), "seed": m["seed"],
                     "accuracy": a.mean(), "reference accuracy": b.mean(),
                     "only composition correct": test["b"], "only reference correct": test["c"],
                     "McNemar exact p": test["pvalue"], "slices": len(a)})
    return pd.DataFrame(rows)
