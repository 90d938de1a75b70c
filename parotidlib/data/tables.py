"""Cohort tables in the layout of the paper's Table 1 (patients) and Table 2 (scanners)."""

from __future__ import annotations

import pandas as pd

from parotidlib.constants import HISTOLOGIES, SIDES

_PRETTY = {"pleomorphic_adenoma": "Pleomorphic adenoma", "warthin": "Warthin tumour",
           "malignant": "Malignant", "left": "Left", "right": "Right", "both": "Both",
           "M": "Male", "F": "Female"}


def table1(manifest: pd.DataFrame) -> pd.DataFrame:
    """Patient characteristics as in Xia et al. 2021, Table 1.

    Parameters
    ----------
    manifest : DataFrame
        A cohort manifest (columns age, sex, histology, tumor_side).

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
                                  ("Pathology type", "histology", HISTOLOGIES),
                                  ("Site", "tumor_side", SIDES)):
        counts = manifest[column].value_counts()
        for g in groups:
            k = int(counts.get(g, 0))
            rows.append((title, _PRETTY.get(g, g), f"{k} ({100 * k / n:.1f}%)"))
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


def slice_counts(slices: pd.DataFrame) -> pd.DataFrame:
    """Slices per class (rows) and split (columns), with patients per split in the last row."""
    from parotidlib.constants import CLASSES

    unknown = "lesion, no histology"  # new patients' lesion slices (empty label)
    labels = slices["label"].fillna(unknown).replace("", unknown)
    rows = [*CLASSES, unknown] if (labels == unknown).any() else list(CLASSES)
    table = (slices.assign(label=labels).groupby(["label", "split"]).size()
             .unstack("split", fill_value=0).reindex(rows, fill_value=0))
    table.loc["total slices"] = table.sum()
    table.loc["patients"] = slices.groupby("split")["patient_id"].nunique()
    return table.fillna(0).astype(int)
