"""Tests of the diffusion series, the further histologies and the default cohort's invariance."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from parotidlib.constants import LABEL_TUMOR, MANIFEST_COLUMNS, SERIES
from parotidlib.synth import (
    OPTIONAL_COLUMNS,
    STAMP_NAME,
    PatientSpec,
    check_mix,
    cohort_composition,
    draw_patients,
    generate_cohort,
    simulate_patient,
)
from parotidlib.synth.diffusion import (
    ADC_RANGES,
    ADC_VARIANTS,
    B_VALUE,
    adc_from_images,
    draw_adc_table,
    dwi_signal,
)
from parotidlib.synth.generate import DIFFUSION_COLUMNS, DIFFUSION_OPTIONAL_COLUMNS
from parotidlib.synth.phantom import Maps
from parotidlib.synth.tissues import TISSUE_RANGES, TUMOUR_ONLY, Tissue, draw_tissue_table

SCALE = 4.0

#: Digests (dtype, shape, voxels, affine) of the arrays of generate_cohort(n_patients=4,
#: seed=3, pixel_scale=4), recorded before the diffusion series and the further histologies
#: were added (commit 0c7dbce). A change of the default cohort must be deliberate: bump
#: GENERATOR_VERSION and record the new digests.
DEFAULT_DIGESTS = {
    "SYN0001/ce_t1.nii.gz": "292919783b55a2fe",
    "SYN0001/ce_t1_labels.nii.gz": "94c506e66c7f3a44",
    "SYN0001/t1.nii.gz": "0f8b70163bef16a0",
    "SYN0001/t1_labels.nii.gz": "9d316944dd144c08",
    "SYN0001/t2.nii.gz": "4f238ea20005d5e9",
    "SYN0001/t2_labels.nii.gz": "b5a94ca067949d3d",
    "SYN0002/ce_t1.nii.gz": "3556c0b2faf77ce2",
    "SYN0002/ce_t1_labels.nii.gz": "9a36248530b9925d",
    "SYN0002/t1.nii.gz": "a42c114fe38610fb",
    "SYN0002/t1_labels.nii.gz": "9a36248530b9925d",
    "SYN0002/t2.nii.gz": "2e55b78a7382f693",
    "SYN0002/t2_labels.nii.gz": "2ea024f965c9762e",
    "SYN0003/ce_t1.nii.gz": "7e2f80f546a05d10",
    "SYN0003/ce_t1_labels.nii.gz": "e7d5c8c5751c65b1",
    "SYN0003/t1.nii.gz": "0fa96de0dd908db8",
    "SYN0003/t1_labels.nii.gz": "aa9fc465725f8b81",
    "SYN0003/t2.nii.gz": "5cdfb909d0297387",
    "SYN0003/t2_labels.nii.gz": "9c433e5d2c9dbde5",
    "SYN0004/ce_t1.nii.gz": "b22d7f3c6c30f749",
    "SYN0004/ce_t1_labels.nii.gz": "b230b1ea4c77416f",
    "SYN0004/t1.nii.gz": "d63ff2027d363102",
    "SYN0004/t1_labels.nii.gz": "b230b1ea4c77416f",
    "SYN0004/t2.nii.gz": "aef61674208fcd01",
    "SYN0004/t2_labels.nii.gz": "668eac56ab61d661",
}
DEFAULT_MANIFEST_SHA256 = "ee4e5cd7d1bf851ad540333b11d7755a6181af5aed05f281b7f2ba49bd4e0edb"


def _array_digest(path: Path) -> str:
    img = nib.load(path)
    data = np.ascontiguousarray(np.asarray(img.dataobj))
    h = hashlib.sha256()
    h.update(f"{data.dtype.str}{data.shape}".encode())
    h.update(data.tobytes())
    h.update(np.asarray(img.affine, np.float64).tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> Path:
    return generate_cohort(tmp_path_factory.mktemp("default") / "c", n_patients=4, seed=3,
                           jobs=1, pixel_scale=SCALE)


@pytest.fixture(scope="module")
def with_diffusion(tmp_path_factory) -> Path:
    return generate_cohort(tmp_path_factory.mktemp("diffusion") / "c", n_patients=4, seed=3,
                           jobs=1, pixel_scale=SCALE, diffusion=True)


# --------------------------------------------------------------------------- invariance

def test_default_cohort_is_pinned(default):
    """No option: the arrays and manifest of the cohort written before diffusion existed."""
    folder = default.parent
    found = {str(p.relative_to(folder)): _array_digest(p)
             for p in sorted(folder.rglob("*.nii.gz"))}
    assert found == DEFAULT_DIGESTS
    assert hashlib.sha256(default.read_bytes()).hexdigest() == DEFAULT_MANIFEST_SHA256
    assert list(pd.read_csv(default).columns) == [*MANIFEST_COLUMNS, *OPTIONAL_COLUMNS]
    assert "diffusion" not in json.loads((folder / STAMP_NAME).read_text())


def test_diffusion_leaves_the_other_series_byte_identical(default, with_diffusion):
    for pid in ("SYN0001", "SYN0002", "SYN0003", "SYN0004"):
        for name in (*SERIES, *(f"{s}_labels" for s in SERIES)):
            rel = f"{pid}/{name}.nii.gz"
            assert (with_diffusion.parent / rel).read_bytes() \
                == (default.parent / rel).read_bytes(), rel
    a, b = pd.read_csv(default), pd.read_csv(with_diffusion)
    pd.testing.assert_frame_equal(a, b[list(a.columns)])
    assert list(b.columns) == [*MANIFEST_COLUMNS, *DIFFUSION_COLUMNS, *OPTIONAL_COLUMNS,
                               *DIFFUSION_OPTIONAL_COLUMNS]
    assert json.loads((with_diffusion.parent / STAMP_NAME).read_text())["diffusion"] is True


def test_default_request_never_takes_a_diffusion_cohort(tmp_path):
    out = tmp_path / "c"
    generate_cohort(out, n_patients=1, seed=0, jobs=1, pixel_scale=8.0, diffusion=True)
    generate_cohort(out, n_patients=1, seed=0, jobs=1, pixel_scale=8.0)
    assert not (out / "SYN0001" / "dwi.nii.gz").exists()
    assert "adc" not in pd.read_csv(out / "manifest.csv").columns
    # and a diffusion cohort missing a diffusion file is regenerated, not reused
    generate_cohort(out, n_patients=1, seed=0, jobs=1, pixel_scale=8.0, diffusion=True)
    (out / "SYN0001" / "adc_labels.nii.gz").unlink()
    generate_cohort(out, n_patients=1, seed=0, jobs=1, pixel_scale=8.0, diffusion=True)
    assert (out / "SYN0001" / "adc_labels.nii.gz").is_file()
    with pytest.raises(ValueError, match="diffusion must be true or false"):
        generate_cohort(out, n_patients=1, seed=0, jobs=1, pixel_scale=8.0, diffusion=1)


# --------------------------------------------------------------------------- the files

def test_diffusion_files_grid_labels_and_units(with_diffusion):
    table = pd.read_csv(with_diffusion, dtype={"patient_id": str})
    root = with_diffusion.parent
    for _, row in table.iterrows():
        dwi, adc = nib.load(root / row["dwi"]), nib.load(root / row["adc"])
        t1_labels = nib.load(root / row["t1_labels"])
        assert dwi.get_data_dtype() == np.int16 and adc.get_data_dtype() == np.int16
        assert dwi.shape == adc.shape
        np.testing.assert_array_equal(dwi.affine, adc.affine)
        for col in ("dwi_labels", "adc_labels"):
            lab = nib.load(root / row[col])
            np.testing.assert_array_equal(lab.affine, dwi.affine)
            assert lab.shape == dwi.shape
        spacing = np.abs(np.diag(dwi.affine)[:3])
        assert spacing[0] == pytest.approx(row["dwi_pixel_size_mm"])
        assert spacing[2] == pytest.approx(row["dwi_slice_thickness_mm"])
        assert 4.0 <= spacing[2] <= 6.0 and spacing[0] >= 1.6  # EPI: coarse and thick
        assert spacing[0] >= row["pixel_size_mm"] and spacing[2] >= 4.0
        assert row["dwi_b_value_s_mm2"] == B_VALUE
        assert row["adc_scale_mm2_s"] == pytest.approx(1e-6)
        # the affine is right: the tumour lies at the same world place as on T1 (a voxel)
        lab = np.asarray(nib.load(root / row["dwi_labels"]).dataobj)
        tumour_world = [nib.affines.apply_affine(img.affine, np.argwhere(
            np.asarray(img.dataobj) == LABEL_TUMOR).mean(axis=0))
            for img in (t1_labels, nib.load(root / row["dwi_labels"]))]
        assert np.all(np.abs(tumour_world[0] - tumour_world[1]) <= spacing + 1.0)
        # ADC in µm²/s: the gland near 1000, nothing negative, background masked to 0
        adc_data = np.asarray(adc.dataobj)
        gland = adc_data[(lab == 1) | (lab == 2)]
        assert 600 <= np.median(gland) <= 1500
        assert adc_data.min() == 0 and np.mean(adc_data == 0) > 0.05


def test_tumour_adc_orders_the_histologies_as_the_literature():
    """Median tumour ADC on the simulated maps: pleomorphic adenoma above malignant and
    Warthin (Habermann et al. 2009; Eravcı et al. 2020); full-size EPI voxels."""
    medians = {}
    for index, histology in enumerate(("pleomorphic_adenoma", "warthin", "malignant")):
        spec = PatientSpec(index=index, patient_id="P", histology=histology,
                           tumor_side="right", sex="M", age=55, scanner="GE Signa HDxt 1.5T")
        patient = simulate_patient(spec, seed=5, pixel_scale=2.0, diffusion=True)
        tumour = patient.labels["adc"] == LABEL_TUMOR
        assert tumour.sum() > 20
        medians[histology] = float(np.median(patient.images["adc"][tumour]))
    assert medians["pleomorphic_adenoma"] > 1300
    assert medians["pleomorphic_adenoma"] > medians["malignant"] + 300
    assert medians["pleomorphic_adenoma"] > medians["warthin"] + 300


# --------------------------------------------------------------------------- the physics

def _single(tissue: Tissue, t2: float = 80.0) -> tuple[Maps, object]:
    table = draw_tissue_table(np.random.default_rng(0), 1.5, 50)
    tid = np.array([tissue], np.uint8)
    maps = Maps(tid, np.array([0.9], np.float32), np.array([1000.0], np.float32),
                np.array([table.t2_ms[tissue]], np.float32), np.zeros(1, np.float32),
                np.zeros(1, np.float32))
    return maps, table


def test_dwi_signal_is_s0_times_exp_minus_b_adc_and_adc_is_recovered():
    from parotidlib.synth.scanners import SeriesProtocol

    proto = SeriesProtocol("dwi", "epi", 4000.0, 80.0, 90.0, 0.95, 2.0, 5.0, (1, 1, 1),
                           (0.0, 0.0, 0.0), 300.0, 15.0, (0.0, 0.0, 0.0, 0.0))
    adc = np.zeros(len(Tissue), np.float32)
    adc[Tissue.PA_STROMA] = 2.0
    maps, table = _single(Tissue.PA_STROMA)
    s0 = dwi_signal(maps, table, adc, 0.02, proto, 0.0)
    sb = dwi_signal(maps, table, adc, 0.02, proto, B_VALUE)
    expected_s0 = 0.9 * (1 - np.exp(-4000.0 / 1000.0)) * np.exp(-80.0 / maps.t2_ms[0])
    assert s0[0] == pytest.approx(expected_s0, rel=1e-5)
    assert sb[0] / s0[0] == pytest.approx(np.exp(-B_VALUE * 2.0e-3), rel=1e-5)
    assert adc_from_images(s0, sb, B_VALUE, sigma=1e-3)[0] == 2000
    # below the noise: masked; beyond the largest storable ADC: clipped
    assert adc_from_images(np.array([0.002], np.float32), np.array([0.001], np.float32),
                           B_VALUE, sigma=1e-3)[0] == 0
    assert adc_from_images(np.array([1.0], np.float32), np.array([1e-6], np.float32),
                           B_VALUE, sigma=1e-3)[0] == 4000


def test_adc_ranges_cover_every_tissue_and_follow_the_literature():
    assert set(ADC_RANGES) == set(Tissue)
    mid = {t: np.mean(r) for t, r in ADC_RANGES.items()}
    # Warthin < malignant (high grade) ~ normal gland < basal cell adenoma < PA < free water
    assert mid[Tissue.WARTHIN_SOLID] < mid[Tissue.MALIGNANT] < mid[Tissue.GLAND] \
        < mid[Tissue.BCA_SOLID] < mid[Tissue.PA_STROMA] < mid[Tissue.FLUID]
    assert ADC_RANGES[Tissue.FLUID][0] <= 3.0 <= ADC_RANGES[Tissue.FLUID][1]


def test_tumour_adc_uses_its_phenotype_variant():
    from parotidlib.synth.anatomy import draw_anatomy
    from parotidlib.synth.tumours import draw_tumour

    rng = np.random.default_rng(1)
    gland = draw_anatomy(rng, "F", 50).glands["left"]
    seen = Counter()
    for histology in ("pleomorphic_adenoma", "malignant", "mucoepidermoid_carcinoma",
                      "basal_cell_adenoma", "warthin"):
        for _ in range(30):
            tumour = draw_tumour(rng, histology, gland)
            adc, _ = draw_adc_table(np.random.default_rng(2), [tumour])
            variant = ADC_VARIANTS.get((histology, tumour.phenotype), {})
            for tissue in tumour.tissue_values:
                lo, hi = variant.get(tissue, ADC_RANGES[tissue])
                assert lo <= adc[tissue] <= hi
            seen[(histology, tumour.phenotype)] += 1
    assert {("pleomorphic_adenoma", "cellular"), ("malignant", "low_grade"),
            ("mucoepidermoid_carcinoma", "low_grade"),
            ("mucoepidermoid_carcinoma", "high_grade")} <= set(seen)


# --------------------------------------------------------------------------- histologies

def test_further_histologies_only_when_named():
    assert cohort_composition(233)["histology"].keys() == {
        "warthin", "pleomorphic_adenoma", "malignant"}
    mix = {"warthin": 1.0, "basal_cell_adenoma": 1.0, "mucoepidermoid_carcinoma": 2.0}
    assert check_mix(mix, "histologies") == {"warthin": 1.0, "basal_cell_adenoma": 1.0,
                                             "mucoepidermoid_carcinoma": 2.0}
    specs = draw_patients(40, 0, histologies=mix)
    counts = Counter(p.histology for p in specs)
    assert counts == {"warthin": 10, "basal_cell_adenoma": 10, "mucoepidermoid_carcinoma": 20}
    # basal cell adenomas mostly in women (Shi et al. 2012: 16 of 22)
    assert sum(p.sex == "F" for p in specs if p.histology == "basal_cell_adenoma") >= 6
    # a mix of the paper's histologies only is drawn as before (no extra names or draws)
    old = {"pleomorphic_adenoma": 0.3, "warthin": 0.45, "malignant": 0.25}
    assert cohort_composition(50, histologies=old)["histology"].keys() == set(old)


def test_further_histology_tissues_are_drawn_only_by_their_tumours():
    table = draw_tissue_table(np.random.default_rng(0), 1.5, 40)
    for tissue in TUMOUR_ONLY:
        assert table.pd[tissue] == 0 and table.t2_ms[tissue] == 0
    spec = PatientSpec(index=0, patient_id="P", histology="basal_cell_adenoma",
                       tumor_side="left", sex="F", age=50, scanner="Siemens Skyra 3T")
    patient = simulate_patient(spec, seed=2, pixel_scale=SCALE)
    (tumour,) = patient.tumours
    pd_, t1, t2, conc = tumour.tissue_values[Tissue.BCA_SOLID]
    r = TISSUE_RANGES[Tissue.BCA_SOLID]
    assert r.pd[0] <= pd_ <= r.pd[1] and r.t2_ms[0] <= t2 <= r.t2_ms[1]
    assert tumour.capsule_mm > 0 and tumour.margin_irregularity == 0
    assert all((patient.labels[s] == LABEL_TUMOR).any() for s in SERIES)


def test_cohort_with_further_histologies(tmp_path):
    manifest = generate_cohort(tmp_path / "c", n_patients=2, seed=4, jobs=1, pixel_scale=8.0,
                               histologies={"basal_cell_adenoma": 1.0,
                                            "mucoepidermoid_carcinoma": 1.0})
    table = pd.read_csv(manifest)
    assert sorted(table["histology"]) == ["basal_cell_adenoma", "mucoepidermoid_carcinoma"]
    stamp = json.loads((manifest.parent / STAMP_NAME).read_text())
    assert stamp["histologies"] == {"basal_cell_adenoma": 1.0, "mucoepidermoid_carcinoma": 1.0}
