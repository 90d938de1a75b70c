"""Reading and validating a cohort (parotidlib.data.cohort).

Also hosts the tiny hand-made cohort builder used by the preprocess/dataset/plot tests:
anatomy is defined in world millimetres (RAS+: the patient's right at +x) and sampled onto
each series' own grid, so that alignment through the affines is really exercised.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.affines import apply_affine

from parotidlib.constants import MANIFEST_COLUMNS
from parotidlib.data.cohort import CohortError, load_patient, read_manifest, validate_cohort
from parotidlib.data.manifest import ManifestReadError, manifest_files, read_manifest_table

# ------------------------------------------------------------------ hand-made cohort builder

RIGHT_X, LEFT_X = 12.0, -12.0  # gland centres (world x, mm); RAS+: right at +x
GLAND_HALF = (6.0, 9.0, 14.0)  # gland half sizes (mm)
TUMOUR_HALF = (3.0, 4.0, 6.0)  # tumour half sizes (mm)

#: Default grids: (shape, zooms mm, origin mm, flip_x). T1 is RAS-ordered with 1 mm pixels.
T1_GRID = ((64, 48, 10), (1.0, 1.0, 4.0), (-31.5, -23.5, -18.0), False)
CE_GRID = ((72, 56, 9), (0.9, 0.9, 4.5), (31.7, -24.6, -18.4), True)  # LAS-ordered
T2_GRID = ((53, 42, 9), (1.3, 1.25, 5.0), (-33.7, -25.9, -19.3), False)


def make_affine(zooms, origin, flip_x=False) -> np.ndarray:
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = origin
    if flip_x:
        affine[0, 0] = -zooms[0]
    return affine


def world_coords(shape, affine) -> np.ndarray:
    ijk = np.indices(shape).reshape(3, -1).T
    return apply_affine(affine, ijk).reshape(*shape, 3)


def label_world(xyz, tumor_side, tumour_centre=None):
    """Label map of the anatomy at world points xyz (..., 3)."""
    x, y, z = np.moveaxis(xyz, -1, 0)
    lab = np.zeros(x.shape, np.uint8)

    def box(cx, cy, cz, half):
        return (np.abs(x - cx) <= half[0]) & (np.abs(y - cy) <= half[1]) & \
            (np.abs(z - cz) <= half[2])

    lab[box(RIGHT_X, 0, 0, GLAND_HALF)] = 1
    lab[box(LEFT_X, 0, 0, GLAND_HALF)] = 2
    sides = ("right", "left") if tumor_side == "both" else (tumor_side,)
    for side in sides:
        centre = tumour_centre or ((RIGHT_X if side == "right" else LEFT_X), 1.0, 0.0)
        lab[box(*centre, TUMOUR_HALF)] = 3
    return lab


SERIES_LEVELS = {"t1": (60.0, 150.0, 250.0, 320.0), "ce_t1": (50.0, 120.0, 200.0, 400.0),
                 "t2": (40.0, 90.0, 140.0, 500.0)}


def intensity_world(xyz, lab, series):
    """Body box with tissue levels (body, gland, tumour) plus smooth gradients; air is 0."""
    x, y, z = np.moveaxis(xyz, -1, 0)
    body, _, gland, tumour = SERIES_LEVELS[series]
    value = np.full(x.shape, body) + 0.8 * y + 0.3 * x
    value = np.where((lab == 1) | (lab == 2), gland + 0.8 * y, value)
    value = np.where(lab == 3, tumour + 2.0 * y + 1.0 * x, value)
    inside = (np.abs(x) <= 30) & (np.abs(y) <= 22) & (np.abs(z) <= 40)
    return np.where(inside, value, 0.0).astype(np.float32)


def grid_affine(grid) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape, zooms, origin, flip_x) or (shape, affine) -> (shape, affine)."""
    if len(grid) == 2:
        return tuple(grid[0]), np.asarray(grid[1], float)
    shape, zooms, origin, flip = grid
    return tuple(shape), make_affine(zooms, origin, flip)


def make_volumes(tumor_side="right", grids=None, tumour_centre=None, label_fn=None,
                 intensity_fn=None) -> dict[str, tuple[nib.Nifti1Image, nib.Nifti1Image]]:
    """In-memory {series: (image, label map)} of the world anatomy on each series' grid."""
    grids = grids or {"t1": T1_GRID, "ce_t1": CE_GRID, "t2": T2_GRID}
    label_fn = label_fn or (lambda xyz: label_world(xyz, tumor_side, tumour_centre))
    out = {}
    for series in ("t1", "ce_t1", "t2"):
        shape, affine = grid_affine(grids[series])
        xyz = world_coords(shape, affine)
        lab = label_fn(xyz)
        img = (intensity_fn or intensity_world)(xyz, lab, series)
        out[series] = (nib.Nifti1Image(img, affine), nib.Nifti1Image(lab, affine))
    return out


def write_patient(folder: Path, pid: str, histology="malignant", tumor_side="right",
                  grids=None, tumour_centre=None, **row_extra) -> dict:
    """Write one patient's 6 NIfTI files; return its manifest row (relative paths)."""
    grids = grids or {"t1": T1_GRID, "ce_t1": CE_GRID, "t2": T2_GRID}
    row = {"patient_id": pid, "histology": histology, "tumor_side": tumor_side, "age": 55,
           "sex": "F", "scanner": "Test 1.5T"}
    for series, (img, lab) in make_volumes(tumor_side, grids, tumour_centre).items():
        nib.save(img, folder / f"{pid}_{series}.nii.gz")
        nib.save(lab, folder / f"{pid}_{series}_labels.nii.gz")
        row[series] = f"{pid}_{series}.nii.gz"
        row[f"{series}_labels"] = f"{pid}_{series}_labels.nii.gz"
    row.update(row_extra)
    return row


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def small_cohort(folder: Path, n: int = 6) -> Path:
    """n patients cycling through histologies and sides; every 3rd one is 'both'."""
    folder.mkdir(parents=True, exist_ok=True)
    hist = ("pleomorphic_adenoma", "warthin", "malignant")
    sides = ("right", "left", "both")
    rows = [write_patient(folder, f"P{i:03d}", hist[i % 3], sides[(i // 3 + i) % 3])
            for i in range(n)]
    return write_manifest(folder, rows)


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def good_cohort(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    rows = [write_patient(folder, "007", "pleomorphic_adenoma", "right", field_strength_T=1.5),
            write_patient(folder, "P2", "warthin", "both", field_strength_T=3.0),
            write_patient(folder, "P3", "malignant", "left", field_strength_T=1.5)]
    return write_manifest(folder, rows)


def test_read_valid_cohort(good_cohort):
    before = folder_digest(good_cohort.parent)
    cohort = read_manifest(good_cohort)
    assert cohort.patient_ids == ["007", "P2", "P3"]  # "007" stays text
    assert cohort.root == good_cohort.parent.resolve()
    assert cohort.skipped == []
    for col in ("t1", "ce_t1", "t2", "t1_labels"):
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in cohort.manifest[col])
    assert cohort.manifest["field_strength_T"].tolist() == [1.5, 3.0, 1.5]
    volumes = load_patient(cohort, "P2")
    assert volumes.tumor_side == "both"
    assert volumes.images["t2"].shape == T2_GRID[0]
    assert set(volumes.labels) == {"t1", "ce_t1", "t2"}
    assert validate_cohort(cohort, progress=False) == []
    assert folder_digest(good_cohort.parent) == before


def _break(folder: Path, pid: str, series: str, what: str, fn) -> None:
    """Rewrite one file of a patient with fn(data, affine) -> (data, affine)."""
    path = folder / f"{pid}_{series}{'_labels' if what == 'labels' else ''}.nii.gz"
    img = nib.load(path)
    data, affine = fn(np.asanyarray(img.dataobj).copy(), img.affine.copy())
    nib.save(nib.Nifti1Image(data, affine), path)


def test_every_problem_listed_together(tmp_path):
    rows = [write_patient(tmp_path, f"B{i}", "warthin", "right") for i in range(12)]
    rows[0]["histology"] = "lymphoma"
    rows[1]["tumor_side"] = "middle"
    rows[2]["sex"] = "X"
    rows[3]["t2"] = "does_not_exist.nii.gz"
    (tmp_path / "B4_ce_t1.nii.gz").write_bytes(b"not a nifti file at all")
    _break(tmp_path, "B5", "t2", "labels", lambda d, a: (d[:, :, :-1], a))  # other grid

    def no_tumour(d, a):
        d[d == 3] = 1
        return d, a

    def no_right_gland(d, a):  # the tumour's side (B7 has a right-sided tumour)
        d[d == 1] = 0
        return d, a

    def nan(d, a):
        d[3, 3, 3] = np.nan
        return d, a

    def bad_label(d, a):
        d = d.astype(np.float32)
        d[0, 0, 0] = 1.5
        d[0, 0, 1] = 7
        return d, a

    _break(tmp_path, "B6", "t1", "labels", no_tumour)
    _break(tmp_path, "B7", "ce_t1", "labels", no_right_gland)
    _break(tmp_path, "B8", "t2", "image", nan)
    _break(tmp_path, "B9", "t1", "labels", bad_label)
    _break(tmp_path, "B11", "t2", "labels", lambda d, a: (np.where(d == 1, 5, d), a))  # uint8
    rows.append(dict(rows[10]))  # duplicate id B10
    manifest = write_manifest(tmp_path, rows)
    before = folder_digest(tmp_path)
    with pytest.raises(CohortError) as info:
        read_manifest(manifest)
    found = {(p.patient_id, p.column) for p in info.value.problems}
    expected = {("B0", "histology"), ("B1", "tumor_side"), ("B2", "sex"), ("B3", "t2"),
                ("B4", "ce_t1"), ("B5", "t2_labels"), ("B6", "t1_labels"),
                ("B7", "ce_t1_labels"), ("B8", "t2"), ("B9", "t1_labels"),
                ("B10", "patient_id"), ("B11", "t2_labels")}
    assert expected <= found
    message = str(info.value)
    for needle in ("lymphoma", "middle", "'X'", "does_not_exist.nii.gz", "unreadable NIfTI",
                   "grid", "no tumour voxel", "no right parotid gland", "NaN/inf",
                   "not in {0, 1, 2, 3}", "[5]", "duplicate patient_id", "B4_ce_t1.nii.gz"):
        assert needle in message, needle
    assert "Traceback" not in message
    # each problem names its file (absolute path) where one exists
    b8 = [p for p in info.value.problems if p.patient_id == "B8"][0]
    assert b8.path == str((tmp_path / "B8_t2.nii.gz").resolve())
    assert folder_digest(tmp_path) == before  # nothing written into the cohort


def test_missing_columns_and_empty_manifest(tmp_path):
    row = write_patient(tmp_path, "P1")
    del row["t2_labels"], row["sex"]
    with pytest.raises(CohortError, match=r"missing column.*sex.*t2_labels"):
        read_manifest(write_manifest(tmp_path, [row]))
    pd.DataFrame(columns=list(MANIFEST_COLUMNS)).to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(CohortError, match="no patient rows"):
        read_manifest(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_skip_invalid_lists_and_warns(tmp_path):
    rows = [write_patient(tmp_path, f"S{i}", "malignant", "left") for i in range(3)]
    _break(tmp_path, "S1", "t1", "labels", lambda d, a: (np.where(d == 3, 0, d), a))
    manifest = write_manifest(tmp_path, rows)
    with pytest.warns(UserWarning, match="skipping patient S1"):
        cohort = read_manifest(manifest, skip_invalid=True)
    assert cohort.patient_ids == ["S0", "S2"]
    assert cohort.skipped_ids == ["S1"]
    assert "no tumour voxel" in cohort.skipped[0].message


def test_both_sides_with_replaced_glands_is_valid(tmp_path):
    # glands mostly replaced by tumour: still valid while one voxel of each label remains
    row = write_patient(tmp_path, "Q1", "warthin", "both")

    def replace(d, a):
        d[(d == 1) | (d == 2)] = 3
        d[0, 0, 0], d[0, 1, 0] = 1, 2
        return d, a

    for series in ("t1", "ce_t1", "t2"):
        _break(tmp_path, "Q1", series, "labels", replace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_manifest(write_manifest(tmp_path, [row])).patient_ids == ["Q1"]


def test_header_only_check_is_lazy(tmp_path):
    rows = [write_patient(tmp_path, "H1")]
    _break(tmp_path, "H1", "t2", "image", lambda d, a: (np.full_like(d, np.inf), a))
    manifest = write_manifest(tmp_path, rows)
    assert read_manifest(manifest, check_data=False).patient_ids == ["H1"]
    with pytest.raises(CohortError, match="NaN/inf"):
        read_manifest(manifest)


def test_truncated_data_is_reported(tmp_path):
    rows = [write_patient(tmp_path, "T1")]
    path = tmp_path / "T1_t2.nii.gz"
    raw = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(raw.dataobj), raw.affine), tmp_path / "x.nii")
    data = (tmp_path / "x.nii").read_bytes()
    path.unlink()
    (tmp_path / "T1_t2.nii").write_bytes(data[: len(data) // 2])  # header fine, data cut
    rows[0]["t2"] = "T1_t2.nii"
    with pytest.raises(CohortError, match=r"patient T1, column t2.*(cannot read|unreadable)"):
        read_manifest(write_manifest(tmp_path, rows))
    shutil.rmtree(tmp_path)


def test_tumour_on_another_side_than_the_manifest_is_a_problem(tmp_path):
    rows = [write_patient(tmp_path, "OK", "warthin", "left"),
            # tumor_side right, but the tumour lies in the left gland
            write_patient(tmp_path, "WRONG", "malignant", "right",
                          tumour_centre=(LEFT_X, 1.0, 0.0)),
            # bilateral in the manifest, one tumour (in the right gland) in the label maps
            write_patient(tmp_path, "HALF", "warthin", "both",
                          tumour_centre=(RIGHT_X, 1.0, 0.0))]
    manifest = write_manifest(tmp_path, rows)
    with pytest.raises(CohortError) as info:
        read_manifest(manifest)
    problems = info.value.problems
    assert {(p.patient_id, p.column) for p in problems} == {("WRONG", "tumor_side"),
                                                            ("HALF", "tumor_side")}
    # all three label maps conflict: one problem, naming the T1 label map, the manifest's
    # side and the tumour's
    (wrong,) = [p for p in problems if p.patient_id == "WRONG"]
    assert wrong.path == str((tmp_path / "WRONG_t1_labels.nii.gz").resolve())
    assert wrong.message.endswith("(label map t1_labels; ce_t1_labels and t2_labels "
                                  "contradict the manifest too)")
    message = str(info.value)
    assert "patient WRONG, column tumor_side" in message
    assert "manifest tumor_side is 'right' but the tumour (label 3) lies on the left side" \
        in message
    assert "manifest tumor_side is 'both' but the tumour (label 3) lies only on the right side" \
        in message and "the left side has no tumour" in message
    with pytest.warns(UserWarning, match="skipping patient HALF"):
        cohort = read_manifest(manifest, skip_invalid=True)
    assert cohort.patient_ids == ["OK"] and cohort.skipped_ids == ["HALF", "WRONG"]


def test_one_label_map_on_the_other_side_is_named(tmp_path):
    # the manifest and T1/CE-T1 agree; the T2 label map has its tumour in the other gland
    rows = [write_patient(tmp_path, "T2X", "warthin", "left")]
    img = make_volumes("left", tumour_centre=(RIGHT_X, 1.0, 0.0))["t2"][1]
    nib.save(img, tmp_path / "T2X_t2_labels.nii.gz")
    with pytest.raises(CohortError) as info:
        read_manifest(write_manifest(tmp_path, rows))
    (problem,) = info.value.problems
    assert (problem.patient_id, problem.column) == ("T2X", "tumor_side")
    assert problem.path == str((tmp_path / "T2X_t2_labels.nii.gz").resolve())
    assert problem.message.startswith("manifest tumor_side is 'left' but the tumour (label 3) "
                                      "lies on the right side")
    assert problem.message.endswith("(label map t2_labels)")


def test_empty_manifest_file_is_named(tmp_path):
    for content in (b"", b"\n  \n"):
        (tmp_path / "manifest.csv").write_bytes(content)
        with pytest.raises(ManifestReadError, match=r"manifest .*manifest\.csv is empty"):
            read_manifest_table(tmp_path / "manifest.csv")
        with pytest.raises(CohortError) as info:
            read_manifest(tmp_path / "manifest.csv")
        assert f"manifest {(tmp_path / 'manifest.csv').resolve()} is empty" in str(info.value)
        assert "No columns to parse" not in str(info.value)


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab")])
def test_other_separators_are_refused_with_advice(tmp_path, sep, name):
    rows = [write_patient(tmp_path, "P1", "warthin", "left", t1_tr_ms="480,5")]
    path = tmp_path / "manifest.csv"
    # as a spreadsheet writes it in a locale with decimal commas (and a byte-order mark)
    pd.DataFrame(rows).to_csv(path, index=False, sep=sep, encoding="utf-8-sig")
    with pytest.raises(CohortError) as info:
        read_manifest(path)
    message = str(info.value)
    assert f"manifest {path.resolve()} looks {name}-separated" in message
    assert "save it as comma-separated CSV" in message
    assert "missing column" not in message
    with pytest.raises(ManifestReadError, match=f"looks {name}-separated"):
        manifest_files(path)  # the cohort fingerprint's reader says the same


def test_comma_separated_manifest_with_semicolons_in_cells_is_read(tmp_path):
    rows = [write_patient(tmp_path, "P1", "warthin", "left", notes="a; b; c")]
    path = write_manifest(tmp_path, rows)
    assert read_manifest_table(path)["notes"].tolist() == ["a; b; c"]
    # a byte-order mark (Excel's "CSV UTF-8") does not hide the first column
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_manifest(path).patient_ids == ["P1"]
