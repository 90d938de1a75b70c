"""Figure 3: example four-channel inputs (parotidlib.report.figures.inputs)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from parotidlib.report.figures.inputs import plot_example_inputs  # noqa: E402


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
