"""The cohort explorer: a patient table to filter and sort, and a case viewer (ipywidgets).

:class:`CohortExplorer` is plain ipywidgets over :mod:`parotidlib.explore.cases`; every
control is an attribute, so tests (and a notebook) set ``explorer.patient.value`` or
``explorer.z_mm.value`` and read what is shown (``explorer.panels[series].value`` is the PNG,
``explorer.titles[series].value`` the caption) without a browser. The panels are the
study's series (``series`` and ``labels_from``, :class:`parotidlib.study.Study`); the table's
histology filter offers every histology of the cohort, those the class scheme (``classes``)
excludes or gives no class marked. ``notebooks/00-explore-cohort.ipynb`` shows
``explorer.widget``; ``make explore`` serves it with Voila.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parotidlib.explore.cases import (
    EXCLUDED,
    LABEL_COLOURS,
    LABEL_NAMES,
    NO_CLASS,
    CohortData,
    class_label,
    png,
    render_case,
    series_title,
)
from parotidlib.study import DEFAULT_STUDY, PAPER_CLASSES, ClassScheme, Study

ALL = "(all)"


def table_html(table: pd.DataFrame, selected: str | None = None, max_rows: int = 400) -> str:
    """The patient table as HTML, the selected patient's row highlighted and the rows of an
    excluded histology (class column :data:`~parotidlib.explore.cases.EXCLUDED`) greyed."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.head(max_rows).iterrows():
        style = ' style="background:#ffe9a8"' if str(row["patient_id"]) == selected else \
            ' style="color:#888"' if row.get("class") == EXCLUDED else ""
        cells = "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row)
        rows.append(f"<tr{style}>{cells}</tr>")
    more = (f"<p>{len(table) - max_rows} more rows: filter to see them</p>"
            if len(table) > max_rows else "")
    return (f'<div style="max-height:240px;overflow:auto"><table class="parotid-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}")


def scheme_html(data: CohortData) -> str:
    """The class scheme in words where the table shows classes (another scheme than the
    paper's, or a histology it leaves out): each class with its histologies in the cohort,
    then the excluded histologies and those without a class, with their patient counts."""
    if not data.shows_classes():
        return ""
    counts = data.rows["histology"].astype(str).value_counts()
    scheme = data.scheme
    parts = []
    for cls in scheme.classes[1:]:
        members = [h for h in data.histologies() if class_label(h, scheme) == cls]
        kind = "malignant" if cls in scheme.malignant else "benign"
        parts.append(f"{cls} ({kind}: {', '.join(members) or 'none in this cohort'})")
    out = [f"<b>Classes</b> ({html.escape(scheme.name)}): free, "
           f"{html.escape('; '.join(parts))}."]
    for word, meaning in ((EXCLUDED, "left out of the study at curation"),
                          (NO_CLASS, "curation refuses these patients")):
        left = [f"{h} ({counts.get(h, 0)} patient(s))" for h in data.histologies()
                if class_label(h, scheme) == word]
        if left:
            out.append(f"<b>{word}</b> ({meaning}): {html.escape(', '.join(left))}.")
    return "<p>" + " ".join(out) + "</p>"


def histology_options(data: CohortData) -> list[tuple[str, str]]:
    """The histology filter's (label, value) choices: every histology of the cohort, those
    the scheme excludes or gives no class marked so in their label."""
    return [(h if class_label(h, data.scheme) not in (EXCLUDED, NO_CLASS) else
             f"{h} ({class_label(h, data.scheme)})", h) for h in data.histologies()]


def legend_html() -> str:
    """The contour colours and the dashed line of carried-over labels."""
    items = [f'<span style="color:{c};font-weight:bold">&#9632; {LABEL_NAMES[v]}</span>'
             for v, c in LABEL_COLOURS.items()]
    return " &nbsp; ".join(items) + " &nbsp; dashed: labels carried over from another series"


class CohortExplorer:
    """Patient table and case viewer of one cohort (see the module docstring).

    Parameters
    ----------
    manifest : path
        The cohort's manifest.csv.
    volumes : bool
        Read every label map at start to fill the tumour-volume column (slow for a large
        cohort; otherwise volumes appear for the patients looked at, and the checkbox reads
        them all).
    study : Study
        The cohort's series and the source of their label maps (the ``series`` and
        ``labels_from`` params; default the paper's).
    scheme : ClassScheme
        The class scheme (the ``classes`` param; default the paper's).
    """

    def __init__(self, manifest: str | Path, volumes: bool = False,
                 study: Study = DEFAULT_STUDY, scheme: ClassScheme = PAPER_CLASSES) -> None:
        import ipywidgets as w

        self.data = CohortData(manifest, study, scheme)
        self.series = self.data.series
        self._table = self.data.table(volumes=volumes)
        self.histology = w.Dropdown(options=[(ALL, ALL), *histology_options(self.data)],
                                    value=ALL, description="histology")
        self.search = w.Text(value="", placeholder="patient, scanner, side...",
                             description="filter")
        self.sort_by = w.Dropdown(options=list(self._table.columns), value="patient_id",
                                  description="sort by")
        self.volumes = w.Checkbox(value=volumes, description="tumour volumes (reads all)")
        self.table = w.HTML()
        self.patient = w.Dropdown(options=self.data.patient_ids, description="patient")
        self.previous = w.Button(description="previous", icon="arrow-left")
        self.next = w.Button(description="next", icon="arrow-right")
        self.z_mm = w.FloatSlider(description="z (mm)", continuous_update=False,
                                  readout_format=".1f", layout=w.Layout(width="420px"))
        self.level = w.IntSlider(value=100, min=10, max=300, step=5, description="level %",
                                 continuous_update=False)
        self.width = w.IntSlider(value=100, min=10, max=300, step=5, description="width %",
                                 continuous_update=False)
        self.contours = w.Checkbox(value=True, description="contours")
        self.panels = {s: w.Image(format="png") for s in self.series}
        self.titles = {s: w.HTML() for s in self.series}
        self.infos = {s: w.HTML() for s in self.series}
        self.message = w.HTML()
        self.excluded = w.HTML(self._excluded_html())
        self.scheme = w.HTML(scheme_html(self.data))
        self.volume_series = w.Dropdown(options=list(self.series), value=self.series[0],
                                        description="3-D")
        self.volume_button = w.Button(description="volume view (NiiVue)",
                                      tooltip="multiplanar view of the series with its labels")
        self.volume_view = w.VBox()
        self.volume_button.on_click(lambda _: self.show_volume())
        for control in (self.histology, self.search, self.sort_by):
            control.observe(lambda _: self.refresh_table(), names="value")
        self.volumes.observe(self._read_volumes, names="value")
        self.patient.observe(lambda _: self.show_patient(), names="value")
        for control in (self.z_mm, self.level, self.width, self.contours):
            control.observe(lambda _: self.show_slice(), names="value")
        self.previous.on_click(lambda _: self.step(-1))
        self.next.on_click(lambda _: self.step(+1))
        columns = [w.VBox([self.titles[s], self.panels[s], self.infos[s]])
                   for s in self.series]
        self.widget = w.VBox([
            w.HTML(f"<b>Cohort</b> {html.escape(str(self.data.manifest))}: "
                   f"{len(self.data.patient_ids)} patients{self._study_html()}"),
            w.HBox([self.histology, self.search]), w.HBox([self.sort_by, self.volumes]),
            self.table, self.scheme, self.excluded,
            w.HBox([self.previous, self.patient, self.next]),
            w.HBox([self.z_mm, self.contours]), w.HBox([self.level, self.width]),
            w.HTML(legend_html()), self.message,
            w.HBox(columns, layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.volume_series, self.volume_button]), self.volume_view])
        self.refresh_table()
        self.show_patient()

    # ------------------------------------------------------------------ table

    def filtered(self) -> pd.DataFrame:
        """The patient table as filtered and sorted by the controls."""
        table = self._table
        if self.histology.value != ALL:
            table = table[table["histology"] == self.histology.value]
        text = self.search.value.strip().lower()
        if text:
            hit = table.astype(str).apply(lambda col: col.str.lower().str.contains(
                text, regex=False)).any(axis=1)
            table = table[hit]
        return table.sort_values(self.sort_by.value, kind="stable", na_position="last")

    def refresh_table(self) -> None:
        """Redraw the table and restrict the patient choice to its rows."""
        table = self.filtered()
        ids = [str(p) for p in table["patient_id"]]
        self.table.value = table_html(table, self.patient.value)
        if ids and list(self.patient.options) != ids:
            current = self.patient.value
            self.patient.options = ids
            self.patient.value = current if current in ids else ids[0]

    def _read_volumes(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._table = self.data.table(volumes=True)
            self.refresh_table()

    # ------------------------------------------------------------------ case

    def step(self, delta: int) -> None:
        """The previous (-1) or next (+1) patient of the table as filtered."""
        options = list(self.patient.options)
        if options:
            index = options.index(self.patient.value) if self.patient.value in options else 0
            self.patient.value = options[(index + delta) % len(options)]

    def show_patient(self) -> None:
        """Load the selected patient and show it at its tumour's centre."""
        pid = self.patient.value
        if pid is None:
            return
        try:
            case = self.data.case(pid)
        except (FileNotFoundError, OSError, ValueError) as exc:
            self.message.value = f'<p style="color:#b00">{html.escape(str(exc))}</p>'
            return
        self.message.value = ""
        self._case = case
        low, high = case.z_range_mm()
        spacing = min(abs(float(v.affine[2, 2])) for v in case.series.values()) or 1.0
        with self.z_mm.hold_trait_notifications():
            self.z_mm.min, self.z_mm.max = -1e9, 1e9  # no clipping while both bounds move
            self.z_mm.min, self.z_mm.max = round(low, 1), round(high, 1)
            self.z_mm.step = round(spacing / 2, 2) or 0.1
            self.z_mm.value = round(case.tumour_z_mm(), 1)
        volume = self.data.tumour_volume_ml(pid)
        self._table.loc[self._table["patient_id"] == pid, "tumour_ml"] = volume
        self.table.value = table_html(self.filtered(), pid)
        self.show_slice()

    def windows(self) -> dict[str, tuple[float, float]]:
        """Each series' display window: its automatic window scaled by level and width."""
        out = {}
        for name, view in self._case.series.items():
            low, high = view.window
            level = 0.5 * (low + high) * self.level.value / 100
            half = 0.5 * (high - low) * self.width.value / 100
            out[name] = (level - half, level + half)
        return out

    def show_slice(self) -> None:
        """Draw the study's series at the slider's world position; a quantitative one (the
        ADC) with its grey scale in physical units beneath (:meth:`SeriesView.caption`)."""
        case = getattr(self, "_case", None)
        if case is None:
            return
        windows = self.windows()
        shown = render_case(case, self.z_mm.value, windows, self.contours.value, self.series)
        for name in self.series:
            k, rgb = shown.get(name, (None, None))
            view = case.series.get(name)
            title = series_title(name)
            if view is None:
                self.titles[name].value = f"<b>{title}</b>: not in the manifest"
                self.panels[name].value = b""
                self.infos[name].value = ""
                continue
            source = f" (labels {view.labels_source})" if view.labels_source else ""
            if k is None:
                self.titles[name].value = (f"<b>{title}</b>: z {self.z_mm.value:.1f} mm is "
                                           f"outside the series")
                self.panels[name].value = png(np.zeros((8, 8, 3), np.uint8))
            else:
                self.titles[name].value = (f"<b>{title}</b> slice {k + 1}/"
                                           f"{view.image.shape[2]}{html.escape(source)}")
                self.panels[name].value = png(rgb)
            caption = view.caption(windows[name])
            self.infos[name].value = "<br>".join(
                ([f"<b>{html.escape(caption)}</b>"] if caption else [])
                + [f"{html.escape(key)}: {html.escape(value)}"
                   for key, value in view.info.items()])

    def show_volume(self) -> None:
        """A multiplanar view of the selected series with its label map overlaid, in NiiVue
        (ipyniivue, the Jupyter widget of the NiiVue viewer; its JavaScript ships inside the
        package, so it works offline). Where ipyniivue is not installed, says so."""
        import ipywidgets as w

        try:
            from ipyniivue import NiiVue
        except ImportError:
            self.volume_view.children = [w.HTML("<p>ipyniivue is not installed (pip install "
                                                "ipyniivue): no volume view</p>")]
            return
        row = self.data.row(self.patient.value)
        series = self.volume_series.value
        volumes = [{"path": str(self.data._path(row.get(series)))}]
        labels = self.data._path(row.get(f"{self.data.study.labels_of(series)}_labels"))
        if labels is not None and labels.is_file():
            volumes.append({"path": str(labels), "colormap": "warm", "opacity": 0.5})
        viewer = NiiVue(height=360)
        viewer.opts.is_radiological_convention = True  # as the panels: patient's right left
        viewer.load_volumes(volumes)
        self.volume_view.children = [
            w.HTML(f"<p>{html.escape(self.patient.value)} {series_title(series)} with its "
                   f"labels (NiiVue: drag to move the crosshair, scroll to change slice)</p>"),
            viewer]

    def _study_html(self) -> str:
        """The study's series where they are not the paper's, and the columns the manifest
        lacks (named with the params that ask for them)."""
        study = self.data.study
        out = ""
        if study != DEFAULT_STUDY:
            out = (f"; series {', '.join(study.series)}" + (
                f", every label map from {study.labels_from}" if study.labels_from else ""))
        missing = self.data.missing_columns()
        if missing:
            out += (f'<br><span style="color:#b00">the manifest has no column '
                    f'{html.escape(", ".join(missing))}, which the study asks for (params '
                    f'series, labels_from); a synthetic cohort with DWI and ADC: python -m '
                    f'parotidlib synth --diffusion</span>')
        return out

    def _excluded_html(self) -> str:
        table = self.data.not_imported()
        if table.empty:
            return ""
        rows = "".join(f"<li>{html.escape(r.patient_id or '(file)')}: {html.escape(r.status)}"
                       f" - {html.escape(r.problems[:300])}</li>" for r in table.itertuples())
        return (f"<details><summary>{len(table)} patient(s) or file(s) not imported (from "
                f"import_report.csv)</summary><ul>{rows}</ul></details>")
