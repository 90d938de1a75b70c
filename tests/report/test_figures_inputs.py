"""Input figures (parotidlib.report.figures.inputs): Figure 3's example inputs and one
patient's strip of input crops with its predictions."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from parotidlib.constants import CLASSES  # noqa: E402
from parotidlib.report.figures.inputs import plot_example_inputs, plot_patient_strip  # noqa: E402


def fake_dataset(labels, channels=("t1", "ce_t1", "t2", "gland")):
    n = len(labels)
    # image i is filled with the value i, so the drawn sample can be read off the figure
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                             (n, len(channels), 8, 8)).copy()
    slices = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)], "slice_index": range(n),
                           "label": labels, "split": ["train", "test"] * (n // 2) + ["train"] *
                           (n % 2)})
    return SimpleNamespace(images=images, slices=slices, channels=tuple(channels))


LABELS = ["free"] * 4 + ["pleomorphic_adenoma"] * 3 + ["warthin"] * 2 + ["malignant"] * 3


def shown(ax):
    return int(ax.images[0].get_array()[0, 0]) if ax.images else None


def test_grid_rows_classes_columns_channels():
    ds = fake_dataset(LABELS)
    fig = plot_example_inputs(ds, per_class=1, seed=0)
    axes = np.array(fig.axes).reshape(4, 4)
    assert [ax.get_title() for ax in axes[0]] == ["T1", "CE-T1", "T2", "Gland"]
    labels = np.array(LABELS)
    for row, name in enumerate(["free", "pleomorphic_adenoma", "warthin", "malignant"]):
        index = shown(axes[row, 0])
        assert labels[index] == name  # each row shows a slice of its class
        assert all(shown(ax) == index for ax in axes[row])  # all channels of one slice
        assert axes[row, 0].images[0].get_cmap().name == "gray"
        assert axes[row, 0].images[0].get_clim() == (0, 255)
    plt.close(fig)


def test_seeded_draw_and_per_class():
    ds = fake_dataset(LABELS)
    draw = lambda seed: [shown(ax) for ax in plot_example_inputs(ds, 2, seed).axes[::4]]  # noqa: E731
    assert draw(1) == draw(1)
    first = draw(1)
    assert len(first) == 8 and len(set(first)) == 8  # 2 distinct slices per class
    plt.close("all")


def test_missing_class_and_channel_subset():
    ds = fake_dataset(["free", "free", "malignant"], channels=("t1", "gland"))
    fig = plot_example_inputs(ds)
    axes = np.array(fig.axes).reshape(4, 2)
    assert [ax.get_title() for ax in axes[0]] == ["T1", "Gland"]
    assert shown(axes[1, 0]) is None and axes[1, 0].texts[0].get_text() == "no slices"
    assert shown(axes[3, 1]) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="per_class"):
        plot_example_inputs(ds, per_class=0)


def test_split_filter():
    ds = fake_dataset(LABELS)
    fig = plot_example_inputs(ds, split="test", per_class=1)
    for ax in fig.axes[::4]:
        if ax.images:
            assert ds.slices.loc[shown(ax), "split"] == "test"
    plt.close(fig)


def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def _renders(fig, path) -> None:
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 1000


def _patient(rng: np.random.Generator, n: int, c: int, h: int = 24, w: int = 24):
    images = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    return images, rng.dirichlet(np.ones(len(CLASSES)), n)


def test_patient_strip_subsampled_unvalidated(tmp_path):
    rng = np.random.default_rng(2)
    images, probs = _patient(rng, 23, 4)
    probs[5] = [0.05, 0.05, 0.1, 0.8]  # slice 6: malignant
    labels = ["free"] * 10 + ["malignant"] * 8 + [None] * 5
    fig = plot_patient_strip(images, probs, ("t1", "t2", "stir", "gland"), "EXT-007",
                             "malignant", 5, 2, slice_labels=labels, max_slices=10)
    assert len(_image_axes(fig)) == 4 * 10
    assert len(fig.axes) == 5 * 10  # plus one probability bar per column
    title = fig.get_suptitle()
    assert "Patient EXT-007: predicted Malignant — 5 slice(s) predicted malignant, " \
           "threshold > 2" in title
    assert "unvalidated" in title and "10 of 23 slices shown" in title
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() and ax.images] == \
        ["T1", "T2", "STIR", "Gland"]
    columns = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("Slice")]
    shown = [int(t.split()[1]) for t in columns]
    assert shown == sorted(set(shown)) and len(shown) == 10
    assert shown[0] <= 3 and shown[-1] >= 21  # spread over the stack
    bar_titles = [ax.get_title() for ax in fig.axes if not ax.images]
    assert "Malignant 0.80" in bar_titles
    assert "true: unknown" in [ax.get_xlabel() for ax in fig.axes]
    _renders(fig, tmp_path / "strip.png")


def test_patient_strip_single_slice_single_channel(tmp_path):
    rng = np.random.default_rng(3)
    images, probs = _patient(rng, 1, 1, 20, 30)
    fig = plot_patient_strip(images, probs, ["t1"], "P1", "pleomorphic_adenoma", 0, 2,
                             true_histology="pleomorphic_adenoma")
    assert len(_image_axes(fig)) == 1
    title = fig.get_suptitle()
    assert "histology: Pleomorphic adenoma" in title and "unvalidated" not in title
    assert "shown" not in title
    _renders(fig, tmp_path / "strip_single.png")


@pytest.mark.parametrize("channels", [("t1",), ("t1", "gland"), ("t1", "ce_t1", "t2"),
                                      ("t1", "ce_t1", "t2", "gland")])
def test_patient_strip_channels(channels):
    rng = np.random.default_rng(4)
    images, probs = _patient(rng, 3, len(channels))
    fig = plot_patient_strip(images, probs, channels, "P2", "benign", 1, 2, max_slices=10)
    assert len(_image_axes(fig)) == 3 * len(channels)


@pytest.mark.parametrize("change, match", [
    (dict(images=np.zeros((2, 1, 8, 8), np.float32)), "images"),
    (dict(images=np.zeros((1, 8, 8), np.uint8)), "images"),
    (dict(images=np.zeros((0, 1, 8, 8), np.uint8)), "images"),
    (dict(probabilities=np.full((3, 4), 0.25)), "probabilities"),
    (dict(probabilities=np.full((2, 3), 0.25)), "probabilities"),
    (dict(probabilities=np.full((2, 4), 1.5)), "probabilities"),
    (dict(channels=("t1", "t2")), "channels"),
    (dict(channels="t1"), "channels"),
    (dict(slice_labels=["free"]), "slice_labels"),
    (dict(slice_labels=["free", "benign"]), "slice_labels"),
    (dict(max_slices=0), "max_slices"),
    (dict(n_malignant=-1), "n_malignant"),
    (dict(threshold=1.5), "threshold"),
])
def test_patient_strip_bad_input(change, match):
    args = dict(images=np.zeros((2, 1, 8, 8), np.uint8), probabilities=np.full((2, 4), 0.25),
                channels=("t1",), patient_id="P", predicted="benign", n_malignant=0,
                threshold=2)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        plot_patient_strip(**args)


def test_example_inputs_follow_the_datasets_classes_and_channels():
    labels = ["free", "benign", "malignant", "free", "benign", "malignant"]
    ds = fake_dataset(labels, channels=("t1", "adc", "gland"))
    ds.classes = ("free", "benign", "malignant")
    fig = plot_example_inputs(ds)
    axes = np.array(fig.axes).reshape(3, 3)
    assert [ax.get_title() for ax in axes[0]] == ["T1", "ADC", "Gland"]
    assert [axes[r, 0].get_ylabel() for r in range(3)] == ["Free of tumour", "Benign",
                                                           "Malignant"]
    assert all(labels[shown(axes[r, 0])] == name for r, name in enumerate(ds.classes))
    assert fig._suptitle.get_text().startswith("Three-channel inputs")
    plt.close(fig)


def test_patient_strip_with_a_class_scheme(tmp_path):
    from parotidlib.report.figures.style import class_colours
    from parotidlib.study import class_scheme

    scheme = class_scheme({"pleomorphic_adenoma": "benign", "warthin": "benign",
                           "acinic_cell_carcinoma": "low_grade", "malignant": "high_grade"})
    assert scheme.classes == ("free", "benign", "low_grade", "high_grade")
    images = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]])
    fig = plot_patient_strip(images, probs, ["adc"], "P3", "low_grade", 2, 1,
                             slice_labels=["free", "low_grade", None], scheme=scheme)
    images_axes = _image_axes(fig)
    colours = class_colours(scheme.classes)
    framed = [matplotlib.colors.to_hex(ax.spines["left"].get_edgecolor()) for ax in images_axes]
    assert framed[1:] == [colours["low_grade"], colours["high_grade"]]  # malignant classes
    assert images_axes[0].get_ylabel() == "ADC"
    titles = [ax.get_title() for ax in fig.axes if not ax.images]
    assert titles == ["Free 0.70", "Low grade 0.70", "High grade 0.70"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "Free (no tumour)", "Benign", "Low grade", "High grade"]
    assert fig.legends[0].get_title().get_text() == "Predicted class"
    _renders(fig, tmp_path / "strip.png")
    with pytest.raises(ValueError, match=r"\(3, 4\) in the order of the classes"):
        plot_patient_strip(images, probs[:, :3], ["adc"], "P3", "benign", 0, 1, scheme=scheme)
    with pytest.raises(ValueError, match="slice_labels"):
        plot_patient_strip(images, probs, ["adc"], "P3", "benign", 0, 1,
                           slice_labels=["warthin", None, None], scheme=scheme)
