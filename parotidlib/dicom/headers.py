"""Walk a DICOM tree, read headers only, and group the files into series.

:func:`scan_tree` reads every file under a folder (any layout, any file names), headers only
(``pydicom.dcmread(stop_before_pixels=True)``), and groups the DICOM files by
``(PatientID, StudyInstanceUID, SeriesInstanceUID)``. Files that are not DICOM (a README, a
``.DS_Store``) are skipped and counted; a file that looks like DICOM but cannot be read, or
lacks the identifiers a series needs, is a :class:`~parotidlib.data.problems.Problem` that
names the file. A DICOMDIR is an index, not an image: it is skipped, and the files it lists
are found by the walk like any other.

Within an image series the files are sorted by their position along the slice normal, never
by InstanceNumber or file name. Only the fields of :class:`DicomFile` and :class:`Series` are
kept: no personal tags (names, dates of birth, addresses) leave this module. The tree is only
read, never written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from parotidlib.data.problems import Problem
from parotidlib.dicom.diffusion import (
    RealWorldMap,
    b_value,
    directionality,
    real_world_map,
    rescale,
)
from parotidlib.dicom.functional_groups import functional_group

log = logging.getLogger(__name__)

# Problem is the kit's one "what is wrong" record (patient, column, path, message); the
# series (description and SeriesInstanceUID) is named in the message.
DicomProblem = Problem

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
NON_IMAGE_MODALITIES = frozenset({"RTSTRUCT", "SEG", "SR", "PR", "KO", "REG", "RTPLAN",
                                  "RTDOSE", "RTRECORD"})


@dataclass(frozen=True)
class DicomFile:
    """The header of one DICOM file: identifiers, geometry and the series-level fields.

    ``image_orientation`` is ImageOrientationPatient as read (row direction first, then column
    direction); ``pixel_spacing_mm`` is PixelSpacing as read (row spacing first, i.e. the
    distance between rows, then between columns).
    """

    path: Path
    patient_id: str
    accession_number: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    modality: str
    frame_of_reference_uid: str
    instance_number: int | None
    image_position: tuple[float, float, float] | None
    image_orientation: tuple[float, float, float, float, float, float] | None
    description: str = ""
    protocol: str = ""
    repetition_time_ms: float | None = None
    echo_time_ms: float | None = None
    flip_angle_deg: float | None = None
    contrast_agent: str = ""
    manufacturer: str = ""
    model: str = ""
    field_strength_t: float | None = None
    series_date: str = ""
    series_time: str = ""
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    patient_age: str = ""
    patient_sex: str = ""
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1
    echo_number: int | None = None
    acquisition_number: int | None = None
    series_number: int | None = None
    acquisition_time: str = ""
    contrast_route: str = ""
    contrast_volume_ml: float | None = None
    contrast_start_time: str = ""
    contrast_total_dose_ml: float | None = None
    image_type: str = ""
    lossy_compression: str = ""
    frame: int | None = None
    """1-based frame number when this record describes one frame of a multi-frame (enhanced)
    object (see :func:`frame_headers`); None for a whole file."""
    stack_id: str = ""
    """StackID of the frame (Frame Content Macro, PS3.3 C.7.6.16.2.2); "" when not given."""
    in_stack_position: int | None = None
    """InStackPositionNumber of the frame (PS3.3 C.7.6.16.2.2)."""
    b_value: float | None = None
    """The diffusion b-value in s/mm² (:func:`parotidlib.dicom.diffusion.b_value`: the
    standard DiffusionBValue (0018,9087), else the vendor's private element); None when no
    element gives one."""
    b_value_tag: str = ""
    """Which element gave ``b_value``."""
    diffusion_directionality: str = ""
    """DIRECTIONAL, ISOTROPIC, BMATRIX, NONE or "" (DiffusionDirectionality (0018,9075), else
    the vendor's private element; :func:`parotidlib.dicom.diffusion.directionality`)."""
    real_world: RealWorldMap | None = None
    """The Real World Value Mapping (0040,9096) of the pixel values, None when absent."""
    rescale: tuple[float, float] = (1.0, 0.0)
    """(RescaleSlope, RescaleIntercept) (0028,1053) / (0028,1052), which the readers apply."""
    identity: tuple[str, str, str] = field(default=("", "", ""), repr=False, compare=False)
    """Salted digests of PatientName, PatientBirthDate and PatientSex ("" when absent), so
    that the series of one PatientID can be compared (two people with one hospital ID) without
    the values ever being kept (:func:`identity_digests`)."""
    identity_tokens: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """Salted digests of the components of PatientName (:func:`identity_tokens`): free text
    shown on the console has the words that hash to one of them removed
    (:func:`parotidlib.dicom.privacy.scrub`). The components themselves are not kept."""

    @property
    def where(self) -> str:
        """How messages name this file (``path``), or this frame (``path frame 3``)."""
        return str(self.path) if self.frame is None else f"{self.path} frame {self.frame}"


@dataclass(frozen=True)
class Series:
    """One series of one study of one patient; ``files`` sorted along the slice normal.

    The series-level fields come from the first file. For RTSTRUCT and SEG series ``files``
    are the structure-set / SEG instances and ``frame_of_reference_uid`` is the one they refer
    to.
    """

    patient_id: str
    accession_number: str
    study_uid: str
    series_uid: str
    modality: str
    frame_of_reference_uid: str
    description: str
    protocol: str
    repetition_time_ms: float | None
    echo_time_ms: float | None
    flip_angle_deg: float | None
    contrast_agent: str
    manufacturer: str
    model: str
    field_strength_t: float | None
    series_date: str
    series_time: str
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    patient_age: str
    patient_sex: str
    files: tuple[DicomFile, ...] = field(repr=False)
    series_number: int | None = None
    acquisition_time: str = ""
    contrast_route: str = ""
    contrast_volume_ml: float | None = None
    contrast_start_time: str = ""
    contrast_total_dose_ml: float | None = None
    image_type: str = ""
    lossy_compression: str = ""
    """How the pixel data were compressed lossily ("" when not): the transfer syntax or
    LossyImageCompression of any of the files (a reviewer asks)."""
    frames_b_value: float | None = None
    """For one multi-frame DWI object holding several b-values: the b-value whose frames are
    the volume (the trace ones where directional frames are beside them), set by
    :func:`parotidlib.dicom.diffusion_roles.pick_b_value`; None reads every frame."""
    identity_tokens: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """The union of its files' :attr:`DicomFile.identity_tokens`."""

    @property
    def label(self) -> str:
        """``series 'T1 AX' (1.2.3...)``: how problems name this series."""
        return series_label(self.description, self.series_uid)


@dataclass(frozen=True)
class TreeScan:
    """Everything :func:`scan` found: the series, the problems and what was skipped."""

    series: list[Series]
    problems: list[Problem]
    n_files: int
    n_dicom: int
    skipped: tuple[Path, ...]
    """Files that are not DICOM (and DICOMDIR indexes); not problems."""


def series_label(description: str, series_uid: str) -> str:
    return f"series {description!r} ({series_uid})"


# ---------------------------------------------------------------------------- value helpers


def _str(ds, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:  # a malformed element: treat as absent
        return ""
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _float(ds, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        if isinstance(value, pydicom.multival.MultiValue):
            value = value[0]
        out = float(value)
    except Exception:
        return None
    return out if np.isfinite(out) else None


def _int(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return int(value)
    except Exception:
        return None


def _floats(ds, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        out = tuple(float(v) for v in value)
    except Exception:
        return None
    if len(out) != n or not all(np.isfinite(out)):
        return None
    return out


def _first_item(ds, *keywords: str):
    """``ds.A[0].B[0]...`` or None."""
    item = ds
    for kw in keywords:
        try:
            seq = item.get(kw)
        except Exception:
            return None
        if not seq:
            return None
        item = seq[0]
    return item


# ------------------------------------------------ enhanced (multi-frame) objects: functional groups
#
# An Enhanced MR Image (PS3.3 A.36.2) or a Legacy Converted Enhanced MR Image keeps
# most per-image attributes not at the top level but in functional group macros (PS3.3
# C.7.6.16, Multi-frame Functional Groups Module): each macro is either in the one item of
# SharedFunctionalGroupsSequence (5200,9229), for all frames, or in every frame's item of
# PerFrameFunctionalGroupsSequence (5200,9230). A Legacy Converted object puts attributes no
# macro holds into the Unassigned Shared / Per-Frame Converted Attributes Sequences
# (0020,9170) / (0020,9171) (the Unassigned Converted Attributes Macros of PS3.3 C.7.6.16.2).


def _converted(ds, frame: int = 0):
    """The Legacy Converted objects' Unassigned Per-Frame, then Shared, Converted Attributes
    items of ``frame`` (PS3.3 C.7.6.16.2): where e.g. TR, TE and flip angle of the converted
    classic images went."""
    out = []
    for macro in ("UnassignedPerFrameConvertedAttributesSequence",
                  "UnassignedSharedConvertedAttributesSequence"):
        item = functional_group(ds, macro, frame)
        if item is not None:
            out.append(item)
    return out


def _enhanced_float(ds, keyword: str, macro: str, item_keyword: str,
                    frame: int = 0) -> float | None:
    """Top-level ``keyword``, else ``item_keyword`` of functional group ``macro`` of
    ``frame``, else ``keyword`` among the converted attributes (Legacy Converted)."""
    value = _float(ds, keyword)
    if value is not None:
        return value
    item = functional_group(ds, macro, frame)
    if item is not None:
        value = _float(item, item_keyword)
        if value is not None:
            return value
    for item in _converted(ds, frame):
        value = _float(item, keyword)
        if value is not None:
            return value
    return None


def _frame_floats(ds, keyword: str, n: int, macro: str, frame: int) -> tuple[float, ...] | None:
    """Top-level ``keyword`` (``n`` numbers), else that of functional group ``macro`` of
    ``frame``."""
    values = _floats(ds, keyword, n)
    if values is None:
        item = functional_group(ds, macro, frame)
        if item is not None:
            values = _floats(item, keyword, n)
    return values


def _pixel_spacing(ds, frame: int = 0) -> tuple[float, float] | None:
    """PixelSpacing; for enhanced objects that of the Pixel Measures Macro (PS3.3
    C.7.6.16.2.1) of ``frame``."""
    return _frame_floats(ds, "PixelSpacing", 2, "PixelMeasuresSequence",
                         frame)  # type: ignore[return-value]


def _slice_thickness(ds, frame: int = 0) -> float | None:
    return _enhanced_float(ds, "SliceThickness", "PixelMeasuresSequence", "SliceThickness",
                           frame)


def _position(ds, frame: int = 0) -> tuple[float, ...] | None:
    """ImagePositionPatient; for enhanced objects the Plane Position (Patient) Macro's
    (PS3.3 C.7.6.16.2.3) of ``frame``."""
    return _frame_floats(ds, "ImagePositionPatient", 3, "PlanePositionSequence", frame)


def _orientation(ds, frame: int = 0) -> tuple[float, ...] | None:
    """ImageOrientationPatient; for enhanced objects the Plane Orientation (Patient) Macro's
    (PS3.3 C.7.6.16.2.4) of ``frame``."""
    return _frame_floats(ds, "ImageOrientationPatient", 6, "PlaneOrientationSequence", frame)


def _echo_time(ds, frame: int = 0) -> float | None:
    """EchoTime; for enhanced objects EffectiveEchoTime of the MR Echo Macro (PS3.3
    C.8.13.5.4)."""
    return _enhanced_float(ds, "EchoTime", "MREchoSequence", "EffectiveEchoTime", frame)


def _code_text(item) -> str:
    """The words of a coded item: CodeMeaning, else ContrastBolusAgent, else CodeValue."""
    for kw in ("CodeMeaning", "ContrastBolusAgent", "CodeValue"):
        text = _str(item, kw)
        if text:
            return text
    return ""


def _agent_items(ds) -> list:
    try:
        return list(ds.get("ContrastBolusAgentSequence") or [])
    except Exception:
        return []


def _contrast_usage(ds) -> list:
    """Every Contrast/Bolus Usage item (PS3.3 C.7.6.16.2.12), shared or of any frame."""
    items = []
    try:
        groups = list(ds.get("SharedFunctionalGroupsSequence") or []) + list(
            ds.get("PerFrameFunctionalGroupsSequence") or [])
        for group in groups:
            items.extend(group.get("ContrastBolusUsageSequence") or [])
    except Exception:
        return []
    return items


def _contrast_agent(ds) -> str:
    """ContrastBolusAgent (0018,0010) (Contrast/Bolus Module, PS3.3 C.7.6.4), else what the
    Enhanced Contrast/Bolus Module (C.7.6.4b) says.

    In an enhanced object the agents are the items of ContrastBolusAgentSequence (0018,0012),
    named by CodeMeaning; the Contrast/Bolus Usage Macro (C.7.6.16.2.12) says per frame
    whether agent number n was administered (ContrastBolusAgentAdministered YES/NO). The
    result is the administered agents' names ("administered (agent not named)" when no name
    is given), "" when no agent was administered or nothing is said.
    """
    agent = _str(ds, "ContrastBolusAgent")
    if agent:
        return agent
    agents = _agent_items(ds)
    usage = _contrast_usage(ds)
    names = {_int(a, "ContrastBolusAgentNumber"): _code_text(a) for a in agents}
    if usage:
        given = [_int(u, "ContrastBolusAgentNumber") for u in usage
                 if _str(u, "ContrastBolusAgentAdministered").upper() == "YES"]
        if not given:
            return ""
        named = sorted({names.get(n) or "" for n in given} - {""})
        if not named:
            named = sorted(set(names.values()) - {""})
        return "; ".join(named) or "administered (agent not named)"
    if agents:  # the module is present only when an agent was used (C.7.6.4b)
        return "; ".join(sorted(set(names.values()) - {""})) or (
            "administered (agent not named)")
    for item in _converted(ds):
        agent = _str(item, "ContrastBolusAgent")
        if agent:
            return agent
    return ""


def _contrast_details(ds) -> tuple[str, float | None, str]:
    """ContrastBolusRoute, ContrastBolusVolume and ContrastBolusStartTime (Contrast/Bolus
    Module, PS3.3 C.7.6.4); where absent, those of the first agent of the Enhanced
    Contrast/Bolus Module (C.7.6.4b): its route's CodeMeaning, its ContrastBolusVolume and its
    Contrast Administration Profile's ContrastBolusStartTime."""
    route = _str(ds, "ContrastBolusRoute")
    volume = _float(ds, "ContrastBolusVolume")
    start = _str(ds, "ContrastBolusStartTime")
    agents = _agent_items(ds)
    if agents:
        agent = agents[0]
        if not route:
            item = _first_item(agent, "ContrastBolusAdministrationRouteSequence")
            route = _code_text(item) if item is not None else ""
        if volume is None:
            volume = _float(agent, "ContrastBolusVolume")
        if not start:
            item = _first_item(agent, "ContrastAdministrationProfileSequence")
            start = _str(item, "ContrastBolusStartTime") if item is not None else ""
    return route, volume, start


def _acquisition_time(ds) -> str:
    """AcquisitionTime, else the time of AcquisitionDateTime (the Enhanced MR Image Module's,
    PS3.3 C.8.13.1)."""
    time = _str(ds, "AcquisitionTime")
    if time:
        return time
    stamp = _str(ds, "AcquisitionDateTime")
    return stamp[8:] if len(stamp) > 8 else ""


def frame_headers(f: DicomFile, ds) -> tuple[DicomFile, ...]:
    """One :class:`DicomFile` per frame of a multi-frame object, in the file's frame order.

    Each carries ``f``'s fields with the frame's own geometry (Plane Position / Plane
    Orientation / Pixel Measures Macros, PS3.3 C.7.6.16.2.3 / .4 / .1), EffectiveEchoTime (MR
    Echo Macro, C.8.13.5.4), StackID and InStackPositionNumber (Frame Content Macro,
    C.7.6.16.2.2), b-value and directionality (MR Diffusion Macro, C.8.13.5.9), real-world
    value map (C.7.6.16.2.11) and rescale (Pixel Value Transformation Macro, C.7.6.16.2.9),
    and ``frame`` = the 1-based frame number.

    Parameters
    ----------
    f : DicomFile
        The file's header record (from :func:`dicom_file_from_dataset`).
    ds : pydicom.Dataset
        The file's dataset (pixel data not needed).
    """
    import dataclasses

    n = _int(ds, "NumberOfFrames") or 1
    b_values = [b_value(ds, k) for k in range(n)]
    out = []
    for k in range(n):
        content = functional_group(ds, "FrameContentSequence", k)
        converted = _converted(ds, k)
        echo_number = next((v for v in (_int(c, "EchoNumbers") for c in converted)
                            if v is not None), f.echo_number)
        out.append(dataclasses.replace(
            f,
            image_position=_position(ds, k),
            image_orientation=_orientation(ds, k),
            pixel_spacing_mm=_pixel_spacing(ds, k),
            slice_thickness_mm=_slice_thickness(ds, k),
            echo_time_ms=_echo_time(ds, k),
            echo_number=echo_number,
            b_value=b_values[k][0],
            b_value_tag=b_values[k][1],
            diffusion_directionality=directionality(ds, k),
            real_world=real_world_map(ds, k),
            rescale=rescale(ds, k),
            instance_number=k + 1,
            frame=k + 1,
            stack_id=_str(content, "StackID") if content is not None else "",
            in_stack_position=(_int(content, "InStackPositionNumber")
                               if content is not None else None),
        ))
    return tuple(out)


def _frame_of_reference(ds, modality: str) -> str:
    for_uid = _str(ds, "FrameOfReferenceUID")
    if for_uid:
        return for_uid
    if modality == "RTSTRUCT" or _str(ds, "SOPClassUID") == RTSTRUCT_SOP_CLASS:
        item = _first_item(ds, "ReferencedFrameOfReferenceSequence")
        if item is not None:
            return _str(item, "FrameOfReferenceUID")
    return ""


def _sex(ds) -> str:
    sex = _str(ds, "PatientSex").upper()
    return sex if sex in ("M", "F", "O") else ""


#: Transfer syntaxes whose compression loses information (DICOM PS3.5 Table A-1; JPEG-LS
#: near-lossless and JPEG 2000 irreversible included).
LOSSY_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "JPEG baseline",
    "1.2.840.10008.1.2.4.51": "JPEG extended",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.4.93": "JPIP JPEG 2000",
    "1.2.840.10008.1.2.4.100": "MPEG2",
    "1.2.840.10008.1.2.4.102": "MPEG-4",
    "1.2.840.10008.1.2.4.201": "HTJ2K",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
}


def lossy_compression(ds) -> str:
    """How a file's pixel data were compressed lossily, "" when not: LossyImageCompression
    "01" (with its method and ratio when given, PS3.3 C.7.6.1.1.5) or a lossy transfer
    syntax (PS3.5 Table A-1)."""
    meta = getattr(ds, "file_meta", None)
    syntax = _str(meta, "TransferSyntaxUID") if meta is not None else ""
    if syntax in LOSSY_TRANSFER_SYNTAXES:
        return f"{LOSSY_TRANSFER_SYNTAXES[syntax]} transfer syntax ({syntax})"
    if _str(ds, "LossyImageCompression") == "01":
        method = _str(ds, "LossyImageCompressionMethod")
        ratio = _str(ds, "LossyImageCompressionRatio")
        return "LossyImageCompression 01" + (f", {method}" if method else "") + (
            f", ratio {ratio}" if ratio else "")
    return ""


#: Per-process salt of the identity digests: they are compared within one import and never
#: leave the process, and a digest without it cannot be checked against a guessed name.
_IDENTITY_SALT = secrets.token_bytes(16)
IDENTITY_FIELDS = ("PatientName", "PatientBirthDate", "PatientSex")


def _normalised_identity(value: str) -> str:
    return " ".join(value.replace("^", " ").replace("=", " ").upper().split())


def identity_digests(ds) -> tuple[str, str, str]:
    """Salted SHA-256 digests of PatientName, PatientBirthDate and PatientSex ("" for an absent
    or empty value), compared case- and spacing-insensitively. The values are not kept."""
    out = []
    for keyword in IDENTITY_FIELDS:
        value = _normalised_identity(_str(ds, keyword))
        out.append(hashlib.sha256(_IDENTITY_SALT + value.encode()).hexdigest() if value else "")
    return tuple(out)  # type: ignore[return-value]


def token_digest(word: str) -> str:
    """The salted digest of one word, as :func:`identity_tokens` computes them (for
    :func:`parotidlib.dicom.privacy.scrub`)."""
    return hashlib.sha256(_IDENTITY_SALT + word.lower().encode()).hexdigest()


def identity_tokens(ds) -> frozenset[str]:
    """Salted digests of the components of PatientName (family, given, middle, ...; the
    alphabetic, ideographic and phonetic groups), lower case, two characters or more."""
    text = _str(ds, "PatientName").replace("=", "^")
    return frozenset(token_digest(p) for chunk in text.split("^") for p in chunk.split()
                     if len(p.strip()) >= 2)


def dicom_file_from_dataset(path: Path, ds) -> DicomFile:
    """The :class:`DicomFile` of a dataset read from ``path`` (only the kept fields).

    For an enhanced (multi-frame) object, a field whose top-level tag is absent is taken from
    the functional groups (PS3.3 C.7.6.16; shared, else the first frame's): RepetitionTime and
    FlipAngle from the MR Timing and Related Parameters Macro (C.8.13.5.2), EchoTime from the
    MR Echo Macro's EffectiveEchoTime (C.8.13.5.4), PixelSpacing and SliceThickness from the
    Pixel Measures Macro (C.7.6.16.2.1), ImageOrientationPatient and ImagePositionPatient of
    the first frame (C.7.6.16.2.4 / .3), the contrast agent from the Enhanced Contrast/Bolus
    Module (C.7.6.4b) and the Contrast/Bolus Usage Macro (C.7.6.16.2.12), and for Legacy
    Converted objects from the Unassigned Converted Attributes. ``number_of_frames`` is
    NumberOfFrames (1 when absent).
    """
    modality = _str(ds, "Modality").upper()
    sop_class = _str(ds, "SOPClassUID")
    if not sop_class:
        meta = getattr(ds, "file_meta", None)
        sop_class = _str(meta, "MediaStorageSOPClassUID") if meta is not None else ""
    sop_uid = _str(ds, "SOPInstanceUID")
    if not sop_uid:
        meta = getattr(ds, "file_meta", None)
        sop_uid = _str(meta, "MediaStorageSOPInstanceUID") if meta is not None else ""
    position = _position(ds)
    orientation = _orientation(ds)
    route, volume, start = _contrast_details(ds)
    b_value_found, b_value_tag = b_value(ds)
    return DicomFile(
        path=path,
        patient_id=_str(ds, "PatientID"),
        accession_number=_str(ds, "AccessionNumber"),
        study_uid=_str(ds, "StudyInstanceUID"),
        series_uid=_str(ds, "SeriesInstanceUID"),
        sop_uid=sop_uid,
        sop_class_uid=sop_class,
        modality=modality,
        frame_of_reference_uid=_frame_of_reference(ds, modality),
        instance_number=_int(ds, "InstanceNumber"),
        image_position=position,  # type: ignore[arg-type]
        image_orientation=orientation,  # type: ignore[arg-type]
        description=_str(ds, "SeriesDescription"),
        protocol=_str(ds, "ProtocolName"),
        repetition_time_ms=_enhanced_float(ds, "RepetitionTime",
                                           "MRTimingAndRelatedParametersSequence",
                                           "RepetitionTime"),
        echo_time_ms=_echo_time(ds),
        flip_angle_deg=_enhanced_float(ds, "FlipAngle", "MRTimingAndRelatedParametersSequence",
                                       "FlipAngle"),
        contrast_agent=_contrast_agent(ds),
        manufacturer=_str(ds, "Manufacturer"),
        model=_str(ds, "ManufacturerModelName"),
        field_strength_t=_float(ds, "MagneticFieldStrength"),
        series_date=_str(ds, "SeriesDate"),
        series_time=_str(ds, "SeriesTime"),
        pixel_spacing_mm=_pixel_spacing(ds),
        slice_thickness_mm=_slice_thickness(ds),
        patient_age=_str(ds, "PatientAge"),
        patient_sex=_sex(ds),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        number_of_frames=_int(ds, "NumberOfFrames") or 1,
        echo_number=_int(ds, "EchoNumbers"),
        acquisition_number=_int(ds, "AcquisitionNumber"),
        series_number=_int(ds, "SeriesNumber"),
        acquisition_time=_acquisition_time(ds),
        contrast_route=route,
        contrast_volume_ml=volume,
        contrast_start_time=start,
        contrast_total_dose_ml=_float(ds, "ContrastBolusTotalDose"),
        image_type=_str(ds, "ImageType").upper(),
        lossy_compression=lossy_compression(ds),
        b_value=b_value_found,
        b_value_tag=b_value_tag,
        diffusion_directionality=directionality(ds),
        real_world=real_world_map(ds),
        rescale=rescale(ds),
        identity=identity_digests(ds),
        identity_tokens=identity_tokens(ds),
    )


# ---------------------------------------------------------------------------- reading


def _looks_like_dicom(path: Path) -> bool:
    """A 'DICM' magic at offset 128, or a .dcm name: unreadable then means broken DICOM."""
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _maybe_raw_dataset(path: Path) -> bool:
    """A DICOM dataset without preamble and file meta (old exports) starts with group 0008."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[:2] == b"\x08\x00" and head[3:4] == b"\x00"


def read_header(path: Path):
    """``(dataset | None, problem message | None)``; (None, None) for a non-DICOM file."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True), None
    except InvalidDicomError:
        if _maybe_raw_dataset(path):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception as exc:
                return None, f"cannot read as DICOM: {type(exc).__name__}: {exc}"
            if "SOPClassUID" in ds or "SeriesInstanceUID" in ds:
                return ds, None
        if _looks_like_dicom(path):
            return None, "looks like DICOM but is not readable (no valid preamble / file meta)"
        return None, None
    except Exception as exc:  # truncated, malformed: broken DICOM if it looked like DICOM
        if _looks_like_dicom(path):
            return None, f"cannot read as DICOM: {type(exc).__name__}: {exc}"
        return None, None


def _iter_files(src: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            out.append(Path(root) / name)
    return out


def _is_dicomdir(path: Path, ds) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop = _str(meta, "MediaStorageSOPClassUID") if meta is not None else ""
    return sop == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds


def slice_normal(orientation: Iterable[float]) -> np.ndarray:
    """Unit normal row x column of an ImageOrientationPatient (the direction of increasing
    slice index in the kit's volumes)."""
    o = np.asarray(tuple(orientation), dtype=float)
    n = np.cross(o[:3], o[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def sort_files(files: Iterable[DicomFile]) -> tuple[DicomFile, ...]:
    """Files sorted by position along the slice normal of the first oriented file; files
    without geometry come last, by InstanceNumber. Ties keep InstanceNumber, then path order.
    """
    files = list(files)
    oriented = [f for f in files if f.image_orientation is not None and f.image_position]
    if not oriented:
        return tuple(sorted(files, key=lambda f: (f.instance_number is None,
                                                   f.instance_number or 0, str(f.path))))
    normal = slice_normal(oriented[0].image_orientation)  # type: ignore[arg-type]

    def key(f: DicomFile):
        if f.image_position is None or f.image_orientation is None:
            return (1, 0.0, f.instance_number or 0, str(f.path))
        d = float(np.dot(normal, f.image_position))
        return (0, d, f.instance_number if f.instance_number is not None else 0, str(f.path))

    return tuple(sorted(files, key=key))


def _series_from_files(files: tuple[DicomFile, ...]) -> Series:
    first = files[0]
    return Series(
        patient_id=first.patient_id,
        accession_number=first.accession_number,
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        modality=first.modality,
        frame_of_reference_uid=first.frame_of_reference_uid,
        description=first.description,
        protocol=first.protocol,
        repetition_time_ms=first.repetition_time_ms,
        echo_time_ms=first.echo_time_ms,
        flip_angle_deg=first.flip_angle_deg,
        contrast_agent=first.contrast_agent,
        manufacturer=first.manufacturer,
        model=first.model,
        field_strength_t=first.field_strength_t,
        series_date=first.series_date,
        series_time=first.series_time,
        pixel_spacing_mm=first.pixel_spacing_mm,
        slice_thickness_mm=first.slice_thickness_mm,
        patient_age=first.patient_age,
        patient_sex=first.patient_sex,
        files=files,
        series_number=first.series_number,
        acquisition_time=first.acquisition_time,
        contrast_route=first.contrast_route,
        contrast_volume_ml=first.contrast_volume_ml,
        contrast_start_time=first.contrast_start_time,
        contrast_total_dose_ml=first.contrast_total_dose_ml,
        image_type=first.image_type,
        lossy_compression=next((f.lossy_compression for f in files if f.lossy_compression),
                               ""),
        identity_tokens=frozenset().union(*(f.identity_tokens for f in files)),
    )


def group_series(files: Iterable[DicomFile]) -> tuple[list[Series], list[Problem]]:
    """Group files by (patient, study, series); drop repeated SOPInstanceUIDs (reported)."""
    groups: dict[tuple[str, str, str], list[DicomFile]] = {}
    for f in files:
        groups.setdefault((f.patient_id, f.study_uid, f.series_uid), []).append(f)
    series: list[Series] = []
    problems: list[Problem] = []
    for key in sorted(groups):
        seen: dict[str, DicomFile] = {}
        kept = []
        for f in groups[key]:
            if f.sop_uid in seen:
                problems.append(Problem(
                    f.patient_id, None, str(f.path),
                    f"{series_label(f.description, f.series_uid)}: SOPInstanceUID {f.sop_uid} "
                    f"occurs twice (also in {seen[f.sop_uid].path}); the second copy is "
                    f"ignored"))
                continue
            seen[f.sop_uid] = f
            kept.append(f)
        if kept[0].modality in NON_IMAGE_MODALITIES:
            ordered = tuple(sorted(kept, key=lambda f: str(f.path)))
        else:
            ordered = sort_files(kept)
        series.append(_series_from_files(ordered))
    return series, problems


def scan(src: str | Path, progress: bool = False) -> TreeScan:
    """Read the headers of every file under ``src`` and group them into series.

    Never writes into ``src``. Non-DICOM files are skipped and counted (``TreeScan.skipped``);
    broken DICOM files and files without the identifiers a series needs are problems.
    """
    src = Path(src)
    if not src.is_dir():
        raise NotADirectoryError(f"DICOM source {src} is not a folder")
    paths = _iter_files(src)
    iterator: Iterable[Path] = paths
    if progress:
        from parotidlib.progress import tqdm

        iterator = tqdm(paths, desc="DICOM headers", unit="file")
    problems: list[Problem] = []
    skipped: list[Path] = []
    dicom_files: list[DicomFile] = []
    n_dicom = 0
    for path in iterator:
        if not path.is_file():
            continue
        ds, message = read_header(path)
        if ds is None:
            if message is None:
                skipped.append(path)
            else:
                problems.append(Problem(None, None, str(path), message))
            continue
        if _is_dicomdir(path, ds):
            skipped.append(path)
            continue
        n_dicom += 1
        try:
            f = dicom_file_from_dataset(path, ds)
        except Exception as exc:  # a header too malformed to take apart
            problems.append(Problem(_str(ds, "PatientID") or None, None, str(path),
                                    f"cannot read the DICOM header: {type(exc).__name__}: "
                                    f"{exc}"))
            continue
        missing = [name for name, value in (
            ("PatientID", f.patient_id), ("StudyInstanceUID", f.study_uid),
            ("SeriesInstanceUID", f.series_uid), ("SOPInstanceUID", f.sop_uid))
            if not value]
        if missing:
            problems.append(Problem(
                f.patient_id or None, None, str(path),
                f"{series_label(f.description, f.series_uid)}: missing {', '.join(missing)}; "
                f"the file cannot be grouped and is left out"))
            continue
        dicom_files.append(f)
    series, group_problems = group_series(dicom_files)
    problems.extend(group_problems)
    if skipped:
        log.info("skipped %d non-DICOM file(s) under %s", len(skipped), src)
    return TreeScan(series=series, problems=problems, n_files=len(paths), n_dicom=n_dicom,
                    skipped=tuple(skipped))


def scan_tree(src: str | Path, progress: bool = False) -> tuple[list[Series], list[Problem]]:
    """Series (grouped by patient, study and SeriesInstanceUID; files sorted along the slice
    normal) and problems of the DICOM tree ``src``. See :func:`scan` for the counts."""
    result = scan(src, progress=progress)
    return result.series, result.problems
