"""The stage tables of README.md and docs/design.md, generated from :data:`.stages.STAGES`
(and the table of config sections, from :data:`parotidlib.config.SECTIONS`).

Each document holds its table between the markers ``<!-- stages:<name> begin -->`` and
``<!-- stages:<name> end -->``; :func:`update` rewrites what lies between them and
``python -m parotidlib.run.stage_docs`` runs it on the repository's documents
(``make docs``). ``tests/run/test_stage_docs.py`` fails while a document is out of date.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from parotidlib.config import SECTIONS, field_names
from parotidlib.io import write_text_atomic
from parotidlib.run.stages import PREDICT_STAGES, SPEED_KEYS, STAGES, Stage

__all__ = ["DOCUMENTS", "TABLES", "overview_table", "sections_table", "stage_table",
           "stale_documents", "update"]

_BATCH_TEXT = {"shared": "once per batch", "member": "every member", "none": "-"}


def _code(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "-"


def overview_table(stages: Sequence[Stage] = STAGES) -> str:
    """Markdown table of the chain for the README: stage, notebook, what it does."""
    rows = ["| stage | notebook | does |", "|---|---|---|"]
    rows += [f"| {s.name} | `{s.notebook.removesuffix('.ipynb')}` | {s.about} |" for s in stages]
    return "\n".join(rows)


def stage_table(stages: Sequence[Stage] = STAGES) -> str:
    """Markdown table of what each stage declares (docs/design.md): its keys, what it
    writes, what it may resume across and how a batch runs it."""
    rows = ["| stage | notebook | keys (its notebook's parameters) | writes | resumes across | "
            "in a batch |", "|---|---|---|---|---|---|"]
    for s in stages:
        speed = [k for k in s.keys if k in SPEED_KEYS]
        keys = (_code([k for k in s.keys if k not in SPEED_KEYS])
                + (" and the cohort's fingerprint" if s.cohort_in_key else "")
                + (f"; speed only, not in the cache key: {_code(speed)}" if speed else ""))
        resumes = _code(s.resumable + s.resume_checked) if s.can_resume else "-"
        rows.append(f"| {s.name} | `{s.notebook.removesuffix('.ipynb')}` | {keys} | "
                    f"{_code(s.outputs or (s.output,))} | {resumes} | "
                    f"{_BATCH_TEXT[s.batch]} |")
    return "\n".join(rows)


def sections_table() -> str:
    """Markdown table of the config sections (``config.SECTIONS``) and their params keys."""
    rows = ["| section | dataclass | keys |", "|---|---|---|"]
    rows += [f"| {name} | `{cls.__name__}` | {_code(field_names(cls))} |"
             for name, cls in SECTIONS.items()]
    return "\n".join(rows)


#: Table name -> the function that writes it.
TABLES: dict[str, Callable[[], str]] = {
    "overview": overview_table,
    "sections": sections_table,
    "study": stage_table,
    "predict": lambda: stage_table(PREDICT_STAGES),
}
#: The repository's documents that hold generated tables, relative to its root.
DOCUMENTS: tuple[str, ...] = ("README.md", "docs/design.md")


def _rendered(text: str, path: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"{path}: no stage table named {name!r}; tables: {list(TABLES)}")
        return f"{match.group(0).split(chr(10))[0]}\n{TABLES[name]()}\n<!-- stages:{name} end -->"

    return re.sub(r"<!-- stages:(\w+) begin -->\n.*?<!-- stages:\1 end -->", replace, text,
                  flags=re.S)


def stale_documents(root: Path) -> list[str]:
    """The documents under ``root`` whose generated tables differ from :data:`STAGES`."""
    return [rel for rel in DOCUMENTS
            if (text := (root / rel).read_text()) != _rendered(text, root / rel)]


def update(root: Path) -> list[str]:
    """Rewrite the generated tables of the documents under ``root``; the ones changed."""
    changed = stale_documents(root)
    for rel in changed:
        path = root / rel
        write_text_atomic(path, _rendered(path.read_text(), path))
    return changed


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[2]
    for rel in update(repo):
        print(f"updated the stage tables of {rel}")
    sys.exit(0)
