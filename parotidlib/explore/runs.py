"""One run folder as a researcher looks at it: the network's inputs, its slice-by-slice
probabilities, the patient decisions at any threshold, its errors, and where it came from.

:class:`RunData` opens a study run, a predict run or a CV member folder and reads only what
is asked, each piece from the file the pipeline writes; a piece that is absent says why
(:class:`Missing`: the file, and the stage or command that writes it) instead of failing the
rest. The run's class scheme is the one its ``data/dataset.json`` records
(:func:`parotidlib.evaluation.classes.run_scheme`; the paper's four classes when it records
none), and its series and channels are those curated (:meth:`RunData.study`,
:meth:`RunData.channels`). The patient decisions at a threshold (:meth:`RunData.decisions`)
are :func:`parotidlib.evaluation.decision.diagnose_patients` under that scheme, and Table 5
and the patient confusion matrix are
:func:`parotidlib.evaluation.diagnostic_accuracy.patient_table5` and
:func:`~parotidlib.evaluation.diagnostic_accuracy.patient_confusion` on them, with the same
scheme: the explorer shows the library's numbers, never its own. Nothing here writes into the
run folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from parotidlib.study import ClassScheme, Study

#: The file each piece comes from and what writes it (for the "why not shown" messages).
SOURCES: dict[str, tuple[str, str]] = {
    "predictions": ("predictions.csv", "the evaluate stage (notebooks/30-evaluate.ipynb) or "
                                       "a predict run (notebooks/71-predict.ipynb)"),
    "slices": ("data/slices.csv", "curation (notebooks/10-curate.ipynb)"),
    "images": ("data/images.npy", "curation (notebooks/10-curate.ipynb)"),
    "dataset": ("data/dataset.json", "curation (notebooks/10-curate.ipynb)"),
    "saliency": ("saliency_maps.npz", "the saliency stage (notebooks/45-saliency.ipynb)"),
    "radiomics": ("radiomics_predictions.csv", "the evaluate stage with radiomics: true"),
    "params": ("params.yaml", "every run (python -m parotidlib run/predict/cv)"),
}


@dataclass(frozen=True)
class Missing:
    """Why a piece of the run cannot be shown."""

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


class RunData:
    """A run folder, read lazily (see the module docstring).

    Parameters
    ----------
    run_dir : path
        A study run (``reports/<run>``), a predict run or a CV member folder.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir).resolve()
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"run folder not found: {self.run_dir}")
        self._cache: dict[str, Any] = {}

    def path(self, piece: str) -> Path:
        """The file of a piece (:data:`SOURCES`)."""
        return self.run_dir / SOURCES[piece][0]

    def missing(self, piece: str, detail: str = "") -> Missing:
        """Why ``piece`` cannot be shown: its file and the stage that writes it."""
        name, writer = SOURCES[piece]
        reason = detail or f"{self.run_dir / name} does not exist; {writer} writes it"
        return Missing(piece, reason)

    def _csv(self, piece: str) -> pd.DataFrame | Missing:
        if piece not in self._cache:
            path = self.path(piece)
            self._cache[piece] = (pd.read_csv(path) if path.is_file()
                                  else self.missing(piece))
        return self._cache[piece]

    # ------------------------------------------------------------------ pieces

    def predictions(self) -> pd.DataFrame | Missing:
        """Slice predictions (``predictions.csv``)."""
        return self._csv("predictions")

    def slices(self) -> pd.DataFrame | Missing:
        """The curated slices (``data/slices.csv``), row i = image i of images.npy."""
        return self._csv("slices")

    def radiomics(self) -> pd.DataFrame | Missing:
        """The radiomics baseline's slice predictions, where the run has them."""
        return self._csv("radiomics")

    def images(self) -> np.ndarray | Missing:
        """The curated inputs, (N, C, H, W) uint8, memory-mapped (not read whole)."""
        if "images" not in self._cache:
            path = self.path("images")
            self._cache["images"] = (np.load(path, mmap_mode="r") if path.is_file()
                                     else self.missing("images"))
        return self._cache["images"]

    def dataset(self) -> dict[str, Any]:
        """The curation's record (data/dataset.json), {} when the run has no dataset."""
        if "dataset" not in self._cache:
            path = self.path("dataset")
            self._cache["dataset"] = json.loads(path.read_text()) if path.is_file() else {}
        return self._cache["dataset"]

    def channels(self) -> list[str]:
        """The curated channels (data/dataset.json), [] when the run has no dataset."""
        return list(self.dataset().get("channels", []))

    def study(self) -> Study:
        """The curated study (series and labels_from) from data/dataset.json; the paper's for
        a run curated before the study definition or without a dataset."""
        return Study.from_config(self.dataset().get("config") or {})

    @cached_property
    def scheme(self) -> ClassScheme:
        """The run's class scheme (:func:`parotidlib.evaluation.classes.run_scheme`: from
        data/dataset.json, the paper's when the run records none)."""
        from parotidlib.evaluation.classes import run_scheme

        return run_scheme(self.run_dir)

    def malignant_slices(self, row: Any) -> int:
        """The slices a decision row (:meth:`decisions`) counts in any malignant class."""
        return int(sum(int(row[f"n_pred_{c}"]) for c in self.scheme.malignant))

    def params(self) -> dict[str, Any] | Missing:
        """The run's params (params.yaml)."""
        path = self.path("params")
        if not path.is_file():
            return self.missing("params")
        return yaml.safe_load(path.read_text()) or {}

    def saliency(self) -> dict[str, np.ndarray] | Missing:
        """The saliency stage's example maps (``saliency_maps.npz``) and its summary."""
        path = self.path("saliency")
        if not path.is_file():
            summary = self.run_dir / "saliency.json"
            if summary.is_file():
                info = json.loads(summary.read_text())
                if not info.get("computed", True):
                    return self.missing("saliency", f"the saliency stage computed no maps: "
                                                    f"{info.get('reason', 'no reason given')}")
            return self.missing("saliency")
        with np.load(path) as data:
            return {key: data[key] for key in data.files}

    def _labelled_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of the patients with a histology (a predict run may hold others)."""
        if "true_label" not in frame:
            return frame.iloc[:0]
        known = frame.groupby("patient_id")["true_label"].transform(lambda v: v.notna().all())
        return frame[known.astype(bool)]

    def labelled(self) -> bool:
        """Whether any patient's predictions carry true labels (an unlabelled predict run's
        do not)."""
        predictions = self.predictions()
        return not isinstance(predictions, Missing) and not self._labelled_rows(
            predictions).empty

    def split_names(self) -> list[str]:
        """The splits the predictions hold, test first."""
        predictions = self.predictions()
        if isinstance(predictions, Missing) or "split" not in predictions:
            return ["all"]
        names = sorted(set(predictions["split"].dropna()),
                       key=lambda s: (s != "test", s != "external", s))
        return names or ["all"]

    def in_split(self, frame: pd.DataFrame, split: str) -> pd.DataFrame:
        """The rows of ``frame`` in ``split`` ("all": every row)."""
        if split == "all" or "split" not in frame:
            return frame
        return frame[frame["split"] == split]

    # ------------------------------------------------------------------ decisions

    def decisions(self, threshold: int, split: str = "test") -> pd.DataFrame | Missing:
        """Patient decisions by Figure 5's rule at ``threshold`` under the run's scheme, every
        patient of the split: :func:`parotidlib.evaluation.decision.diagnose_patients` where
        every patient has a histology, else
        :func:`parotidlib.evaluation.external.patient_diagnoses` (patients without one get an
        empty ``true_histology``)."""
        from parotidlib.evaluation.decision import diagnose_patients
        from parotidlib.evaluation.external import patient_diagnoses

        predictions = self.predictions()
        if isinstance(predictions, Missing):
            return predictions
        frame = self.in_split(predictions, split)
        if len(self._labelled_rows(frame)) == len(frame):
            return diagnose_patients(frame, malignant_threshold=threshold, scheme=self.scheme)
        out = patient_diagnoses(frame, threshold, self.scheme).rename(columns={"histology":
                                                                   "true_histology"})
        return out[["patient_id", "true_histology", "predicted_histology", "n_slices",
                    *[c for c in out.columns if c.startswith("n_pred_")]]]

    def _scored(self, threshold: int, split: str) -> pd.DataFrame:
        """Decisions of the patients with a histology (what Table 5 can score)."""
        from parotidlib.evaluation.decision import diagnose_patients

        frame = self._labelled_rows(self.in_split(self.predictions(), split))
        return diagnose_patients(frame, malignant_threshold=threshold, scheme=self.scheme)

    def table5(self, threshold: int, split: str = "test") -> pd.DataFrame | Missing:
        """Table 5 at ``threshold`` under the run's scheme
        (:func:`parotidlib.evaluation.diagnostic_accuracy.patient_table5`)."""
        from parotidlib.evaluation.diagnostic_accuracy import patient_table5

        if not self.labelled():
            return self.missing("predictions", "the predictions carry no histology (an "
                                               "unlabelled predict run): no Table 5")
        decisions = self._scored(threshold, split)
        rows = []
        for row in patient_table5(decisions, scheme=self.scheme):
            accuracy = row["accuracy"]
            value = accuracy.get("value") if isinstance(accuracy, dict) else None
            ci = accuracy.get("ci95") if isinstance(accuracy, dict) else None
            rows.append({"type": row["type"], "patients": row["patients"],
                         "correct": row["correct"],
                         "accuracy": np.nan if value is None else value,
                         "95% CI (Wilson)": "" if not ci else f"{ci[0]:.3f}-{ci[1]:.3f}"})
        return pd.DataFrame(rows)

    def confusion(self, threshold: int, split: str = "test") -> pd.DataFrame | Missing:
        """The patient confusion matrix at ``threshold`` (rows true, columns predicted; the
        scheme's lesion classes)."""
        from parotidlib.evaluation.diagnostic_accuracy import patient_confusion

        if not self.labelled():
            return self.missing("predictions", "the predictions carry no histology: no "
                                               "confusion matrix")
        matrix = patient_confusion(self._scored(threshold, split), scheme=self.scheme)
        lesion = self.scheme.classes[1:]
        return pd.DataFrame(matrix, index=[f"true {c}" for c in lesion],
                            columns=[f"predicted {c}" for c in lesion])

    def errors(self, split: str = "test") -> pd.DataFrame | Missing:
        """Misclassified slices of ``split``, with the radiomics baseline's prediction for the
        same slice where the run has one."""
        predictions = self.predictions()
        if isinstance(predictions, Missing):
            return predictions
        if not self.labelled():
            return self.missing("predictions", "the predictions carry no true labels: no "
                                               "errors to show")
        frame = self._labelled_rows(self.in_split(predictions, split))
        wrong = frame[frame["true_label"] != frame["predicted_label"]].copy()
        radiomics = self.radiomics()
        if not isinstance(radiomics, Missing):
            keys = ["patient_id", "slice_index", "side"]
            merged = wrong[keys].merge(radiomics[[*keys, "predicted_label"]].drop_duplicates(
                keys), on=keys, how="left")
            wrong["radiomics_label"] = merged["predicted_label"].fillna("").to_numpy()
        return wrong.reset_index(drop=True)

    def image_index(self, patient_id: str, slice_index: int, side: str) -> int | None:
        """Row of images.npy of one slice of one side (via data/slices.csv), None when not
        curated."""
        slices = self.slices()
        if isinstance(slices, Missing):
            return None
        hit = np.flatnonzero((slices["patient_id"].astype(str) == str(patient_id))
                             & (slices["slice_index"] == int(slice_index))
                             & (slices["side"] == side))
        return int(hit[0]) if len(hit) else None

    def probability_columns(self) -> list[str]:
        """``prob_<class>`` columns, in the scheme's class order."""
        from parotidlib.evaluation.classes import probability_columns

        return list(probability_columns(self.scheme))

    # ------------------------------------------------------------------ provenance

    def provenance(self) -> dict[str, Any]:
        """Params, commit, cohort fingerprint and stage timings, each from the file that
        records it (a missing one says so)."""
        out: dict[str, Any] = {"run folder": str(self.run_dir)}
        params = self.params()
        out["params"] = str(params) if isinstance(params, Missing) else params
        marker = next((p for p in (self.run_dir / ".parotidlib-run.json",)
                       if p.is_file()), None)
        commit = None
        if marker is not None:
            try:
                commit = json.loads(marker.read_text()).get("git_commit")
            except (OSError, ValueError):
                commit = None
        out["commit"] = commit or "not recorded in the run folder (see report.html)"
        cohort = self.run_dir / "cohort.json"
        out["cohort"] = (json.loads(cohort.read_text()) if cohort.is_file()
                         else "cohort.json not found (curation writes it)")
        timings = {}
        for stamp in sorted((self.run_dir / ".stages").glob("*.json")):
            try:
                timings[stamp.stem] = float(json.loads(stamp.read_text()).get("seconds", 0.0))
            except (OSError, ValueError, TypeError, AttributeError):
                timings[stamp.stem] = float("nan")
        out["stage seconds"] = timings or "no stage stamps (.stages/) in the folder"
        return out
