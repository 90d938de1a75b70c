"""Tables of the channel ablation (the paper's Table 3) from its members' run folders.

Each member (composition x seed) holds metrics.json and predictions.csv (see ``ablation``);
a cross-validated ablation (``ablation --folds k``) has one pooled out-of-fold table per
composition and seed instead (``ablation/pooled/<composition>__seed<k>.csv``), so its Table 3
rests on every patient. The paired comparison with the full model is a patient-level paired
bootstrap of the accuracy difference (``evaluation.paired``), McNemar's exact test on slices
beside it as a secondary column.

The study (:class:`AblationStudy`, from the run's curated ``data/dataset.json``) decides the
reference and the classes: the reference is every series of the study plus the gland (the
paper's proposed model, Table 3 row g, for the paper's series), and the statistics are over
the study's class scheme. The paper's Table 3 values stand beside the run only for the
paper's series and class scheme. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.config import COMPOSITIONS, default_compositions
from parotidlib.constants import GLAND_CHANNEL, SERIES
from parotidlib.evaluation.classes import is_paper, run_scheme
from parotidlib.evaluation.metrics import roc_curves, slice_accuracy
from parotidlib.evaluation.paired import paired_table
from parotidlib.evaluation.results import read_predictions
from parotidlib.evaluation.stats import wilson_interval
from parotidlib.report.paper import PAPER
from parotidlib.study import PAPER_CLASSES, ClassScheme, Study

__all__ = ["PAPER_STUDY", "TABLE3_ROWS", "AblationStudy", "ablation_study", "cross_validated",
           "paired_comparisons", "read_members", "study_note", "summary_table"]

#: Row letters of the paper's Table 3.
TABLE3_ROWS = dict(zip(COMPOSITIONS, "abcdefg", strict=True))


@dataclass(frozen=True)
class AblationStudy:
    """What an ablation's tables follow: the study's series and its class scheme.

    Attributes
    ----------
    series : tuple of str
        The study's MR series (the ``series`` param the batch curated with).
    scheme : ClassScheme
        The class scheme of the curated dataset.
    """

    series: tuple[str, ...] = SERIES
    scheme: ClassScheme = PAPER_CLASSES

    @property
    def reference(self) -> str:
        """The composition every other is compared with: every series plus the gland (for
        the paper's series its proposed model, Table 3 row g: ``t1+ce_t1+t2+gland``)."""
        return "+".join((*self.series, GLAND_CHANNEL))

    @property
    def paper_series(self) -> bool:
        """Whether the series are the paper's (its Table 3 rows a-g name the compositions)."""
        return self.series == SERIES

    @property
    def paper(self) -> bool:
        """Whether the paper's Table 3 values compare: the paper's series and classes."""
        return self.paper_series and is_paper(self.scheme)


#: The paper's study: T1, CE-T1 and T2 with its four classes.
PAPER_STUDY = AblationStudy()


def ablation_study(run_dir: str | Path) -> AblationStudy:
    """The study of an ablation batch from its curated ``data/dataset.json`` (the series of
    its ``config``, its class scheme); the paper's for a folder without one."""
    path = Path(run_dir) / "data" / "dataset.json"
    config = json.loads(path.read_text()).get("config", {}) if path.is_file() else {}
    return AblationStudy(Study.from_config(config).series, run_scheme(run_dir))


def study_note(study: AblationStudy) -> str | None:
    """None for the paper's study; else a sentence (Markdown) naming the study's series,
    its class scheme and reference, and saying why the paper's Table 3 values are not shown."""
    if study.paper:
        return None
    differs = [what for what, same in (("series", study.paper_series),
                                       ("classes", is_paper(study.scheme))) if not same]
    scheme = study.scheme
    return (f"This ablation's study is not the paper's ({' and '.join(differs)}): series "
            f"{', '.join(study.series)}; class scheme {scheme.name} "
            f"({', '.join(c.replace('_', ' ') for c in scheme.classes)}). Its compositions are "
            f"compared with {study.reference.replace('+', ' + ')} (every series with the "
            f"gland), and the paper's Table 3 values are not shown beside them.")


def _pooled_row(run_dir: Path, m: dict, scheme: ClassScheme) -> dict:
    frame = read_predictions(run_dir / "ablation" / m["pooled"])
    acc = slice_accuracy(frame, scheme=scheme)
    roc = roc_curves(frame, scheme=scheme)
    return {"composition": m["composition"], "seed": int(m["seed"]),
            "predictions": m["pooled"], "accuracy": acc["value"],
            "ci_low": acc["ci95"][0], "ci_high": acc["ci95"][1],
            "successes": acc["successes"], "total": acc["total"],
            "micro_auc": float(roc.auc["micro"]), "patients": int(frame["patient_id"].nunique())}


def cross_validated(run_dir: str | Path) -> bool:
    """Whether the ablation batch was cross-validated (pooled out-of-fold tables)."""
    members = json.loads((Path(run_dir) / "ablation" / "members.json").read_text())
    return bool(members) and "pooled" in members[0]


def read_members(run_dir: str | Path, scheme: ClassScheme | None = None) -> pd.DataFrame:
    """One row per finished member (or, cross-validated, per composition and seed pooled
    over its folds): composition, seed, test accuracy with counts, micro-AUC, and the
    predictions file the paired comparisons read.

    Parameters
    ----------
    run_dir : path
        The ablation batch folder.
    scheme : ClassScheme, optional
        The class scheme of the pooled tables' statistics; default the run's
        (:func:`ablation_study`). A single-split member's numbers are its metrics.json's.
    """
    run_dir = Path(run_dir)
    members = json.loads((run_dir / "ablation" / "members.json").read_text())
    if members and "pooled" in members[0]:
        import warnings

        scheme = ablation_study(run_dir).scheme if scheme is None else scheme
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class without curve is named in the report
            return pd.DataFrame([_pooled_row(run_dir, m, scheme) for m in members])
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


def summary_table(members: pd.DataFrame, study: AblationStudy = PAPER_STUDY) -> pd.DataFrame:
    """Per composition: mean test accuracy over seeds, its spread, a Wilson 95% CI, mean
    micro-AUC, and the paper's Table 3 accuracy beside them.

    The interval is Wilson's (1927) for the mean accuracy over the n test slices of ONE run:
    every seed scores the same test slices, so pooling the seeds' counts would pretend to
    k times more independent slices. The spread across seeds is the sd column.

    The rows follow the study's default compositions
    (:func:`parotidlib.config.default_compositions`; the paper's Table 3 for its series), the
    others after them sorted. Table 3's row letters are given for the paper's series, its
    accuracies (``paper accuracy``) only for the paper's series and class scheme
    (:attr:`AblationStudy.paper`; NaN otherwise: another study's numbers are not the
    paper's).
    """
    rows = []
    order = default_compositions(study.series)
    for comp in [c for c in order if c in set(members["composition"])] + sorted(
            set(members["composition"]) - set(order)):
        g = members[members["composition"] == comp]
        n = int(g["total"].iloc[0])
        lo, hi = wilson_interval(int(round(g["accuracy"].mean() * n)), n)
        rows.append({
            "row": TABLE3_ROWS.get(comp, "") if study.paper_series else "",
            "composition": comp.replace("+", " + "),
            "seeds": len(g),
            "accuracy (mean)": g["accuracy"].mean(),
            "accuracy (sd)": g["accuracy"].std(ddof=1) if len(g) > 1 else np.nan,
            "95% CI": f"[{lo:.3f}, {hi:.3f}]",
            "micro-AUC (mean)": g["micro_auc"].mean(),
            "paper accuracy": PAPER["table3"].get(comp, np.nan) if study.paper else np.nan,
        })
    return pd.DataFrame(rows)


def paired_comparisons(run_dir: str | Path, members: pd.DataFrame,
                       reference: str | None = None, resamples: int = 1000,
                       seed: int = 0, scheme: ClassScheme | None = None) -> pd.DataFrame:
    """Each composition against ``reference`` on the same slices, per training seed.

    ``reference`` defaults to the study's (:attr:`AblationStudy.reference`: every series
    plus the gland) and ``scheme`` to the run's class scheme (:func:`ablation_study`). Empty
    when no member is the reference.

    The difference in slice accuracy with a 95% interval and a two-sided p from a paired
    bootstrap over patients (the same patients for both models: slices of a patient are
    correlated; Field & Welsh 2007), and McNemar's exact test on the slices as a secondary
    column, which treats the slices as independent and is optimistic
    (:func:`parotidlib.evaluation.paired.paired_table`). The single-split ablation compares
    the test slices, the cross-validated one every slice (pooled out of fold).
    """
    run_dir = Path(run_dir)
    if reference is None or scheme is None:
        study = ablation_study(run_dir)
        reference = study.reference if reference is None else reference
        scheme = study.scheme if scheme is None else scheme

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
            table = paired_table(pairs, reference.replace("+", " + "), resamples, seed,
                                 scheme=scheme)
            table.insert(1, "seed", s_)
            frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
