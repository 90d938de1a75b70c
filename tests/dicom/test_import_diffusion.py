"""The DWI and ADC end to end: the synthetic export's T2 series edited into a GE-style DWI
series holding b = 0 and b = 800 (b-value in the GE private element (0043,1039) with GE's
multi-b bias; one image per position and b-value, on the T2's grid) and an ADC map on its own
grid (every other row and column, twice the pixel spacing). Imported with the diffusion roles
asked for, the DWI is the b = 800 images on the T2's affine, the ADC its values on its own
affine with the unit recorded; not asked for, the import is byte for byte what it was."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from parotidlib.data.cohort import read_manifest
from parotidlib.dicom.importer import import_dicom

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EXPORT = (2, 3)  # patients, seed (conftest's source fixture)
OPT_IN = ("roles_to_import: {t1: required, ce_t1: required, t2: required, dwi: required, "
          "adc: required}\n")


def _patients(src: Path) -> list[Path]:
    return sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))


def _b800(pixels: np.ndarray) -> np.ndarray:
    return (pixels // 3 + 7).astype(pixels.dtype)


def _adc(pixels: np.ndarray) -> np.ndarray:
    """ADC values in 10^-6 mm²/s (GE's convention): tissue around 1 x 10^-3 mm²/s."""
    return (pixels[::2, ::2] + 900).astype(pixels.dtype)


def _write(ds: pydicom.Dataset, pixels: np.ndarray, folder: Path, name: str,
           series_uid: str, number: int, description: str, image_type: list[str]) -> None:
    ds = copy.deepcopy(ds)
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, number
    ds.SeriesDescription = ds.ProtocolName = description
    ds.ImageType = image_type
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    folder.mkdir(exist_ok=True)
    ds.save_as(folder / name, enforce_file_format=True)


def add_diffusion(patient: Path) -> None:
    """A DWI series (b 0 and 800 at every T2 position) and an ADC series of the patient's
    T2, as a GE scanner writes them (the export's Manufacturer is GE)."""
    dwi_uid, adc_uid = generate_uid(), generate_uid()
    for k, path in enumerate(sorted((patient / "t2").iterdir())):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        for b, data in ((0, pixels), (800, _b800(pixels))):
            dwi = copy.deepcopy(ds)
            dwi.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(
                0x39, "IS", [str(1_000_000_000 + b), "8", "0", "0"])
            dwi.InstanceNumber = 2 * k + 1 + (b > 0)
            _write(dwi, data, patient / "dwi", f"b{b}_{k:03d}.dcm", dwi_uid, 20,
                   "DWI ALL b800", ["ORIGINAL", "PRIMARY", "OTHER"])
        adc = copy.deepcopy(ds)
        adc.PixelSpacing = [2 * float(v) for v in ds.PixelSpacing]
        _write(adc, _adc(pixels), patient / "adc", f"adc_{k:03d}.dcm", adc_uid, 21,
               "Apparent Diffusion Coefficient (mm2/s)", ["DERIVED", "PRIMARY", "ADC"])


def t2_raw(patient: Path) -> np.ndarray:
    """The T2's stored pixels as the NIfTI holds them ([column, row, slice], slices in file
    order, which the synthetic export writes from foot to head)."""
    files = sorted((patient / "t2").iterdir())
    return np.stack([pydicom.dcmread(f).pixel_array.T for f in files], axis=-1)


def _volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj), image.affine


def test_dwi_and_adc_imported_on_their_grids(export, tmp_path):
    for patient in _patients(export):
        add_diffusion(patient)
    rules = tmp_path / "rules.yaml"
    rules.write_text(OPT_IN)
    result = import_dicom(export, tmp_path / "C", clinical=export / "clinical.csv",
                          rules=rules, progress=False)
    assert len(result.imported) == 2, result.refused
    manifest = pd.read_csv(result.manifest, dtype=str)
    assert list(manifest.columns[-8:]) == [
        "adc", "adc_labels", "adc_labels_source", "adc_scale_mm2_s",
        "dwi", "dwi_labels", "dwi_labels_source", "dwi_b_value_s_mm2"]
    assert set(manifest["dwi_b_value_s_mm2"].astype(float)) == {800.0}
    assert set(manifest["adc_scale_mm2_s"].astype(float)) == {1e-6}
    assert set(manifest["adc_labels_source"]) == {"carried over from t1"}
    read_manifest(result.manifest, check_data=True)  # still a valid cohort of the kit
    identities = pd.read_csv(tmp_path / "C.identities.csv", dtype=str)
    to_dicom = dict(zip(identities["patient_id"], identities["dicom_patient_id"], strict=True))
    cohort = result.cohort_dir
    for _, row in manifest.iterrows():
        patient = export / to_dicom[row["patient_id"]]
        raw = t2_raw(patient)
        t2, t2_affine = _volume(cohort / row["t2"])
        np.testing.assert_array_equal(t2, raw)
        dwi, dwi_affine = _volume(cohort / row["dwi"])
        np.testing.assert_allclose(dwi_affine, t2_affine, atol=1e-6)
        np.testing.assert_array_equal(dwi, _b800(raw))          # the b = 800 images only
        adc, adc_affine = _volume(cohort / row["adc"])
        expected = t2_affine.copy()
        expected[:3, :2] *= 2                                  # twice the spacing, same origin
        np.testing.assert_allclose(adc_affine, expected, atol=1e-6)
        np.testing.assert_array_equal(adc, raw[::2, ::2] + 900)
        median_mm2_s = np.median(adc[adc > 0]) * float(row["adc_scale_mm2_s"])
        assert 5e-4 < median_mm2_s < 3e-3
        labels, labels_affine = _volume(cohort / row["adc_labels"])
        assert labels.shape == adc.shape and (labels == 3).any()
        np.testing.assert_allclose(labels_affine, adc_affine, atol=1e-6)
    report = pd.read_csv(result.report, dtype=str)
    decided = " ".join(report["decided_by"])
    assert "dwi: a b-value > 0 (GE (0043,xx39) value 1); b = 800 s/mm² (of 0, 800)" in decided
    assert "adc: a b-value > 0" not in decided and "the convention of GE" in decided


def _contents(cohort: Path) -> dict[str, bytes]:
    """Every file of the cohort but the import records (whose input keys cover the export),
    NIfTI decompressed."""
    out = {}
    for path in sorted(cohort.rglob("*")):
        if path.is_file() and path.name != "import.json":
            data = path.read_bytes()
            out[str(path.relative_to(cohort))] = (gzip.decompress(data)
                                                  if path.suffix == ".gz" else data)
    return out


def test_not_asked_for_the_import_is_unchanged(source, export, tmp_path):
    key = tmp_path / "key"
    before = import_dicom(source, tmp_path / "A", clinical=source / "clinical.csv",
                          key_file=key, progress=False)
    for patient in _patients(export):
        add_diffusion(patient)
    after = import_dicom(export, tmp_path / "B", clinical=export / "clinical.csv",
                         key_file=key, progress=False)
    assert len(after.imported) == 2 and not after.refused
    assert after.manifest.read_bytes() == before.manifest.read_bytes()
    a, b = _contents(before.cohort_dir), _contents(after.cohort_dir)
    assert sorted(a) == sorted(b) and a == b
    assert {Path(name).name for name in a if "/" in name} == {
        f"{s}{x}.nii.gz" for s in ("t1", "ce_t1", "t2") for x in ("", "_labels")}


def test_optional_and_required_roles_where_a_patient_has_none(export, tmp_path):
    first, _ = _patients(export)  # the second patient has no diffusion series
    add_diffusion(first)
    rules = tmp_path / "rules.yaml"
    rules.write_text(OPT_IN.replace("dwi: required, adc: required",
                                    "dwi: optional, adc: optional"))
    result = import_dicom(export, tmp_path / "C", clinical=export / "clinical.csv",
                          rules=rules, progress=False)
    assert len(result.imported) == 2, result.refused
    manifest = pd.read_csv(result.manifest, dtype=str, keep_default_na=False)
    assert sorted(manifest["dwi"].str.len().gt(0)) == [False, True]
    assert sorted(manifest["adc_scale_mm2_s"]) == ["", "1e-06"]
    rules.write_text(OPT_IN + "series:\n  dwi: {b_value: 1000}\n")
    result = import_dicom(export, tmp_path / "E", clinical=export / "clinical.csv",
                          rules=rules, progress=False)
    assert not result.imported and len(result.refused) == 2
    problems = " ".join(p for ps in result.refused.values() for p in ps)
    assert "dwi: no series can be taken" in problems and "holds b-values 0, 800" in problems
    assert "adc: no series matches the rules" in problems
