"""The class scheme as the statistics read it: its probability columns, one-hot labels, a
patient's true class, and the scheme of a run (torch-free).

A run's classes are those of its ``classes`` param (:class:`parotidlib.study.ClassScheme`):
``free`` first, then the benign, then the malignant classes, which is the order of the
network's outputs and of the ``prob_<class>`` columns of predictions.csv. Curation records
the scheme in ``dataset.json`` (``class_scheme``); a run curated before the scheme existed has
none and is the paper's four classes (:data:`parotidlib.study.PAPER_CLASSES`; Xia et al.
2021, Figure 7). metrics.json records it (``class_scheme``) only when it differs from the
paper's, so that a paper run's metrics.json keeps its bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parotidlib.study import PAPER_CLASSES, ClassScheme

__all__ = ["SCHEME_KEY", "is_paper", "one_hot", "patient_class", "probability_columns",
           "run_scheme", "scheme_of"]

#: Key of the scheme's record in dataset.json, a model bundle's record and metrics.json.
SCHEME_KEY = "class_scheme"


def is_paper(scheme: ClassScheme) -> bool:
    """Whether ``scheme`` has the paper's classes in the paper's order, malignant alike (its
    results can then stand beside the published ones)."""
    return (scheme.classes == PAPER_CLASSES.classes
            and scheme.malignant == PAPER_CLASSES.malignant)


def probability_columns(scheme: ClassScheme = PAPER_CLASSES) -> tuple[str, ...]:
    """The ``prob_<class>`` columns of predictions.csv, in the scheme's class order."""
    return tuple(f"prob_{c}" for c in scheme.classes)


def one_hot(names: Sequence[str] | np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """One-hot rows of class names, columns in ``classes`` order (int).

    ``sklearn.preprocessing.label_binarize`` with ``classes`` gives the same matrix for three
    classes or more; for two it returns a single column, which a scheme of ``free`` and one
    lesion class would need, so the columns are built here.
    """
    return (np.asarray(names, dtype=object)[:, None]
            == np.asarray(classes, dtype=object)[None, :]).astype(int)


def patient_class(histology: Any, scheme: ClassScheme = PAPER_CLASSES) -> str | None:
    """A patient's true class from its ``histology`` cell: the scheme's class of that
    histology, or the cell itself when it already names a lesion class; None when it is
    empty or neither (a patient without histology, or one the scheme leaves out)."""
    if not isinstance(histology, str) or not histology:
        return None
    if histology in scheme.histologies:
        return scheme.class_of(histology)
    return histology if histology in scheme.classes[1:] else None


def scheme_of(record: Mapping[str, Any] | None) -> ClassScheme:
    """The scheme recorded under :data:`SCHEME_KEY` in ``record`` (dataset.json, a bundle's
    record, metrics.json); the paper's when there is none (a run before the scheme)."""
    if record and record.get(SCHEME_KEY):
        return ClassScheme.from_record(record[SCHEME_KEY])
    return PAPER_CLASSES


def run_scheme(run_dir: str | Path) -> ClassScheme:
    """The class scheme of a run folder, from its ``data/dataset.json`` (the paper's when the
    folder has none or it records no scheme)."""
    path = Path(run_dir) / "data" / "dataset.json"
    return scheme_of(json.loads(path.read_text()) if path.is_file() else None)
