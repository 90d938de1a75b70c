"""Diagnostic accuracy (accuracy, sensitivity, specificity, PPV, NPV with their intervals) of
the paper's Table 4 (binary slice tasks) and Table 5 (patient diagnosis), plus a sweep of the
decision rule's malignant-slice threshold. These are results; :mod:`.frames` shows them as
tables.

Table 4 (Xia et al. 2021) derives three binary tasks from the 4-class slice predictions.
Which class is "positive" was worked out from the paper's own counts (test set: 89 free,
57 pleomorphic adenoma, 36 Warthin, 93 malignant slices; confusion matrix of Figure 7):
in each row the positive class is the FIRST named one, and every printed bound is
reproduced with accuracy by the Wilson interval and sensitivity/specificity by the Wilson
interval with continuity correction (Newcombe method 4):

===========================  ===========  ==========================================
row                          positive     accuracy / sensitivity / specificity counts
===========================  ===========  ==========================================
Benign vs malignant          benign       164/186, 88/93, 76/93
Pleomorphic vs Warthin       PA           59/93, *41/59*, *18/34*
Without vs with lesion       free         275/275, 89/89, 186/186
===========================  ===========  ==========================================

*Italics*: the paper's "sensitivity" and "specificity" of the pleomorphic-vs-Warthin row are
41/(41+18) and 18/(18+16), i.e. TP/(TP+FP) and TN/(TN+FN) -- the positive and negative
predictive values of our 2x2 table (the paper transposed that table). Here ``sensitivity``
and ``specificity`` keep their usual meaning (41/57 and 18/36 for the paper's matrix) and
every row also carries ``ppv`` and ``npv``, so the paper's numbers can be compared with
``ppv``/``npv`` of that row.

Slices predicted outside both groups of a task (a lesion slice predicted ``free``, or a
benign slice predicted malignant in the pleomorphic-vs-Warthin task) count as errors: a
false negative for a positive-class slice and a false positive for a negative-class slice,
so tp + fn + fp + tn is the number of slices of the task and accuracy is correct/all.
``n_other`` in each row counts these slices.

For any other class scheme (:class:`parotidlib.study.ClassScheme`; the ``classes`` param)
the tasks follow the scheme (:func:`table4_tasks`): benign vs malignant where both groups
exist, one task per pair of benign classes (the first-named class positive, as in the
paper's pleomorphic-vs-Warthin row), and lesion vs none always; Table 5 has a row per lesion
class, plus the benign (malignant) group when there are several benign (malignant) classes.
The paper's scheme keeps the paper's three tasks, their names and order.

A small test set may lack a class. Every task then still has its row, and a measure whose
denominator is empty is written as undefined with its reason
(:func:`parotidlib.evaluation.stats.proportion_or_undefined`; docs/metrics.md, "Undefined
quantities"): no benign slice leaves the benign-vs-malignant sensitivity undefined ("no
benign slice"), no pleomorphic adenoma or Warthin slice every measure of that row. Table 5
and the threshold sweep do the same for tumour types without patients.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from parotidlib.constants import BENIGN, CLASSES
from parotidlib.evaluation.classes import is_paper
from parotidlib.evaluation.decision import as_class_names, diagnose_patients
from parotidlib.evaluation.metrics import select_split
from parotidlib.evaluation.stats import UNDEFINED_KEY, proportion_or_undefined
from parotidlib.study import PAPER_CLASSES, ClassScheme

logger = logging.getLogger(__name__)

__all__ = [
    "TABLE4_TASKS",
    "BinaryTask",
    "binary_counts",
    "patient_confusion",
    "patient_table5",
    "table4",
    "table4_row",
    "table4_tasks",
    "table5_groups",
    "threshold_sweep",
]


@dataclass(frozen=True)
class BinaryTask:
    """A binary task carved out of the scheme's slice classes."""

    # Task name as in metrics.json ("benign_vs_malignant", ...).
    name: str
    # Name of the positive group ("benign", a class name, ...).
    positive: str
    # Name of the negative group.
    negative: str
    # Classes making up the positive group.
    positive_classes: tuple[str, ...]
    # Classes making up the negative group.
    negative_classes: tuple[str, ...]


#: The three rows of the paper's Table 4, in its order; positive = the first-named class.
TABLE4_TASKS: tuple[BinaryTask, ...] = (
    BinaryTask("benign_vs_malignant", "benign", "malignant", BENIGN, ("malignant",)),
    BinaryTask("pleomorphic_vs_warthin", "pleomorphic_adenoma", "warthin",
               ("pleomorphic_adenoma",), ("warthin",)),
    BinaryTask("lesion_vs_none", "free", "lesion", ("free",),
               tuple(c for c in CLASSES if c != "free")),
)


def table4_tasks(scheme: ClassScheme = PAPER_CLASSES) -> tuple[BinaryTask, ...]:
    """Table 4's binary tasks for a class scheme, positive = the first-named group.

    The paper's scheme: :data:`TABLE4_TASKS` (names and order as in metrics.json today).
    Any other: ``benign_vs_malignant`` (benign classes vs malignant classes) where the scheme
    has both, ``<a>_vs_<b>`` for each pair of benign classes in class order, and
    ``lesion_vs_none`` (``free`` vs every lesion class) always, in that order.
    """
    if is_paper(scheme):
        return TABLE4_TASKS
    free, lesion = scheme.classes[0], scheme.classes[1:]
    tasks = []
    if scheme.benign and scheme.malignant:
        tasks.append(BinaryTask("benign_vs_malignant", "benign", "malignant", scheme.benign,
                                scheme.malignant))
    tasks += [BinaryTask(f"{a}_vs_{b}", a, b, (a,), (b,))
              for a, b in combinations(scheme.benign, 2)]
    tasks.append(BinaryTask("lesion_vs_none", free, "lesion", (free,), lesion))
    return tuple(tasks)


def binary_counts(y_true: Any, y_pred: Any, task: BinaryTask,
                  scheme: ClassScheme = PAPER_CLASSES) -> dict[str, int]:
    """2 x 2 counts of a binary task over the slices whose true class belongs to it.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,)
        True and predicted labels over the scheme's classes (names or indices).
    task : BinaryTask
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    dict
        ``tp`` (positive predicted positive), ``fn`` (positive predicted anything else),
        ``tn`` (negative predicted negative), ``fp`` (negative predicted anything else),
        ``n`` and ``n_other`` (slices of the task predicted in neither group).
    """
    t = as_class_names(y_true, "y_true", scheme)
    p = as_class_names(y_pred, "y_pred", scheme)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size}, {p.size}")
    pos_t, neg_t = np.isin(t, task.positive_classes), np.isin(t, task.negative_classes)
    pos_p, neg_p = np.isin(p, task.positive_classes), np.isin(p, task.negative_classes)
    tp, tn = int(np.sum(pos_t & pos_p)), int(np.sum(neg_t & neg_p))
    fn, fp = int(np.sum(pos_t)) - tp, int(np.sum(neg_t)) - tn
    other = int(np.sum((pos_t | neg_t) & ~pos_p & ~neg_p))
    return {"tp": tp, "fn": fn, "fp": fp, "tn": tn, "n": tp + fn + fp + tn, "n_other": other}


def table4_row(y_true: Any, y_pred: Any, task: BinaryTask, confidence: float = 0.95,
               scheme: ClassScheme = PAPER_CLASSES) -> dict[str, Any]:
    """One Table 4 row: counts plus accuracy (Wilson) and sensitivity, specificity, PPV and
    NPV (Wilson with continuity correction, Newcombe method 4), as in the paper.

    Returns
    -------
    dict
        ``task``, ``positive``, ``negative``, ``tp``, ``fn``, ``fp``, ``tn``, ``n``,
        ``n_other`` and the proportion blocks ``accuracy``, ``sensitivity`` (tp/(tp+fn)),
        ``specificity`` (tn/(tn+fp)), ``ppv`` (tp/(tp+fp)), ``npv`` (tn/(tn+fn)). A block
        whose denominator is 0 is undefined
        (:func:`parotidlib.evaluation.stats.undefined_block`), with the reason ``"no
        <positive> or <negative> slice"`` (accuracy), ``"no <positive> slice"``
        (sensitivity), ``"no <negative> slice"`` (specificity) or ``"no slice predicted
        <positive>"`` / ``"<negative>"`` (PPV / NPV).
    """
    c = binary_counts(y_true, y_pred, task, scheme)
    tp, fn, fp, tn = c["tp"], c["fn"], c["fp"], c["tn"]
    pos, neg = task.positive, task.negative
    return {
        "task": task.name, "positive": pos, "negative": neg, **c,
        "accuracy": proportion_or_undefined(tp + tn, c["n"], f"no {pos} or {neg} slice",
                                            confidence),
        "sensitivity": proportion_or_undefined(tp, tp + fn, f"no {pos} slice", confidence,
                                               continuity_correction=True),
        "specificity": proportion_or_undefined(tn, tn + fp, f"no {neg} slice", confidence,
                                               continuity_correction=True),
        "ppv": proportion_or_undefined(tp, tp + fp, f"no slice predicted {pos}", confidence,
                                       continuity_correction=True),
        "npv": proportion_or_undefined(tn, tn + fn, f"no slice predicted {neg}", confidence,
                                       continuity_correction=True),
    }


def table4(predictions: pd.DataFrame, split: str | None = None,
           confidence: float = 0.95, scheme: ClassScheme = PAPER_CLASSES
           ) -> list[dict[str, Any]]:
    """The paper's Table 4 from slice predictions over the scheme's classes (see the module
    docstring).

    Parameters
    ----------
    predictions : pandas.DataFrame
        Predictions table (``true_label``, ``predicted_label``; ``split`` if ``split``).
    split : str, optional
        Restrict to this split (the paper reports the test set).
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    list of dict
        One :func:`table4_row` per task of :func:`table4_tasks`, in that order; a task
        without slices has ``n == 0`` and every block undefined.
    """
    frame = select_split(predictions, split, scheme)
    rows = []
    for task in table4_tasks(scheme):
        row = table4_row(frame["true_label"], frame["predicted_label"], task, confidence,
                         scheme)
        undefined = [k for k in ("accuracy", "sensitivity", "specificity")
                     if UNDEFINED_KEY in row[k]]
        if undefined:
            logger.warning("table4: %s undefined for task %s (%s)", ", ".join(undefined),
                           task.name, "; ".join(row[k][UNDEFINED_KEY] for k in undefined))
        rows.append(row)
    return rows


def _check_patient_df(patient_df: pd.DataFrame, scheme: ClassScheme) -> None:
    cols = ("true_histology", "predicted_histology")
    if not isinstance(patient_df, pd.DataFrame) or any(c not in patient_df for c in cols):
        raise ValueError(f"patient_df must be a DataFrame with columns {list(cols)} "
                         "(see decision.diagnose_patients)")
    lesion = scheme.classes[1:]
    for col in cols:
        bad = sorted(set(patient_df[col]) - set(lesion))
        if bad:
            raise ValueError(f"patient_df.{col} must hold {list(lesion)}, got {bad}")


def patient_confusion(patient_df: pd.DataFrame,
                      scheme: ClassScheme = PAPER_CLASSES) -> np.ndarray:
    """Patient confusion matrix over the scheme's lesion classes, rows true and columns
    predicted (the paper's 3 x 3 in HISTOLOGIES order by default).

    Parameters
    ----------
    patient_df : pandas.DataFrame
        Output of :func:`parotidlib.evaluation.decision.diagnose_patients`
        (``true_histology``, ``predicted_histology``).

    Returns
    -------
    numpy.ndarray of int64, shape (K - 1, K - 1)
        Element (i, j) counts patients of lesion class ``scheme.classes[1:][i]`` (paper:
        pleomorphic adenoma, Warthin, malignant) diagnosed as ``scheme.classes[1:][j]``, as
        in the paper's Table 5; ``sklearn.metrics.confusion_matrix`` with those labels.
    """
    _check_patient_df(patient_df, scheme)
    lesion = list(scheme.classes[1:])
    if patient_df.empty:  # sklearn refuses empty input; no patient is a matrix of zeros
        return np.zeros((len(lesion), len(lesion)), dtype=np.int64)
    return confusion_matrix(patient_df["true_histology"], patient_df["predicted_histology"],
                            labels=lesion)


def table5_groups(scheme: ClassScheme = PAPER_CLASSES
                  ) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
    """Table 5's rows for a scheme: ``(name, classes, exact)``.

    Each benign class, then the benign group when there are several benign classes, then
    each malignant class, then the malignant group when there are several; ``exact``: a
    patient is correct when diagnosed as its own class, else (a group) as any class of the
    group, as in the paper's 13/12 benign row. A group is named ``benign`` (``malignant``),
    or ``all_benign`` (``all_malignant``) where a class has that name. The paper's scheme
    gives its rows: pleomorphic adenoma, Warthin, benign, malignant.
    """
    rows: list[tuple[str, tuple[str, ...], bool]] = []
    for group, members in (("benign", scheme.benign), ("malignant", scheme.malignant)):
        rows += [(c, (c,), True) for c in members]
        if len(members) > 1:
            name = group if group not in scheme.classes else f"all_{group}"
            rows.append((name, tuple(members), False))
    return tuple(rows)


def patient_table5(patient_df: pd.DataFrame, confidence: float = 0.95,
                   scheme: ClassScheme = PAPER_CLASSES) -> list[dict[str, Any]]:
    """The paper's Table 5: patients and correctly diagnosed patients per tumour type.

    Rows (:func:`table5_groups`), always all of them; for the paper's scheme
    ``pleomorphic_adenoma``, ``warthin`` (correct = exact type), ``benign`` (PA + Warthin;
    correct = diagnosed as either benign type, as in the paper's 13/12 row) and
    ``malignant``. A type without patients has ``patients == 0`` and an undefined
    ``accuracy`` with the reason ``"no <type> patient"``.

    Parameters
    ----------
    patient_df : pandas.DataFrame
        Output of :func:`parotidlib.evaluation.decision.diagnose_patients`.
    scheme : ClassScheme
        The run's class scheme (default the paper's four classes).

    Returns
    -------
    list of dict
        ``{"type", "patients", "correct", "accuracy"}``; ``accuracy`` is a
        :func:`parotidlib.evaluation.stats.proportion_or_undefined` (Wilson interval).
    """
    _check_patient_df(patient_df, scheme)
    true, pred = patient_df["true_histology"], patient_df["predicted_histology"]
    rows = []
    for name, members, exact in table5_groups(scheme):
        member = true.isin(members)
        correct = true == pred if exact else pred.isin(members)
        n, k = int(member.sum()), int((member & correct).sum())
        if not n:
            logger.warning("table5: no %s patient; its accuracy is undefined", name)
        rows.append({"type": name, "patients": n, "correct": k,
                     "accuracy": proportion_or_undefined(k, n, f"no {name} patient",
                                                         confidence)})
    return rows


def threshold_sweep(predictions: pd.DataFrame, thresholds: Iterable[int] = range(0, 11),
                    split: str | None = None, confidence: float = 0.95,
                    scheme: ClassScheme = PAPER_CLASSES) -> pd.DataFrame:
    """Patient-level detection of malignancy as the decision rule's threshold varies.

    For each ``malignant_threshold`` the patients are diagnosed with
    :func:`parotidlib.evaluation.decision.diagnose_patients`; malignant (any malignant class
    of ``scheme``) is the positive class.

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``malignant_threshold``, ``tp``, ``fn``, ``fp``, ``tn``,
        ``sensitivity`` with ``sensitivity_lo``/``sensitivity_hi`` and ``specificity`` with
        ``specificity_lo``/``specificity_hi`` (Wilson with continuity correction, as for
        Table 4). Without malignant (benign) patients the sensitivity (specificity) and its
        bounds are NaN, and a column ``sensitivity_undefined`` (``specificity_undefined``)
        gives the reason, ``"no malignant patient"`` (``"no benign patient"``); the
        column is present only then.
    """
    frame = select_split(predictions, split, scheme)
    rows = []
    for threshold in thresholds:
        patients = diagnose_patients(frame, malignant_threshold=threshold, scheme=scheme)
        is_mal = patients["true_histology"].isin(scheme.malignant)
        said_mal = patients["predicted_histology"].isin(scheme.malignant)
        row: dict[str, Any] = {
            "malignant_threshold": int(threshold),
            "tp": int((is_mal & said_mal).sum()), "fn": int((is_mal & ~said_mal).sum()),
            "fp": int((~is_mal & said_mal).sum()), "tn": int((~is_mal & ~said_mal).sum()),
        }
        for name, k, n, group in (("sensitivity", row["tp"], row["tp"] + row["fn"], "malignant"),
                                  ("specificity", row["tn"], row["tn"] + row["fp"], "benign")):
            s = proportion_or_undefined(k, n, f"no {group} patient", confidence,
                                        continuity_correction=True)
            if UNDEFINED_KEY in s:
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = np.nan, np.nan, np.nan
                row[f"{name}_{UNDEFINED_KEY}"] = s[UNDEFINED_KEY]
            else:
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = s["value"], *s["ci95"]
        rows.append(row)
    return pd.DataFrame(rows)
