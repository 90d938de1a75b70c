"""Series roles and ROI names from the import rules (defaults and a user's file)."""

from types import SimpleNamespace

import pytest

from parotidlib.dicom.rules import (
    RulesError,
    assign_roles,
    load_rules,
    map_rois,
    normalise_roi_name,
    roi_label,
)


def series(description, tr=None, te=None, agent="", uid=None, protocol=""):
    return SimpleNamespace(description=description, protocol=protocol, repetition_time_ms=tr,
                           echo_time_ms=te, contrast_agent=agent, series_date="20200101",
                           series_uid=uid or f"1.2.{abs(hash(description)) % 10**8}")


# The three scanners of Xia et al. 2021, Table 2, as a site would name the series.
SITES = [
    [series("T1 SE AX", 468.7, 10.2), series("T1 SE AX +C", 273.5, 2.97, "GADOLINIUM"),
     series("T2 FSE AX", 3393.8, 86.6)],
    [series("t1_tse_tra", 520, 14), series("t1_vibe_fs_tra_post", 5.1, 2.0),
     series("t2_tse_tra", 4200, 85)],
    [series("AX T1W", 800, 8), series("AX T1W FS GAD", 5.0, 2.0),
     series("AX T2W", 5000, 80)],
]


@pytest.mark.parametrize("site", SITES, ids=["GE", "Siemens", "Philips"])
def test_default_rules_assign_the_three_roles_of_each_site(site):
    roles, problems = assign_roles(site, load_rules(), "P1")
    assert problems == []
    assert [roles[r].description for r in ("t1", "ce_t1", "t2")] == [
        s.description for s in site]


def test_no_match_and_two_candidates_are_problems_listing_the_series():
    site = [series("T1 SE AX", 500, 10), series("T1 SE COR", 500, 10, uid="9.9"),
            series("T2 FSE AX", 3000, 85), series("localizer", 8, 2)]
    roles, problems = assign_roles(site, load_rules(), "P1")
    text = " ".join(problems)
    assert "t1: 2 candidate series" in text and "'T1 SE COR'" in text and "9.9" in text
    assert "ce_t1: no series matches" in text and "'localizer'" in text
    assert set(roles) == {"t2"}


def test_a_pin_decides_between_candidates(tmp_path):
    site = [series("T1 SE AX", 500, 10, uid="1.1"), series("T1 SE COR", 500, 10, uid="1.2"),
            series("T1 +C", 250, 3, "GAD", uid="1.3"), series("T2 FSE", 3000, 85, uid="1.4")]
    path = tmp_path / "rules.yaml"
    path.write_text('pin:\n  "P1":\n    t1: "1.2"\n')
    roles, problems = assign_roles(site, load_rules(path), "P1")
    assert problems == [] and roles["t1"].series_uid == "1.2"
    assert assign_roles(site, load_rules(path), "P2")[1]  # another patient is not pinned


def test_roi_names_from_the_field():
    rules = load_rules()
    for name in ("Parotid_R", "parotid rt", "R Parotid", "Rt_Parotid", "PAROTID RIGHT",
                 "ParotidR", "Parotid_Dx"):
        assert roi_label(name, rules) == 1, name
    for name in ("Parotid_L", "parotid lt", "L Parotid", "Lt Parotid", "PAROTID LEFT"):
        assert roi_label(name, rules) == 2, name
    for name in ("GTV", "Tumor", "tumour", "Lesion", "GTV_parotid", "mass"):
        assert roi_label(name, rules) == 3, name
    mapped, unmatched = map_rois(["Parotid_R", "Mandible", "Parotid"], rules)
    assert mapped == {"Parotid_R": 1} and unmatched == ["Mandible", "Parotid"]
    assert normalise_roi_name("Parotid__R ") == "parotid r"


def test_a_rules_file_replaces_sections_and_is_checked(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rois:\n  3: ['^tu$']\n")
    rules = load_rules(path)
    assert roi_label("TU", rules) == 3 and roi_label("GTV", rules) is None
    assert roi_label("Parotid_R", rules) is None  # the rois section was replaced whole
    path.write_text("series:\n  t2:\n    description: ['weird']\n")
    assert load_rules(path).series["t1"].description  # other roles kept
    for text, message in (("colour: red\n", "unknown section"),
                          ("rois:\n  7: ['x']\n", "not a label code"),
                          ("series:\n  t1:\n    tr_ms: [900, 100]\n", "tr_ms"),
                          ("rois:\n  1: ['(']\n", "invalid regular expression")):
        path.write_text(text)
        with pytest.raises(RulesError, match=message):
            load_rules(path)
