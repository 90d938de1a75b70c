"""Was contrast given before a series? The DICOM tags decide; the description only where they
are silent, and read with negation.

Evidence, strongest first (:func:`contrast_evidence`):

1. **The Contrast/Bolus module** of the series (DICOM PS3.3 C.7.6.4): ContrastBolusAgent
   (0018,0010), -Route, -Volume, -StartTime, -TotalDose. Any of them present and not "none"
   means an agent was given; an agent of "none" (or "no", "keine", ...) means it was not.
2. **The acquisition order** within the patient's study: a series acquired before the
   study's ContrastBolusStartTime had no contrast and one acquired after it had; without a
   start time, a series acquired (AcquisitionTime, else SeriesTime, else SeriesNumber)
   before the first series that records an agent had none.
3. **The description** (SeriesDescription and ProtocolName), as the technologist typed it:
   the words that negate contrast (pre, w/o, without, non, no, nativ, ohne, sans, sin, ...)
   are taken out first, so that "pre contrast" does not read as "contrast", then the words
   that mean contrast (post, +C, Gd, gado, KM, mit, con, avec, brand names, ...) are looked
   for. Both in one description is a conflict. "Enhanced" alone is not contrast (Enhanced MR
   is an object type; "enhanced conversion" a converter's note).

Where (1) or (2) and (3) disagree, the series has a conflict: the role rules take no series
with a conflict and the import refuses the patient naming both facts, never one of them.
The patterns of (3) are rules (``precontrast_patterns``, ``contrast_patterns`` in
default_rules.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parotidlib.dicom.rules import Rules, normalise_description

#: ContrastBolusAgent values that say no agent was given.
NO_AGENT = frozenset({"none", "no", "nil", "n a", "na", "0", "keine", "kein", "aucun",
                      "ninguno", "nessuno", "without"})


@dataclass(frozen=True)
class ContrastEvidence:
    """What the headers and the text say about contrast for one series.

    Attributes
    ----------
    tags : bool or None
        From the series' Contrast/Bolus module or the acquisition order (None: silent).
    tag_fact : str
        Which tag or order said so ("" when silent), for messages.
    text : bool or None
        From the description read with negation (None: says nothing, or both).
    text_fact : str
        Which word said so, as the rules' pattern matched it (never the free text itself).
    """

    tags: bool | None
    tag_fact: str
    text: bool | None
    text_fact: str

    @property
    def given(self) -> bool | None:
        """The decision: the tags where they speak, else the text; None when neither does."""
        return self.tags if self.tags is not None else self.text

    @property
    def conflict(self) -> str:
        """"" when the facts agree, else a sentence naming both."""
        if self.text is None and self.text_fact:
            return f"the description says both {self.text_fact}"
        if self.tags is None or self.text is None or self.tags == self.text:
            return ""
        return (f"{self.tag_fact} ({_yes_no(self.tags)}), but the description says "
                f"{self.text_fact} ({_yes_no(self.text)})")


def _yes_no(given: bool) -> str:
    return "contrast given" if given else "no contrast"


def _module_says(series: Any) -> tuple[bool | None, str]:
    """The series' own Contrast/Bolus module: (given, which attribute said it)."""
    agent = normalise_description(getattr(series, "contrast_agent", "") or "")
    if agent:
        if agent in NO_AGENT:
            return False, "ContrastBolusAgent says none"
        return True, "ContrastBolusAgent is present"
    for attribute, keyword in (("contrast_route", "ContrastBolusRoute"),
                               ("contrast_start_time", "ContrastBolusStartTime")):
        if str(getattr(series, attribute, "") or "").strip():
            return True, f"{keyword} is present"
    for attribute, keyword in (("contrast_volume_ml", "ContrastBolusVolume"),
                               ("contrast_total_dose_ml", "ContrastBolusTotalDose")):
        value = getattr(series, attribute, None)
        if value is not None and value > 0:
            return True, f"{keyword} is {value:g} ml"
    return None, ""


def _seconds(hhmmss: str) -> float | None:
    """DICOM TM ("HHMMSS.FFFFFF", "HHMM", "HH:MM:SS" from old writers) in seconds."""
    text = str(hhmmss or "").strip().replace(":", "")
    if len(text) < 2 or not text[:2].isdigit():
        return None
    try:
        hours, minutes = int(text[:2]), int(text[2:4] or 0)
        seconds = float(text[4:] or 0)
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _acquired(series: Any) -> float | None:
    return _seconds(getattr(series, "acquisition_time", "") or "") or _seconds(
        getattr(series, "series_time", "") or "")


def _order_says(series: Any, study: Sequence[Any]) -> tuple[bool | None, str]:
    """The acquisition order within the study (see the module docstring, item 2)."""
    same_day = [s for s in study if getattr(s, "study_uid", None) == getattr(
        series, "study_uid", None) and getattr(s, "series_date", "") == getattr(
        series, "series_date", "")]
    tagged = [s for s in same_day if _module_says(s)[0]]
    if not tagged:
        return None, ""
    when = _acquired(series)
    starts = [t for t in (_seconds(getattr(s, "contrast_start_time", "") or "")
                          for s in tagged) if t is not None]
    if starts and when is not None:
        start = min(starts)
        if when < start:
            return False, "it was acquired before the study's ContrastBolusStartTime"
        return True, "it was acquired after the study's ContrastBolusStartTime"
    times = [t for t in (_acquired(s) for s in tagged) if t is not None]
    if times and when is not None:
        if when < min(times):
            return False, "it was acquired before the first series that records an agent"
        if when > min(times):
            return None, ""
        # the same time (exports that copy StudyTime into every series): the numbers decide
    numbers = [s.series_number for s in tagged if getattr(s, "series_number", None) is not None]
    number = getattr(series, "series_number", None)
    if numbers and number is not None and number < min(numbers):
        return False, "its SeriesNumber comes before the first series that records an agent"
    return None, ""


def _text_says(series: Any, rules: Rules) -> tuple[bool | None, str]:
    text = " | ".join(normalise_description(getattr(series, key, "") or "")
                      for key in ("description", "protocol"))
    negations = [m.group(0) for p in rules.precontrast_patterns for m in p.finditer(text)]
    rest = text
    for pattern in rules.precontrast_patterns:
        rest = pattern.sub(" ", rest)
    positives = [m.group(0) for p in rules.contrast_patterns for m in p.finditer(rest)]
    if negations and positives:
        return None, f"{negations[0].strip()!r} (no contrast) and {positives[0].strip()!r} " \
                     f"(contrast)"
    if negations:
        return False, repr(negations[0].strip())
    if positives:
        return True, repr(positives[0].strip())
    return None, ""


def contrast_evidence(series: Any, study: Sequence[Any], rules: Rules) -> ContrastEvidence:
    """What the tags, the acquisition order and the text say about contrast for ``series``.

    Parameters
    ----------
    series : Series
        An MR series (:class:`parotidlib.dicom.headers.Series`, or anything with its fields).
    study : sequence of Series
        The patient's MR series (for the acquisition order).
    rules : Rules
        The text patterns.
    """
    tags, tag_fact = _module_says(series)
    if tags is None:
        tags, tag_fact = _order_says(series, study)
    text, text_fact = _text_says(series, rules)
    return ContrastEvidence(tags, tag_fact, text, text_fact)
