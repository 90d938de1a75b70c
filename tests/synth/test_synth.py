"""Tests of parotidlib.synth: composition, physics, geometry, files and the writer's contract."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel.affines import apply_affine
from scipy import ndimage

import parotidlib.io
from parotidlib.constants import HISTOLOGIES, LABEL_TUMOR, MANIFEST_COLUMNS, SERIES
from parotidlib.synth import (
    OPTIONAL_COLUMNS,
    PAPER_COUNTS,
    SCANNERS,
    STAMP_NAME,
    CohortExistsError,
    PatientSpec,
    apportion,
    cohort_composition,
    draw_patients,
    generate_cohort,
    simulate_patient,
)
from parotidlib.synth import generate as generate_module
from parotidlib.synth.sampling import average_matrix
from parotidlib.synth.signal import (
    add_rician_noise,
    enhanced_t1,
    spin_echo,
    spoiled_gradient_echo,
)

SCALE = 4.0  # pixel_scale for tests: 16x fewer voxels than the study cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A 4-patient cohort with small volumes (all histologies present)."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    return generate_cohort(out, n_patients=4, seed=3, jobs=1, pixel_scale=SCALE)


@pytest.fixture(scope="module")
def manifest(cohort) -> pd.DataFrame:
    return pd.read_csv(cohort, dtype={"patient_id": str})


def _load(manifest_path: Path, rel: str) -> nib.Nifti1Image:
    return nib.load(manifest_path.parent / rel)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- composition

def test_apportion_reproduces_table1_and_table2_at_233():
    assert cohort_composition(233) == PAPER_COUNTS
    assert apportion(233, [63, 90, 80]).tolist() == [63, 90, 80]


def test_apportion_is_hamilton_with_caps_and_validates():
    # quotas 2.5, 1.5, 1.0 -> floors 2, 1, 1; the one left goes to the first largest remainder
    assert apportion(5, [5, 3, 2]).tolist() == [3, 1, 1]
    # the capped share keeps 2; its excess is apportioned again (ties to the earlier share)
    assert apportion(6, [10, 1, 1], caps=[2, 5, 5]).tolist() == [2, 3, 1]
    assert apportion(6, [10, 1, 2], caps=[2, 5, 5]).tolist() == [2, 1, 3]
    assert apportion(0, [1, 2]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="n must be"):
        apportion(-1, [1])
    with pytest.raises(ValueError, match="weights"):
        apportion(3, [1, -1])
    with pytest.raises(ValueError, match="cannot apportion"):
        apportion(5, [1, 1], caps=[2, 2])


@pytest.mark.parametrize("n", [3, 4, 7, 10, 50, 120, 500, 1000])
def test_composition_keeps_proportions_for_any_n(n):
    comp = cohort_composition(n)
    for key, paper in PAPER_COUNTS.items():
        counts = comp[key]
        assert sum(counts.values()) == n
        for name, c in counts.items():
            quota = n * paper[name] / 233
            # largest remainder: within one of the exact quota (histology may borrow one to
            # keep every class present in tiny cohorts)
            assert abs(c - quota) < (2 if key == "histology" and n < 6 else 1), (key, name)
    assert all(comp["histology"][h] >= 1 for h in HISTOLOGIES)


def test_draw_patients_matches_table1_and_clinical_skews():
    specs = draw_patients(233, seed=0)
    frame = pd.DataFrame([s.__dict__ for s in specs])
    for key, paper in PAPER_COUNTS.items():
        assert frame[key].value_counts().to_dict() == paper
    assert frame["patient_id"].tolist() == [f"SYN{i:04d}" for i in range(1, 234)]
    assert frame["age"].between(21, 93).all()
    assert abs(frame["age"].mean() - 52.4) < 2.0
    by = frame.groupby("histology")
    assert by["age"].mean()["warthin"] > by["age"].mean()["pleomorphic_adenoma"] + 10
    male = by["sex"].apply(lambda s: (s == "M").mean())
    assert male["warthin"] > male["pleomorphic_adenoma"]
    both = frame[frame["tumor_side"] == "both"]["histology"].value_counts()
    assert both.idxmax() == "warthin" and both["warthin"] >= 0.6 * len(
        frame[frame["tumor_side"] == "both"])
    # the cohort-level draw is seeded
    assert draw_patients(20, 1) == draw_patients(20, 1)
    assert draw_patients(20, 1) != draw_patients(20, 2)


# --------------------------------------------------------------------------- physics

def test_signal_equations_against_closed_forms():
    # long TR: full recovery, only T2 decay
    np.testing.assert_allclose(spin_echo(0.8, 300.0, 80.0, 1e7, 80.0), 0.8 * np.exp(-1.0))
    # TE = 0 and TR = T1: 1 - 1/e
    np.testing.assert_allclose(spin_echo(1.0, 500.0, 80.0, 500.0, 0.0), 1 - np.exp(-1.0))
    # spoiled GRE is largest at the Ernst angle arccos(exp(-TR/T1))
    tr, t1 = 5.0, 800.0
    ernst = np.rad2deg(np.arccos(np.exp(-tr / t1)))
    angles = np.linspace(1, 40, 400)
    sig = spoiled_gradient_echo(1.0, t1, 50.0, tr, 0.0, angles)
    assert abs(angles[np.argmax(sig)] - ernst) < 0.2
    # contrast: 1/T1' = 1/T1 + r1 C (r1 per mM per s, T1 in ms)
    np.testing.assert_allclose(enhanced_t1(1000.0, 0.25, 4.0), 1 / (1 / 1000 + 4e-3 * 0.25))
    np.testing.assert_allclose(enhanced_t1(1000.0, 0.0), 1000.0)


def test_tissue_contrasts_follow_the_literature_ordering():
    """Mid-range values: T2 signal PA > Warthin > malignant; fluid brightest; fat bright on T1."""
    from parotidlib.synth.tissues import TISSUE_RANGES, Tissue

    def mid(t):
        r = TISSUE_RANGES[t]
        return np.mean(r.pd), np.mean(r.t1_ms), np.mean(r.t2_ms), np.mean(r.conc_mM)

    def t2w(t):
        pd, t1, t2, _ = mid(t)
        return spin_echo(pd, t1, t2, 3000.0, 85.0)

    assert t2w(Tissue.CYST) > t2w(Tissue.PA_STROMA) > t2w(Tissue.WARTHIN_SOLID) \
        > t2w(Tissue.MALIGNANT) > t2w(Tissue.MUSCLE)
    t1w = {t: spin_echo(*mid(t)[:3], 450.0, 10.0) for t in Tissue if t != Tissue.AIR}
    assert t1w[Tissue.PROTEIN] > t1w[Tissue.WARTHIN_SOLID] > t1w[Tissue.CYST]

    def enhancement(t):  # post/pre ratio on a GE CE-T1 (TR 220 ms, flip 70 deg)
        pd, t1, t2, conc = mid(t)
        pre = spoiled_gradient_echo(pd, t1, t2, 220.0, 2.5, 70.0)
        return spoiled_gradient_echo(pd, enhanced_t1(t1, conc), t2, 220.0, 2.5, 70.0) / pre

    assert enhancement(Tissue.PA_STROMA) > enhancement(Tissue.WARTHIN_SOLID) > 1.0
    assert enhancement(Tissue.NECROSIS) < 1.1 < enhancement(Tissue.MALIGNANT)


def test_tumour_values_are_drawn_from_the_tissue_table():
    """TISSUE_RANGES is the one source of the histology tissues' ranges (tumours.py reads it;
    the variants replace single ranges): every drawn value lies in the table's range, or in
    the variant's for the cellular pleomorphic adenoma's stroma T2 and low-grade carcinoma."""
    from parotidlib.synth.anatomy import draw_anatomy
    from parotidlib.synth.tissues import TISSUE_RANGES, Tissue
    from parotidlib.synth.tumours import draw_tumour

    variants = {(Tissue.PA_STROMA, "t2_ms"): (95, 160), (Tissue.MALIGNANT, "t2_ms"): (60, 130),
                (Tissue.MALIGNANT, "conc_mM"): (0.12, 0.35)}
    rng = np.random.default_rng(0)
    gland = draw_anatomy(rng, "M", 60).glands["right"]
    seen = set()
    for histology in HISTOLOGIES:
        for _ in range(60):
            for tissue, values in draw_tumour(rng, histology, gland).tissue_values.items():
                seen.add(tissue)
                r = TISSUE_RANGES[tissue]
                for name, v in zip(("pd", "t1_ms", "t2_ms", "conc_mM"), values, strict=True):
                    ranges = [getattr(r, name), variants.get((tissue, name), getattr(r, name))]
                    assert any(lo <= v <= hi for lo, hi in ranges), (tissue.name, name, v)
    assert seen == {Tissue.PA_STROMA, Tissue.PA_CELLULAR, Tissue.WARTHIN_SOLID, Tissue.MALIGNANT}
    # The Warthin row is the one the generator has always drawn from (T2 70-125 ms).
    assert TISSUE_RANGES[Tissue.WARTHIN_SOLID].t2_ms == (70, 125)


def test_rician_noise_mean_matches_rayleigh_and_high_snr_limit():
    rng = np.random.default_rng(0)
    zero = add_rician_noise(np.zeros(200_000, np.float32), 2.0, rng)
    np.testing.assert_allclose(zero.mean(), 2.0 * np.sqrt(np.pi / 2), rtol=0.01)
    high = add_rician_noise(np.full(200_000, 100.0, np.float32), 2.0, rng)
    # magnitude of signal plus noise: mean sqrt(S^2 + sigma^2) to first order, sd sigma
    np.testing.assert_allclose(high.mean(), np.sqrt(100.0**2 + 2.0**2), rtol=1e-3)
    np.testing.assert_allclose(high.std(), 2.0, rtol=0.02)


def test_average_matrix_interpolates_and_box_averages():
    src = np.arange(0.0, 20.0, 0.5)
    dst = np.array([3.1, 7.77, 12.25])
    f = 2.0 * src + 1.0
    # width 0: linear interpolation
    np.testing.assert_allclose(average_matrix(src, dst, 0.0) @ f, np.interp(dst, src, f),
                               rtol=1e-6)
    # any width: the average of a linear function is its value at the centre
    w = average_matrix(src, dst, 5.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w @ f, 2.0 * dst + 1.0, rtol=1e-5)
    # a step (its interpolant ramps between 9.5 and 10) is averaged by the share of the
    # interval on each side: half at the ramp's middle, 0.75 one mm further
    step = (src >= 10.0).astype(float)
    np.testing.assert_allclose(average_matrix(src, np.array([9.75, 10.75]), 4.0) @ step,
                               [0.5, 0.75], rtol=1e-6)


# --------------------------------------------------------------------------- files

def test_manifest_columns_ids_and_values(manifest):
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, *OPTIONAL_COLUMNS]
    assert manifest["patient_id"].tolist() == ["SYN0001", "SYN0002", "SYN0003", "SYN0004"]
    assert set(manifest["histology"]) == set(HISTOLOGIES)
    for _, row in manifest.iterrows():
        profile = SCANNERS[row["scanner"]]
        for series in SERIES:
            lo, hi = profile.tr_ms[series]
            assert lo <= row[f"{series}_tr_ms"] <= hi
            lo, hi = profile.te_ms[series]
            assert lo <= row[f"{series}_te_ms"] <= hi
        lo, hi = profile.slice_thickness_mm
        assert lo <= row["slice_thickness_mm"] <= hi and lo <= row["t2_slice_thickness_mm"] <= hi
        lo, hi = profile.pixel_size_mm
        assert lo * SCALE - 1e-3 <= row["pixel_size_mm"] <= hi * SCALE + 1e-3
        assert row["field_strength_t"] == profile.field_strength_t


def test_volumes_dtypes_grids_and_affines(cohort, manifest):
    for _, row in manifest.iterrows():
        for series in SERIES:
            img, lab = _load(cohort, row[series]), _load(cohort, row[f"{series}_labels"])
            assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
            assert img.shape == lab.shape and len(img.shape) == 3
            np.testing.assert_array_equal(img.affine, lab.affine)
            assert not np.allclose(img.affine, np.eye(4))
            assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
            assert int(img.header["sform_code"]) == 1
            zooms = img.header.get_zooms()
            np.testing.assert_allclose(zooms[:2], row["pixel_size_mm" if series != "t2"
                                                      else "t2_pixel_size_mm"], rtol=1e-5)
            assert set(np.unique(np.asarray(lab.dataobj))) <= {0, 1, 2, 3}
        t1, t2 = _load(cohort, row["t1"]), _load(cohort, row["t2"])
        assert t1.shape != t2.shape or not np.allclose(t1.affine, t2.affine)
        # T2 slices are offset from T1's: not a shared grid
        assert not np.isclose(t1.affine[2, 3], t2.affine[2, 3])


def _tumour_centroid_world(lab: nib.Nifti1Image, sign: float | None = None) -> np.ndarray:
    data = np.asarray(lab.dataobj) == LABEL_TUMOR
    if sign is not None:  # keep one side: voxels whose world x has this sign vs midline
        ijk = np.argwhere(data)
        xyz = apply_affine(lab.affine, ijk)
        keep = np.sign(xyz[:, 0] - np.median(xyz[:, 0])) == sign
        return xyz[keep].mean(axis=0)
    return apply_affine(lab.affine, ndimage.center_of_mass(data))


def test_labels_glands_and_tumour_side(cohort, manifest):
    for _, row in manifest.iterrows():
        for series in SERIES:
            lab = _load(cohort, row[f"{series}_labels"])
            data = np.asarray(lab.dataobj)
            assert (data == 1).any() and (data == 2).any() and (data == LABEL_TUMOR).any()
            x_right = apply_affine(lab.affine, ndimage.center_of_mass(data == 1))[0]
            x_left = apply_affine(lab.affine, ndimage.center_of_mass(data == 2))[0]
            assert x_right > x_left  # RAS+: the right gland lies at +x
            x_tumour = _tumour_centroid_world(lab)[0]
            side_label = 1 if row["tumor_side"] == "right" else 2
            assert abs(x_tumour - (x_right if side_label == 1 else x_left)) < abs(
                x_tumour - (x_left if side_label == 1 else x_right))
            # the tumour lies in (or touches) its gland: a one-voxel dilation meets it
            tumour = data == LABEL_TUMOR
            grown = ndimage.binary_dilation(tumour, structure=np.ones((3, 3, 1), bool))
            assert (grown & (data == side_label)).any()
        # several slices cross each gland, and the tumour spans at least one slice
        t1 = np.asarray(_load(cohort, row["t1_labels"]).dataobj)
        assert ((t1 == 1) | (t1 == 2)).any(axis=(0, 1)).sum() >= 3


def test_tumour_centroid_agrees_between_series_and_with_ground_truth():
    spec = PatientSpec(index=0, patient_id="SYN0001", histology="pleomorphic_adenoma",
                       tumor_side="left", sex="F", age=45, scanner="Siemens Skyra 3T")
    patient = simulate_patient(spec, seed=11, pixel_scale=SCALE)
    truth = patient.tumours[0].centre + patient.world_offset_mm
    thick = max(p.thickness_mm for p in patient.protocols.values())
    centres = {}
    for series in SERIES:
        lab = nib.Nifti1Image(patient.labels[series], patient.affines[series])
        centres[series] = _tumour_centroid_world(lab)
        assert np.linalg.norm(centres[series][:2] - truth[:2]) < 4.0, series
        assert abs(centres[series][2] - truth[2]) < thick, series
    for a in SERIES:
        for b in SERIES:
            assert np.all(np.abs(centres[a] - centres[b]) < thick)


def test_bilateral_patient_has_a_tumour_in_each_gland():
    spec = PatientSpec(index=5, patient_id="SYN0006", histology="warthin", tumor_side="both",
                       sex="M", age=66, scanner="GE Signa HDxt 1.5T")
    patient = simulate_patient(spec, seed=0, pixel_scale=SCALE)
    assert sorted(t.side for t in patient.tumours) == ["left", "right"]
    for series in SERIES:
        lab = nib.Nifti1Image(patient.labels[series], patient.affines[series])
        data = np.asarray(lab.dataobj)
        x_mid = np.mean([apply_affine(lab.affine, ndimage.center_of_mass(data == g))[0]
                         for g in (1, 2)])
        xyz = apply_affine(lab.affine, np.argwhere(data == LABEL_TUMOR))
        assert (xyz[:, 0] > x_mid).any() and (xyz[:, 0] < x_mid).any(), series


def test_same_seed_gives_byte_identical_files_for_any_jobs(tmp_path):
    a = generate_cohort(tmp_path / "a", n_patients=3, seed=7, jobs=1, pixel_scale=SCALE)
    b = generate_cohort(tmp_path / "b", n_patients=3, seed=7, jobs=2, pixel_scale=SCALE)
    digest_a, digest_b = _tree_digest(a.parent), _tree_digest(b.parent)
    assert len(digest_a) == 3 * 6 + 2 and digest_a == digest_b
    c = generate_cohort(tmp_path / "c", n_patients=3, seed=8, jobs=1, pixel_scale=SCALE)
    assert _tree_digest(c.parent)["SYN0001/t1.nii.gz"] != digest_a["SYN0001/t1.nii.gz"]


# --------------------------------------------------------------------------- writer contract

def test_rerun_with_same_settings_is_skipped(cohort, monkeypatch):
    before = _tree_digest(cohort.parent)

    def boom(*args, **kwargs):
        raise AssertionError("the cohort was regenerated")

    monkeypatch.setattr(generate_module, "_write_patient", boom)
    assert generate_cohort(cohort.parent, n_patients=4, seed=3, jobs=1,
                           pixel_scale=SCALE) == cohort
    assert _tree_digest(cohort.parent) == before


def test_refuses_a_folder_with_other_content(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CohortExistsError, match="refusing to overwrite"):
        generate_cohort(tmp_path, n_patients=3, seed=0, jobs=1, pixel_scale=SCALE)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_replaces_its_own_cohort_made_with_other_settings(tmp_path):
    out = tmp_path / "cohort"
    generate_cohort(out, n_patients=3, seed=0, jobs=1, pixel_scale=SCALE)
    generate_cohort(out, n_patients=3, seed=1, jobs=1, pixel_scale=SCALE)
    stamp = pd.read_json(out / STAMP_NAME, typ="series")
    assert stamp["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]  # no leftovers


def test_interrupted_run_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []
    real = generate_module._write_patient

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(generate_module, "_write_patient", fail_second)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(tmp_path / "cohort", n_patients=3, seed=0, jobs=1, pixel_scale=SCALE)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"n_patients": 0}, "n_patients"),
    ({"n_patients": 2.5}, "n_patients"),
    ({"seed": -1}, "seed"),
    ({"jobs": 0}, "jobs"),
    ({"pixel_scale": 0.5}, "pixel_scale"),
    # config.check_int and check_real: bools are refused, whatever int subclass they are
    ({"n_patients": True}, "n_patients must be an integer >= 1, got True"),
    ({"seed": False}, "seed must be an integer >= 0, got False"),
    ({"jobs": True}, "jobs must be an integer >= 1, got True"),
    ({"pixel_scale": True}, "pixel_scale must be a number in"),
])
def test_invalid_arguments_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_cohort(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_numpy_integers_are_accepted(tmp_path):
    """A notebook may pass numpy integers (config.check_int accepts them)."""
    a = generate_cohort(tmp_path / "a", n_patients=np.int64(1), seed=np.uint8(0),
                        jobs=np.int32(1), pixel_scale=np.float64(SCALE))
    b = generate_cohort(tmp_path / "b", n_patients=1, seed=0, jobs=1, pixel_scale=SCALE)
    assert json.loads((a.parent / STAMP_NAME).read_text()) \
        == json.loads((b.parent / STAMP_NAME).read_text())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leftover(folder: Path, pid: int) -> Path:
    """A staging folder as an interrupted generation leaves it, owned by ``pid``."""
    (folder / "SYN0001").mkdir(parents=True)
    (folder / "SYN0001" / "t1.nii.gz").write_bytes(b"half")
    record = {**parotidlib.io._owner_record(), "pid": pid, "start": None}
    (folder / parotidlib.io.OWNER_FILE).write_text(json.dumps(record))
    return folder


def test_generation_removes_what_dead_runs_left(tmp_path):
    dead = _dead_pid()
    gone = [_leftover(tmp_path / ".cohort.deadbeef.partial", dead),
            _leftover(tmp_path / ".cohort.0dead000.old", dead)]
    kept = [_leftover(tmp_path / ".cohort.live0000.partial", os.getpid()),  # a live run's
            _leftover(tmp_path / ".other.deadbeef.partial", dead)]  # another cohort's
    generate_cohort(tmp_path / "cohort", n_patients=1, seed=0, jobs=1, pixel_scale=SCALE)
    assert not any(p.exists() for p in gone)
    assert sorted(tmp_path.iterdir()) == sorted([tmp_path / "cohort", *kept])
    assert parotidlib.io.OWNER_FILE not in {p.name for p in (tmp_path / "cohort").iterdir()}
    # also when the cohort is up to date and nothing is generated
    late = _leftover(tmp_path / ".cohort.late0000.partial", dead)
    generate_cohort(tmp_path / "cohort", n_patients=1, seed=0, jobs=1, pixel_scale=SCALE)
    assert not late.exists()


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_cohort_permissions_follow_the_umask(tmp_path, mask):
    before = os.umask(mask)
    try:
        manifest = generate_cohort(tmp_path / "cohort", n_patients=1, seed=0, jobs=1,
                                   pixel_scale=SCALE)
    finally:
        os.umask(before)
    for path in (manifest.parent, *manifest.parent.rglob("*")):
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


_GENERATE = (
    "import logging, sys, time\n"
    "from pathlib import Path\n"
    "from parotidlib.synth import generate_cohort\n"
    "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
    "print('ready', flush=True)\n"
    "go = Path(sys.argv[2])\n"
    "while not go.exists(): time.sleep(0.01)\n"
    "generate_cohort(sys.argv[1], n_patients=3, seed=0, jobs=1, pixel_scale=float(sys.argv[3]))\n"
)


def test_two_simultaneous_generations_take_turns_and_give_the_same_files(tmp_path):
    """Two processes ask for the same cohort at once (issue 21: "Directory not empty"): the
    second waits for the first's lock, then finds the cohort complete; both succeed."""
    out, go = tmp_path / "data" / "cohort", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _GENERATE, str(out), str(go), str(SCALE)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        go.write_text("")  # both start together
        logs = [proc.communicate(timeout=300)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert [proc.returncode for proc in procs] == [0, 0], logs
    generated = ["generating synthetic cohort" in log for log in logs]
    assert sorted(generated) == [False, True], logs  # one generated, one found it complete
    assert any("is up to date" in log for log in logs)
    reference = generate_cohort(tmp_path / "alone" / "cohort", n_patients=3, seed=0, jobs=1,
                                pixel_scale=SCALE)
    assert _tree_digest(out) == _tree_digest(reference.parent)
    assert sorted(p.name for p in out.parent.iterdir()) == ["cohort"]  # no lock file left
