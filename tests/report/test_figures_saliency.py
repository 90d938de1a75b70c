"""The saliency example figure builds with the expected axes and saves."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from parotidlib.constants import CHANNELS
from parotidlib.report.figures.saliency import plot_saliency_examples


def saves(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and buf.getbuffer().nbytes > 1000


@pytest.fixture
def examples():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 32, 32), dtype=np.uint8)
    yy, xx = np.mgrid[:32, :32]
    maps = np.stack([np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / 40.0) for c in (8, 16, 24)])
    maps[2] = 0.0  # a map without mass is drawn too
    titles = ["#3: pleomorphic_adenoma, 0.71 in ROI", "#9: free (predicted warthin), 0.40 in ROI",
              "#12: malignant, undefined"]
    return images, maps, titles


def test_one_row_per_example_raw_t1_then_every_channel_with_the_map(examples):
    images, maps, titles = examples
    fig = plot_saliency_examples(images, maps, CHANNELS, titles, title="Where the network looks")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 5 + 1  # 3 rows x (raw T1 + 4 channels) + colour bar
    grid = fig.axes[:15]
    assert [ax.get_title() for ax in grid[:5]] == ["T1", "T1 + map", "CE-T1 + map", "T2 + map",
                                                  "Gland + map"]
    assert [len(ax.get_images()) for ax in grid[:5]] == [1, 2, 2, 2, 2]  # grey + heat map
    np.testing.assert_array_equal(grid[0].get_images()[0].get_array(), images[0, 0])
    np.testing.assert_allclose(grid[1].get_images()[1].get_array().max(), 1.0)  # own maximum
    assert grid[11].get_images()[1].get_array().max() == 0  # the all-zero map stays zero
    labels = [grid[r * 5].get_ylabel() for r in range(3)]
    assert "Pleomorphic adenoma" in labels[0] and "0.71 in ROI" in labels[0]
    assert "Free (no tumour)" in labels[1] and "predicted Warthin tumour" in labels[1]
    assert "Grad-CAM" in fig.axes[-1].get_ylabel()
    assert fig.get_suptitle() == "Where the network looks"
    assert saves(fig)


def test_without_t1_the_first_channel_is_shown_raw(examples):
    images, maps, titles = examples
    fig = plot_saliency_examples(images[:1, 1:], maps[:1], ("ce_t1", "t2", "gland"), titles[:1],
                                 method_name="Grad-CAM++")
    assert len(fig.axes) == 4 + 1
    assert [ax.get_title() for ax in fig.axes[:4]] == ["CE-T1", "CE-T1 + map", "T2 + map",
                                                       "Gland + map"]
    assert "Grad-CAM++" in fig.axes[-1].get_ylabel()
    assert saves(fig)


def test_no_examples_gives_a_figure_saying_so():
    fig = plot_saliency_examples(np.zeros((0, 4, 8, 8), np.uint8), np.zeros((0, 8, 8)),
                                 CHANNELS, [])
    assert len(fig.axes) == 1 and fig.axes[0].texts[0].get_text() == "no examples"
    assert saves(fig)


def test_mismatched_inputs_are_refused(examples):
    images, maps, titles = examples
    with pytest.raises(ValueError, match="channels"):
        plot_saliency_examples(images, maps, CHANNELS[:3], titles)
    with pytest.raises(ValueError, match="maps"):
        plot_saliency_examples(images, maps[:2], CHANNELS, titles)
    with pytest.raises(ValueError, match="titles"):
        plot_saliency_examples(images, maps, CHANNELS, titles[:2])
    with pytest.raises(ValueError, match="alpha"):
        plot_saliency_examples(images, maps, CHANNELS, titles, alpha=2)


def test_the_figure_module_does_not_import_torch():
    code = ("import sys, parotidlib.report.figures.saliency\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_the_run_figures_draw_the_stored_examples_with_patient_and_slice_labels(tmp_path):
    from parotidlib.learn.explain import write_saliency
    from parotidlib.report.run_figures import draw_run_figures, saliency_titles

    rng = np.random.default_rng(1)
    examples = [
        {"index": 0, "true_label": "warthin", "predicted_label": "warthin", "correct": True,
         "mask_fraction": 0.734, "patient_id": "SYN0007", "slice_index": 4, "side": "left"},
        {"index": 5, "true_label": "malignant", "predicted_label": "warthin", "correct": False,
         "mask_fraction": None, "patient_id": "SYN0011", "slice_index": 2, "side": "right"},
    ]
    assert saliency_titles({"examples": examples}) == [
        "SYN0007 slice 4: warthin, 0.73 in ROI",
        "SYN0011 slice 2: malignant (predicted warthin), undefined"]
    summary = {"method_name": "Grad-CAM", "examples": examples, "channels": ["t1", "gland"],
               "images": rng.integers(0, 256, (2, 2, 16, 16), dtype=np.uint8),
               "maps": rng.random((2, 16, 16)), "maps_predicted": rng.random((2, 16, 16))}
    write_saliency(tmp_path, summary, synthetic=True)
    assert draw_run_figures(tmp_path, {}, synthetic=True) == ["saliency_examples"]
    for ext in ("png", "pdf"):
        assert (tmp_path / "figures" / f"saliency_examples.{ext}").stat().st_size > 1000
    write_saliency(tmp_path, None, synthetic=True)  # saliency: false draws nothing
    (tmp_path / "figures" / "saliency_examples.png").unlink()
    assert draw_run_figures(tmp_path, {}, synthetic=True) == []


def test_any_class_name_of_a_row_label_is_pretty_printed(examples):
    images, maps, _ = examples
    titles = ["P1 slice 3: acinic_cell (predicted benign), 0.71 in ROI",
              "P2 slice 4: benign, 0.40 in ROI", "P3 slice 5: free, undefined"]
    fig = plot_saliency_examples(images[:, :2], maps, ("t1", "adc"), titles)
    labels = [fig.axes[r * 3].get_ylabel() for r in range(3)]
    assert labels[0] == "P1 slice 3:\nAcinic cell\n(predicted Benign)\n0.71 in ROI"
    assert labels[1].split("\n")[1] == "Benign" and "Free (no tumour)" in labels[2]
    assert [ax.get_title() for ax in fig.axes[:3]] == ["T1", "T1 + map", "ADC + map"]
