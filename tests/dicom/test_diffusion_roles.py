"""The DWI and ADC roles from the tags first (ImageType, b-value), descriptions where the tags
are silent: a table of series as GE, Siemens, Philips and Canon write them, with descriptions
in several languages, exponential ADC, computed b-values, FA, directional and multi-b series;
each gets its role or its refusal with the reason. Then the b-value a rule picks from a
series holding several, and the unit of the ADC's values."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from parotidlib.dicom.diffusion import RealWorldMap
from parotidlib.dicom.diffusion_roles import (
    adc_scale,
    assign_diffusion,
    b_values,
    check_adc_values,
    diffusion_verdict,
    pick_b_value,
    says_diffusion,
)
from parotidlib.dicom.roles import assign_roles
from parotidlib.dicom.rules import load_rules

RULES = load_rules()
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class F:
    """The fields of parotidlib.dicom.headers.DicomFile that the diffusion roles read."""

    b_value: float | None = None
    image_type: str = ""
    diffusion_directionality: str = ""
    image_position: tuple | None = None
    image_orientation: tuple | None = AXIAL
    b_value_tag: str = ""
    number_of_frames: int = 1
    real_world: RealWorldMap | None = None
    rescale: tuple[float, float] = (1.0, 0.0)
    echo_number: int | None = None
    echo_time_ms: float | None = 80.0


@dataclass(frozen=True)
class S:
    """The fields of parotidlib.dicom.headers.Series that the role rules read."""

    description: str
    files: tuple = field(default=(), repr=False)
    image_type: str = ""
    protocol: str = ""
    manufacturer: str = ""
    series_uid: str = "1.2.3"
    series_number: int | None = 5
    repetition_time_ms: float | None = 5000.0
    echo_time_ms: float | None = 80.0
    contrast_agent: str = ""
    series_date: str = "20200101"
    study_uid: str = "1.2"


def series(description, image_type="", b=(None,), slices=3, direction="", tag="", **kw):
    """A series of ``slices`` positions, one file per position and b-value (b-values given in
    ``b``); ``direction`` DiffusionDirectionality of every file."""
    files = tuple(F(b_value=bv, image_type=image_type, diffusion_directionality=direction,
                    image_position=(0.0, 0.0, 5.0 * z), b_value_tag=tag)
                  for bv in b for z in range(slices))
    return S(description, files=files, image_type=image_type, **kw)


def philips_dwi(b_values_=(0.0, 800.0), isotropic=True):
    """Philips: per b > 0 three directional images per position and the isotropic one."""
    files = []
    for z in range(3):
        pos = (0.0, 0.0, 5.0 * z)
        files.append(F(0.0, "ORIGINAL\\PRIMARY\\M_SE\\M\\SE", "NONE", pos))
        for b in b_values_[1:]:
            files += [F(b, "ORIGINAL\\PRIMARY\\M_SE\\M\\SE", "DIRECTIONAL", pos)] * 3
            if isotropic:
                files.append(F(b, "DERIVED\\PRIMARY\\M_SE\\M\\SE", "ISOTROPIC", pos))
    return S("DWI_SENSE", files=tuple(files), manufacturer="Philips Medical Systems")


SI_ADC = "DERIVED\\PRIMARY\\DIFFUSION\\ADC\\ND\\NORM"
SI_TRACE = "DERIVED\\PRIMARY\\DIFFUSION\\TRACEW\\ND\\NORM"
GE_OTHER = "ORIGINAL\\PRIMARY\\OTHER"
EADC, COMPUTED, TENSOR = "exponential ADC", "computed b-value", "tensor map"
CONFLICT = "the tags say"

# (series, expected): "dwi", "adc", None (not a diffusion image, or no role), or a phrase of
# the refusal's reason.
CASES = [
    # Siemens
    (series("ep2d_diff_b50_800_tra_TRACEW", SI_TRACE, (50.0, 800.0)), "dwi"),
    (series("ep2d_diff_b50_800_tra_ADC", SI_ADC, (800.0,)), "adc"),
    (series("ep2d_diff_b50_800_tra_EXP", "DERIVED\\PRIMARY\\DIFFUSION\\EXP\\ND"), EADC),
    (series("ep2d_diff_b50_800_tra_CALC_BVAL",
            "DERIVED\\PRIMARY\\DIFFUSION\\CALC_BVALUE\\TRACEW\\ND", (1400.0,)), COMPUTED),
    (series("ep2d_diff_3scan_FA", "DERIVED\\PRIMARY\\DIFFUSION\\FA\\ND"), TENSOR),
    (series("resolve_3scan_trace_tra_TRACEW", SI_TRACE, (0.0, 1000.0)), "dwi"),
    (series("ep2d_diff_tra", "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND\\MOSAIC", (0.0, 800.0),
            direction="DIRECTIONAL"), "dwi"),   # a DWI by its tags; directional: see below
    (series("t2_tse_tra", "ORIGINAL\\PRIMARY\\M\\NORM"), None),
    # GE: ImageType silent, the b-value in (0043,1039) or DiffusionBValue
    (series("Ax DWI ALL b1000", GE_OTHER, (0.0, 1000.0)), "dwi"),
    (series("DWI ASSET", GE_OTHER), "dwi"),               # tags silent: the description
    (series("Apparent Diffusion Coefficient (mm2/s)", "DERIVED\\PRIMARY\\OTHER", (1000.0,)),
     "adc"),                                             # a map carrying its b-value
    (series("Exponential Apparent Diffusion Coefficient", "DERIVED\\PRIMARY\\OTHER",
            (1000.0,)), EADC),
    (series("Synthetic DWI b1400", GE_OTHER, (1400.0,)), COMPUTED),
    (series("Ax T2 FRFSE", GE_OTHER), None),
    # Philips
    (series("dADC", "DERIVED\\PRIMARY\\ADC\\ADC"), "adc"),
    (series("eADC", "DERIVED\\PRIMARY\\EADC"), EADC),
    (series("DWI_b0_800 SENSE", "ORIGINAL\\PRIMARY\\M_SE\\M\\SE", (0.0, 800.0)), "dwi"),
    (series("ADC_map", ""), "adc"),
    (series("FA map", ""), TENSOR),
    # Canon
    (series("DWI b1000", "ORIGINAL\\PRIMARY", (None, 1000.0)), "dwi"),
    (series("ADC", "DERIVED\\SECONDARY"), "adc"),
    # other languages, tags silent
    (series("Diffusion axiale b800"), "dwi"),                       # French
    (series("Coefficient de diffusion apparent"), "adc"),
    (series("Carte ADC"), "adc"),
    (series("Diffusion tra b1000"), "dwi"),                         # German
    (series("ADC-Karte"), "adc"),
    (series("DWI berechnet b1500"), COMPUTED),
    (series("Difusión axial b1000"), "dwi"),                        # Spanish
    (series("Mapa ADC"), "adc"),
    (series("Coeficiente de difusión aparente"), "adc"),
    (series("Diffusione assiale"), "dwi"),                          # Italian
    (series("Mappa ADC"), "adc"),
    (series("eADC exponential"), EADC),
    (series("T1 SE AX"), None),
    (series("3-Plane Loc"), None),
    # tags and description disagree
    (series("eADC", SI_TRACE, (800.0,)), CONFLICT),
    (series("DWI b1000", SI_ADC), CONFLICT),
]


def outcome(s):
    verdict = diffusion_verdict(s, RULES)
    if verdict.role is not None:
        return verdict.role
    return verdict.fact or None


def test_the_table_is_large_and_mixed():
    assert len(CASES) >= 35
    expected = {e for _, e in CASES}
    assert {"dwi", "adc", None, EADC, COMPUTED, TENSOR, CONFLICT} <= expected


@pytest.mark.parametrize(("s", "expected"), CASES,
                         ids=[f"{c[0].description}-{i}" for i, c in enumerate(CASES)])
def test_diffusion_role_table(s, expected):
    got = outcome(s)
    if expected in ("dwi", "adc", None):
        assert got == expected
    else:
        assert got is not None and expected in got and got not in ("dwi", "adc")


# Named like a T2, with a T2's TR and TE: the tags say diffusion, so never the T2.
T2_NAMED = [
    series("T2 TSE tra", SI_TRACE, (0.0, 800.0)),
    series("T2 ax", GE_OTHER, (1000.0,)),                 # a b-value alone
    series("T2 SE", "DERIVED\\PRIMARY\\DIFFUSION\\ADC"),
    series("T2 TSE", "DERIVED\\PRIMARY\\DIFFUSION\\EXP"),
]


@pytest.mark.parametrize("s", T2_NAMED, ids=[s.image_type or "b" for s in T2_NAMED])
def test_a_diffusion_image_by_its_tags_is_never_the_t2(s):
    plain = replace(s, files=tuple(replace(f, image_type="", b_value=None) for f in s.files),
                    image_type="")
    assert says_diffusion(s) and not says_diffusion(plain)
    assert "t2" in assign_roles([plain], RULES, "P")[0]  # the name and TR/TE alone: the T2
    assert "t2" not in assign_roles([s], RULES, "P")[0]


# b-values of a series, the rule -> the b picked or a phrase of the refusal
PICKS = [
    ((0.0, 800.0), {}, 800.0),
    ((0.0, 50.0, 800.0, 1000.0), {}, 1000.0),                   # highest within [700, 1100]
    ((0.0, 50.0, 800.0, 1000.0), {"b_value": 800}, 800.0),
    ((0.0, 50.0, 800.0, 1000.0), {"b_value": "lowest"}, 800.0),
    ((0.0, 50.0, 800.0, 1000.0), {"b_value": "lowest", "b_range": [10, 2000]}, 50.0),
    ((0.0, 1500.0), {}, "none within series.dwi.b_range [700, 1100]"),
    ((0.0, 50.0, 400.0), {}, "holds b-values 0, 50, 400 s/mm²"),
    ((0.0, 800.0), {"b_value": 1000}, "1000 is not among them"),
    ((0.0,), {}, "only b = 0"),
    ((None,), {}, None),                                         # not recorded: taken
    ((None,), {"b_value": 800}, "records no b-value"),
    ((None, 1000.0), {}, 1000.0),                                # Canon: unrecorded = b0
]


@pytest.mark.parametrize(("bs", "rule", "expected"), PICKS, ids=[str(i) for i in range(12)])
def test_picking_a_b_value(tmp_path, bs, rule, expected):
    rules = RULES
    if rule:
        path = tmp_path / "rules.yaml"
        path.write_text("series:\n  dwi: " + repr(rule).replace("'", '"') + "\n")
        rules = load_rules(path)
        assert rules.series["dwi"].description == RULES.series["dwi"].description  # merged
    s = series("DWI", SI_TRACE, bs)
    chosen, note = pick_b_value(s, rules)
    if isinstance(expected, str):
        assert chosen is None and expected in note
        return
    assert chosen is not None, note
    got = b_values(chosen)
    assert got == ([] if expected is None else [expected])
    assert len(chosen.files) == 3  # one image per position


def test_directional_images_are_left_out_beside_the_trace_and_refused_alone():
    chosen, note = pick_b_value(philips_dwi(), RULES)
    assert chosen is not None and len(chosen.files) == 3
    assert {f.diffusion_directionality for f in chosen.files} == {"ISOTROPIC"}
    assert "9 directional image(s) left out, the trace kept" in note  # 3 per position
    chosen, note = pick_b_value(philips_dwi(isotropic=False), RULES)
    assert chosen is None and "only directional images" in note
    # directional images without a directionality tag (GE DTI): several per position
    crowded = S("DTI", files=tuple(F(1000.0, GE_OTHER, "", (0.0, 0.0, 5.0 * z))
                                   for z in range(3) for _ in range(6)))
    chosen, note = pick_b_value(crowded, RULES)
    assert chosen is None and "6 images at one position" in note


def test_the_raw_siemens_series_gives_way_to_its_trace():
    raw = series("ep2d_diff_tra", "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND", (0.0, 800.0),
                 direction="DIRECTIONAL", series_uid="raw")
    trace = series("ep2d_diff_tra_TRACEW", SI_TRACE, (0.0, 800.0), series_uid="trace")
    chosen, problems, note = assign_diffusion("dwi", [raw, trace], RULES, "P")
    assert problems == [] and chosen.series_uid == "trace"
    assert b_values(chosen) == [800.0] and "ImageType TRACE" in note
    chosen, problems, _ = assign_diffusion("dwi", [raw], RULES, "P")
    assert chosen is None and "only directional images" in problems[0]


def test_two_dwi_candidates_are_refused_and_a_pin_decides(tmp_path):
    a = series("DWI b800", SI_TRACE, (0.0, 800.0), series_uid="a")
    b = series("DWI b1000", SI_TRACE, (0.0, 1000.0), series_uid="b")
    chosen, problems, _ = assign_diffusion("dwi", [a, b], RULES, "P")
    assert chosen is None and "2 candidate series" in problems[0] and "b = 1000" in problems[0]
    path = tmp_path / "rules.yaml"
    path.write_text('pin:\n  "P": {dwi: "b"}\n')
    chosen, problems, note = assign_diffusion("dwi", [a, b], load_rules(path), "P")
    assert problems == [] and chosen.series_uid == "b" and "pinned" in note


def test_a_conflict_refuses_naming_both_facts():
    s = series("eADC", SI_TRACE, (800.0,))
    chosen, problems, _ = assign_diffusion("dwi", [s], RULES, "P")
    assert chosen is None
    assert "ImageType TRACE" in problems[0] and "exponential ADC" in problems[0]


def test_an_optional_role_may_be_absent_a_required_one_not():
    t2 = series("T2 TSE", "ORIGINAL\\PRIMARY\\M")
    assert assign_diffusion("adc", [t2], RULES, "P", required=False)[:2] == (None, [])
    _, problems, _ = assign_diffusion("adc", [t2], RULES, "P")
    assert "adc: no series matches" in problems[0]


def _adc(manufacturer="SIEMENS", maps=None, rescale=(1.0, 0.0)):
    files = tuple(F(image_type=SI_ADC, image_position=(0, 0, 5.0 * z), real_world=m,
                    rescale=rescale) for z, m in enumerate(maps or [None] * 3))
    return S("ADC", files=files, image_type=SI_ADC, manufacturer=manufacturer)


UM2 = RealWorldMap(1.0, 0.0, "um2/s")
# (series, scale expected or a phrase of the refusal)
SCALES = [
    (_adc("SIEMENS"), 1e-6),
    (_adc("GE MEDICAL SYSTEMS"), 1e-6),
    (_adc("Philips Medical Systems"), 1e-6),
    (_adc("CANON_MEC"), "has no entry in series.adc.units_by_manufacturer"),
    (_adc("CANON_MEC", [UM2] * 3), 1e-6),                                   # RWVM wins
    (_adc("CANON_MEC", [RealWorldMap(1e-6, 0.0, "mm2/s")] * 3), 1e-6),
    (_adc("Philips", [RealWorldMap(1.0, 0.0, "10-3.mm2/s")] * 3, (0.001, 0.0)), 1.0),
    (_adc("SIEMENS", [RealWorldMap(2.0, 0.0, "um2/s")] * 3), 2e-6),         # not the vendor's
    (_adc("SIEMENS", [RealWorldMap(1.0, 0.0, "1")] * 3), 1e-6),            # no unit: vendor
    (_adc("CANON_MEC", [RealWorldMap(1.0, 5.0, "um2/s")] * 3), "intercept"),
    (_adc("CANON_MEC", [UM2, UM2, RealWorldMap(2.0, 0.0, "um2/s")]), "different factors"),
]


@pytest.mark.parametrize(("s", "expected"), SCALES, ids=[str(i) for i in range(len(SCALES))])
def test_adc_unit_table(s, expected):
    scale, how = adc_scale(s, RULES)
    if isinstance(expected, str):
        assert scale is None and expected in how
    else:
        assert scale == pytest.approx(expected) and how


def test_adc_values_must_be_plausible_in_the_unit_taken():
    tissue = np.full((4, 4, 3), 1100.0)
    tissue[0] = 0  # background
    assert check_adc_values(tissue, 1e-6, RULES) == ""
    assert "outside series.adc.median_mm2_s" in check_adc_values(tissue / 1000, 1e-6, RULES)
    assert "no positive value" in check_adc_values(np.zeros((2, 2, 2)), 1e-6, RULES)


def test_roles_to_import_validated(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("roles_to_import: {t1: required, ce_t1: required, t2: optional}\n")
    with pytest.raises(ValueError, match="must be required"):
        load_rules(path)
    path.write_text("roles_to_import: {t1: required, ce_t1: required, t2: required, "
                    "dwi: sometimes}\n")
    with pytest.raises(ValueError, match="dwi must be one of"):
        load_rules(path)
    path.write_text("series:\n  dwi: {b_value: highest_please}\n")
    with pytest.raises(ValueError, match="b_value"):
        load_rules(path)
    path.write_text("series:\n  t1: {description: [t1], b_value: 800}\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_rules(path)
    assert load_rules().roles_to_import == {"t1": "required", "ce_t1": "required",
                                            "t2": "required"}


def test_assign_roles_adds_the_diffusion_roles_only_when_asked(tmp_path):
    se = dict(repetition_time_ms=500.0, echo_time_ms=10.0)
    site = [S("T1 SE", series_uid="t1", **se),
            S("T1 SE +C", series_uid="ce", contrast_agent="GAD", **se),
            S("T2 TSE", series_uid="t2", repetition_time_ms=4000.0, echo_time_ms=90.0),
            replace(series("ep2d_diff_b50_800_TRACEW", SI_TRACE, (50.0, 800.0)),
                    series_uid="dwi"),
            replace(_adc(), series_uid="adc")]
    roles, problems, _ = assign_roles(site, RULES, "P")
    assert problems == [] and set(roles) == {"t1", "ce_t1", "t2"}
    path = tmp_path / "rules.yaml"
    path.write_text("roles_to_import: {t1: required, ce_t1: required, t2: required, "
                    "dwi: required, adc: optional}\n")
    roles, problems, notes = assign_roles(site, load_rules(path), "P")
    assert problems == [] and roles["dwi"].series_uid == "dwi"
    assert b_values(roles["dwi"]) == [800.0] and "b = 800" in notes["dwi"]
    assert roles["adc"].series_uid == "adc" and "ImageType ADC" in notes["adc"]
