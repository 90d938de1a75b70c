"""Tests of the shifted synthetic cohort (external validation: other scanner and case mix)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from parotidlib.data.cohort import read_manifest
from parotidlib.synth import (
    EXTERNAL_SHIFT,
    PAPER_COUNTS,
    SCANNERS,
    STAMP_NAME,
    apportion,
    cohort_composition,
    draw_patients,
    generate_cohort,
)

SCALE = 4.0  # pixel_scale for tests
SHIFT_SCANNER = "Siemens Skyra 3T"


def test_default_draw_unchanged():
    """Facts recorded from draw_patients(233, 0) before the mixes were added."""
    specs = draw_patients(233, 0)
    assert Counter(p.histology for p in specs) == {
        "pleomorphic_adenoma": 90, "malignant": 80, "warthin": 63}
    assert Counter(p.scanner for p in specs) == {
        "GE Signa HDxt 1.5T": 166, "Siemens Verio 3T": 34, "Siemens Skyra 3T": 33}
    assert Counter(p.sex for p in specs) == {"M": 159, "F": 74}
    assert Counter(p.tumor_side for p in specs) == {"right": 114, "left": 101, "both": 18}
    assert sum(p.age for p in specs) == 12187
    assert [(p.histology, p.tumor_side, p.sex, p.age, p.scanner) for p in specs[:3]] == [
        ("malignant", "left", "M", 49, "GE Signa HDxt 1.5T"),
        ("warthin", "left", "F", 63, "GE Signa HDxt 1.5T"),
        ("malignant", "left", "M", 52, "GE Signa HDxt 1.5T"),
    ]
    # None is the default, explicitly
    assert draw_patients(233, 0, scanners=None, histologies=None) == specs
    assert cohort_composition(233) == PAPER_COUNTS


def test_external_shift_preset():
    assert EXTERNAL_SHIFT["scanners"] == {SHIFT_SCANNER: 1.0}
    assert SCANNERS[SHIFT_SCANNER].field_strength_t == 3.0
    # the minority of Table 2
    assert min(PAPER_COUNTS["scanner"], key=PAPER_COUNTS["scanner"].get) == SHIFT_SCANNER
    assert sum(EXTERNAL_SHIFT["histologies"].values()) == pytest.approx(1.0)


def test_single_scanner():
    specs = draw_patients(30, 5, scanners={SHIFT_SCANNER: 1})
    assert {p.scanner for p in specs} == {SHIFT_SCANNER}
    # the case mix stays Table 1's
    assert Counter(p.histology for p in specs) == cohort_composition(30)["histology"]


@pytest.mark.parametrize(("weights", "expected"), [
    ({"pleomorphic_adenoma": 0.3, "warthin": 0.45, "malignant": 0.25},
     {"pleomorphic_adenoma": 6, "warthin": 9, "malignant": 5}),
    # largest remainder, ties to the earlier share in Table 1 order (warthin, PA, malignant)
    ({"malignant": 1, "pleomorphic_adenoma": 1, "warthin": 1},
     {"warthin": 7, "pleomorphic_adenoma": 7, "malignant": 6}),
    ({"warthin": 0.5, "pleomorphic_adenoma": 0.35, "malignant": 0.15},
     {"warthin": 10, "pleomorphic_adenoma": 7, "malignant": 3}),
    ({"warthin": 2.0, "pleomorphic_adenoma": 1.0},
     {"warthin": 13, "pleomorphic_adenoma": 7, "malignant": 0}),
])
def test_histology_weights(weights, expected):
    specs = draw_patients(20, 1, histologies=weights)
    counts = Counter(p.histology for p in specs)
    assert {h: counts.get(h, 0) for h in expected} == expected
    order = list(PAPER_COUNTS["histology"])
    assert [expected[h] for h in order] == apportion(
        20, [weights.get(h, 0.0) for h in order]).tolist()
    assert len(specs) == 20
    assert Counter(p.sex for p in specs) == cohort_composition(20)["sex"]


def test_draw_is_deterministic_and_mapping_order_free():
    a = draw_patients(20, 2, scanners={"Siemens Verio 3T": 1, SHIFT_SCANNER: 1},
                      histologies={"warthin": 1, "malignant": 1})
    b = draw_patients(20, 2, histologies={"malignant": 1, "warthin": 1},
                      scanners={SHIFT_SCANNER: 1, "Siemens Verio 3T": 1})
    assert a == b
    assert Counter(p.scanner for p in a) == {"Siemens Verio 3T": 10, SHIFT_SCANNER: 10}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scanners": {"Philips Ingenia 3T": 1.0}}, "valid:.*GE Signa HDxt 1.5T"),
    ({"histologies": {"oncocytoma": 1.0}}, "valid:.*warthin"),
    ({"scanners": {SHIFT_SCANNER: -1.0}}, ">= 0"),
    ({"histologies": {"warthin": float("nan")}}, ">= 0"),
    ({"scanners": {SHIFT_SCANNER: 0.0}}, "positive"),
    ({"histologies": {}}, "positive"),
    ({"scanners": [SHIFT_SCANNER]}, "mapping"),
])
def test_bad_mix_refused(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        draw_patients(10, 0, **kwargs)
    with pytest.raises(ValueError, match=match):
        generate_cohort(tmp_path / "c", n_patients=3, seed=0, jobs=1, pixel_scale=SCALE,
                        **kwargs)
    assert not (tmp_path / "c").exists()


def test_generate_shifted_cohort(tmp_path):
    out = tmp_path / "external"
    manifest = generate_cohort(out, n_patients=4, seed=1, jobs=1, pixel_scale=SCALE,
                               **EXTERNAL_SHIFT)
    cohort = read_manifest(manifest, check_data=False)
    assert cohort is not None
    frame = pd.read_csv(manifest, dtype={"patient_id": str})
    assert set(frame["scanner"]) == {SHIFT_SCANNER}
    assert set(frame["field_strength_t"]) == {3.0}
    stamp = json.loads((out / STAMP_NAME).read_text())
    assert stamp["scanners"] == EXTERNAL_SHIFT["scanners"]
    assert stamp["histologies"] == EXTERNAL_SHIFT["histologies"]

    # asking again for the same shifted cohort returns at once (nothing rewritten)
    mtime = (out / STAMP_NAME).stat().st_mtime_ns
    generate_cohort(out, n_patients=4, seed=1, jobs=1, pixel_scale=SCALE, **EXTERNAL_SHIFT)
    assert (out / STAMP_NAME).stat().st_mtime_ns == mtime

    # the default cohort with the same n/seed/scale is not mistaken for it: regenerated
    generate_cohort(out, n_patients=4, seed=1, jobs=1, pixel_scale=SCALE)
    default_stamp = json.loads((out / STAMP_NAME).read_text())
    assert "scanners" not in default_stamp and "histologies" not in default_stamp
    assert default_stamp != stamp
    assert default_stamp["manifest_sha256"] != stamp["manifest_sha256"]
    frame = pd.read_csv(out / "manifest.csv", dtype={"patient_id": str})
    assert set(frame["scanner"]) != {SHIFT_SCANNER}

    # and back: the shifted request regenerates the shifted cohort, byte-identical
    generate_cohort(out, n_patients=4, seed=1, jobs=1, pixel_scale=SCALE, **EXTERNAL_SHIFT)
    assert json.loads((out / STAMP_NAME).read_text()) == stamp


def test_other_scanner_mix_regenerates(tmp_path: Path):
    out = tmp_path / "c"
    generate_cohort(out, n_patients=3, seed=0, jobs=1, pixel_scale=SCALE,
                    scanners={SHIFT_SCANNER: 1.0})
    generate_cohort(out, n_patients=3, seed=0, jobs=1, pixel_scale=SCALE,
                    scanners={"Siemens Verio 3T": 1.0})
    frame = pd.read_csv(out / "manifest.csv", dtype={"patient_id": str})
    assert set(frame["scanner"]) == {"Siemens Verio 3T"}
