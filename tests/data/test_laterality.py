"""Which side a tumour lies on, and its conflicts with the manifest (parotidlib.data.laterality)."""

from __future__ import annotations

import numpy as np
import pytest
from test_cohort import LEFT_X, RIGHT_X, T1_GRID, grid_affine, label_world, world_coords

from parotidlib.data.laterality import gland_midline, side_conflict, tumour_parts


def t1_labels(tumor_side="right", tumour_centre=None, fn=None):
    """The hand-made anatomy's label map on the T1 grid (glands at x +12 and -12 mm)."""
    shape, affine = grid_affine(T1_GRID)
    lab = label_world(world_coords(shape, affine), tumor_side, tumour_centre)
    return (fn(lab) if fn else lab), affine


def test_midline_between_the_gland_centroids():
    lab, affine = t1_labels()
    midline = gland_midline(lab, affine)
    assert midline.right_sign == 1.0 and midline.x_mm == pytest.approx(0.0)
    assert midline.x_right_mm == pytest.approx(RIGHT_X) and midline.x_left_mm == pytest.approx(
        LEFT_X)
    assert (midline.side_of(5.0), midline.side_of(-5.0)) == ("right", "left")


def test_agreeing_labels_give_no_conflict():
    for side in ("left", "right", "both"):
        lab, affine = t1_labels(side)
        assert side_conflict(side, lab, affine) is None, side
        _, parts = tumour_parts(lab, affine)
        assert {p.side for p in parts} == ({"left", "right"} if side == "both" else {side})
        assert {p.basis for p in parts} == {"midline"}


def test_one_sided_tumour_in_the_other_gland_names_both_facts():
    lab, affine = t1_labels("right", tumour_centre=(LEFT_X, 1.0, 0.0))  # in the left gland
    message = side_conflict("right", lab, affine)
    assert message.startswith("manifest tumor_side is 'right' but the tumour (label 3) lies on "
                              "the left side, in or next to the left gland")
    assert "next to the left gland (label 2)" in message
    assert "centroid world x -12.0 mm, on the left gland's side of the midline at x 0.0 mm" \
        in message
    assert side_conflict("left", lab, affine) is None


def test_a_stray_part_on_the_other_side_is_a_conflict():
    def stray(lab):
        lab = lab.copy()
        lab[18:21, 22:25, 4:6] = 3  # 18 voxels inside the left gland (x -13.5..-11.5 mm)
        return lab

    lab, affine = t1_labels("right", fn=stray)
    message = side_conflict("right", lab, affine)
    total = int((lab == 3).sum())
    assert f"18 of the tumour's {total} voxels (label 3) lie on the left side" in message


def test_both_with_a_tumour_on_one_side_only():
    lab, affine = t1_labels("both", tumour_centre=(RIGHT_X, 1.0, 0.0))  # one tumour, right
    message = side_conflict("both", lab, affine)
    assert message.startswith("manifest tumor_side is 'both' but the tumour (label 3) lies "
                              "only on the right side")
    assert message.endswith("the left side has no tumour")
    assert side_conflict("right", lab, affine) is None


def test_sides_follow_the_labels_when_they_contradict_ras():
    # label 1 (right gland) at -x: the tumour in the gland labelled 1 is on the right
    def swapped(lab):
        return np.select([lab == 1, lab == 2], [2, 1], lab.astype(int)).astype(np.uint8)

    lab, affine = t1_labels("left", fn=swapped)  # tumour at x -12 mm, now in label 1's gland
    assert gland_midline(lab, affine).right_sign == -1.0
    assert side_conflict("right", lab, affine) is None
    assert "lies on the right side" in side_conflict("left", lab, affine)


def test_without_a_midline_the_touched_gland_decides():
    def no_left_gland(lab):
        return np.where(lab == 2, 0, lab).astype(np.uint8)

    lab, affine = t1_labels("right", fn=no_left_gland)
    assert gland_midline(lab, affine) is None
    _, parts = tumour_parts(lab, affine)
    assert [(p.side, p.basis) for p in parts] == [("right", "contact")]
    assert side_conflict("right", lab, affine) is None
    assert "touching the right gland only" in side_conflict("left", lab, affine)
    # a tumour away from the one gland left: unknown, never guessed from the image centre
    lab, affine = t1_labels("right", tumour_centre=(LEFT_X, 1.0, 0.0), fn=no_left_gland)
    _, parts = tumour_parts(lab, affine)
    assert [(p.side, p.basis) for p in parts] == [(None, "")]
    assert side_conflict("right", lab, affine) is None and side_conflict("both", lab,
                                                                         affine) is None


def test_coinciding_gland_centroids_leave_the_side_unknown():
    # glands replaced by tumour but for one voxel each, side by side: no midline, no contact
    def replaced(lab):
        lab = np.where((lab == 1) | (lab == 2), 3, lab).astype(np.uint8)
        lab[0, 0, 0], lab[0, 1, 0] = 1, 2
        return lab

    lab, affine = t1_labels("both", fn=replaced)
    assert gland_midline(lab, affine) is None
    _, parts = tumour_parts(lab, affine)
    assert len(parts) == 2 and {p.side for p in parts} == {None}
    for side in ("left", "right", "both"):
        assert side_conflict(side, lab, affine) is None


def test_no_tumour_has_no_parts():
    lab, affine = t1_labels(fn=lambda lab: np.where(lab == 3, 1, lab).astype(np.uint8))
    assert tumour_parts(lab, affine)[1] == [] and side_conflict("right", lab, affine) is None
