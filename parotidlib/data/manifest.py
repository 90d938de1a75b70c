"""The one reader of a cohort's manifest.csv table (docs/cohort-format.md).

Every part of the kit that reads a manifest (validation in :mod:`.cohort`, the cohort
fingerprint in :mod:`.sources`, the report's cohort tables, Figure 2) reads it here, so that
they all see the same values: text columns stay text ("007" is an id, not 7) with surrounding
spaces stripped, empty cells are "", and optional numeric columns (age, TR/TE...) are numbers
where every cell parses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.constants import IMAGE_COLUMNS, LABEL_COLUMNS, MANIFEST_COLUMNS
from parotidlib.io import sha256_file, sha256_text

#: Columns read as text (so are the other file columns: :func:`file_columns`).
TEXT_COLUMNS: tuple[str, ...] = ("patient_id", "histology", "tumor_side", "sex", "scanner",
                                 *IMAGE_COLUMNS, *LABEL_COLUMNS)
#: Columns of the default series holding file paths, relative to the manifest's folder.
FILE_COLUMNS: tuple[str, ...] = (*IMAGE_COLUMNS, *LABEL_COLUMNS)
#: File name endings of the image formats nibabel reads (lower case): a column whose every
#: non-empty cell ends so names files (another series' images and label maps: ``adc``...).
IMAGE_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz",
                                   ".mgh", ".mgz", ".mnc", ".head", ".brik", ".brik.gz",
                                   ".par", ".rec")


class ManifestReadError(ValueError):
    """The manifest file cannot be read as a CSV table; names the file."""


#: Separators that spreadsheet programs write instead of the comma (Excel uses ";" where the
#: decimal separator is ","), named for the message.
_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab"}


def header_line(path: Path) -> str:
    """The first non-blank line of the file (a UTF-8 byte-order mark dropped), or ""."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return line.rstrip("\r\n")
    return ""


def _check_layout(path: Path) -> None:
    """Refuse an empty file and one separated by another character than the comma."""
    try:
        header = header_line(path)
    except OSError as exc:
        raise ManifestReadError(f"cannot read manifest {path}: {exc}") from None
    if not header.strip():
        size = path.stat().st_size
        raise ManifestReadError(
            f"manifest {path} is empty ({size} byte(s){', blank lines only' if size else ''}); "
            f"expected a comma-separated CSV table whose header row names the columns "
            f"{', '.join(MANIFEST_COLUMNS)}")
    name = other_separator(header, MANIFEST_COLUMNS)
    if name:
        shown = header if len(header) <= 80 else header[:77] + "..."
        raise ManifestReadError(
            f"manifest {path} looks {name}-separated (header {shown!r}); save it as "
            f"comma-separated CSV (in a spreadsheet: CSV with ',' as the field separator)")


def other_separator(header: str, columns: tuple[str, ...] | list[str]) -> str:
    """The name of the separator ("semicolon", "tab") that splits the header row ``header``
    into more of the expected ``columns`` than the comma does, "" when the comma does best.
    Spreadsheets in many locales write ";" (their decimal separator is ",")."""
    expected = set(columns)
    names = {n.strip().strip('"') for n in header.split(",")}
    for sep, name in _OTHER_SEPARATORS.items():
        fields = {n.strip().strip('"') for n in header.split(sep)}
        if len(fields & expected) > len(names & expected):
            return name
    return ""


def read_manifest_table(path: str | Path) -> pd.DataFrame:
    """Read manifest.csv as a table: text columns stripped, numeric optional columns parsed.

    Nothing is validated here beyond being a readable, comma-separated CSV file (that is
    :func:`parotidlib.data.cohort.scan_manifest`'s job). A UTF-8 byte-order mark (as Excel
    writes it) is ignored.

    Raises
    ------
    ManifestReadError
        The file is missing, empty (no header row), separated by ``;`` or a tab instead of
        ``,`` (a spreadsheet's export in many locales: it is refused, not guessed, because
        such files also write decimal commas), or not a CSV table. The message names the
        file.
    """
    path = Path(path)
    _check_layout(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ManifestReadError(f"cannot read manifest {path}: {exc}") from None
    text = {*TEXT_COLUMNS, *file_columns(table)}
    for col in table.columns:
        if col in text:
            table[col] = table[col].astype(object).str.strip()
            continue
        numeric = pd.to_numeric(table[col].replace("", np.nan), errors="coerce")
        if numeric.notna().sum() == (table[col] != "").sum():
            table[col] = numeric
    return table


def file_columns(table: pd.DataFrame) -> tuple[str, ...]:
    """The columns of ``table`` that name files, whatever series a run reads.

    :data:`FILE_COLUMNS` present in the table, then, in table order, every other column with
    at least one non-empty cell whose non-empty cells all end in :data:`IMAGE_SUFFIXES`
    (case-insensitive, surrounding spaces ignored): the images and label maps of series
    beyond the default ones (``adc``, ``dwi_labels``...). The cohort fingerprint covers them
    all, so a changed file of any series reruns curation.
    """
    out = [c for c in FILE_COLUMNS if c in table.columns]
    for col in table.columns:
        if col in out or col in TEXT_COLUMNS:
            continue
        cells = table[col].astype(str).str.strip().str.lower()
        cells = cells[cells != ""]
        if len(cells) and all(c.endswith(IMAGE_SUFFIXES) for c in cells):
            out.append(col)
    return tuple(out)


def manifest_files(path: str | Path, table: pd.DataFrame | None = None
                   ) -> list[tuple[str, str, Path]]:
    """``(patient_id, column, absolute path)`` of every file the manifest names, in table order.

    The columns are :func:`file_columns`: the default series' images and label maps, then
    any other series'. Empty cells are left out (validation reports them); paths are
    resolved from the manifest's folder. Only the named files are listed: the other files an
    image reader opens with them (the ``.img`` of an Analyze pair's ``.hdr``...) are
    :func:`companion_files`, and :func:`image_sha256` covers both.
    """
    path = Path(path)
    table = read_manifest_table(path) if table is None else table
    columns = file_columns(table)
    out = []
    for _, row in table.iterrows():
        for col in columns:
            if row[col] != "":
                out.append((str(row["patient_id"]), col, (path.parent / row[col]).resolve()))
    return out


def companion_files(path: str | Path) -> list[Path]:
    """The other files nibabel may open when it reads the image file ``path``.

    ``nibabel.load`` picks an image class by the file's extension and content; a class of a
    multi-file format opens every file of its file map (``filespec_to_file_map``): the
    ``.img`` of an Analyze or NIfTI pair named by its ``.hdr`` (and the reverse), an SPM
    ``.mat`` beside an Analyze pair (which replaces the header's affine), the ``.rec`` of a
    PAR/REC pair, the ``.BRIK`` of an AFNI ``.HEAD``. Listed here is the union of the file
    maps of every class that accepts the extension, so that no choice of class can open a
    file this list lacks.

    Parameters
    ----------
    path : path
        An image file (``.nii.gz``, ``.hdr``, ``.img``, ...).

    Returns
    -------
    list of Path
        The companion files, present or not (an absent ``.mat`` that appears later changes
        the image), sorted, without ``path`` itself; empty for single-file formats (NIfTI
        ``.nii``/``.nii.gz``, MGH, MINC) and for extensions nibabel does not know.
    """
    import nibabel as nib

    path = Path(path)
    found: set[Path] = set()
    for klass in nib.all_image_classes:
        try:
            file_map = klass.filespec_to_file_map(str(path))
        except Exception:  # ImageFileError: the class does not read this extension
            continue
        found.update(Path(holder.filename) for holder in file_map.values()
                     if holder.filename is not None)
    return sorted(p for p in found if p != path)


def image_sha256(path: str | Path) -> str:
    """SHA-256 of an image as its reader sees it: the file and its :func:`companion_files`.

    For a single-file format (NIfTI) this is the file's own SHA-256, so fingerprints of such
    cohorts are those of earlier versions of the kit. For a multi-file format it is the
    SHA-256 over the file's digest and each companion's name and digest (``absent`` for one
    that does not exist), so replacing only the ``.img`` of an Analyze pair, or adding a
    ``.mat`` beside it, changes the digest.

    Raises
    ------
    OSError
        ``path`` itself cannot be read.
    """
    path = Path(path)
    own = sha256_file(path)
    companions = companion_files(path)
    if not companions:
        return own
    return sha256_text([own, *(f"{other.name}\t"
                               f"{sha256_file(other) if other.is_file() else 'absent'}"
                               for other in companions)])
