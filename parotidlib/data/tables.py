"""Cohort tables in the layout of the paper's Table 1 (patients) and Table 2 (scanners), and
the slices per class and split of a curated dataset."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from parotidlib.constants import CLASSES, HISTOLOGIES, KNOWN_HISTOLOGIES, SIDES

_PRETTY = {"pleomorphic_adenoma": "Pleomorphic adenoma", "warthin": "Warthin tumour",
           "malignant": "Malignant", "left": "Left", "right": "Right", "both": "Both",
           "M": "Male", "F": "Female"}


def histology_order(present: Iterable[str]) -> list[str]:
    """The histologies to list for a cohort: the paper's three first (always, in the paper's
    order), then the others ``present`` in the order of
    :data:`parotidlib.constants.KNOWN_HISTOLOGIES` (the WHO classification's), then any the
    kit does not know, alphabetically. Empty cells (no histology) are left out.

    Examples
    --------
    >>> histology_order(["mucoepidermoid_carcinoma", "warthin", "basal_cell_adenoma", ""])[3:]
    ['basal_cell_adenoma', 'mucoepidermoid_carcinoma']
    """
    others = {str(h) for h in present if isinstance(h, str) and h} - set(HISTOLOGIES)
    known = [h for h in KNOWN_HISTOLOGIES if h in others]
    return [*HISTOLOGIES, *known, *sorted(others - set(known))]


def pretty_histology(histology: str) -> str:
    """A histology's name in a table (``basal_cell_adenoma`` -> ``Basal cell adenoma``)."""
    return _PRETTY.get(histology, histology.replace("_", " ").capitalize())


def table1(manifest: pd.DataFrame) -> pd.DataFrame:
    """Patient characteristics as in Xia et al. 2021, Table 1.

    Parameters
    ----------
    manifest : DataFrame
        A cohort manifest (columns age, sex, histology, tumor_side). Pathology types: the
        paper's three, then every other histology of the cohort (:func:`histology_order`).

    Returns
    -------
    DataFrame
        Indexed by (``characteristic``, ``group``); column ``value`` (count with
        percentage, or mean (range) for age).
    """
    n = len(manifest)
    if n == 0:
        raise ValueError("manifest must hold at least one patient, got 0 rows")
    age = pd.to_numeric(manifest["age"], errors="coerce")
    rows = [("Patients", "", f"{n}"),
            ("Age", "years", f"{age.mean():.1f} ({age.min():.0f}~{age.max():.0f})")]
    for title, column, groups in (("Sex", "sex", ("M", "F")),
                                  ("Pathology type", "histology",
                                   histology_order(manifest["histology"].dropna())),
                                  ("Site", "tumor_side", SIDES)):
        counts = manifest[column].value_counts()
        for g in groups:
            k = int(counts.get(g, 0))
            rows.append((title, pretty_histology(g), f"{k} ({100 * k / n:.1f}%)"))
        unknown = int((manifest[column].fillna("") == "").sum())
        if column == "histology" and unknown:  # new patients, before histology
            rows.append((title, "no histology", f"{unknown} ({100 * unknown / n:.1f}%)"))
    return pd.DataFrame(rows, columns=["characteristic", "group", "value"]).set_index(
        ["characteristic", "group"])


def _range(values: pd.Series, unit: str, digits: int = 1) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "n/a"
    return f"{values.min():.{digits}f}~{values.max():.{digits}f} {unit}"


def scanner_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Scan parameters per scanner in the spirit of Xia et al. 2021, Table 2.

    Uses the optional manifest columns ``<series>_tr_ms``, ``<series>_te_ms``,
    ``pixel_size_mm`` and ``slice_thickness_mm`` where present.
    """
    n = len(manifest)
    out = {}
    for scanner, group in manifest.groupby("scanner", sort=False):
        col = {"Patients": f"{len(group)} ({100 * len(group) / n:.1f}%)"}
        for series, title in (("t1", "T1-weighted"), ("t2", "T2-weighted"),
                              ("ce_t1", "CE-T1-weighted")):
            for p in ("tr", "te"):
                key = f"{series}_{p}_ms"
                if key in group:
                    col[f"{title} {p.upper()}"] = _range(group[key], "ms")
        for key, title in (("slice_thickness_mm", "Slice thickness"),
                           ("pixel_size_mm", "Pixel size")):
            if key in group:
                col[title] = _range(group[key], "mm", 2)
        out[scanner] = col
    table = pd.DataFrame(out)
    table.index.name = "parameter"
    return table


def slice_classes(slices: pd.DataFrame) -> list[str]:
    """The classes of a slices table in model-output order: the paper's
    (:data:`parotidlib.constants.CLASSES`) when its labels are among them, else its labels
    ordered by ``label_index`` (a dataset's ``classes`` lists the same, with any class
    without a slice)."""
    if "label_index" in slices:
        named = slices.loc[slices["label_index"].astype(int) >= 0, ["label", "label_index"]]
        present = named.drop_duplicates().sort_values("label_index", kind="stable")["label"]
    else:  # a table without indices: its labels as they come
        present = slices["label"][slices["label"].fillna("") != ""]
    present = list(dict.fromkeys(present))
    return list(CLASSES) if set(present) <= set(CLASSES) else present


def slice_counts(slices: pd.DataFrame, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Slices per class (rows) and split (columns), with patients per split in the last row.

    ``classes``: the rows, in order (a dataset's ``meta["classes"]``); default
    :func:`slice_classes`.
    """
    unknown = "lesion, no histology"  # new patients' lesion slices (empty label)
    labels = slices["label"].fillna(unknown).replace("", unknown)
    classes = list(classes) if classes is not None else slice_classes(slices)
    rows = [*classes, unknown] if (labels == unknown).any() else classes
    table = (slices.assign(label=labels).groupby(["label", "split"]).size()
             .unstack("split", fill_value=0).reindex(rows, fill_value=0))
    table.loc["total slices"] = table.sum()
    table.loc["patients"] = slices.groupby("split")["patient_id"].nunique()
    return table.fillna(0).astype(int)
