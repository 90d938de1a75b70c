"""Which structure set a label is taken from: approved first, then newest; ties, two ROIs of
one set and the rules' `refuse` are refused with the candidates listed; never a union."""

from pathlib import Path

import numpy as np

from parotidlib.dicom.rules import load_rules
from parotidlib.dicom.structures import Candidate, StructureSet, choose

RULES = load_rules()


def sset(uid, approval="", date="", time=""):
    return StructureSet(Path(f"{uid}.dcm"), "RTSTRUCT", uid, "1.2.3", "9.9", approval, date, time)


def cand(structure_set, name, label, voxels=10):
    mask = np.zeros((4, 4, 4), bool)
    mask.flat[:voxels] = True
    return Candidate(structure_set, name, label, mask, voxels * 0.001, number=label)


def test_approved_beats_newer_and_newer_beats_older():
    final = sset("final", "APPROVED", "20200101", "100000")
    draft = sset("draft", "UNAPPROVED", "20200301", "090000")
    chosen, notes, problems = choose([cand(draft, "GTV", 3, 30), cand(final, "GTV", 3, 10)],
                                     RULES, "P", "t1")
    assert problems == [] and chosen[3].structure_set is final
    assert "left out: 'GTV' (ROI 3, 0.03 ml)" in notes[0] and "draft" in notes[0]
    older = sset("older", "", "20200101", "100000")
    newer = sset("newer", "", "20200101", "110000")
    chosen, _, problems = choose([cand(older, "GTV", 3), cand(newer, "GTVp", 3)], RULES, "P", "t1")
    assert problems == [] and chosen[3].name == "GTVp"


def test_labels_are_chosen_per_label_and_never_unioned():
    a, b = sset("a", "APPROVED", "20200101"), sset("b", "", "20200201")
    chosen, _, problems = choose([cand(a, "GTV", 3, 5), cand(b, "GTV", 3, 50),
                                  cand(b, "Parotid_R", 1, 20)], RULES, "P", "t1")
    assert problems == [] and chosen[3].mask.sum() == 5 and chosen[1].structure_set is b


def test_ties_two_rois_of_one_set_and_refuse_are_problems(tmp_path):
    one, two = sset("one"), sset("two")
    _, _, problems = choose([cand(one, "GTV", 3), cand(two, "GTV", 3)], RULES, "P", "t1")
    assert "none is approved or newer" in problems[0] and "one" in problems[0]
    _, _, problems = choose([cand(one, "GTV", 3, 10), cand(one, "Tumour", 3, 20)], RULES, "P",
                            "t2")
    assert ("tumour on t2: 2 ROIs of one structure set" in problems[0]
            and "'Tumour' (ROI 3, 0.02 ml)" in problems[0])
    path = tmp_path / "rules.yaml"
    path.write_text("structure_sets: refuse\npin:\n  P:\n    tumour: Tumour\n")
    rules = load_rules(path)
    chosen, _, problems = choose([cand(one, "GTV", 3), cand(one, "Tumour", 3)], rules, "P", "t1")
    assert problems == [] and chosen[3].name == "Tumour"  # the pin decides
    final = sset("final", "APPROVED")
    _, _, problems = choose([cand(final, "GTV", 3), cand(one, "GTV", 3)], rules, "Q", "t1")
    assert "the rules say refuse" in problems[0]
