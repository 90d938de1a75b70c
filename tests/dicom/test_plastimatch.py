"""The DICOM import on an export the kit did not write: plastimatch (Debian package, 1.9.x).

The kit's own writer (parotidlib.synth.dicom) and its importer share their idea of DICOM, so a
round trip through both cannot catch a misreading of the standard that both make. Here every
MR series and every RTSTRUCT is written by ``plastimatch convert`` from the synthetic NIfTI
cohort (one image and one binary mask per ROI: Parotid_R, Parotid_L, GTV), and the import must
give the NIfTI cohort back: images equal voxel for voxel, affines within 1e-3 mm, Dice 1.0 per
structure on every series (each series has its own structure set).

How the export is made, and what was set how:

- By plastimatch's own options: PatientID (``--patient-id``), PatientName
  (``--patient-name``), PatientSex (``--metadata 0010,0040=``), SeriesDescription
  (``--series-description``), SeriesNumber (``--series-number``), Manufacturer
  (``--metadata 0008,0070=``), Modality MR (``--modality MR``), the RTSTRUCT's series
  description and number. The three series of a patient share StudyInstanceUID and
  FrameOfReferenceUID as in a real study: T1 is written first; CE-T1 and T2 are written with
  ``--referenced-ct <the T1 folder>`` (plastimatch then takes the study and frame of reference
  UIDs from it) and ``--fixed <their own NIfTI>`` (else plastimatch resamples them onto the
  T1 grid).
- Not settable with plastimatch 1.9.4: it copies only a fixed list of tags from
  ``--metadata`` (patient, general series and equipment modules); RepetitionTime (0018,0080),
  EchoTime (0018,0081) and ContrastBolusAgent (0018,0010) given there are dropped, and
  ``--metadata`` StudyInstanceUID / FrameOfReferenceUID are ignored (new UIDs are made).
  Patient "PM0001" is imported exactly as plastimatch wrote it (roles from the descriptions
  alone: "T1 SE AX +C" is the contrast series by its text). For patient "PM0002" the test adds
  TR, TE and ContrastBolusAgent with pydicom where plastimatch did not write them (nothing
  else in plastimatch's files is changed), so the tag-first path is exercised too.
- Glands: for PM0001 the tumour-side gland mask includes the tumour (the whole gland, as a
  clinic contours it); for PM0002 the gland masks are the gland label only. The import draws
  the glands first and the tumour over them, so both give the label map back.
- PM0003 is the kit's oblique (20 degrees) and anisotropic (column spacing 1.3 x row spacing)
  geometry, from the reference NIfTI of ``write_dicom_cohort(oblique_deg=20,
  anisotropic=True)``; plastimatch writes its direction cosines and spacings.

The plastimatch quirks the import meets here: ImageType DERIVED\\SECONDARY\\REFORMATTED,
RescaleType "HU", InstanceNumber from 0, Manufacturer "Plastimatch" where not set, the
RTSTRUCT's ReferencedSOPClassUID "CT Image Storage" for MR images, contours from a marching
squares extraction of the masks (with keyholes), file names ``image0000_<uid>.dcm`` and
``rtss_<uid>.dcm`` in one folder per series.

Skipped, with the reason, where plastimatch is not installed; ``.ci/run`` installs it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from parotidlib.constants import SERIES
from parotidlib.dicom.importer import import_dicom
from parotidlib.synth.dicom import reference_manifest, write_dicom_cohort
from parotidlib.synth.generate import generate_cohort

PLASTIMATCH = shutil.which("plastimatch")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(PLASTIMATCH is None, reason="plastimatch is not installed (apt-get "
                       "install plastimatch); .ci/run installs it"),
]

#: What a scanner would have written per series: description, TR (ms), TE (ms), contrast agent.
HEADERS = {
    "t1": ("T1 SE AX", 500, 10, None),
    "ce_t1": ("T1 SE AX +C", 500, 10, "GADOLINIUM"),
    "t2": ("T2 FSE AX", 4000, 90, None),
}
#: ROI name -> label code in the kit's label maps.
ROIS = {"Parotid_R": 1, "Parotid_L": 2, "GTV": 3}
GLAND_OF_SIDE = {"right": (1,), "left": (2,), "both": (1, 2)}
#: DICOM PatientID -> (NIfTI source, whether the test adds TR/TE/agent, glands hold the tumour)
CASES = {
    "PM0001": ("axial", 0, False, True),
    "PM0002": ("axial", 1, True, False),
    "PM0003": ("oblique", 0, False, True),
}


def plastimatch(*args: str) -> None:
    done = subprocess.run([PLASTIMATCH, "convert", *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def write_masks(labels_path: Path, folder: Path, tumour_in_gland: tuple[int, ...]) -> None:
    """One binary mask per ROI (the ROI name is the file name, as plastimatch reads it)."""
    labels = nib.load(labels_path)
    data = np.asarray(labels.dataobj)
    folder.mkdir(parents=True)
    for name, code in ROIS.items():
        mask = data == code
        if code in tumour_in_gland:
            mask |= data == ROIS["GTV"]
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), labels.affine),
                 folder / f"{name}.nii.gz")


def add_scanner_tags(series_dir: Path, tr: float, te: float, agent: str | None) -> None:
    """Add the tags plastimatch cannot write, and only those, where it did not write them."""
    for path in sorted(series_dir.glob("image*.dcm")):
        ds = pydicom.dcmread(path)
        if "RepetitionTime" not in ds:
            ds.RepetitionTime = tr
        if "EchoTime" not in ds:
            ds.EchoTime = te
        if agent and "ContrastBolusAgent" not in ds:
            ds.ContrastBolusAgent = agent
        ds.save_as(path)


def write_patient(dicom_pid: str, source: pd.Series, nifti_root: Path, out: Path,
                  tags: bool, whole_gland: bool, work: Path) -> None:
    tumour_in_gland = GLAND_OF_SIDE[source["tumor_side"]] if whole_gland else ()
    for number, series in enumerate(SERIES, start=1):
        description, tr, te, agent = HEADERS[series]
        image = nifti_root / source[series]
        masks = work / dicom_pid / series
        write_masks(nifti_root / source[f"{series}_labels"], masks, tumour_in_gland)
        args = ["--input", str(image), "--input-prefix", str(masks),
                "--output-dicom", str(out / series), "--modality", "MR",
                "--patient-id", dicom_pid, "--patient-name", f"PLASTIMATCH^{dicom_pid}",
                "--series-description", description, "--series-number", str(number),
                "--rtss-series-description", f"{description} contours",
                "--rtss-series-number", str(100 + number),
                "--metadata", f"0010,0040={source['sex']}",
                "--metadata", "0008,0070=PLASTIMATCH EXPORT",
                # dropped by plastimatch 1.9.4 (kept here in case a later version writes them)
                "--metadata", f"0018,0080={tr}", "--metadata", f"0018,0081={te}"]
        if agent:
            args += ["--metadata", f"0018,0010={agent}"]
        if series != "t1":  # the study and frame of reference of the T1, on its own grid
            args += ["--referenced-ct", str(out / "t1"), "--fixed", str(image)]
        plastimatch(*args)
        if tags:
            add_scanner_tags(out / series, tr, te, agent)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """(export folder, {DICOM PatientID: (NIfTI root, manifest row)})."""
    base = tmp_path_factory.mktemp("plastimatch")
    axial = generate_cohort(base / "nifti", n_patients=2, seed=0, jobs=1, pixel_scale=4)
    oblique = reference_manifest(write_dicom_cohort(
        base / "oblique", n_patients=1, seed=1, pixel_scale=4, jobs=1, oblique_deg=20.0,
        anisotropic=True))
    manifests = {name: (path.parent, pd.read_csv(path, dtype={"patient_id": str, "sex": str}))
                 for name, path in (("axial", axial), ("oblique", oblique))}
    src = base / "export"
    sources, clinical = {}, []
    for dicom_pid, (which, index, tags, whole_gland) in CASES.items():
        root, manifest = manifests[which]
        row = manifest.iloc[index]
        write_patient(dicom_pid, row, root, src / dicom_pid, tags, whole_gland, base / "masks")
        sources[dicom_pid] = (root, row)
        clinical.append({"patient_id": dicom_pid, **{c: row[c] for c in (
            "histology", "tumor_side", "age", "sex")}})
    pd.DataFrame(clinical).to_csv(src / "clinical.csv", index=False)
    return src, sources


@pytest.fixture(scope="module")
def imported(export, tmp_path_factory):
    src, _ = export
    return import_dicom(src, tmp_path_factory.mktemp("cohort") / "C",
                        clinical=src / "clinical.csv", progress=False)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def test_plastimatch_wrote_one_study_per_patient(export):
    src, _ = export
    for dicom_pid in CASES:
        headers = {s: pydicom.dcmread(next((src / dicom_pid / s).glob("image*.dcm")),
                                      stop_before_pixels=True) for s in SERIES}
        assert {h.Modality for h in headers.values()} == {"MR"}
        assert {h.PatientID for h in headers.values()} == {dicom_pid}
        assert len({h.StudyInstanceUID for h in headers.values()}) == 1
        assert len({h.FrameOfReferenceUID for h in headers.values()}) == 1
        assert len({h.SeriesInstanceUID for h in headers.values()}) == 3
        assert {s: h.SeriesDescription for s, h in headers.items()} == {
            s: h[0] for s, h in HEADERS.items()}
        for series in SERIES:
            (rtss,) = (src / dicom_pid / series).glob("rtss*.dcm")
            rs = pydicom.dcmread(rtss)
            ref = rs.ReferencedFrameOfReferenceSequence[0]
            assert ref.FrameOfReferenceUID == headers[series].FrameOfReferenceUID
            referenced = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
            assert referenced.SeriesInstanceUID == headers[series].SeriesInstanceUID
            assert sorted(r.ROIName for r in rs.StructureSetROISequence) == sorted(ROIS)


def test_whole_gland_masks_hold_the_tumour(export):
    """PM0001's tumour-side gland ROI includes the GTV (it overlaps it), PM0002's does not."""
    src, sources = export
    masks = src.parent / "masks"
    for dicom_pid, (_, _, _, whole_gland) in CASES.items():
        side = sources[dicom_pid][1]["tumor_side"]
        gtv = np.asarray(nib.load(masks / dicom_pid / "t1" / "GTV.nii.gz").dataobj) > 0
        for code in GLAND_OF_SIDE[side]:
            name = next(n for n, c in ROIS.items() if c == code)
            gland = np.asarray(nib.load(masks / dicom_pid / "t1" / f"{name}.nii.gz").dataobj) > 0
            assert (gland & gtv).any() == whole_gland, (dicom_pid, name)


def test_plastimatch_export_imports_exactly(export, imported):
    src, sources = export
    assert not imported.refused, imported.refused
    assert len(imported.imported) == len(CASES)
    manifest = pd.read_csv(imported.manifest, dtype=str)
    identities = pd.read_csv(imported.identities, dtype=str)
    to_dicom = dict(zip(identities["patient_id"], identities["dicom_patient_id"], strict=True))
    cohort = Path(imported.manifest).parent
    measured = []
    for _, row in manifest.iterrows():
        dicom_pid = to_dicom[row["patient_id"]]
        root, source = sources[dicom_pid]
        for series in SERIES:
            got = nib.load(cohort / row[series])
            want = nib.load(root / source[series])
            affine_error = float(np.abs(got.affine - want.affine).max())
            assert affine_error <= 1e-3, (dicom_pid, series, affine_error)
            np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj))
            got_l = np.asarray(nib.load(cohort / row[f"{series}_labels"]).dataobj)
            want_l = np.asarray(nib.load(root / source[f"{series}_labels"]).dataobj)
            assert row[f"{series}_labels_source"] == "drawn"
            for name, code in ROIS.items():
                if not (want_l == code).any():
                    continue
                score = dice(got_l == code, want_l == code)
                measured.append((dicom_pid, series, name, affine_error, score))
    table = pd.DataFrame(measured, columns=["patient", "series", "roi", "affine_error_mm",
                                           "dice"])
    print(table.to_string(index=False, float_format="{:.1e}".format))
    assert (table["dice"] == 1.0).all(), table[table["dice"] < 1.0].to_string()
    # PM0002 carried TR/TE and the agent in its tags; PM0001 none (as plastimatch wrote it)
    tagged = manifest.set_index(manifest["patient_id"].map(to_dicom))
    assert float(tagged.loc["PM0002", "t2_tr_ms"]) == 4000
    assert float(tagged.loc["PM0002", "ce_t1_te_ms"]) == 10
