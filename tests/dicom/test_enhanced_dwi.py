"""A multi-frame (Enhanced MR) DWI holding several b-values, split by its frames' MR
Diffusion Macro (PS3.3 C.8.13.5.9) as a classic series is split by its files
(parotidlib.dicom.diffusion_roles.pick_b_value, parotidlib.dicom.volume).

The object is written by another writer than the kit's: highdicom's Legacy Converted
Enhanced MR Image of the synthetic export's T2 files, each position four times (b = 0, the
b = 800 trace, two b = 800 directional images, each with its own pixels), then edited with
pydicom to carry each frame's b-value and directionality where Enhanced MR writes them (a
per-frame MRDiffusionSequence), as Philips and Siemens XA export them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from parotidlib.dicom.diffusion_roles import b_values, pick_b_value
from parotidlib.dicom.headers import scan_tree
from parotidlib.dicom.importer import import_dicom
from parotidlib.dicom.rules import load_rules
from parotidlib.dicom.volume import SeriesError, read_volume

hd = pytest.importorskip("highdicom")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EXPORT = (1, 5)  # patients, seed (conftest's source fixture)
OPT_IN = ("roles_to_import: {t1: required, ce_t1: required, t2: required, dwi: required, "
          "adc: optional}\n")

#: Each position's images: (b-value, DiffusionDirectionality, pixels from the T2's).
IMAGES = (
    (0.0, "NONE", lambda p: p),
    (800.0, "ISOTROPIC", lambda p: p // 3 + 7),
    (800.0, "DIRECTIONAL", lambda p: p // 2 + 1),
    (800.0, "DIRECTIONAL", lambda p: p // 5 + 2),
)


def _patient(export: Path) -> Path:
    return next(p for p in sorted(export.iterdir()) if p.is_dir() and not p.name.startswith("."))


def write_dwi(patient: Path, images=IMAGES) -> Path:
    """The patient's multi-frame DWI (folder ``dwi/``), frames ordered b-value by b-value."""
    t2 = [pydicom.dcmread(p) for p in sorted((patient / "t2").iterdir())]
    series_uid = generate_uid()
    datasets, frames = [], []
    for k, (b, direction, pixels) in enumerate(images):
        for ds in t2:
            ds = copy.deepcopy(ds)
            ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, 30
            ds.SeriesDescription = ds.ProtocolName = "ep2d_diff b0 800"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = int(ds.InstanceNumber) + 1000 * k
            ds.PixelData = np.ascontiguousarray(pixels(ds.pixel_array)).astype(
                ds.pixel_array.dtype).tobytes()
            datasets.append(ds)
            frames.append((b, direction))
    image = hd.legacy.LegacyConvertedEnhancedMRImage(
        datasets, series_instance_uid=series_uid, series_number=30,
        sop_instance_uid=hd.UID(), instance_number=1)
    out = patient / "dwi" / "DWI.dcm"
    out.parent.mkdir()
    image.save_as(out)
    ds = pydicom.dcmread(out)
    assert int(ds.NumberOfFrames) == len(frames)
    for group, (b, direction) in zip(ds.PerFrameFunctionalGroupsSequence, frames,
                                     strict=True):
        item = Dataset()
        item.DiffusionBValue = b
        item.DiffusionDirectionality = direction
        group.MRDiffusionSequence = Sequence([item])
    ds.save_as(out)
    return out


def _series(folder: Path):
    series, problems = scan_tree(folder)
    assert problems == [] and len(series) == 1
    return series[0]


def _rules(tmp_path: Path, text: str = ""):
    path = tmp_path / "rules.yaml"
    path.write_text(OPT_IN + text)
    return load_rules(path)


def test_the_b800_trace_frames_are_the_dwi(export, tmp_path):
    patient = _patient(export)
    out = write_dwi(patient)
    series = _series(out.parent)
    assert b_values(series) == [0.0, 800.0]  # from the frames, not the first frame alone
    chosen, note = pick_b_value(series, _rules(tmp_path))
    assert chosen is not None, note
    n = len(list((patient / "t2").iterdir()))
    assert chosen.frames_b_value == 800.0 and chosen.files == series.files
    assert "b = 800 s/mm² (of 0, 800)" in note
    assert f"{2 * n} directional image(s) left out, the trace kept" in note
    assert f"({n} of the {4 * n} frames of one multi-frame object)" in note
    assert b_values(chosen) == [800.0]
    t2 = read_volume(_series(patient / "t2"))
    dwi = read_volume(chosen)
    want = np.asarray(t2.dataobj) // 3 + 7
    np.testing.assert_array_equal(np.asarray(dwi.dataobj), want)
    np.testing.assert_allclose(dwi.affine, t2.affine, atol=1e-4)
    with pytest.raises(SeriesError, match="several echoes|duplicate slice position"):
        read_volume(series)  # all 4 frames per position: not one volume


def test_the_rules_pick_or_refuse_among_the_frames_b_values(export, tmp_path):
    out = write_dwi(_patient(export))
    series = _series(out.parent)
    chosen, note = pick_b_value(series, _rules(tmp_path, "series:\n  dwi: {b_value: 1000}\n"))
    assert chosen is None and "holds b-values 0, 800 s/mm²" in note
    chosen, note = pick_b_value(series, _rules(tmp_path, "series:\n  dwi: {b_value: 800}\n"))
    assert chosen is not None and chosen.frames_b_value == 800.0


def test_only_directional_frames_at_the_b_value_are_refused(export, tmp_path):
    out = write_dwi(_patient(export), images=[IMAGES[0], IMAGES[2]])
    chosen, note = pick_b_value(_series(out.parent), _rules(tmp_path))
    assert chosen is None
    assert "holds only directional images at that b-value" in note and "trace" in note


def test_imported_end_to_end_as_the_b800_trace(export, tmp_path):
    patient = _patient(export)
    write_dwi(patient)
    rules = tmp_path / "rules.yaml"
    rules.write_text(OPT_IN)
    result = import_dicom(export, tmp_path / "C", clinical=export / "clinical.csv",
                          rules=rules, progress=False)
    assert len(result.imported) == 1, result.refused
    row = pd.read_csv(result.manifest, dtype=str).iloc[0]
    assert float(row["dwi_b_value_s_mm2"]) == 800.0
    dwi = nib.load(result.cohort_dir / row["dwi"])
    t2 = nib.load(result.cohort_dir / row["t2"])
    np.testing.assert_array_equal(np.asarray(dwi.dataobj), np.asarray(t2.dataobj) // 3 + 7)
    np.testing.assert_allclose(dwi.affine, t2.affine, atol=1e-4)
    decided = " ".join(pd.read_csv(result.report, dtype=str)["decided_by"])
    assert "of the" in decided and "frames of one multi-frame object" in decided
