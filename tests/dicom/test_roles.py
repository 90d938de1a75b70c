"""Series roles and contrast from tags first, text with negation second: a table of real-world
series descriptions (GE, Siemens, Philips; English, German, French, Spanish, Italian), with and
without the Contrast/Bolus tags and with tags and text in conflict. No case may come out wrong:
each gives its role, no role, or a refusal naming both facts."""

from dataclasses import dataclass, field

import pytest

from parotidlib.dicom.contrast import contrast_evidence
from parotidlib.dicom.roles import assign_roles, echoes, matches, pick_echo
from parotidlib.dicom.rules import ROLES, load_rules

RULES = load_rules()


@dataclass(frozen=True)
class S:
    """The fields of parotidlib.dicom.headers.Series that the role rules read."""

    description: str
    repetition_time_ms: float | None = None
    echo_time_ms: float | None = None
    contrast_agent: str = ""
    protocol: str = ""
    contrast_route: str = ""
    contrast_start_time: str = ""
    contrast_volume_ml: float | None = None
    contrast_total_dose_ml: float | None = None
    series_number: int | None = None
    series_time: str = ""
    acquisition_time: str = ""
    series_date: str = "20200101"
    study_uid: str = "1.2.3"
    series_uid: str = ""
    files: tuple = field(default=(), repr=False)


SE = dict(repetition_time_ms=500, echo_time_ms=10)      # T1 spin echo
GRE = dict(repetition_time_ms=5, echo_time_ms=2)        # 3-D spoiled gradient echo
T2 = dict(repetition_time_ms=4000, echo_time_ms=90)
CONFLICT = "conflict"

# (description, header fields, expected): the role it is a candidate for, None for no role,
# or CONFLICT (tags and text disagree, or the text says both).
CASES = [
    # GE
    ("AX T1 SE", SE, "t1"),
    ("AX T1 SE +C", SE, "ce_t1"),
    ("AX T1 FS +C", GRE, "ce_t1"),
    ("AX T1 PRE GAD", SE, "t1"),
    ("AX T1 POST GAD", SE, "ce_t1"),
    ("COR T1 C+", SE, "ce_t1"),
    ("AX T1 w/o contrast", SE, "t1"),
    ("Ax T2 FRFSE", T2, "t2"),
    ("AX T1 FSE", {**SE, "contrast_agent": "MAGNEVIST"}, "ce_t1"),      # tags, text silent
    ("AX T1 FSE", {**SE, "contrast_route": "IV"}, "ce_t1"),
    ("AX T1 FSE", {**SE, "contrast_volume_ml": 15.0}, "ce_t1"),
    ("AX T1 FSE", {**SE, "contrast_agent": "NONE"}, "t1"),
    ("3-Plane Loc", {"repetition_time_ms": 5, "echo_time_ms": 1.5}, None),
    # Siemens
    ("t1_tse_tra", SE, "t1"),
    ("t1_tse_fs_tra_post", SE, "ce_t1"),
    ("t1_vibe_fs_tra_post", GRE, "ce_t1"),
    ("t1_vibe_fs_tra", GRE, None),             # a pre-contrast GRE is neither T1 SE nor CE
    ("t2_tse_tra", T2, "t2"),
    ("t2_tse_stir_tra", T2, None),
    ("ep2d_diff_b800", {"repetition_time_ms": 5000, "echo_time_ms": 70}, None),
    ("localizer", {"repetition_time_ms": 8, "echo_time_ms": 4}, None),
    ("t1_tse_tra_sub", SE, None),
    # Philips
    ("T1W_TSE", SE, "t1"),
    ("T1W_TSE_Gd", SE, "ce_t1"),
    ("sT1W_3D_TFE_GD", GRE, "ce_t1"),
    ("WIP T1W_TSE CLEAR", SE, "t1"),
    ("T2W_TSE", T2, "t2"),
    ("Survey", {"repetition_time_ms": 11, "echo_time_ms": 4.6}, None),
    ("T1W_SPIR_Gd", SE, "ce_t1"),
    # English without tags
    ("T1 pre contrast", SE, "t1"),
    ("T1 precontrast", SE, "t1"),
    ("T1 non-contrast", SE, "t1"),
    ("T1 without contrast", SE, "t1"),
    ("T1 pre Gd", SE, "t1"),
    ("T1 Gd-DTPA", SE, "ce_t1"),
    ("T1 unenhanced", SE, "t1"),
    ("T1 SE AX (enhanced conversion)", SE, "t1"),   # "enhanced" alone is not contrast
    ("Enhanced MR T1 SE", SE, "t1"),
    ("T1 FS Dotarem", SE, "ce_t1"),
    ("T1 SE AX", SE, "t1"),
    # German
    ("T1 nativ", SE, "t1"),
    ("T1 mit KM", SE, "ce_t1"),
    ("T1 ohne KM", SE, "t1"),
    ("t1_tse_tra_KM", SE, "ce_t1"),
    ("T1 fs tra nach KM", SE, "ce_t1"),
    # French
    ("T1 SE AX sans injection", SE, "t1"),
    ("T1 FS après injection", SE, "ce_t1"),
    ("T1 gado", SE, "ce_t1"),
    ("T1 avec injection", SE, "ce_t1"),
    # Spanish, Italian
    ("T1 sin contraste", SE, "t1"),
    ("T1 con contraste", SE, "ce_t1"),
    ("T1 SE axial con gadolinio", SE, "ce_t1"),
    ("T1 senza mdc", SE, "t1"),
    ("T1 con mdc", SE, "ce_t1"),
    ("T2 TSE axial", T2, "t2"),
    # tags and text in conflict, or text against itself
    ("T1 pre", {**SE, "contrast_agent": "GADOLINIUM"}, CONFLICT),
    ("T1 w/o contrast", {**SE, "contrast_route": "IV"}, CONFLICT),
    ("T1 +C", {**SE, "contrast_agent": "none"}, CONFLICT),
    ("T1 pre and post contrast", SE, CONFLICT),
]


def candidates(series):
    evidence = contrast_evidence(series, [series], RULES)
    if evidence.conflict:
        return CONFLICT
    found = [role for role in ROLES if matches(series, role, RULES, evidence)]
    assert len(found) <= 1, (series.description, found)
    return found[0] if found else None


def test_the_table_is_large_and_mixed():
    assert len(CASES) >= 40
    assert {e for *_, e in CASES} == {"t1", "ce_t1", "t2", None, CONFLICT}


@pytest.mark.parametrize(("description", "fields", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_series_description_table(description, fields, expected):
    assert candidates(S(description, **fields)) == expected


def test_a_conflict_refuses_the_patient_naming_both_facts():
    series = [S("T1 pre", **SE, contrast_agent="GADOLINIUM", series_uid="1"),
              S("T1 SE +C", **SE, contrast_agent="GADOLINIUM", series_uid="2"),
              S("T2 TSE", **T2, series_uid="3")]
    roles, problems, _ = assign_roles(series, RULES, "P1")
    text = " ".join(problems)
    assert "ContrastBolusAgent is present (contrast given)" in text
    assert "the description says 'pre' (no contrast)" in text
    assert "t1: no series matches" in text  # the conflicting series is taken for no role


def test_pre_and_post_contrast_t1_are_not_swapped():
    """The trial that swapped T1 and CE-T1: 'T1 w/o contrast' was read as contrast."""
    series = [S("T1 w/o contrast", **SE, series_uid="pre"), S("T1 mit KM", **SE, series_uid="ce"),
              S("T2 TSE", **T2, series_uid="t2")]
    roles, problems, notes = assign_roles(series, RULES, "P1")
    assert problems == []
    assert (roles["t1"].series_uid, roles["ce_t1"].series_uid) == ("pre", "ce")
    assert "the description says" in notes["t1"]


def test_acquisition_order_against_the_contrast_start_time():
    post = S("T1 FS", **SE, contrast_agent="GAD", contrast_start_time="101500",
             series_time="102000", series_uid="post")
    before = S("T1 FS", **SE, series_time="100500", series_uid="before")
    after = S("T1 FS", **SE, series_time="103000", series_uid="after")
    study = [post, before, after]
    assert contrast_evidence(before, study, RULES).given is False
    assert contrast_evidence(after, study, RULES).given is True
    # text against the order: refused
    late_pre = S("T1 pre", **SE, series_time="103000", series_uid="late")
    assert contrast_evidence(late_pre, [post, late_pre], RULES).conflict
    # without a start time: SeriesNumber before the first series with an agent
    tagged = S("T1", **SE, contrast_agent="GAD", series_number=7, series_uid="7")
    early = S("T1", **SE, series_number=3, series_uid="3")
    assert contrast_evidence(early, [tagged, early], RULES).tags is False
    roles, problems, notes = assign_roles([tagged, early, S("T2", **T2, series_uid="4")],
                                          RULES, "P1")
    assert problems == [] and roles["t1"].series_uid == "3"
    assert "SeriesNumber" in notes["t1"]


def test_two_candidates_are_refused_listing_both_and_a_pin_decides(tmp_path):
    site = [S("T1 SE AX", **SE, series_uid="1.1"), S("T1 SE COR", **SE, series_uid="1.2"),
            S("T1 +C", **SE, contrast_agent="GAD", series_uid="1.3"),
            S("T2 FSE", **T2, series_uid="1.4")]
    _, problems, _ = assign_roles(site, RULES, "P1")
    assert "t1: 2 candidate series" in problems[0] and "1.2" in problems[0]
    path = tmp_path / "rules.yaml"
    path.write_text('pin:\n  "P1":\n    t1: "1.2"\n')
    roles, problems, notes = assign_roles(site, load_rules(path), "P1")
    assert problems == [] and roles["t1"].series_uid == "1.2"
    assert notes["t1"] == "pinned in the rules"


@dataclass(frozen=True)
class F:
    echo_number: int | None
    echo_time_ms: float | None


def test_a_dual_echo_series_is_refused_unless_a_rule_picks_an_echo(tmp_path):
    files = tuple(F(e, te) for e, te in ((1, 15.0), (2, 90.0)) for _ in range(4))
    dual = S("PD T2 TSE", repetition_time_ms=3000, echo_time_ms=15.0, series_uid="d",
             files=files)
    assert [te for te, _ in echoes(dual)] == [15.0, 90.0]
    site = [S("T1 SE", **SE, series_uid="a"), S("T1 +C", **SE, contrast_agent="GAD",
                                                  series_uid="b"), dual]
    _, problems, _ = assign_roles(site, RULES, "P1")
    assert problems and "holds 2 echoes (TE 15, 90 ms)" in problems[0]
    path = tmp_path / "rules.yaml"
    path.write_text("series:\n  t2:\n    description: ['t2']\n    te_ms: [40, 250]\n"
                    "    echo: longest\n")
    roles, problems, notes = assign_roles(site, load_rules(path), "P1")
    assert problems == [] and roles["t2"].echo_time_ms == 90.0
    assert {f.echo_number for f in roles["t2"].files} == {2}
    assert "echo 2 of 2 (TE 90 ms" in notes["t2"]
    path.write_text("series:\n  t2:\n    description: ['t2']\n    te_ms: [10, 250]\n"
                    "    echo: te_range\n")
    chosen, note = pick_echo(dual, "t2", load_rules(path))
    assert chosen is None and "2 of them in" in note
