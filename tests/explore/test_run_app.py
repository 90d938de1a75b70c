"""The run explorer without a browser: the threshold slider's patient table, Table 5 and
confusion matrix equal parotidlib.evaluation at that threshold; inputs, errors with Grad-CAM
and the radiomics baseline; sections a run cannot fill say why; nothing is written. A
three-class run (benign_malignant, series t1, t2 and ADC) shows its classes, colours, series
and Table 5 under its scheme; a paper run its four classes."""

import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from parotidlib.evaluation.classes import run_scheme
from parotidlib.evaluation.decision import diagnose_patients
from parotidlib.evaluation.diagnostic_accuracy import patient_confusion, patient_table5
from parotidlib.explore import newest_run, run_explorer
from parotidlib.explore.run_app import THRESHOLDS, RunExplorer
from parotidlib.report.figures.style import class_colours
from parotidlib.study import PAPER_CLASSES


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def test_the_threshold_slider_shows_evaluations_numbers(tiny_run):
    before = snapshot(tiny_run)
    explorer = RunExplorer(tiny_run)
    predictions = pd.read_csv(tiny_run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    seen = set()
    for threshold in (0, 1, 2, 5, 10):
        explorer.threshold.value = threshold
        decisions = diagnose_patients(test, malignant_threshold=threshold)
        matrix = patient_confusion(decisions)
        np.testing.assert_array_equal(explorer.shown["confusion"].to_numpy(), matrix)
        cells = [int(v) for v in re.findall(r"<td>(\d+)</td>", explorer.confusion.value)]
        assert cells == matrix.ravel().tolist()  # what the HTML shows, row by row
        expected = patient_table5(decisions)
        table5 = explorer.shown["table5"]
        assert table5["patients"].tolist() == [r["patients"] for r in expected]
        assert table5["correct"].tolist() == [r["correct"] for r in expected]
        for row in expected:
            assert f"<th>{row['type']}</th>" in explorer.table5.value or row["type"] in \
                explorer.table5.value
        for pid, histology in zip(decisions["patient_id"], decisions["predicted_histology"],
                                  strict=True):
            assert re.search(f"<th>{pid}</th>\\s*<td>[^<]*</td>\\s*<td>{histology}</td>",
                             explorer.patients.value), (pid, histology)
        seen.add(tuple(decisions["predicted_histology"]))
        assert f"more than {threshold} slices" in explorer.decision.value
    assert snapshot(tiny_run) == before  # nothing written into the run folder


def test_patient_probabilities_inputs_errors_and_provenance(tiny_run):
    explorer = RunExplorer(tiny_run)
    assert explorer.probabilities.value[:4] == b"\x89PNG"
    pid = explorer.patient.options[-1]
    explorer.patient.value = pid
    assert pid in explorer.decision.value
    # inputs: every curated channel of the slices of one class
    explorer.input_class.value = "free"
    assert "(free, " in explorer.inputs_caption.value
    image = np.asarray(Image.open(io.BytesIO(explorer.inputs.value)))
    assert image.shape[1] > image.shape[0] / 8 and "gland" in explorer.inputs_caption.value
    # errors: the radiomics label beside the network's, Grad-CAM on request
    predictions = pd.read_csv(tiny_run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    if (test["true_label"] != test["predicted_label"]).any():
        assert "radiomics " in explorer.gallery_caption.value
        before = explorer.gallery.value
        explorer.compute_gradcam()
        assert "Grad-CAM shown" in explorer.gallery_caption.value
        assert explorer.gallery.value != before
    assert "stage seconds" in explorer.provenance.value or "no stage stamps" in \
        explorer.provenance.value
    assert "f" * 64 in explorer.provenance.value  # the cohort fingerprint


def test_a_run_without_saliency_radiomics_or_labels_says_why(run_copy):
    (run_copy / "saliency_maps.npz").unlink()
    (run_copy / "radiomics_predictions.csv").unlink()
    explorer = RunExplorer(run_copy)
    caption = explorer.gallery_caption.value
    if "No misclassified slice" not in caption:
        assert "saliency_maps.npz does not exist; the saliency stage" in caption
        assert "radiomics not in the run" in caption
    predictions = pd.read_csv(run_copy / "predictions.csv")
    predictions["true_label"] = np.nan  # an unlabelled predict run
    predictions.to_csv(run_copy / "predictions.csv", index=False)
    explorer = RunExplorer(run_copy)
    assert "carry no histology" in explorer.table5.value
    assert "carry no histology" in explorer.confusion.value
    assert "diagnosed" in explorer.decision.value  # the decisions still show


def test_a_run_without_predictions_names_the_file_and_stage(run_copy):
    (run_copy / "predictions.csv").unlink()
    explorer = RunExplorer(run_copy)
    assert "predictions.csv does not exist; the evaluate stage" in explorer.decision.value
    assert explorer.inputs.value  # the curated inputs still show


def test_the_notebook_helpers_resolve_the_newest_run(tiny_run, tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(tiny_run, reports / "a")
    assert newest_run(reports) == reports / "a"
    with pytest.raises(FileNotFoundError, match="make report"):
        newest_run(tmp_path / "empty")
    assert run_explorer(str(tiny_run), 3).threshold.value == 3


# ---------------------------------------------------------------------- the class scheme

def test_a_three_class_run_follows_its_scheme(study_run):
    scheme = run_scheme(study_run)
    assert scheme.classes == ("free", "benign", "malignant")
    before = snapshot(study_run)
    explorer = RunExplorer(study_run)
    assert explorer.data.scheme == scheme
    assert list(explorer.input_class.options) == ["(all)", *scheme.classes]
    header = explorer.widget.children[0].value
    assert "classes (benign_malignant): free, benign, malignant" in header
    assert "series t1, t2, adc" in header
    assert "Columns: t1, t2, adc, gland" in explorer.inputs_caption.value
    assert "series t1, t2, adc" in explorer.inputs_caption.value
    predictions = pd.read_csv(study_run / "predictions.csv")
    tables = set()
    for split in explorer.split.options:
        explorer.split.value = split
        frame = predictions[predictions["split"] == split]
        for threshold in range(THRESHOLDS[0], THRESHOLDS[1] + 1):
            explorer.threshold.value = threshold
            decisions = diagnose_patients(frame, malignant_threshold=threshold, scheme=scheme)
            expected = patient_table5(decisions, scheme=scheme)
            table5 = explorer.shown["table5"]
            assert table5["type"].tolist() == [r["type"] for r in expected]
            assert table5["patients"].tolist() == [r["patients"] for r in expected]
            assert table5["correct"].tolist() == [r["correct"] for r in expected]
            np.testing.assert_allclose(
                table5["accuracy"].to_numpy(float),
                [np.nan if r["accuracy"].get("value") is None else r["accuracy"]["value"]
                 for r in expected])
            matrix = patient_confusion(decisions, scheme=scheme)
            assert matrix.shape == (2, 2)
            shown = explorer.shown["confusion"]
            np.testing.assert_array_equal(shown.to_numpy(), matrix)
            assert shown.index.tolist() == ["true benign", "true malignant"]
            columns = explorer.shown["decisions"].columns
            assert [c for c in columns if c.startswith("n_pred_")] == \
                ["n_pred_free", "n_pred_benign", "n_pred_malignant"]
            pid = explorer.patient.value
            row = decisions[decisions["patient_id"].astype(str) == pid].iloc[0]
            assert (f"more than {threshold} slices are predicted malignant; "
                    f"{row['n_pred_malignant']} of {row['n_slices']} slices are"
                    ) in explorer.decision.value
            tables.add(explorer.table5.value)
    assert len(tables) > 1  # the seeded probabilities make the slider matter
    assert snapshot(study_run) == before


def test_the_probability_plot_draws_the_schemes_classes_in_their_colours(study_run):
    explorer = RunExplorer(study_run)
    picture = np.asarray(Image.open(io.BytesIO(explorer.probabilities.value)).convert("RGB"))
    colours = class_colours(("free", "benign", "malignant"))
    for name, colour in colours.items():
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert (picture == rgb).all(axis=-1).sum() > 20, name  # its markers
    assert len(set(colours.values())) == 3


def test_a_paper_run_keeps_the_papers_classes(tiny_run):
    explorer = RunExplorer(tiny_run)
    assert explorer.data.scheme == PAPER_CLASSES
    assert explorer.widget.children[0].value == f"<b>Run</b> {tiny_run.resolve()}"
    assert list(explorer.input_class.options) == ["(all)", *PAPER_CLASSES.classes]
    assert explorer.shown["confusion"].index.tolist() == [
        "true pleomorphic_adenoma", "true warthin", "true malignant"]
