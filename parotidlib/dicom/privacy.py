"""Free text from DICOM never reaches a file verbatim, and the console sees it without names.

Technologists and planners type whatever they like into SeriesDescription, ProtocolName,
ROIName and StructureSetLabel, patient names included ("T1 MUELLER^HANS", "GTV MUELLER").
The import keeps series UIDs, series numbers, ROI numbers and the role or label matched in its
outputs (manifest, import report, ``import.json``); where a description or ROI name must be
shown to decide (a refusal listing candidates), it is shown on the console only, with every
word that is a component of the patient's name removed.

:class:`Redactor` does both for the messages of one patient: messages quote free text as
Python ``repr`` (``'T1 MUELLER^HANS'``), and :meth:`Redactor.for_file` replaces each quoted
free text the patient's DICOM holds with :data:`WITHHELD`, :meth:`Redactor.for_console` with
its scrubbed version (:func:`scrub`). Name components are compared by salted digest
(:func:`parotidlib.dicom.headers.token_digest`): the names themselves are never kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from parotidlib.dicom.headers import token_digest

WITHHELD = "<free text withheld>"
"""What a file shows where a message quoted a description or ROI name."""
REMOVED = "***"
"""What the console shows where a word of free text was a component of the patient's name."""


def scrub(text: str, tokens: frozenset[str] | set[str]) -> str:
    """``text`` with every word (a run of letters) whose digest is one of ``tokens`` replaced
    by :data:`REMOVED`: ``"T1 MUELLER^HANS"`` -> ``"T1 ***^***"`` for the patient Mueller^Hans.
    """
    if not tokens:
        return text
    return re.sub(r"[^\W\d_]{2,}",
                  lambda m: REMOVED if token_digest(m.group(0)) in tokens else m.group(0),
                  text)


class Redactor:
    """The file and console versions of messages that quote one patient's free text.

    Parameters
    ----------
    free_texts : iterable of str
        Every description, protocol name, ROI name and structure set label of the patient.
    tokens : set of str
        The digests of the patient's name components (``Series.identity_tokens``).
    """

    def __init__(self, free_texts: Iterable[str], tokens: frozenset[str] | set[str]) -> None:
        self.tokens = frozenset(tokens)
        self._texts: set[str] = set()
        self._quoted: list[str] = []
        self.add(free_texts)

    def add(self, free_texts: Iterable[str]) -> None:
        """Withhold these texts too (the ROI names of structure sets read later)."""
        self._texts |= {t for t in free_texts if t and t.strip()}
        self._quoted = [repr(t) for t in sorted(self._texts, key=len, reverse=True)]

    def for_file(self, message: str) -> str:
        """``message`` with every quoted free text replaced by :data:`WITHHELD`."""
        for quoted in self._quoted:
            message = message.replace(quoted, WITHHELD)
        return scrub(message, self.tokens)  # an unquoted name (a pin value, a file path)

    def for_console(self, message: str) -> str:
        """``message`` with the patient's name components removed from its free text."""
        return scrub(message, self.tokens)
