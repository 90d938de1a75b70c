"""Write the synthetic cohort as a DICOM export: MR series, RTSTRUCTs and clinical.csv.

The voxels and geometry are those of the NIfTI synthetic cohort
(:func:`parotidlib.synth.generate.generate_cohort`) with the same seed, so a DICOM importer
can be checked against it: DICOM -> import -> NIfTI must give the same affines (within
1e-3 mm), the same images and label maps with a Dice of at least 0.97 per structure.

Layout of ``out_dir``
---------------------
``SOURCE.json``
    What was written and from what (:data:`SOURCE_NAME`): the settings, the patients, and
    ``reference_manifest``, the NIfTI manifest a round trip must be compared with (a path
    relative to ``out_dir``; :func:`reference_manifest` resolves it). Without oblique or
    anisotropic geometry it is the NIfTI cohort itself; with either, the voxels are the same
    but the affines are transformed, and the transformed NIfTI cohort is written to
    ``out_dir/reference/`` (``manifest.csv`` and ``<patient_id>/<series>[_labels].nii.gz``).
    ``complete`` is true once every patient is written.
``clinical.csv``
    ``patient_id`` (the DICOM PatientID), ``histology``, ``tumor_side``, ``age``, ``sex``.
``<patient_id>/<series>/IM_0001.dcm`` ...
    One MR series per sequence (``t1``, ``ce_t1``, ``t2``; with ``diffusion=True`` also
    ``dwi`` and ``adc``), one file per slice, named in
    slice order; ``<patient_id>/<series>_rtstruct/RS_0001.dcm`` its RTSTRUCT.
    With ``shuffle=True`` instead a flat folder per patient, ``<patient_id>/IM_NNNNNN``
    (random numbers, no extension) holding every MR slice and RTSTRUCT of the patient, and
    InstanceNumbers randomly permuted inside each series.

Geometry: for the RAS+ affine ``A`` of a series, ``LPS = diag(-1, -1, 1, 1) @ A``; DICOM
column index = NIfTI ``i``, row index = NIfTI ``j``, slice = ``k``; ImageOrientationPatient
= ``[unit(LPS[:3, 0]), unit(LPS[:3, 1])]``, PixelSpacing = ``[|LPS[:3, 1]|, |LPS[:3, 0]|]``
(row spacing, column spacing), ImagePositionPatient of slice ``k`` = ``LPS @ (0, 0, k, 1)``,
pixel array = ``data[:, :, k].T``.

RTSTRUCT: ROIs ``Parotid_R`` (label 1 voxels), ``Parotid_L`` (label 2 voxels) and ``GTV``
(label 3). A gland ROI holds the gland label only, so where the tumour lies in the gland it
has a hole: rasterising the ROIs with even-odd (XOR) filling, gland first and GTV last,
gives the label map back. Contours are per slice, from
``skimage.measure.find_contours(np.pad(mask, 1), 0.5)``, CLOSED_PLANAR, one contour item per
closed curve (holes and islands as find_contours gives them).

Each patient is written into a temporary folder and renamed into place when complete; a
second call with the same settings skips the patients already there (resume).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RTStructureSetStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds
from skimage import measure

from parotidlib.config import check_bool, check_int
from parotidlib.constants import (
    LABEL_LEFT_GLAND,
    LABEL_RIGHT_GLAND,
    LABEL_TUMOR,
    SERIES,
)
from parotidlib.io import write_text_atomic
from parotidlib.synth.diffusion import ADC_MAX, B_VALUE, DIFFUSION_SERIES
from parotidlib.synth.generate import GENERATOR_VERSION, generate_cohort, write_nifti
from parotidlib.synth.scanners import SCANNERS

__all__ = ["DICOM_EXPORT_VERSION", "ROIS", "SERIES_DESCRIPTIONS", "SOURCE_NAME",
           "affine_to_dicom_geometry", "dicom_geometry_to_affine", "mask_to_contours",
           "reference_manifest", "write_dicom_cohort"]

logger = logging.getLogger(__name__)

#: Bump when the DICOM written for given settings changes.
DICOM_EXPORT_VERSION = "1.0"
SOURCE_NAME = "SOURCE.json"
CLINICAL_NAME = "clinical.csv"
REFERENCE_DIR = "reference"
#: RTSTRUCT ROIs: (ROI number, name, label value, RT ROI interpreted type, display colour).
ROIS: tuple[tuple[int, str, int, str, tuple[int, int, int]], ...] = (
    (1, "Parotid_R", LABEL_RIGHT_GLAND, "ORGAN", (0, 200, 0)),
    (2, "Parotid_L", LABEL_LEFT_GLAND, "ORGAN", (0, 120, 255)),
    (3, "GTV", LABEL_TUMOR, "GTV", (255, 0, 0)),
)
#: SeriesDescription (and ProtocolName) per vendor and series: realistic names, so that
#: an importer's series rules are exercised on both vendors' conventions.
SERIES_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "GE": {"t1": "T1 SE AX", "ce_t1": "T1 SE AX +C GAD", "t2": "T2 TSE AX",
           "dwi": "DWI AX b800", "adc": "ADC AX"},
    "Siemens": {"t1": "t1_tse_tra", "ce_t1": "t1_vibe_fs_tra_+C GAD", "t2": "t2_tse_tra",
                "dwi": "ep2d_diff_tra_TRACEW", "adc": "ep2d_diff_tra_ADC"},
}
# acquisition order: contrast last; the ADC map is derived from the DWI
_SERIES_NUMBER = {"t1": 3, "t2": 4, "dwi": 5, "adc": 6, "ce_t1": 7}
#: ImageType of the diffusion series, as Siemens writes them: the trace-weighted DWI and the
#: ADC map derived from it.
_DIFFUSION_IMAGE_TYPE = {"dwi": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND"],
                         "adc": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND"]}
_RS_SERIES_OFFSET = 100
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_MANUFACTURER = {"GE": ("GE MEDICAL SYSTEMS", "Signa HDxt"),
                 "Siemens Verio": ("SIEMENS", "Verio"), "Siemens Skyra": ("SIEMENS", "Skyra")}
_ANISO_FACTOR = 1.3


# --------------------------------------------------------------------------- geometry


def _ds(value: float) -> str:
    """A DS string (at most 16 characters) as precise as it can be."""
    v = float(value)
    if v == 0.0 or abs(v) < 1e-12:
        return "0"
    return format_number_as_ds(v)


def affine_to_dicom_geometry(affine: np.ndarray, n_slices: int) -> dict:
    """DICOM geometry of a volume from its RAS+ voxel-to-world affine.

    Parameters
    ----------
    affine : ndarray (4, 4)
        RAS+ affine, voxel ``(i, j, k)`` to mm.
    n_slices : int
        Number of slices (the third axis).

    Returns
    -------
    dict
        ``orientation`` (6 floats: row direction = +i, column direction = +j, LPS),
        ``pixel_spacing`` ([row spacing = |j step|, column spacing = |i step|]),
        ``positions`` (n_slices x 3, LPS ImagePositionPatient of each slice),
        ``slice_spacing`` (|k step|) and ``normal`` (unit slice normal, row x column).
    """
    lps = _LPS @ np.asarray(affine, dtype=np.float64)
    col_i, col_j, col_k = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    di, dj, dk = (float(np.linalg.norm(c)) for c in (col_i, col_j, col_k))
    row_dir, col_dir = col_i / di, col_j / dj
    positions = np.array([lps @ np.array([0.0, 0.0, k, 1.0]) for k in range(n_slices)])[:, :3]
    normal = np.cross(row_dir, col_dir)
    return {"orientation": [*row_dir, *col_dir], "pixel_spacing": [dj, di],
            "positions": positions, "slice_spacing": dk, "normal": normal}


def dicom_geometry_to_affine(orientation: Sequence[float], pixel_spacing: Sequence[float],
                             first_position: Sequence[float],
                             last_position: Sequence[float] | None = None,
                             n_slices: int = 1, slice_spacing: float | None = None
                             ) -> np.ndarray:
    """RAS+ affine (NIfTI ``i`` = DICOM column, ``j`` = row) from DICOM geometry.

    The slice step is ``(last - first) / (n_slices - 1)`` when two positions are given,
    else ``slice_spacing`` along the normal (row x column direction).

    Parameters
    ----------
    orientation : 6 floats
        ImageOrientationPatient.
    pixel_spacing : 2 floats
        PixelSpacing (row spacing, column spacing).
    first_position, last_position : 3 floats
        ImagePositionPatient of the first and last slice (in slice order).
    n_slices : int
    slice_spacing : float, optional

    Returns
    -------
    ndarray (4, 4)
    """
    o = np.asarray(orientation, dtype=np.float64)
    row_dir, col_dir = o[:3], o[3:]
    lps = np.eye(4)
    lps[:3, 0] = row_dir * float(pixel_spacing[1])
    lps[:3, 1] = col_dir * float(pixel_spacing[0])
    first = np.asarray(first_position, dtype=np.float64)
    if last_position is not None and n_slices > 1:
        lps[:3, 2] = (np.asarray(last_position, dtype=np.float64) - first) / (n_slices - 1)
    else:
        lps[:3, 2] = np.cross(row_dir, col_dir) * float(slice_spacing or 1.0)
    lps[:3, 3] = first
    return _LPS @ lps


def _rotation(deg: float) -> np.ndarray:
    """Rotation about x, then about y, by ``deg`` degrees."""
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return ry @ rx


def _world_transform(t1_affine: np.ndarray, t1_shape: Sequence[int], oblique_deg: float,
                     anisotropic: bool) -> np.ndarray:
    """4 x 4 world transform applied to all three series of a patient (so they stay aligned):
    a stretch of world x by 1.3 (``anisotropic``: the column spacing of the axial grids) and
    a rotation (``oblique_deg``), both about the centre of the T1 volume."""
    centre = (t1_affine @ np.array([*(np.asarray(t1_shape[:3]) - 1) / 2.0, 1.0]))[:3]
    m = np.eye(3)
    if anisotropic:
        m = np.diag([_ANISO_FACTOR, 1.0, 1.0])
    if oblique_deg:
        m = _rotation(oblique_deg) @ m
    out = np.eye(4)
    out[:3, :3] = m
    out[:3, 3] = centre - m @ centre
    return out


# --------------------------------------------------------------------------- contours


def mask_to_contours(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed contours of a 2-D mask in voxel index coordinates.

    Parameters
    ----------
    mask2d : ndarray (nx, ny), bool
        One slice of a mask, indexed ``[i, j]``.

    Returns
    -------
    list of ndarray (n, 2)
        Each closed curve (``(i, j)`` points, the closing point not repeated), from
        ``find_contours(np.pad(mask, 1), 0.5)``: outer boundaries, holes and islands alike,
        so even-odd filling gives the mask back.
    """
    padded = np.pad(np.asarray(mask2d, dtype=np.float64), 1)
    out = []
    for c in measure.find_contours(padded, 0.5):
        c = c - 1.0
        if len(c) > 1 and np.allclose(c[0], c[-1]):
            c = c[:-1]
        if len(c) >= 3:
            out.append(c)
    return out


# --------------------------------------------------------------------------- UIDs and names


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["parotidlib.synth.dicom", *map(str, parts)])


def _vendor(scanner: str) -> str:
    return "GE" if scanner.startswith("GE") else "Siemens"


def _manufacturer(scanner: str) -> tuple[str, str]:
    for key, value in _MANUFACTURER.items():
        if scanner.startswith(key):
            return value
    return scanner.split(" ")[0].upper(), scanner


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# --------------------------------------------------------------------------- datasets


def _file_dataset(sop_class: str, sop_uid: str) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PAROTIDLIB_{DICOM_EXPORT_VERSION}"
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def _patient_study(ds: Dataset, study: dict) -> None:
    for key, value in study.items():
        setattr(ds, key, value)


def _save(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def _mr_slices(volume: np.ndarray, affine: np.ndarray, series: str, row: pd.Series,
               study: dict, uids: dict, instance_numbers: Sequence[int]) -> list[Dataset]:
    """One MR Image Storage dataset per slice of ``volume`` (int16, indexed [i, j, k])."""
    scanner = str(row["scanner"])
    vendor = _vendor(scanner)
    manufacturer, model = _manufacturer(scanner)
    profile = SCANNERS.get(scanner)
    field = float(row.get("field_strength_t", profile.field_strength_t if profile else 1.5))
    geo = affine_to_dicom_geometry(affine, volume.shape[2])
    diffusion = series in DIFFUSION_SERIES
    acquired = "dwi" if diffusion else series  # the ADC map is computed from the DWI
    tr, te = float(row[f"{acquired}_tr_ms"]), float(row[f"{acquired}_te_ms"])
    spgr = series == "ce_t1"
    flip = float(row["ce_t1_flip_deg"]) if spgr else 90.0
    description = SERIES_DESCRIPTIONS[vendor][series]
    lo, hi = np.percentile(volume, [1, 99]) if volume.size else (0.0, 1.0)
    out = []
    for k in range(volume.shape[2]):
        ds = _file_dataset(MRImageStorage, uids["sop"][k])
        _patient_study(ds, study)
        ds.ImageType = _DIFFUSION_IMAGE_TYPE.get(series, ["ORIGINAL", "PRIMARY", "M", "ND"])
        ds.Modality = "MR"
        ds.Manufacturer = manufacturer
        ds.ManufacturerModelName = model
        ds.InstitutionName = "SYNTHETIC"
        ds.SeriesInstanceUID = uids["series"]
        ds.SeriesNumber = _SERIES_NUMBER[series]
        ds.SeriesDescription = description
        ds.ProtocolName = description
        ds.SeriesDate = study["StudyDate"]
        ds.SeriesTime = study["StudyTime"]
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = int(instance_numbers[k])
        ds.FrameOfReferenceUID = uids["frame"]
        ds.PositionReferenceIndicator = ""
        ds.BodyPartExamined = "HEADNECK"
        ds.PatientPosition = "HFS"
        ds.ScanningSequence = "GR" if spgr else "SE"
        ds.SequenceVariant = "SP" if spgr else "SK"
        ds.ScanOptions = "FS" if spgr else ""
        ds.MRAcquisitionType = "3D" if spgr and vendor == "Siemens" else "2D"
        ds.RepetitionTime = _ds(tr)
        ds.EchoTime = _ds(te)
        ds.FlipAngle = _ds(flip)
        ds.MagneticFieldStrength = _ds(field)
        ds.ImagingFrequency = _ds(42.577478 * field)
        ds.ImagedNucleus = "1H"
        ds.EchoTrainLength = 1 if spgr or series == "t1" else 16
        if spgr:
            ds.ContrastBolusAgent = "GADOLINIUM"
            ds.ContrastBolusRoute = "IV"
        if diffusion:
            _diffusion_attributes(ds, series, int(volume.shape[1]))
        ds.SliceThickness = _ds(geo["slice_spacing"])
        ds.SpacingBetweenSlices = _ds(geo["slice_spacing"])
        ds.ImagePositionPatient = [_ds(v) for v in geo["positions"][k]]
        ds.ImageOrientationPatient = [_ds(v) for v in geo["orientation"]]
        ds.SliceLocation = _ds(float(np.dot(geo["positions"][k], geo["normal"])))
        ds.PixelSpacing = [_ds(v) for v in geo["pixel_spacing"]]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = int(volume.shape[1])
        ds.Columns = int(volume.shape[0])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.WindowCenter = _ds(round((lo + hi) / 2.0))
        ds.WindowWidth = _ds(max(round(hi - lo), 1))
        ds.PixelData = np.ascontiguousarray(volume[:, :, k].T, dtype="<i2").tobytes()
        out.append(ds)
    return out


def _diffusion_attributes(ds: Dataset, series: str, phase_lines: int) -> None:
    """What a scanner writes on a single-shot spin-echo EPI diffusion series (in place).

    Both: ScanningSequence SE\\EP, fat saturation, EchoTrainLength = the phase-encoding
    lines (one shot). DWI: DiffusionBValue (0018,9087) and DiffusionDirectionality
    ISOTROPIC (a trace image averages the three gradient directions, so it has no
    DiffusionGradientDirectionSequence). ADC: a RealWorldValueMapping to µm²/s (UCUM
    ``um2/s``, 1e-6 mm²/s per stored integer, as Siemens stores its ADC maps).
    """
    ds.ScanningSequence = ["SE", "EP"]
    ds.SequenceVariant = ["SK", "SP"]
    ds.ScanOptions = "FS"
    ds.MRAcquisitionType = "2D"
    ds.EchoTrainLength = phase_lines
    if series == "dwi":
        ds.DiffusionBValue = B_VALUE
        ds.DiffusionDirectionality = "ISOTROPIC"
        return
    units = Dataset()
    units.CodeValue = "um2/s"
    units.CodingSchemeDesignator = "UCUM"
    units.CodeMeaning = "um2/s"
    mapping = Dataset()
    mapping.LUTExplanation = "ADC 1e-6 mm2/s"
    mapping.LUTLabel = "ADC"
    mapping.MeasurementUnitsCodeSequence = DicomSequence([units])
    mapping.RealWorldValueFirstValueMapped = 0
    mapping.RealWorldValueLastValueMapped = ADC_MAX
    mapping.RealWorldValueIntercept = 0.0
    mapping.RealWorldValueSlope = 1.0
    ds.RealWorldValueMappingSequence = DicomSequence([mapping])


def _rtstruct(labels: np.ndarray, affine: np.ndarray, series: str, study: dict, uids: dict,
              scanner: str) -> Dataset:
    """RT Structure Set of one series' label map (indexed [i, j, k])."""
    ds = _file_dataset(RTStructureSetStorage, uids["rs_sop"])
    _patient_study(ds, study)
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = "parotidlib"
    ds.ManufacturerModelName = "synthetic contours"
    ds.SeriesInstanceUID = uids["rs_series"]
    ds.SeriesNumber = _SERIES_NUMBER[series] + _RS_SERIES_OFFSET
    ds.SeriesDescription = f"RTSTRUCT {SERIES_DESCRIPTIONS[_vendor(scanner)][series]}"
    ds.SeriesDate = study["StudyDate"]
    ds.SeriesTime = study["StudyTime"]
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "PAROTID"
    ds.StructureSetName = "PAROTID"
    ds.StructureSetDate = study["StudyDate"]
    ds.StructureSetTime = study["StudyTime"]
    ds.OperatorsName = ""

    def image_ref(k: int) -> Dataset:
        ref = Dataset()
        ref.ReferencedSOPClassUID = MRImageStorage
        ref.ReferencedSOPInstanceUID = uids["sop"][k]
        return ref

    rt_series = Dataset()
    rt_series.SeriesInstanceUID = uids["series"]
    rt_series.ContourImageSequence = DicomSequence(
        [image_ref(k) for k in range(labels.shape[2])])
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    rt_study.ReferencedSOPInstanceUID = study["StudyInstanceUID"]
    rt_study.RTReferencedSeriesSequence = DicomSequence([rt_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = uids["frame"]
    frame.RTReferencedStudySequence = DicomSequence([rt_study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    lps = _LPS @ np.asarray(affine, dtype=np.float64)
    roi_items, contour_items, observations = [], [], []
    for number, name, value, kind, colour in ROIS:
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = uids["frame"]
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(roi)
        rc = Dataset()
        rc.ROIDisplayColor = list(colour)
        rc.ReferencedROINumber = number
        contours = []
        mask = labels == value
        for k in np.flatnonzero(mask.any(axis=(0, 1))):
            for curve in mask_to_contours(mask[:, :, k]):
                pts = np.column_stack([curve, np.full(len(curve), float(k)),
                                       np.ones(len(curve))]) @ lps.T
                item = Dataset()
                item.ContourImageSequence = DicomSequence([image_ref(int(k))])
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(curve)
                item.ContourNumber = len(contours) + 1
                item.ContourData = [f"{v:.4f}" for v in pts[:, :3].ravel()]
                contours.append(item)
        if contours:
            rc.ContourSequence = DicomSequence(contours)
        contour_items.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.ROIObservationLabel = name
        obs.RTROIInterpretedType = kind
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds.ROIContourSequence = DicomSequence(contour_items)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


# --------------------------------------------------------------------------- one patient


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    return data, np.asarray(img.affine, dtype=np.float64)


def _study_header(row: pd.Series, seed: int, study_uid: str) -> dict:
    pid = str(row["patient_id"])
    rng = _rng("study", seed, pid)
    study_date = dt.date(2016, 1, 1) + dt.timedelta(days=int(rng.integers(0, 4 * 365)))
    age = int(round(float(row["age"])))
    birth = dt.date(study_date.year - age - 1, 1, 1) + dt.timedelta(
        days=int(rng.integers(0, 365)))
    if (study_date - birth).days // 365.25 != age:  # keep PatientAge consistent
        birth = dt.date(study_date.year - age, 1, 1)
    return {
        "PatientName": f"SYNTHETIC^{pid}",
        "PatientID": pid,
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": str(row["sex"]),
        "PatientAge": f"{min(age, 999):03d}Y",
        "StudyInstanceUID": study_uid,
        "StudyDate": study_date.strftime("%Y%m%d"),
        "StudyTime": f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}00",
        "StudyID": f"{int(rng.integers(1, 99999)):05d}",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
        "StudyDescription": "MRI NECK PAROTID",
    }


def _write_patient(row: dict, nifti_root: str, out_dir: str, settings: dict) -> str:
    """Write one patient's DICOM (and reference NIfTI if transformed); worker entry point."""
    row = pd.Series(row)
    pid = str(row["patient_id"])
    out = Path(out_dir)
    nifti = Path(nifti_root)
    seed = settings["seed"]
    content_key = (seed, settings["n_patients"], settings["pixel_scale"],
                   settings["oblique_deg"], settings["anisotropic"], GENERATOR_VERSION)
    written = (*SERIES, *DIFFUSION_SERIES) if settings.get("diffusion") else SERIES
    volumes = {s: _load(nifti / row[s]) for s in written}
    labels = {s: _load(nifti / row[f"{s}_labels"])[0] for s in written}
    affines = {s: volumes[s][1] for s in written}
    transformed = bool(settings["oblique_deg"]) or bool(settings["anisotropic"])
    if transformed:
        world = _world_transform(affines["t1"], volumes["t1"][0].shape,
                                 float(settings["oblique_deg"]), bool(settings["anisotropic"]))
        # the float32 precision the reference NIfTI stores, so both agree exactly
        affines = {s: (world @ affines[s]).astype(np.float32).astype(np.float64)
                   for s in written}
        ref_dir = out / REFERENCE_DIR
        final = ref_dir / pid
        if not final.is_dir():
            tmp = ref_dir / f".{pid}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for s in written:
                write_nifti(tmp / f"{s}.nii.gz", volumes[s][0], affines[s])
                write_nifti(tmp / f"{s}_labels.nii.gz", labels[s], affines[s], labels=True)
            os.replace(tmp, final)

    final = out / pid
    if final.is_dir():
        return pid
    tmp = out / f".{pid}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    study_uid = _uid(*content_key, pid, "study")
    study = _study_header(row, seed, study_uid)
    frame_uid = _uid(*content_key, pid, "frame")
    shuffle = bool(settings["shuffle"])
    rng = _rng("shuffle", seed, pid)
    files: list[tuple[Path | None, Dataset]] = []
    for series in written:
        data = volumes[series][0]
        if not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"{pid} {series}: image is not integer ({data.dtype})")
        data = data.astype(np.int16)
        nz = data.shape[2]
        uids = {"study": study_uid, "frame": frame_uid,
                "series": _uid(*content_key, pid, series, "series"),
                "sop": [_uid(*content_key, pid, series, "image", k) for k in range(nz)],
                "rs_series": _uid(*content_key, pid, series, "rtstruct-series"),
                "rs_sop": _uid(*content_key, pid, series, "rtstruct")}
        numbers = (rng.permutation(nz) + 1) if shuffle else np.arange(1, nz + 1)
        slices = _mr_slices(data, affines[series], series, row, study, uids, numbers)
        for k, ds in enumerate(slices):
            files.append((None if shuffle else Path(series) / f"IM_{k + 1:04d}.dcm", ds))
        if settings["contours_on"] == "all" or series == "t1":
            rs = _rtstruct(np.asarray(labels[series]), affines[series], series, study, uids,
                           str(row["scanner"]))
            files.append((None if shuffle else Path(f"{series}_rtstruct") / "RS_0001.dcm", rs))
    if shuffle:
        order = rng.permutation(len(files))
        names = rng.choice(1_000_000, size=len(files), replace=False)
        files = [(Path(f"IM_{names[n]:06d}"), files[i][1]) for n, i in enumerate(order)]
    for rel, ds in files:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        _save(ds, tmp / rel)
    os.replace(tmp, final)
    return pid


# --------------------------------------------------------------------------- the cohort


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def reference_manifest(out_dir: str | os.PathLike) -> Path:
    """The NIfTI manifest a DICOM export's round trip must be compared with.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`write_dicom_cohort`.

    Returns
    -------
    Path
        ``out_dir/reference/manifest.csv`` for oblique or anisotropic exports, else the
        manifest of the NIfTI cohort the export was made from (from ``SOURCE.json``).
    """
    out_dir = Path(out_dir)
    source = json.loads((out_dir / SOURCE_NAME).read_text())
    return (out_dir / source["reference_manifest"]).resolve()


def _validate(n_patients: int, seed: int, oblique_deg: float, contours_on: str) -> None:
    if contours_on not in ("all", "t1"):
        raise ValueError(f"contours_on must be 'all' or 't1', got {contours_on!r}")
    if not np.isfinite(float(oblique_deg)) or abs(float(oblique_deg)) >= 90.0:
        raise ValueError(f"oblique_deg must be finite and within (-90, 90), "
                         f"got {oblique_deg!r}")
    check_int("n_patients", n_patients, minimum=1)
    check_int("seed", seed, minimum=0)


def write_dicom_cohort(out_dir: str | os.PathLike, n_patients: int = 233, seed: int = 0, *,
                       oblique_deg: float = 0.0, anisotropic: bool = False,
                       shuffle: bool = False, contours_on: str = "all",
                       jobs: int | None = None, pixel_scale: float = 1.0,
                       nifti_dir: str | os.PathLike | None = None,
                       diffusion: bool = False) -> Path:
    """Write the synthetic cohort as DICOM (MR series, RTSTRUCTs) with clinical.csv.

    Parameters
    ----------
    out_dir : path
        Export folder (layout in the module docstring). A folder holding an export with the
        same settings is resumed (complete patients are skipped); one with other settings
        or foreign content is refused.
    n_patients, seed : int
        As :func:`~parotidlib.synth.generate.generate_cohort`.
    oblique_deg : float
        Rotate every patient's geometry about x, then y, by this angle (degrees, around
        the T1 volume centre; the same rotation for the three series). The rotated NIfTI
        reference is written to ``out_dir/reference/``.
    anisotropic : bool
        Stretch world x by 1.3 about the T1 centre, so the column spacing of every series
        is 1.3 times its row spacing (the generator's pixels are square); the NIfTI
        reference is written to ``out_dir/reference/``.
    shuffle : bool
        A flat folder of ``IM_NNNNNN`` files per patient in random order, and randomly
        permuted InstanceNumbers. Content and UIDs are unchanged.
    contours_on : {"all", "t1"}
        Which series get an RTSTRUCT.
    jobs : int, optional
        Worker processes (None: ``os.cpu_count()``); for the NIfTI generation too.
    pixel_scale : float
        As :func:`~parotidlib.synth.generate.generate_cohort` (> 1 for small test volumes).
    nifti_dir : path, optional
        The NIfTI cohort to generate or reuse; default ``<out_dir.parent>/.<name>.nifti``.
    diffusion : bool
        Also the diffusion series (``generate_cohort(diffusion=True)``): ``<patient_id>/dwi``
        (trace-weighted, b = 800, DiffusionBValue, ImageType ORIGINAL\\PRIMARY\\DIFFUSION\\
        TRACEW) and ``<patient_id>/adc`` (ImageType DERIVED\\PRIMARY\\DIFFUSION\\ADC, µm²/s
        integers with a RealWorldValueMapping), each with its RTSTRUCT under
        ``contours_on="all"``. Recorded in SOURCE.json's settings only when true.

    Returns
    -------
    Path
        ``out_dir``. ``out_dir/SOURCE.json`` names the reference manifest
        (:func:`reference_manifest`).

    Raises
    ------
    FileExistsError
        ``out_dir`` holds something else than an export with these settings.
    """
    _validate(n_patients, seed, oblique_deg, contours_on)
    out_dir = Path(out_dir)
    nifti_dir = Path(nifti_dir) if nifti_dir is not None else \
        out_dir.parent / f".{out_dir.name}.nifti"
    settings = {"n_patients": int(n_patients), "seed": int(seed),
                "oblique_deg": float(oblique_deg), "anisotropic": bool(anisotropic),
                "shuffle": bool(shuffle), "contours_on": contours_on,
                "pixel_scale": float(pixel_scale)}
    if check_bool("diffusion", diffusion):
        settings["diffusion"] = True
    source_path = out_dir / SOURCE_NAME
    if out_dir.exists() and any(out_dir.iterdir()):
        try:
            found = json.loads(source_path.read_text())
        except (OSError, ValueError):
            found = None
        if found is None or found.get("generator") != "parotidlib.synth.dicom":
            raise FileExistsError(f"out_dir {str(out_dir)!r} is not empty and is not a "
                                  f"synthetic DICOM export; choose an empty or new folder")
        if found.get("settings") != settings or found.get("version") != DICOM_EXPORT_VERSION:
            raise FileExistsError(f"out_dir {str(out_dir)!r} holds a synthetic DICOM export "
                                  f"with other settings ({found.get('settings')}); remove "
                                  f"it or choose another folder")
    manifest_path = generate_cohort(nifti_dir, n_patients=int(n_patients), seed=int(seed),
                                    jobs=jobs, pixel_scale=float(pixel_scale),
                                    diffusion=diffusion)
    manifest = pd.read_csv(manifest_path, dtype={"patient_id": str, "sex": str})
    out_dir.mkdir(parents=True, exist_ok=True)
    transformed = bool(oblique_deg) or bool(anisotropic)
    ref_manifest = out_dir / REFERENCE_DIR / "manifest.csv" if transformed else manifest_path
    source = {"generator": "parotidlib.synth.dicom", "version": DICOM_EXPORT_VERSION,
              "synth_version": GENERATOR_VERSION, "settings": settings,
              "nifti_manifest": _rel(manifest_path, out_dir),
              "reference_manifest": _rel(ref_manifest, out_dir),
              "patients": list(manifest["patient_id"]), "complete": False}
    write_text_atomic(source_path, json.dumps(source, indent=2) + "\n")

    rows = manifest.to_dict("records")
    args = (str(manifest_path.parent), str(out_dir), settings)
    workers = min(int(jobs or os.cpu_count() or 1), len(rows))
    if workers == 1:
        for row in rows:
            _write_patient(row, *args)
    else:
        from parotidlib.processes import worker_pool
        method = "fork" if sys.platform.startswith("linux") else None
        with worker_pool(workers, method) as pool:
            for future in cf.as_completed([pool.submit(_write_patient, r, *args)
                                           for r in rows]):
                future.result()

    if transformed:
        write_text_atomic(ref_manifest, manifest_path.read_text())  # same rows and paths
    clinical = manifest[["patient_id", "histology", "tumor_side", "age", "sex"]]
    write_text_atomic(out_dir / CLINICAL_NAME, clinical.to_csv(index=False, lineterminator="\n"))
    source["complete"] = True
    write_text_atomic(source_path, json.dumps(source, indent=2) + "\n")
    logger.info("synthetic DICOM cohort written to %s (%d patients)", out_dir, len(rows))
    return out_dir
