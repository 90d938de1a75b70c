"""What can be wrong with a cohort: one :class:`Problem` names the patient, column and file;
a :class:`CohortError` carries them all at once (docs/cohort-format.md, "Validation")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cohort.

    Attributes
    ----------
    patient_id : str or None
        None for problems of the whole manifest (e.g. a missing column).
    column : str or None
        Manifest column (a series name for image problems, e.g. ``"t2_labels"``).
    path : str or None
        The file concerned (absolute), or the manifest.
    message : str
        What is wrong and what is allowed.
    """

    patient_id: str | None
    column: str | None
    path: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.patient_id is not None:
            where.append(f"patient {self.patient_id}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.path is not None:
            where.append(f"file {self.path}")
        return f"{', '.join(where) or 'cohort'}: {self.message}"


class CohortError(ValueError):
    """A cohort that cannot be used; ``problems`` lists everything found, not just the first."""

    def __init__(self, problems: Iterable[Problem], source: str | Path | None = None):
        self.problems: list[Problem] = list(problems)
        head = f"invalid cohort {source}" if source is not None else "invalid cohort"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}: {len(self.problems)} problem(s)\n{lines}")
