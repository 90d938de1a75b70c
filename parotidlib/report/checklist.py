"""The TRIPOD+AI 2024 reporting checklist of a run folder (``checklist.md``; torch-free).

TRIPOD+AI (Collins et al. 2024) lists what a report of a clinical prediction model that uses
regression or machine learning should say: 52 items under 27 numbers (1, 2, 3a-3c, ..., 27c),
each marked D (development), E (evaluation) or D;E (both). The items and every answer's text
are data, ``checklist.yaml`` beside this module (the pattern of model-card toolkits): each
answer is a Jinja2 template with a status,

- ``"from the run"``: read from the run (``data/dataset.json``, ``data/slices.csv``,
  ``metrics.json``, ``radiomics.json``, ``model/training.json``, ``bundle.pt``,
  ``params.yaml``, ``cohort.json``, ``external.json``) or what the kit's code does, never a fact
  about the study it cannot see;
- ``"to be completed by the authors"``: what only the study's authors know (title, ethics,
  funding, interpretation, the clinical setting, how histology was assessed), with what the kit
  can suggest where it can;
- ``"not applicable"``: an item for the other kind of report.

:func:`parotidlib.report.checklist_facts.gather_facts` reads a run's facts; this module
renders the templates with them.
:func:`study_checklist` answers a study run (``python -m parotidlib run``), which develops a
model and evaluates it on a held-out test split of the same cohort; :func:`evaluation_checklist`
answers a predict run (``python -m parotidlib predict``), which applies a trained model's bundle
to another cohort. Both return a :class:`Checklist` (the :class:`ChecklistItem` rows in the
statement's order, and whether the run is synthetic); :func:`checklist_markdown` and
:func:`write_checklist` write it as Markdown and :func:`checklist_frame` as a table.

The topics are short paraphrases written for this kit, not the statement's item text. No
answer names a patient, a date of a single patient or an absolute path: counts and ranges only,
cohorts by their folder name.

References
----------
Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement. BMJ 2024;385:e078378.
    doi:10.1136/bmj-2023-078378.
Mitchell M, Wu S, Zaldivar A, et al. Model cards for model reporting. FAT* 2019:220-229.
    doi:10.1145/3287560.3287596.
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from parotidlib import __version__
from parotidlib.evaluation.text import block_text
from parotidlib.io import write_text_atomic
from parotidlib.notebook import synthetic_note
from parotidlib.report.checklist_facts import checklist_data, gather_facts

__all__ = ["AUTHORS", "CHECKLIST_NAME", "CITATION", "FROM_RUN", "ITEMS", "ITEM_NUMBERS",
           "NOT_APPLICABLE", "Checklist", "ChecklistItem", "checklist_frame",
           "checklist_markdown", "evaluation_checklist", "gather_facts", "study_checklist",
           "write_checklist"]

#: The items, the words and the answer templates (``checklist.yaml``, package data).
DATA: dict[str, Any] = checklist_data()
#: The statement every checklist follows, as its header cites it.
CITATION: str = DATA["citation"]
#: The file :func:`write_checklist` writes into a run folder.
CHECKLIST_NAME = "checklist.md"
#: Statuses of an item, and their short names in the data file.
FROM_RUN = "from the run"
AUTHORS = "to be completed by the authors"
NOT_APPLICABLE = "not applicable"
STATUSES: tuple[str, ...] = (FROM_RUN, AUTHORS, NOT_APPLICABLE)
_STATUS = {"run": FROM_RUN, "authors": AUTHORS, "na": NOT_APPLICABLE}
#: Applicability codes of the statement: development, evaluation, both.
APPLIES: tuple[str, ...] = ("D", "E", "D;E")
SYNTHETIC_NOTE = synthetic_note("checklist")


@dataclass(frozen=True)
class ChecklistItem:
    """One item of the TRIPOD+AI checklist as answered for a run.

    Attributes
    ----------
    number : str
        The statement's item number (``"1"``, ``"3a"``, ..., ``"27c"``).
    section : str
        The statement's section and subsection (``"Methods: data"``).
    topic : str
        What the item asks, as a short paraphrase (not the statement's wording).
    applies : str
        ``"D"`` (development), ``"E"`` (evaluation) or ``"D;E"`` (both).
    answer : str
        The answer (Markdown), or what the authors have to add.
    status : str
        One of :data:`STATUSES`.
    """

    number: str
    section: str
    topic: str
    applies: str
    answer: str = ""
    status: str = AUTHORS

    def __post_init__(self) -> None:
        if self.applies not in APPLIES:
            raise ValueError(f"item {self.number}: applies must be one of {list(APPLIES)}, "
                             f"got {self.applies!r}")
        if self.status not in STATUSES:
            raise ValueError(f"item {self.number}: status must be one of {list(STATUSES)}, "
                             f"got {self.status!r}")


@dataclass(frozen=True)
class Checklist(Sequence[ChecklistItem]):
    """The answered items of a run, in the statement's order, and whether its data are
    synthetic (which the Markdown header then says)."""

    items: tuple[ChecklistItem, ...]
    synthetic: bool = False

    def __getitem__(self, index):  # type: ignore[override]
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ChecklistItem]:
        return iter(self.items)


#: The statement's items in order, unanswered (status "to be completed by the authors").
ITEMS: tuple[ChecklistItem, ...] = tuple(
    ChecklistItem(number, section, topic, applies)
    for number, section, applies, topic in DATA["items"])
#: Their numbers, in order.
ITEM_NUMBERS: tuple[str, ...] = tuple(item.number for item in ITEMS)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters.update(num=_num, block=block_text,
                    ticks=lambda names: ", ".join(f"`{n}`" for n in names))


@functools.cache
def _template(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


@functools.cache
def _expression(text: str) -> Any:
    return _ENV.compile_expression(text)


# --------------------------------------------------------------------------- answers


def _answer(entry: Mapping[str, Any] | list[Mapping[str, Any]], facts: Mapping[str, Any]
            ) -> tuple[str, str]:
    """The status and rendered text of an item's answer: the first alternative whose
    ``when`` holds."""
    for choice in entry if isinstance(entry, list) else [entry]:
        if "when" not in choice or _expression(choice["when"])(**facts):
            return _STATUS[choice["status"]], _template(choice["text"]).render(facts)
    raise ValueError(f"no alternative of {entry!r} applies")


def _checklist(facts: dict[str, Any]) -> Checklist:
    """:data:`ITEMS` answered from the facts; an item of the other kind of report is not
    applicable, an item without an answer is the authors'."""
    kind = facts["kind"]
    for name, text in {**DATA["fragments"]["both"], **DATA["fragments"].get(kind, {})}.items():
        facts[name] = _template(text).render(facts)
    answers = {**DATA["answers"]["both"], **DATA["answers"][kind]}
    items = []
    for item in ITEMS:
        if item.number in answers:
            status, answer = _answer(answers[item.number], facts)
        elif kind in item.applies.split(";"):
            status, answer = AUTHORS, DATA["authors_only"]
        else:
            status, answer = NOT_APPLICABLE, DATA["other_kind"][kind].format(applies=item.applies)
        items.append(replace(item, status=status, answer=answer))
    return Checklist(tuple(items), synthetic=bool(facts["synthetic"]))


def study_checklist(run_dir: str | Path, params: Mapping[str, Any] | None = None,
                    synthetic: bool = False) -> Checklist:
    """The TRIPOD+AI checklist of a study run (development with internal validation).

    Parameters
    ----------
    run_dir : path
        A study run folder with at least ``data/dataset.json``, ``data/slices.csv`` and
        ``metrics.json``; ``bundle.pt``, ``radiomics.json``, ``model/history.csv``,
        ``model/training.json``, ``saliency.json``, ``cohort.json`` and ``figures/`` are used
        when present, and an item says what is missing otherwise.
    params : mapping, optional
        The run's resolved params (``nb.params``); default the run's ``params.yaml``.
    synthetic : bool
        Whether the cohort is the kit's synthetic one (``nb.synthetic``); the answers say so.

    Returns
    -------
    Checklist
        The 52 items of :data:`ITEMS`, in order, answered.

    Raises
    ------
    FileNotFoundError
        A required file is missing; the message names it and the notebook that writes it.
    """
    return _checklist(gather_facts(run_dir, params, synthetic, "D"))


def evaluation_checklist(run_dir: str | Path, params: Mapping[str, Any] | None = None,
                         synthetic: bool = False) -> Checklist:
    """The TRIPOD+AI checklist of a predict run (a trained model evaluated on another cohort).

    Parameters
    ----------
    run_dir : path
        A predict run folder with at least ``data/dataset.json``, ``data/slices.csv`` and
        ``external.json`` (docs/metrics.md#externaljson); the bundle applied
        (``params['model']``) and its training run folder are used when still there.
    params : mapping, optional
        The run's resolved params (``nb.params``); default the run's ``params.yaml``.
    synthetic : bool
        Whether the applied-to cohort is the kit's synthetic one (``nb.synthetic``).

    Returns
    -------
    Checklist
        The 52 items of :data:`ITEMS`, in order: the E and D;E items answered, the D-only
        items not applicable (they belong to the training run's checklist).

    Raises
    ------
    FileNotFoundError
        A required file is missing; the message names it and the notebook that writes it.
    """
    return _checklist(gather_facts(run_dir, params, synthetic, "E"))


# --------------------------------------------------------------------------- output


def checklist_markdown(items: Sequence[ChecklistItem], title: str,
                       synthetic: bool | None = None, heading_level: int = 1) -> str:
    """The checklist as a Markdown document, one list per section.

    Parameters
    ----------
    items : Checklist or sequence of ChecklistItem
        From :func:`study_checklist` or :func:`evaluation_checklist`.
    title : str
        The document's title.
    synthetic : bool, optional
        Put the synthetic-data label under the header. The label is there whenever the
        :class:`Checklist` says its run is synthetic, whatever this says.
    heading_level : int
        Markdown level of the title (sections one below), e.g. 3 inside a report.

    Returns
    -------
    str
    """
    synthetic = bool(synthetic) or bool(getattr(items, "synthetic", False))
    head = "#" * heading_level
    counts = collections.Counter(item.status for item in items)
    lines = [
        f"{head} {title}", "",
        f"The items and their numbers are those of the TRIPOD+AI statement ({CITATION}). "
        f"The topics are short paraphrases, not the statement's wording: read the statement "
        f"for each item's full text. D: development, E: evaluation. Answers *{FROM_RUN}* "
        f"were written by parotidlib {__version__} from this run folder's files and the "
        f"kit's code; items *{AUTHORS}* need what only the authors know, and items "
        f"*{NOT_APPLICABLE}* belong to the other kind of report.", "",
    ]
    if synthetic:
        lines += [f"> {SYNTHETIC_NOTE}", ""]
    lines += [", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES) + ".", ""]
    section = None
    for item in items:
        if item.section.split(":")[0] != section:
            if section is not None:
                lines.append("")
            section = item.section.split(":")[0]
            lines += [f"{head}# {section}", ""]
        if ":" in item.section:
            topic = f"{item.section.split(':', 1)[1].strip().capitalize()}: {item.topic}"
        else:
            topic = item.topic[:1].upper() + item.topic[1:]
        lines.append(f"- **{item.number}** {topic} ({item.applies}): *{item.status}*.  ")
        lines.append(f"  {item.answer}")
    return "\n".join(lines) + "\n"


def write_checklist(run_dir: str | Path, items: Sequence[ChecklistItem],
                    title: str | None = None, synthetic: bool | None = None) -> Path:
    """Write the checklist into ``run_dir/checklist.md`` atomically and return its path.

    Parameters
    ----------
    run_dir : path
        The run folder.
    items : Checklist or sequence of ChecklistItem
    title : str, optional
        Default ``Reporting checklist (TRIPOD+AI 2024): <run folder name>``.
    synthetic : bool, optional
        As in :func:`checklist_markdown`.
    """
    run_dir = Path(run_dir)
    title = title or f"Reporting checklist (TRIPOD+AI 2024): {run_dir.name}"
    return write_text_atomic(run_dir / CHECKLIST_NAME,
                             checklist_markdown(items, title, synthetic=synthetic))


def checklist_frame(items: Sequence[ChecklistItem]) -> pd.DataFrame:
    """The checklist as a table for a notebook: one row per item, indexed by its number,
    columns section, topic, applies, status, answer."""
    frame = pd.DataFrame([asdict(item) for item in items],
                         columns=["number", "section", "topic", "applies", "status", "answer"])
    return frame.set_index("number")
