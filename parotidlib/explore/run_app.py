"""The run explorer: inputs as the network sees them, patients and the decision threshold,
errors with Grad-CAM and the radiomics baseline, provenance (ipywidgets).

:class:`RunExplorer` is plain ipywidgets over :mod:`parotidlib.explore.runs`; its controls
are attributes (``threshold``, ``patient``, ``split``, ...) and what it shows is in widget
values (``table5.value``, ``confusion.value``, ``decision.value`` are HTML; ``inputs.value``,
``probabilities.value`` and ``gallery.value`` PNG), so tests drive it without a browser.
The classes, their colours and display names (:mod:`parotidlib.report.figures.style`), the
decision rule and Table 5 follow the run's class scheme (:attr:`RunData.scheme`), and the
inputs are captioned with the run's series and channels (its dataset's).
``notebooks/90-explore-run.ipynb`` shows ``explorer.widget``; ``make explore`` serves it
with Voila. A section the run cannot fill (no saliency maps, no radiomics, an unlabelled
predict run) says why; the rest works.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from parotidlib.evaluation.classes import is_paper
from parotidlib.explore.cases import png
from parotidlib.explore.runs import Missing, RunData
from parotidlib.report.figures.style import class_colours, pretty_name
from parotidlib.study import DEFAULT_STUDY, PAPER_CLASSES, ClassScheme

#: The decision threshold's slider range (Figure 5 sweeps 0..10 slices).
THRESHOLDS = (0, 10)
#: Slices shown at once in the input mosaic and the error gallery.
GALLERY = 8


def frame_html(frame: pd.DataFrame | Missing, float_format: str = "{:.3f}") -> str:
    """A table as HTML, or the reason it is missing."""
    if isinstance(frame, Missing):
        return f'<p style="color:#b00">{html.escape(str(frame))}</p>'
    return frame.to_html(index=True, escape=True, na_rep="",
                         float_format=lambda v: float_format.format(v), border=0,
                         classes="parotid-table")


def mosaic(images: np.ndarray, overlays: np.ndarray | None = None) -> np.ndarray:
    """RGB mosaic: one row per slice, one column per channel (grey), and with ``overlays``
    (N, H, W) in [0, 1] a last column of the first channel with the map in red."""
    n, c, h, w = images.shape
    columns = c + (1 if overlays is not None else 0)
    out = np.zeros((n * (h + 2), columns * (w + 2), 3), np.uint8)
    for i in range(n):
        for j in range(c):
            out[i * (h + 2):i * (h + 2) + h, j * (w + 2):j * (w + 2) + w] = \
                np.asarray(images[i, j])[..., None]
        if overlays is not None:
            grey = np.asarray(images[i, 0], float)
            heat = np.clip(np.asarray(overlays[i], float), 0, 1)
            rgb = np.stack([grey * (1 - heat) + 255 * heat, grey * (1 - heat),
                            grey * (1 - heat)], axis=-1)
            j = c
            out[i * (h + 2):i * (h + 2) + h, j * (w + 2):j * (w + 2) + w] = rgb.astype(np.uint8)
    return out


def _png_width(data: bytes) -> int:
    """The width of a PNG from its header (IHDR), so that the widget shows it unscaled."""
    return int.from_bytes(data[16:20], "big")


def probability_plot(frame: pd.DataFrame, title: str,
                     scheme: ClassScheme = PAPER_CLASSES) -> bytes:
    """PNG of one patient's slice-by-slice class probabilities along the body axis (z, mm),
    one panel per side, one line per class of ``scheme`` in its colour and display name
    (:func:`~parotidlib.report.figures.style.class_colours`), the true class of each slice
    marked along the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = class_colours(scheme.classes)
    sides = sorted(frame["side"].dropna().unique()) if "side" in frame else ["all"]
    fig, axes = plt.subplots(1, len(sides), figsize=(4.2 * len(sides), 2.8), dpi=100,
                             squeeze=False)
    for ax, side in zip(axes[0], sides, strict=True):
        part = frame[frame["side"] == side] if "side" in frame else frame
        part = part.sort_values("z_mm")
        for name in scheme.classes:
            ax.plot(part["z_mm"], part[f"prob_{name}"], marker="o", ms=3,
                    color=colours[name], label=pretty_name(name))
        if "true_label" in part and part["true_label"].notna().all():
            for z, label in zip(part["z_mm"], part["true_label"], strict=True):
                ax.plot([z], [1.04], marker="s", ms=4, color=colours.get(label, "k"),
                        clip_on=False)
        ax.set_ylim(0, 1)
        ax.set_xlabel("z (mm, body axis)")
        ax.set_ylabel("probability")
        ax.set_title(f"{side} side", fontsize=9)
    axes[0][0].legend(fontsize=6, loc="center left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


class RunExplorer:
    """Inputs, patients, errors and provenance of one run folder (see the module docstring).

    Parameters
    ----------
    run_dir : path
        A study run, a predict run or a CV member folder.
    threshold : int, optional
        The starting decision threshold; default the run's ``malignant_threshold`` (2).
    """

    def __init__(self, run_dir: str | Path, threshold: int | None = None) -> None:
        import ipywidgets as w

        self.data = RunData(run_dir)
        params = self.data.params()
        start = threshold if threshold is not None else int(
            (params if isinstance(params, dict) else {}).get("malignant_threshold", 2))
        self.split = w.Dropdown(options=self.data.split_names(), description="split")
        self.threshold = w.IntSlider(value=start, min=THRESHOLDS[0], max=THRESHOLDS[1],
                                     description="malignant if more than (slices)",
                                     style={"description_width": "initial"},
                                     continuous_update=False)
        self.patient = w.Dropdown(description="patient")
        self.decision = w.HTML()
        self.probabilities = w.Image(format="png", layout=w.Layout(width="auto"))
        self.patients = w.HTML()
        self.table5 = w.HTML()
        self.confusion = w.HTML()
        self.input_class = w.Dropdown(options=["(all)", *self.data.scheme.classes],
                                      description="class")
        self.input_patient = w.Dropdown(description="patient")
        self.input_split = w.Dropdown(options=["(all)", "train", "val", "test"],
                                      description="split")
        self.inputs = w.Image(format="png")
        self.inputs_caption = w.HTML()
        self.gallery = w.Image(format="png")
        self.gallery_caption = w.HTML()
        self.gradcam_button = w.Button(description="Grad-CAM of these slices",
                                       tooltip="loads the run's model (a few seconds)")
        self.provenance = w.HTML()
        self._cams: dict[tuple[str, int, str], np.ndarray] = {}
        self._plots: dict[str, bytes] = {}  # probability plots by patient (no threshold in them)
        #: The tables on show ("decisions", "table5", "confusion"), as computed by
        #: :class:`~parotidlib.explore.runs.RunData` from parotidlib.evaluation.
        self.shown: dict[str, pd.DataFrame | Missing] = {}
        self.split.observe(lambda _: self.refresh_patients(), names="value")
        self.threshold.observe(lambda _: self.refresh_decisions(), names="value")
        self.patient.observe(lambda _: self.show_patient(), names="value")
        for control in (self.input_class, self.input_patient, self.input_split):
            control.observe(lambda _: self.show_inputs(), names="value")
        self.gradcam_button.on_click(lambda _: self.compute_gradcam())
        tabs = w.Tab(children=[
            w.VBox([w.HBox([self.split, self.threshold]), w.HBox([self.patient]),
                    self.decision, self.probabilities,
                    w.HTML("<b>Patients at this threshold</b>"), self.patients,
                    w.HTML("<b>Table 5</b>"), self.table5,
                    w.HTML("<b>Patient confusion matrix</b>"), self.confusion]),
            w.VBox([w.HBox([self.input_split, self.input_class, self.input_patient]),
                    self.inputs_caption, self.inputs]),
            w.VBox([self.gallery_caption, self.gradcam_button, self.gallery]),
            w.VBox([self.provenance])])
        for i, title in enumerate(("Patients", "Inputs", "Errors", "Provenance")):
            tabs.set_title(i, title)
        self.widget = w.VBox([w.HTML(f"<b>Run</b> {html.escape(str(self.data.run_dir))}"
                                     f"{self._study_html()}"), tabs])
        self.refresh_patients()
        self._fill_input_patients()
        self.show_inputs()
        self.show_errors()
        self.provenance.value = self._provenance_html()

    # ------------------------------------------------------------------ patients

    def refresh_patients(self) -> None:
        """Patient choice of the split, then the decisions."""
        predictions = self.data.predictions()
        if isinstance(predictions, Missing):
            self.patient.options = []
            self.decision.value = frame_html(predictions)
            return
        part = self.data.in_split(predictions, self.split.value)
        ids = sorted(str(p) for p in part["patient_id"].unique())
        self.patient.options = ids
        if ids and self.patient.value not in ids:
            self.patient.value = ids[0]
        self.refresh_decisions()

    def refresh_decisions(self) -> None:
        """Patient table, Table 5 and the confusion matrix at the slider's threshold."""
        t, split = self.threshold.value, self.split.value
        decisions = self.data.decisions(t, split)
        self.shown = {"decisions": decisions, "table5": self.data.table5(t, split),
                      "confusion": self.data.confusion(t, split)}
        self.patients.value = frame_html(decisions if isinstance(decisions, Missing)
                                         else decisions.set_index("patient_id"))
        self.table5.value = frame_html(self.shown["table5"])
        self.confusion.value = frame_html(self.shown["confusion"], "{:.0f}")
        self.show_patient()

    def show_patient(self) -> None:
        """The selected patient's probabilities along z and its decision."""
        pid = self.patient.value
        predictions = self.data.predictions()
        if pid is None or isinstance(predictions, Missing):
            return
        frame = predictions[predictions["patient_id"].astype(str) == pid]
        decisions = self.data.decisions(self.threshold.value, self.split.value)
        row = decisions[decisions["patient_id"].astype(str) == pid].iloc[0]
        truth = row.get("true_histology", "")
        verdict = ("" if not isinstance(truth, str) or not truth else
                   " (correct)" if truth == row["predicted_histology"] else
                   f" (wrong: the histology is {truth})")
        malignant = self.data.scheme.malignant
        said = ("malignant" if malignant == ("malignant",) else
                f"in a malignant class ({', '.join(malignant) or 'none in the scheme'})")
        self.decision.value = (f"<p><b>{html.escape(pid)}</b>: diagnosed "
                               f"<b>{html.escape(str(row['predicted_histology']))}</b>{verdict}"
                               f" by Figure 5's rule, malignant when more than "
                               f"{self.threshold.value} slices are predicted "
                               f"{html.escape(said)}; {self.data.malignant_slices(row)} of "
                               f"{int(row['n_slices'])} slices are.</p>")
        if pid not in self._plots:
            self._plots[pid] = probability_plot(frame, f"{pid}: class probabilities",
                                                self.data.scheme)
        self.probabilities.value = self._plots[pid]
        self.probabilities.layout.width = f"{_png_width(self._plots[pid])}px"

    # ------------------------------------------------------------------ inputs

    def _fill_input_patients(self) -> None:
        slices = self.data.slices()
        ids = [] if isinstance(slices, Missing) else sorted(slices["patient_id"].astype(str)
                                                           .unique())
        self.input_patient.options = ["(all)", *ids]
        self.input_patient.value = "(all)"

    def show_inputs(self) -> None:
        """The first slices matching the filters, every channel as curated (the network's
        input after cropping and normalisation)."""
        slices, images = self.data.slices(), self.data.images()
        if isinstance(slices, Missing) or isinstance(images, Missing):
            self.inputs_caption.value = frame_html(slices if isinstance(slices, Missing)
                                                   else images)
            return
        keep = np.ones(len(slices), bool)
        for control, column in ((self.input_class, "label"), (self.input_patient, "patient_id"),
                                (self.input_split, "split")):
            if control.value != "(all)" and column in slices:
                keep &= slices[column].astype(str).to_numpy() == control.value
        rows = np.flatnonzero(keep)[:GALLERY]
        if not len(rows):
            self.inputs_caption.value = "<p>No curated slice matches the filters.</p>"
            self.inputs.value = b""
            return
        channels = ", ".join(self.data.channels())
        series = ", ".join(self.data.study().series)
        listed = "; ".join(f"{slices.at[i, 'patient_id']} slice {slices.at[i, 'slice_index']} "
                           f"{slices.at[i, 'side']} ({slices.at[i, 'label']}, "
                           f"{slices.at[i, 'split']})" for i in rows)
        self.inputs_caption.value = (f"<p>{int(keep.sum())} slices match; rows: "
                                     f"{html.escape(listed)}. Columns: {channels} (the "
                                     f"network's channels, of the series {series}).</p>")
        self.inputs.value = png(mosaic(np.asarray(images[rows])), size=512)

    # ------------------------------------------------------------------ errors

    def _error_rows(self) -> pd.DataFrame | Missing:
        errors = self.data.errors(self.split.value if self.split.value != "all" else "test")
        return errors if isinstance(errors, Missing) else errors.head(GALLERY)

    def _saliency_maps(self) -> dict[tuple[str, int, str], np.ndarray]:
        """Maps of the saliency stage's examples, by (patient, slice, side)."""
        saliency = self.data.saliency()
        if isinstance(saliency, Missing):
            return {}
        summary_path = self.data.run_dir / "saliency.json"
        import json

        examples = json.loads(summary_path.read_text()).get("examples", []) \
            if summary_path.is_file() else []
        maps = saliency.get("maps")
        return {(str(e.get("patient_id")), int(e.get("slice_index", -1)), str(e.get("side"))):
                maps[i] for i, e in enumerate(examples) if maps is not None and i < len(maps)}

    def show_errors(self) -> None:
        """The misclassified test slices: inputs, the Grad-CAM map (of the saliency stage's
        examples, or computed on request) and the radiomics baseline's label beside."""
        errors, images = self._error_rows(), self.data.images()
        if isinstance(errors, Missing) or isinstance(images, Missing):
            self.gallery_caption.value = frame_html(errors if isinstance(errors, Missing)
                                                    else images)
            return
        if errors.empty:
            self.gallery_caption.value = "<p>No misclassified slice.</p>"
            return
        known = {**self._saliency_maps(), **self._cams}
        rows, overlays, lines = [], [], []
        for r in errors.itertuples():
            index = self.data.image_index(r.patient_id, r.slice_index, r.side)
            if index is None:
                continue
            key = (str(r.patient_id), int(r.slice_index), str(r.side))
            cam = known.get(key)
            rows.append(index)
            overlays.append(np.zeros(images.shape[2:]) if cam is None else
                            cam / max(float(np.max(cam)), 1e-6))
            radiomics = getattr(r, "radiomics_label", "") or "not in the run"
            lines.append(f"<li>{html.escape(str(r.patient_id))} slice {r.slice_index} "
                         f"{html.escape(str(r.side))}: true <b>{html.escape(r.true_label)}</b>, "
                         f"network {html.escape(r.predicted_label)}, radiomics "
                         f"{html.escape(str(radiomics))}; Grad-CAM "
                         f"{'shown' if cam is not None else 'not computed'}</li>")
        saliency = self.data.saliency()
        note = (f"<p>{html.escape(str(saliency))}</p>" if isinstance(saliency, Missing) else "")
        self.gallery_caption.value = (f"<p>Misclassified slices (first {len(rows)}), one row "
                                      f"each: the channels, then the first channel with the "
                                      f"Grad-CAM map of the true class in red.</p>{note}"
                                      f"<ol>{''.join(lines)}</ol>")
        self.gallery.value = png(mosaic(np.asarray(images[rows]), np.asarray(overlays)),
                                 size=512)

    def compute_gradcam(self) -> None:
        """Grad-CAM of the true class for the gallery's slices, with the run's model
        (:func:`parotidlib.learn.saliency.gradcam`); needs its checkpoint."""
        from parotidlib.learn.predict import load_run_model
        from parotidlib.learn.saliency import gradcam

        errors, images = self._error_rows(), self.data.images()
        if isinstance(errors, Missing) or isinstance(images, Missing) or errors.empty:
            return
        try:
            model, meta, device = load_run_model(self.data.run_dir)
        except (FileNotFoundError, OSError, ValueError) as exc:
            self.gallery_caption.value += f'<p style="color:#b00">{html.escape(str(exc))}</p>'
            return
        keys, rows = [], []
        for r in errors.itertuples():
            index = self.data.image_index(r.patient_id, r.slice_index, r.side)
            if index is not None:
                keys.append((str(r.patient_id), int(r.slice_index), str(r.side)))
                rows.append(index)
        channels = list(meta.get("channels") or self.data.channels())
        curated = self.data.channels()
        select = [curated.index(c) for c in channels if c in curated]
        batch = np.asarray(images[rows])[:, select]
        classes = list(meta.get("classes") or self.data.scheme.classes)
        targets = np.array([classes.index(r.true_label) for r in errors.itertuples()
                            if self.data.image_index(r.patient_id, r.slice_index, r.side)
                            is not None])
        maps = gradcam(model, batch, targets, device=device)
        self._cams.update(dict(zip(keys, maps, strict=True)))
        self.show_errors()

    # ------------------------------------------------------------------ provenance

    def _study_html(self) -> str:
        """The run's class scheme and series where they are not the paper's (its dataset's)."""
        scheme, study = self.data.scheme, self.data.study()
        parts = []
        if not is_paper(scheme):
            parts.append(f"classes ({scheme.name}): {', '.join(scheme.classes)}, malignant "
                         f"{', '.join(scheme.malignant) or 'none'}")
        if study != DEFAULT_STUDY:
            parts.append(f"series {', '.join(study.series)}" + (
                f" (labels from {study.labels_from})" if study.labels_from else ""))
        return "".join(f"<br>{html.escape(p)}" for p in parts)

    def _provenance_html(self) -> str:
        info = self.data.provenance()
        parts = []
        for key, value in info.items():
            if isinstance(value, dict):
                import yaml

                text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False)
                parts.append(f"<p><b>{html.escape(key)}</b></p><pre>{html.escape(text)}</pre>")
            else:
                parts.append(f"<p><b>{html.escape(key)}</b>: {html.escape(str(value))}</p>")
        return "".join(parts)
