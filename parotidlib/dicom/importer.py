"""The DICOM import: a hospital's export (MR series, RTSTRUCT or SEG contours) to a cohort.

:func:`import_dicom` walks the export (:mod:`.headers`), picks each patient's T1, CE-T1 and T2
series (:mod:`.roles`; and the DWI and ADC where the rules' ``roles_to_import`` ask,
:mod:`.diffusion_roles`), stacks them into RAS+ NIfTI volumes (:mod:`.volume`), rasterises the
gland and tumour contours onto the grid of the series they were drawn on (:mod:`.contours`),
carries label maps over to the series without contours through the shared frame of reference,
joins the clinical table, and writes the kit's cohort format (docs/cohort-format.md):
``COHORT/manifest.csv``, ``COHORT/<patient>/{t1,ce_t1,t2}[_labels].nii.gz`` (and
``{dwi,adc}[_labels].nii.gz``, with the manifest's diffusion columns, only where asked) and
``COHORT/import_report.csv``.

Privacy: the cohort's patient ids are pseudonyms (a keyed hash of the DICOM PatientID; the key
and the pseudonym -> PatientID table are written beside the cohort folder, never inside it);
names, birth dates and other identifying tags are never read into the cohort, the NIfTI
headers, the logs or the report. A patient that cannot be imported is refused with its
problems and the others go on; each patient is written atomically, so an interrupted import
resumes. The source tree is only read.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.processing import resample_from_to

from parotidlib.constants import (
    KNOWN_HISTOLOGIES,
    LABEL_LEFT_GLAND,
    LABEL_RIGHT_GLAND,
    LABEL_TUMOR,
    MANIFEST_COLUMNS,
    SERIES,
    SIDES,
)
from parotidlib.data.laterality import tumour_parts
from parotidlib.data.manifest import header_line, other_separator
from parotidlib.data.sources import SYNTHETIC_MARKER
from parotidlib.dicom.diffusion_roles import adc_scale, b_values, check_adc_values
from parotidlib.dicom.privacy import Redactor
from parotidlib.dicom.roinames import BILATERAL, RoiVerdict, classify_roi, split_bilateral
from parotidlib.dicom.roles import assign_roles, echo_to_read
from parotidlib.dicom.rules import ALL_ROLES, DIFFUSION_ROLES, STRUCTURES, Rules, load_rules
from parotidlib.dicom.structures import Candidate, StructureSet, choose, read_structure_set
from parotidlib.io import (
    folder_lock,
    make_temp_dir,
    release_temp_dir,
    remove_stale_temp_dirs,
    write_text_atomic,
)

logger = logging.getLogger(__name__)

#: Optional manifest columns the import fills from the DICOM headers (Table 2 of the report).
SCANNER_COLUMNS = ("field_strength_t", "t1_tr_ms", "t1_te_ms", "t2_tr_ms", "t2_te_ms",
                   "ce_t1_tr_ms", "ce_t1_te_ms", "ce_t1_flip_deg", "pixel_size_mm",
                   "slice_thickness_mm", "t2_pixel_size_mm", "t2_slice_thickness_mm")
LABEL_SOURCE_COLUMNS = tuple(f"{s}_labels_source" for s in SERIES)
CLINICAL_COLUMNS = ("patient_id", "accession_number", "histology", "tumor_side", "age", "sex")
REPORT_COLUMNS = ("patient_id", "status", "series", "decided_by", "rois_used",
                  "rois_unmatched", "structure_sets", "labels", "lossy_compression", "problems")


class PatientRefused(ValueError):
    """One patient cannot be imported; ``problems`` says why (no personal data)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ImportResult:
    """What an import wrote and refused."""

    cohort_dir: Path
    manifest: Path
    report: Path
    key_file: Path | None
    identities: Path | None
    imported: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)
    not_in_dicom: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- clinical data


def read_clinical(path: str | Path) -> pd.DataFrame:
    """The clinical table: ``patient_id`` (the DICOM PatientID) or ``accession_number``,
    ``histology``, optionally ``tumor_side``, ``age``, ``sex``; all values as stripped text.

    Raises
    ------
    ValueError
        Unreadable file, no key column, no histology column, a repeated key, or a value
        outside the allowed ones (naming the row's key and the column).
    """
    path = Path(path)
    try:
        separator = other_separator(header_line(path), CLINICAL_COLUMNS)
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"cannot read the clinical table {path}: {exc}") from None
    if separator:
        raise ValueError(f"clinical table {path} looks {separator}-separated; save it as "
                         f"comma-separated CSV (in a spreadsheet: CSV with ',' as the field "
                         f"separator)")
    table = table.apply(lambda col: col.str.strip())
    key = next((k for k in ("patient_id", "accession_number") if k in table.columns), None)
    if key is None or "histology" not in table.columns:
        raise ValueError(f"clinical table {path} needs a patient_id (DICOM PatientID) or "
                         f"accession_number column and a histology column; it has "
                         f"{list(table.columns)}")
    repeated = sorted(table[key][table[key].duplicated()].unique())
    if repeated:
        raise ValueError(f"clinical table {path}: {key} repeated for {len(repeated)} row(s)")
    allowed = {"tumor_side": SIDES, "sex": ("M", "F")}
    for col, values in allowed.items():
        if col in table.columns:
            bad = table[(table[col] != "") & ~table[col].isin(values)]
            if len(bad):
                raise ValueError(f"clinical table {path}: column {col} holds "
                                 f"{sorted(set(bad[col]))[:5]}; allowed: {list(values)}")
    # Any histology name: the study's class scheme (the classes param) maps it at curation.
    if "histology" in table.columns:
        bad = table[(table["histology"] != "")
                    & ~table["histology"].str.fullmatch(r"[a-z][a-z0-9_]*")]
        if len(bad):
            raise ValueError(f"clinical table {path}: column histology holds "
                             f"{sorted(set(bad['histology']))[:5]}; a histology is a name of "
                             f"lower-case letters, digits and underscores, e.g. "
                             f"{list(KNOWN_HISTOLOGIES)[:4]} (the classes param maps it to a "
                             f"class)")
    return table.set_index(key, drop=False)


def dicom_age_years(age: str) -> float | None:
    """DICOM Age String ("052Y", "006M", "010W", "003D") in years, None when absent."""
    match = re.fullmatch(r"(\d{1,3})([YMWD])", str(age or "").strip().upper())
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2)
    return round(value / {"Y": 1, "M": 12, "W": 52.1775, "D": 365.25}[unit], 2)


# --------------------------------------------------------------------------- pseudonyms


#: Least length (bytes) of a pseudonymisation key: HMAC-SHA256 with a shorter key is weaker
#: than its 256-bit output, and an empty one lets anyone recompute the pseudonyms.
MIN_KEY_BYTES = 32


def load_key(path: Path) -> bytes:
    """The pseudonymisation key at ``path``, created if absent (random, 256 bits, mode 0600).

    The key is written to a temporary file in the same folder and linked into place with
    ``os.link``, which fails if the file exists: creation is atomic and exclusive, so two
    imports racing on a new key both end up with the one that won, never an empty or half
    written file.

    Raises
    ------
    ValueError
        The file exists but does not hold at least :data:`MIN_KEY_BYTES` bytes of hex (empty
        after a full disk, truncated, edited); the message says how to recover.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_bytes(MIN_KEY_BYTES).hex() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # exclusive: the first import to link wins
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        key, problem = b"", f"cannot be read as hex ({type(exc).__name__})"
    else:
        problem = f"holds {len(key)} byte(s)"
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"the pseudonymisation key {path} {problem}; at least {MIN_KEY_BYTES} bytes of hex "
            f"are needed (an empty or short key lets anyone recompute the pseudonyms from the "
            f"PatientIDs). To recover: restore the key from your backup if cohorts were "
            f"imported with it (their pseudonyms depend on it); if none was, delete {path} "
            f"and import again to create a new key, or pass --key-file")
    return key


def pseudonym(patient_id: str, key: bytes) -> str:
    """``P`` + 10 hex digits of HMAC-SHA256(key, PatientID): stable for one key, not
    reversible without it (RFC 2104)."""
    return "P" + hmac.new(key, str(patient_id).encode(), sha256).hexdigest()[:10].upper()


# --------------------------------------------------------------------------- one patient


def _clean_header(image: nib.Nifti1Image) -> nib.Nifti1Image:
    header = image.header.copy()
    header["descrip"] = b""
    header["aux_file"] = b""
    header["db_name"] = b""
    return nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine, header)


def _rasterise(structure: StructureSet, image: nib.Nifti1Image, frame_of_reference: str,
               pid: str) -> dict[str, np.ndarray]:
    from parotidlib.dicom.contours import rasterise_rtstruct, read_seg

    if structure.modality == "SEG":
        return read_seg(structure.path, image.affine, image.shape[:3], patient_id=pid,
                        frame_of_reference_uid=frame_of_reference)
    return rasterise_rtstruct(structure.path, image.affine, image.shape[:3], frame_of_reference,
                              patient_id=pid)


def _label_map(chosen: Mapping[int, Candidate], shape: tuple[int, ...]) -> np.ndarray:
    """Glands first, the tumour last: tumour voxels carry 3 even inside a gland."""
    labels = np.zeros(shape[:3], dtype=np.uint8)
    for label in sorted(chosen):
        labels[chosen[label].mask] = label
    return labels


def _voxel_ml(image: nib.Nifti1Image) -> float:
    return float(abs(np.linalg.det(image.affine[:3, :3]))) / 1000.0


def _structure_sets(structures: list[Any], pid: str) -> tuple[list[StructureSet], list[str]]:
    """Every RTSTRUCT/SEG instance of the patient; a file that cannot be read is a problem."""
    sets, problems = [], []
    for structure in structures:
        for f in structure.files:
            try:
                sets.append(read_structure_set(f.path, structure.modality,
                                               structure.frame_of_reference_uid))
            except Exception as exc:  # noqa: BLE001 - any unreadable file refuses its patient
                problems.append(f"{structure.modality} file {f.path} cannot be read: "
                                f"{type(exc).__name__}: {exc}")
    return sets, problems


def _candidates(structure: StructureSet, masks: Mapping[str, np.ndarray],
                image: nib.Nifti1Image, rules: Rules) -> tuple[list[Candidate],
                                                                list[RoiVerdict], list[str]]:
    """The ROIs of one structure set that the rules make a label (a bilateral gland ROI split
    into its halves), the verdicts of the ROIs left out, and problems."""
    voxel = _voxel_ml(image)
    found, left_out, problems = [], [], []
    for name, mask in masks.items():
        verdict = classify_roi(name, rules, structure.interpreted_types.get(name, ""))
        number = structure.roi_numbers.get(name)
        if verdict.label is None:
            left_out.append(verdict)
            continue
        if verdict.label == BILATERAL:
            try:
                right, left = split_bilateral(mask, image.affine)
            except ValueError as exc:
                problems.append(f"ROI {name!r} (ROI {number} of {structure.label}) holds both "
                                f"glands but cannot be split at the midline: {exc}; draw the "
                                f"glands as Parotid_R and Parotid_L")
                continue
            for half, label, side in ((right, LABEL_RIGHT_GLAND, "right"),
                                      (left, LABEL_LEFT_GLAND, "left")):
                found.append(Candidate(structure, name, label, half, float(half.sum()) * voxel,
                                       number, f"{side} half"))
            continue
        found.append(Candidate(structure, name, verdict.label, mask,
                               float(mask.sum()) * voxel, number))
    return found, left_out, problems


def _no_mr_message(series: list[Any]) -> str:
    found: dict[str, int] = {}
    for s in series:
        found[s.modality or "?"] = found.get(s.modality or "?", 0) + 1
    listed = ", ".join(f"{m} ({n} series)" for m, n in sorted(found.items()))
    return f"no MR series; found {listed or 'nothing'}"


def import_patient(dicom_pid: str, series: list[Any], clinical: Mapping[str, str] | None,
                   rules: Rules, pid: str, redactor: Redactor | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, nib.Nifti1Image]]:
    """Import one patient: returns (manifest row, report row, images by file stem).

    The report row holds no free text of the DICOM (series by number and UID, ROIs by number);
    problems may quote descriptions and ROI names, which ``redactor`` (extended here with the
    structure sets' ROI names) withholds from files and scrubs of the patient's name on the
    console (:mod:`parotidlib.dicom.privacy`).

    Raises
    ------
    PatientRefused
        With every problem found (series roles, geometry, contours, clinical data).
    """
    from parotidlib.dicom.contours import ContourError
    from parotidlib.dicom.volume import SeriesError, read_volume

    mr = [s for s in series if s.modality == "MR"]
    first = ([] if mr else [_no_mr_message(series)]) + (
        [] if clinical is not None else ["no row in the clinical table (its histology is "
                                         "needed)"])
    if first:
        raise PatientRefused(first)
    structures = [s for s in series if s.modality in ("RTSTRUCT", "SEG")]
    roles, problems, role_notes = assign_roles(mr, rules, dicom_pid)
    if problems:
        raise PatientRefused(problems)
    problems = _combine_problems(roles, rules)
    if problems:
        raise PatientRefused(problems)
    volumes: dict[str, nib.Nifti1Image] = {}
    for role, s in roles.items():
        try:
            volumes[role] = read_volume(s, echo_time_ms=echo_to_read(s))
        except SeriesError as exc:
            problems += [f"{role}: {p.message if hasattr(p, 'message') else p}"
                         for p in exc.problems] or [f"{role}: {exc}"]
    if "adc" in volumes:
        scale, _ = adc_scale(roles["adc"], rules)
        problem = check_adc_values(np.asanyarray(volumes["adc"].dataobj), scale or 0.0, rules)
        if problem:
            problems.append(f"adc: {problem}")
    if problems:
        raise PatientRefused(problems)
    order = [r for r in ALL_ROLES if r in roles]  # t1, ce_t1, t2 first, as before
    sets, problems = _structure_sets(structures, pid)
    if redactor is not None:
        redactor.add(text for structure in sets for text in structure.free_texts)
    by_uid = {s.series_uid: role for role, s in roles.items()}
    candidates: dict[str, list[Candidate]] = {}
    left_out, withheld, ignored = [], [], []
    for structure in sets:
        target = by_uid.get(structure.referenced_series_uid or "")
        if target:
            targets = [target]
        elif structure.referenced_series_uid:
            targets = []
        else:  # it names no series: try the chosen series of its frame of reference
            targets = [r for r in SERIES if roles[r].frame_of_reference_uid
                       and roles[r].frame_of_reference_uid == structure.frame_of_reference_uid]
        if not targets:
            ignored.append(f"{structure.label} refers to "
                           + (f"series {structure.referenced_series_uid}, not one of the "
                              f"chosen MR series" if structure.referenced_series_uid else
                              f"no series, and to frame of reference "
                              f"{structure.frame_of_reference_uid or '(none)'}, not that of "
                              f"the chosen MR series"))
            continue
        masks, errors = None, []
        for role in targets:
            try:
                masks = _rasterise(structure, volumes[role], roles[role].frame_of_reference_uid,
                                   pid)
                target = role
                break
            except ContourError as exc:
                errors += [str(getattr(p, "message", p)) for p in exc.problems] or [str(exc)]
        if masks is None:
            problems.append(f"{structure.label}: " + "; ".join(errors))
            continue
        found, rest, split_problems = _candidates(structure, masks, volumes[target], rules)
        candidates.setdefault(target, []).extend(found)
        left_out += [f"{v.name!r} on {target} ({v.reason})" for v in rest]
        withheld += [f"ROI {structure.roi_numbers.get(v.name, '?')} of {structure.sop_uid} on "
                     f"{target} ({v.reason})" for v in rest]
        problems += split_problems
    if problems:
        raise PatientRefused(problems)
    drawn: dict[str, np.ndarray] = {}
    used, choice_notes = [], []
    for role in order:
        if role not in candidates:
            continue
        chosen, notes, choice_problems = choose(candidates[role], rules, dicom_pid, role)
        problems += choice_problems
        choice_notes += notes
        if chosen:
            drawn[role] = _label_map(chosen, volumes[role].shape)
            used += [f"ROI {c.number}{f' ({c.part})' if c.part else ''} of "
                     f"{c.structure_set.sop_uid} -> {STRUCTURES[label]} ({role}, "
                     f"{c.volume_ml:.2f} ml)" for label, c in sorted(chosen.items())]
    if problems:
        raise PatientRefused(problems)
    if not drawn:
        raise PatientRefused([f"no contour of a gland or the tumour; ROIs left out: "
                              f"{'; '.join(left_out) or 'none'}"
                              + (f"; structure sets ignored: {'; '.join(ignored)}"
                                 if ignored else "") + " (map ROI names in the rules file)"])
    if not any((labels == LABEL_TUMOR).any() for labels in drawn.values()):
        present = sorted({STRUCTURES[int(v)] for m in drawn.values() for v in np.unique(m) if v})
        raise PatientRefused([f"no tumour contour: the labels drawn are {present}; ROIs left "
                              f"out: {'; '.join(left_out) or 'none'}"])
    label_images = {role: nib.Nifti1Image(drawn[role], volumes[role].affine) for role in drawn}
    sources = {role: "drawn" for role in drawn}
    source_role = next(r for r in order if r in drawn)
    frame = roles[source_role].frame_of_reference_uid
    apart = [r for r in order if r not in drawn and (
        not frame or roles[r].frame_of_reference_uid != frame)]
    if apart:
        raise PatientRefused([f"{', '.join(apart)}: no contours of their own and another (or "
                              f"no) frame of reference than {source_role}: labels cannot be "
                              f"carried over"])
    for role in order:
        if role in drawn:
            continue
        image = volumes[role]
        # nearest neighbour through the shared frame of reference (both affines in RAS mm)
        carried = resample_from_to(label_images[source_role], image, order=0, mode="constant",
                                   cval=0)
        label_images[role] = nib.Nifti1Image(np.asarray(carried.dataobj).astype(np.uint8),
                                             image.affine)
        sources[role] = f"carried over from {source_role}"
    row = _manifest_row(pid, clinical, roles, label_images[source_role], problems)
    if problems:
        raise PatientRefused(problems)
    row.update({f"{role}_labels_source": sources[role] for role in SERIES})
    lossy = [f"{role}: {roles[role].lossy_compression}" for role in order
             if getattr(roles[role], "lossy_compression", "")]
    row["lossy_compression"] = "; ".join(lossy) or "none"
    row.update(_diffusion_columns(pid, roles, sources, rules))
    images = {role: volumes[role] for role in order}
    images.update({f"{role}_labels": label_images[role] for role in order})
    report = {"series": "; ".join(f"{r}: series {roles[r].series_number or '?'} "
                                  f"({roles[r].series_uid})" for r in order),
              "decided_by": "; ".join(f"{r}: {role_notes[r]}" for r in ALL_ROLES
                                      if role_notes.get(r)),
              "rois_used": "; ".join(used), "rois_unmatched": "; ".join(withheld),
              "structure_sets": "; ".join(choice_notes + [f"ignored: {i}" for i in ignored]),
              "labels": "; ".join(f"{r}: {sources[r]}" for r in order),
              "lossy_compression": row["lossy_compression"]}
    return row, report, images


def _diffusion_columns(pid: str, roles: Mapping[str, Any], sources: Mapping[str, str],
                       rules: Rules) -> dict[str, Any]:
    """The manifest columns of the diffusion roles the rules import (none by default): per
    role its image, label map and label source (empty where an optional role has no series);
    ``dwi_b_value_s_mm2`` (the b-value taken) and ``adc_scale_mm2_s`` (ADC in mm²/s = NIfTI
    value * scale)."""
    columns: dict[str, Any] = {}
    for role in DIFFUSION_ROLES:
        if role not in rules.roles_to_import:
            continue
        present = role in roles
        columns[role] = f"{pid}/{role}.nii.gz" if present else ""
        columns[f"{role}_labels"] = f"{pid}/{role}_labels.nii.gz" if present else ""
        columns[f"{role}_labels_source"] = sources.get(role, "")
        if role == "dwi":
            found = b_values(roles["dwi"]) if present else []
            columns["dwi_b_value_s_mm2"] = found[-1] if found else ""
        else:
            scale = adc_scale(roles["adc"], rules)[0] if present else None
            columns["adc_scale_mm2_s"] = "" if scale is None else scale
    return columns


def _manifest_row(pid: str, clinical: Mapping[str, str], roles: Mapping[str, Any],
                  labels: nib.Nifti1Image, problems: list[str]) -> dict[str, Any]:
    t1, t2, ce = roles["t1"], roles["t2"], roles["ce_t1"]
    _, parts = tumour_parts(np.asarray(labels.dataobj), labels.affine)
    sides = {p.side for p in parts if p.side}
    derived = "both" if sides == {"left", "right"} else next(iter(sides)) if sides else ""
    side = clinical.get("tumor_side", "") or derived
    if not side:
        problems.append("tumor_side: not in the clinical table and not decidable from the "
                        "contours")
    elif derived and side != derived:
        problems.append(f"tumor_side: the clinical table says {side!r} but the tumour contours "
                        f"lie on the {derived} side")
    age = clinical.get("age", "") or dicom_age_years(t1.patient_age)
    sex = clinical.get("sex", "") or (t1.patient_sex if t1.patient_sex in ("M", "F") else "")
    if age in ("", None):
        problems.append("age: not in the clinical table nor in the DICOM header")
    if not sex:
        problems.append("sex: not in the clinical table nor M/F in the DICOM header")
    scanner = " ".join(x for x in (t1.manufacturer, t1.model,
                                   f"{t1.field_strength_t:g}T" if t1.field_strength_t else "")
                       if x).strip() or "unknown"

    def size(s: Any) -> float | None:
        return round(float(np.mean(s.pixel_spacing_mm)), 4) if s.pixel_spacing_mm else None

    row = {"patient_id": pid, "histology": clinical["histology"], "tumor_side": side,
           "age": age, "sex": sex, "scanner": scanner,
           **{col: f"{pid}/{col}.nii.gz" for col in MANIFEST_COLUMNS[6:]},
           "field_strength_t": t1.field_strength_t,
           "t1_tr_ms": t1.repetition_time_ms, "t1_te_ms": t1.echo_time_ms,
           "t2_tr_ms": t2.repetition_time_ms, "t2_te_ms": t2.echo_time_ms,
           "ce_t1_tr_ms": ce.repetition_time_ms, "ce_t1_te_ms": ce.echo_time_ms,
           "ce_t1_flip_deg": ce.flip_angle_deg, "pixel_size_mm": size(t1),
           "slice_thickness_mm": t1.slice_thickness_mm, "t2_pixel_size_mm": size(t2),
           "t2_slice_thickness_mm": t2.slice_thickness_mm}
    return row


def _read_record(path: Path) -> dict[str, Any] | None:
    """The ``import.json`` of an earlier import of the patient, None when absent or unreadable
    (then the patient is imported again)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "row" in record else None


def _write_patient(out: Path, pid: str, row: Mapping[str, Any], report: Mapping[str, Any],
                   images: Mapping[str, nib.Nifti1Image], inputs: str) -> None:
    """Write one patient into ``out/<pid>/`` atomically (a temporary folder renamed)."""
    tmp = make_temp_dir(out, f".{pid}.tmp-")
    try:
        for stem, image in images.items():
            nib.save(_clean_header(image), str(tmp / f"{stem}.nii.gz"))
        (tmp / "import.json").write_text(json.dumps(
            {"row": row, "report": report, "input_key": inputs}, indent=2, default=str) + "\n")
        release_temp_dir(tmp)
        final = out / pid
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- identity, resume


def identity_conflicts(series: list[Any]) -> list[str]:
    """Problems when the series of one PatientID disagree on PatientName, PatientBirthDate or
    PatientSex (two people with one hospital ID: two sites, a recycled ID, a typo). The values
    are compared by salted digest and never named; an absent value is no disagreement."""
    from parotidlib.dicom.headers import IDENTITY_FIELDS

    problems = []
    for index, keyword in enumerate(IDENTITY_FIELDS):
        groups: dict[str, list[Any]] = {}
        for s in series:
            for digest in {f.identity[index] for f in s.files} - {""}:
                groups.setdefault(digest, []).append(s)
        if len(groups) > 1:
            listed = "; ".join(
                f"value {n + 1}: " + ", ".join(f"{x.modality} series {x.series_number or '?'} "
                                               f"({x.series_uid})" for x in members)
                for n, members in enumerate(groups.values()))
            problems.append(f"the series of this PatientID disagree on {keyword} ({len(groups)} "
                            f"different values; two people with one hospital ID?): {listed}. "
                            f"Correct the export or import the people separately")
    return problems


def _combine_problems(roles: Mapping[str, Any], rules: Rules) -> list[str]:
    """The chosen series must come from one study and one frame of reference, unless the
    rules' ``combine`` section allows otherwise."""
    problems = []
    for attribute, name, allowed in (
            ("study_uid", "studies (StudyInstanceUID)", rules.combine_studies),
            ("frame_of_reference_uid", "frames of reference (FrameOfReferenceUID)",
             rules.combine_frames_of_reference)):
        values: dict[str, list[str]] = {}
        for role, s in roles.items():
            values.setdefault(getattr(s, attribute) or "(none)", []).append(role)
        if len(values) > 1 and not allowed:
            listed = "; ".join(f"{', '.join(r)}: {v}" for v, r in values.items())
            key = "studies" if attribute == "study_uid" else "frames_of_reference"
            problems.append(f"the chosen series come from {len(values)} different {name}: "
                            f"{listed}; set combine: {{{key}: true}} in the rules file if they "
                            f"are one patient's")
    return problems


#: What the input key of a patient's import covers besides its own inputs: the importer's
#: source (any change to the kit's import reruns every patient).
_IMPORTER_FILES = ("*.py", "*.yaml")


def importer_version() -> str:
    """A digest of the import's source (parotidlib/dicom): part of every patient's input key."""
    folder = Path(__file__).parent
    digest = sha256()
    for pattern in _IMPORTER_FILES:
        for path in sorted(folder.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def input_key(series: list[Any], clinical: Mapping[str, str] | None, rules_digest: str,
              version: str) -> str:
    """The key of one patient's import: its DICOM files (SOPInstanceUID, path, size and
    modification time of each), its clinical row, the rules and the importer's version. A
    patient is resumed from an earlier import only when the key is the same."""
    files = []
    for s in series:
        for f in s.files:
            try:
                stat = Path(f.path).stat()
                files.append((f.sop_uid, str(f.path), stat.st_size, stat.st_mtime_ns))
            except OSError:
                files.append((f.sop_uid, str(f.path), -1, -1))
    payload = json.dumps({"files": sorted(files),
                          "clinical": dict(sorted((clinical or {}).items())),
                          "rules": rules_digest, "importer": version}, default=str)
    return sha256(payload.encode()).hexdigest()


def _rules_digest(rules: str | Path | None) -> str:
    from importlib import resources

    text = resources.files("parotidlib.dicom").joinpath("default_rules.yaml").read_text()
    user = Path(rules).read_text() if rules is not None else ""
    return sha256((text + "\0" + user).encode()).hexdigest()


# --------------------------------------------------------------------------- the import


def _synthetic_export(src: Path) -> bool:
    """Whether ``src`` is the kit's own synthetic DICOM export (its SOURCE.json)."""
    from parotidlib.synth.dicom import SOURCE_NAME

    try:
        return bool(json.loads((src / SOURCE_NAME).read_text()))
    except (OSError, ValueError):
        return False


def import_dicom(src: str | Path, out: str | Path, clinical: str | Path | None = None,
                 rules: str | Path | None = None, key_file: str | Path | None = None,
                 pseudonymise: bool = True, progress: bool = True) -> ImportResult:
    """Import a DICOM export into a cohort folder (see the module docstring).

    Parameters
    ----------
    src : path
        The export: a folder of DICOM files in any layout (a DICOMDIR is allowed).
    out : path
        The cohort folder to write (created; it must not be inside ``src``).
    clinical : path
        The clinical CSV (:func:`read_clinical`). Required: histology comes from it.
    rules : path, optional
        A rules YAML merged over the defaults (:func:`parotidlib.dicom.rules.load_rules`).
    key_file : path, optional
        The pseudonymisation key; default ``<out>.key`` beside the cohort folder (created on
        first use, reused after, so that re-imports give the same pseudonyms).
    pseudonymise : bool
        False keeps the DICOM PatientID as the cohort's patient_id (only for exports that are
        already pseudonymised).

    Returns
    -------
    ImportResult
    """
    from parotidlib.dicom.headers import scan_tree

    src, out = Path(src).resolve(), Path(out).resolve()
    if out == src or src in out.parents:
        raise ValueError(f"the cohort folder {out} lies inside the DICOM export {src}; the "
                         f"export is never written to: choose another --out")
    if clinical is None:
        raise ValueError("a clinical table is needed (--clinical clinical.csv: patient_id or "
                         "accession_number, histology[, tumor_side, age, sex])")
    table = read_clinical(clinical)
    rule_set = load_rules(rules)
    out.mkdir(parents=True, exist_ok=True)
    # one import at a time into a folder: a second one exits at once naming the first's pid
    with folder_lock(out, "the import folder"):
        for stale in out.glob(".*.tmp-*"):  # patients a killed import left half-written
            remove_stale_temp_dirs(out, stale.name[:stale.name.index(".tmp-") + len(".tmp-")])
        key_path = Path(key_file) if key_file else out.parent / f"{out.name}.key"
        if key_path.resolve().is_relative_to(out):
            raise ValueError(f"the key file {key_path} must lie outside the cohort folder {out}")
        key = load_key(key_path) if pseudonymise else b""
        series, scan_problems = scan_tree(src, progress=progress)
        by_patient: dict[str, list[Any]] = {}
        for s in series:
            by_patient.setdefault(s.patient_id, []).append(s)
        key_column = table.index.name
        result = ImportResult(out, out / "manifest.csv", out / "import_report.csv",
                              key_path if pseudonymise else None,
                              out.parent / f"{out.name}.identities.csv" if pseudonymise else None)
        rows, report_rows, identities = [], [], []
        rules_digest, version = _rules_digest(rules), importer_version()
        for dicom_pid in sorted(by_patient):
            patient_series = by_patient[dicom_pid]
            lookup = dicom_pid if key_column == "patient_id" else patient_series[0].accession_number
            pid = pseudonym(dicom_pid, key) if pseudonymise else dicom_pid
            identities.append({"patient_id": pid, "dicom_patient_id": dicom_pid,
                               "accession_number": patient_series[0].accession_number})
            clinical_row = table.loc[lookup].to_dict() if lookup in table.index else None
            redactor = Redactor([t for s in patient_series for t in (s.description, s.protocol)],
                                frozenset().union(*(s.identity_tokens for s in patient_series)))
            inputs = input_key(patient_series, clinical_row, rules_digest, version)
            done = out / pid / "import.json"
            record = _read_record(done)
            if record is not None and record.get("input_key") == inputs:
                rows.append(record["row"])
                report_rows.append({"patient_id": pid, "status": "imported earlier (resumed)",
                                    **record["report"], "problems": ""})
                result.resumed.append(pid)
                continue
            try:
                conflicts = identity_conflicts(patient_series)
                if conflicts:
                    raise PatientRefused(conflicts)
                row, report, images = import_patient(dicom_pid, patient_series, clinical_row,
                                                     rule_set, pid, redactor)
            except Exception as exc:  # noqa: BLE001 - one patient's files never stop the rest
                if isinstance(exc, PatientRefused):
                    problems = exc.problems
                else:
                    logger.debug("patient %s", pid, exc_info=True)
                    problems = [f"cannot be imported: {type(exc).__name__}: {exc}"]
                if record is not None:  # imported earlier from other inputs: not valid any more
                    shutil.rmtree(out / pid, ignore_errors=True)
                result.refused[pid] = [redactor.for_console(p) for p in problems]
                report_rows.append({"patient_id": pid, "status": "refused",
                                    "problems": " | ".join(redactor.for_file(p) for p in problems)})
                logger.warning("patient %s refused: %s", pid, "; ".join(result.refused[pid]))
                continue
            report = {column: redactor.for_file(str(value)) for column, value in report.items()}
            _write_patient(out, pid, row, report, images, inputs)
            rows.append(row)
            report_rows.append({"patient_id": pid, "status": "reimported (inputs changed)"
                                if record is not None else "imported", **report, "problems": ""})
            result.imported.append(pid)
        seen = {i["dicom_patient_id"] for i in identities} | {
            i["accession_number"] for i in identities}
        result.not_in_dicom = sorted(k for k in table.index if k not in seen)
        everyone = Redactor([t for s in series for t in (s.description, s.protocol)],
                            frozenset().union(*(s.identity_tokens for s in series)))
        for problem in scan_problems:
            report_rows.append({"patient_id": "", "status": "file skipped",
                                "problems": everyone.for_file(str(getattr(problem, "message",
                                                                          problem)))})
        if _synthetic_export(src):
            # results from it must say synthetic, like those of the NIfTI cohort it came from
            write_text_atomic(out / SYNTHETIC_MARKER, json.dumps(
                {"synthetic": True, "source": "the kit's synthetic cohort exported as DICOM"},
                indent=2) + "\n")
        manifest = pd.DataFrame(rows)
        if len(manifest):
            extras = [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
            manifest = manifest[[*MANIFEST_COLUMNS, *extras]].sort_values("patient_id")
        write_text_atomic(result.manifest, manifest.to_csv(index=False, lineterminator="\n"))
        write_text_atomic(result.report, pd.DataFrame(report_rows, columns=REPORT_COLUMNS).to_csv(
            index=False, lineterminator="\n"))
        if result.identities is not None:
            write_text_atomic(result.identities, pd.DataFrame(identities).to_csv(
                index=False, lineterminator="\n"))
            os.chmod(result.identities, 0o600)
        return result
