"""Structure sets (RTSTRUCT and SEG instances) of one patient: what each refers to, and which
one a label is taken from when several carry it.

Every instance is read, not only the first file of a structure series: a second RTSTRUCT in
the same series is a second structure set. :func:`read_structure_set` reads what the choice
needs (the series and frame of reference it refers to, ApprovalStatus, StructureSetDate/Time,
each ROI's RTROIInterpretedType); free text (StructureSetLabel, -Name, -Description) is not
kept. :func:`choose` picks, per label of one series, the ROI to use:

* several structure sets carry the label: the rules' ``structure_sets: newest_approved``
  takes the set whose ApprovalStatus is APPROVED first, then the one with the latest
  StructureSetDate/Time (SEG: ContentDate/Time); sets that tie are refused, listed;
  ``structure_sets: refuse`` refuses whenever there are several;
* two ROIs of the chosen set carry the label: refused, listing both with their volumes,
  unless the rules pin the ROI name for the patient.

Labels are never unioned across ROIs or structure sets.

References
----------
DICOM PS3.3 C.8.8.5 (Structure Set Module), C.8.8.8 (RT ROI Observations Module),
C.8.8.16 (Approval Module), C.8.20 (Segmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parotidlib.dicom.rules import STRUCTURES, Rules


@dataclass(frozen=True)
class StructureSet:
    """One RTSTRUCT or SEG instance: identity, what it refers to, approval and date."""

    path: Path
    modality: str
    sop_uid: str
    referenced_series_uid: str | None
    frame_of_reference_uid: str
    approval: str = ""
    date: str = ""
    time: str = ""
    interpreted_types: dict[str, str] = field(default_factory=dict)
    roi_numbers: dict[str, int] = field(default_factory=dict)
    """ROI name -> ROINumber: outputs name an ROI by number, never by its free-text name."""
    free_texts: tuple[str, ...] = ()
    """The instance's free text (ROI names, StructureSetLabel/-Name, SeriesDescription), kept
    only so that messages can withhold it (:mod:`parotidlib.dicom.privacy`)."""

    @property
    def label(self) -> str:
        """How messages name it: modality, date/time, approval and SOPInstanceUID."""
        when = " ".join(x for x in (self.date, self.time.split(".")[0]) if x) or "no date"
        return (f"{self.modality} of {when}, {self.approval or 'no ApprovalStatus'} "
                f"(SOPInstanceUID {self.sop_uid})")


def _first(ds: Any, *keywords: str) -> Any:
    item = ds
    for keyword in keywords:
        sequence = item.get(keyword) if item is not None else None
        if not sequence:
            return None
        item = sequence[0]
    return item


def read_structure_set(path: Path, modality: str, frame_of_reference_uid: str = ""
                       ) -> StructureSet:
    """The :class:`StructureSet` of one file (read with ``force=True``: old exports without
    file meta are common for RTSTRUCT).

    Raises
    ------
    pydicom.errors.InvalidDicomError, OSError
        The file cannot be read; the caller makes that a problem of its patient.
    """
    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    referenced = None
    if modality == "RTSTRUCT":
        item = _first(ds, "ReferencedFrameOfReferenceSequence", "RTReferencedStudySequence",
                      "RTReferencedSeriesSequence")
    else:
        item = _first(ds, "ReferencedSeriesSequence")
    if item is not None and item.get("SeriesInstanceUID"):
        referenced = str(item.SeriesInstanceUID)
    numbers = {int(r.ROINumber): str(r.get("ROIName", "") or "").strip() or
               f"ROI #{int(r.ROINumber)}"
               for r in ds.get("StructureSetROISequence", []) if r.get("ROINumber") is not None}
    types = {}
    for observation in ds.get("RTROIObservationsSequence", []):
        number = observation.get("ReferencedROINumber")
        kind = str(observation.get("RTROIInterpretedType", "") or "").strip().upper()
        if number is not None and int(number) in numbers and kind:
            types[numbers[int(number)]] = kind
    free = [*numbers.values(), *(str(ds.get(k, "") or "") for k in (
        "StructureSetLabel", "StructureSetName", "StructureSetDescription", "SeriesDescription",
        "ContentLabel", "ContentDescription"))]
    free += [str(item.get("SegmentLabel", "") or "") for item in ds.get("SegmentSequence", [])]
    date = str(ds.get("StructureSetDate", "") or ds.get("ContentDate", "") or "").strip()
    time = str(ds.get("StructureSetTime", "") or ds.get("ContentTime", "") or "").strip()
    return StructureSet(path=Path(path), modality=modality,
                        sop_uid=str(ds.get("SOPInstanceUID", "") or path.name),
                        referenced_series_uid=referenced,
                        frame_of_reference_uid=frame_of_reference_uid or str(
                            ds.get("FrameOfReferenceUID", "") or ""),
                        approval=str(ds.get("ApprovalStatus", "") or "").strip().upper(),
                        date=date, time=time, interpreted_types=types,
                        roi_numbers={name: number for number, name in numbers.items()},
                        free_texts=tuple(t for t in free if t.strip()))


@dataclass(frozen=True)
class Candidate:
    """One ROI that the rules make a label, on the grid of the series it was drawn on."""

    structure_set: StructureSet
    name: str
    label: int
    mask: np.ndarray = field(repr=False)
    volume_ml: float
    number: int | None = None
    """ROINumber in its structure set."""
    part: str = ""
    """"right half" / "left half" of a bilateral gland ROI, "" for a whole ROI."""


def _rank(s: StructureSet) -> tuple[bool, str]:
    return s.approval == "APPROVED", f"{s.date:0<8}{s.time.split('.')[0]:0<6}"


def _list(candidates: list[Candidate]) -> str:
    return "; ".join(f"{c.name!r}{f' {c.part}' if c.part else ''} (ROI {c.number}, "
                     f"{c.volume_ml:.2f} ml) in {c.structure_set.label}" for c in candidates)


def choose(candidates: list[Candidate], rules: Rules, patient_id: str, role: str
           ) -> tuple[dict[int, Candidate], list[str], list[str]]:
    """The ROI each label of one series is taken from.

    Parameters
    ----------
    candidates : list of Candidate
        Every ROI of every structure set drawn on the series that the rules made a label.
    rules : Rules
    patient_id : str
        The DICOM PatientID (for pins).
    role : str
        The series' role (for messages).

    Returns
    -------
    chosen : dict
        Label -> the candidate taken.
    notes : list of str
        What was chosen over what (for the import report).
    problems : list of str
        Labels that cannot be decided, with the candidates listed.
    """
    chosen: dict[int, Candidate] = {}
    notes: list[str] = []
    problems: list[str] = []
    pins = rules.pin.get(str(patient_id), {})
    for label in sorted({c.label for c in candidates}):
        structure = STRUCTURES[label]
        these = [c for c in candidates if c.label == label]
        if structure in pins:
            pinned = [c for c in these if c.name == pins[structure]]
            if not pinned:
                problems.append(f"{structure} on {role}: the rules pin ROI {pins[structure]!r}, "
                                f"which no structure set has; candidates: {_list(these)}")
                continue
            these = pinned
        sets = {c.structure_set.sop_uid: c.structure_set for c in these}
        if len(sets) > 1:
            if rules.structure_sets == "refuse":
                problems.append(f"{structure} on {role}: {len(sets)} structure sets carry it "
                                f"and the rules say refuse: {_list(these)}")
                continue
            ranked = sorted(sets.values(), key=_rank, reverse=True)
            if _rank(ranked[0]) == _rank(ranked[1]):
                problems.append(f"{structure} on {role}: {len(sets)} structure sets carry it "
                                f"and none is approved or newer than the others: "
                                f"{_list(these)}")
                continue
            best = ranked[0]
            left_out = [c for c in these if c.structure_set.sop_uid != best.sop_uid]
            these = [c for c in these if c.structure_set.sop_uid == best.sop_uid]
            notes.append(f"{structure} on {role} from {best.label} (approved first, then "
                         f"newest); left out: {_list(left_out)}")
        if len(these) > 1:
            problems.append(f"{structure} on {role}: {len(these)} ROIs of one structure set "
                            f"are candidates, pin one in the rules file (pin: {{PatientID: "
                            f"{{{structure}: ROI name}}}}): {_list(these)}")
            continue
        chosen[label] = these[0]
    return chosen, notes, problems
