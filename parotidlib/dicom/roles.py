"""Which of a patient's MR series is the T1, the CE-T1 and the T2, and (where the rules'
``roles_to_import`` ask for them) the DWI and the ADC map (rules in default_rules.yaml).

A series whose tags say diffusion (ImageType (0008,0008) of a diffusion kind, or a b-value
> 0; :mod:`.diffusion`) is never a T1, CE-T1 or T2; the DWI and ADC roles are decided by
:mod:`.diffusion_roles`. A series is a candidate for the T1, CE-T1 or T2 when its
description matches the role's patterns, its contrast (:mod:`.contrast`: tags first, text
with negation where the tags are silent) is as the role requires, and its TR/TE lie in the
role's ranges. A series whose tags and text
disagree about contrast is a candidate for no role: the patient is refused naming both facts.
A series holding several echoes is a candidate only where the role's ``echo`` rule picks one;
the role then gets that echo alone. A role with no candidate, or two, is a problem listing
the series; a pin in the rules decides instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from parotidlib.dicom.contrast import ContrastEvidence, contrast_evidence
from parotidlib.dicom.diffusion_roles import assign_diffusion, says_diffusion
from parotidlib.dicom.rules import DIFFUSION_ROLES, ROLES, Rules, normalise_description


def _text(series: Any) -> str:
    return (f"{normalise_description(series.description)} | "
            f"{normalise_description(getattr(series, 'protocol', ''))}")


def _in(value: float | None, bounds: tuple[float, float] | None) -> bool:
    return bounds is None or value is None or bounds[0] <= value <= bounds[1]


def echoes(series: Any) -> list[tuple[float | None, tuple[Any, ...]]]:
    """The series' echoes: ``[(TE ms, files), ...]`` by increasing TE; one item when the
    series holds one echo (files without EchoNumbers/EchoTime count as one echo). The echoes
    of one multi-frame (enhanced) object are its frames' EffectiveEchoTimes, each item with
    all of the object's files (:func:`parotidlib.dicom.volume.read_volume` takes the frames
    of one echo by its ``echo_time_ms``)."""
    files = tuple(getattr(series, "files", ()) or ())
    if any(getattr(f, "number_of_frames", 1) > 1 for f in files):
        from parotidlib.dicom.volume import echo_times_ms

        tes = echo_times_ms(series)
        if len(tes) > 1:
            return [(te, files) for te in tes]
        return [(getattr(series, "echo_time_ms", None), files)]
    groups: dict[tuple, list[Any]] = {}
    for f in files:
        groups.setdefault((f.echo_number, f.echo_time_ms), []).append(f)
    if len(groups) <= 1:
        return [(getattr(series, "echo_time_ms", None), files)]
    by_te: dict[float | None, list[Any]] = {}
    for (_, te), members in groups.items():
        by_te.setdefault(te, []).extend(members)
    if len(by_te) <= 1:  # EchoNumbers differ but one TE: not several echoes to choose from
        return [(getattr(series, "echo_time_ms", None), files)]
    return [(te, tuple(by_te[te])) for te in sorted(by_te, key=lambda t: (t is None, t or 0))]


def echo_to_read(series: Any) -> float | None:
    """The ``echo_time_ms`` to pass to :func:`parotidlib.dicom.volume.read_volume`: the echo
    :func:`pick_echo` took where the series still holds several (a multi-frame object), else
    None."""
    return getattr(series, "echo_time_ms", None) if len(echoes(series)) > 1 else None


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def pick_echo(series: Any, role: str, rules: Rules) -> tuple[Any | None, str]:
    """``(series, note)``: the series itself when it holds one echo; with several, the echo
    the role's ``echo`` rule picks as a series of those files alone and a note saying which,
    or ``(None, reason)`` when the rule picks none."""
    found = echoes(series)
    if len(found) == 1:
        return series, ""
    rule = rules.series[role]
    tes = ", ".join(_ms(te) for te, _ in found)
    if rule.echo is None:
        return None, (f"holds {len(found)} echoes (TE {tes} ms); set series.{role}.echo "
                      f"(longest, shortest or te_range) in the rules file to take one")
    if rule.echo == "longest":
        index = len(found) - 1
    elif rule.echo == "shortest":
        index = 0
    else:
        inside = [i for i, (te, _) in enumerate(found) if te is not None and _in(te, rule.te_ms)]
        if len(inside) != 1:
            return None, (f"holds {len(found)} echoes (TE {tes} ms), {len(inside)} of them in "
                          f"series.{role}.te_ms {list(rule.te_ms or ())}; echo: te_range "
                          f"needs exactly one")
        index = inside[0]
    te, files = found[index]
    note = (f"echo {index + 1} of {len(found)} (TE {_ms(te)} ms, of {tes} ms) by the rule "
            f"echo: {rule.echo}")
    if dataclasses.is_dataclass(series):
        return dataclasses.replace(series, files=files, echo_time_ms=te), note
    return series, note


def matches(series: Any, role: str, rules: Rules, evidence: ContrastEvidence | None = None
            ) -> bool:
    """Whether ``series`` is a candidate for ``role`` (t1, ce_t1, t2): not a diffusion image
    by its tags, description, contrast, TR/TE (its echoes aside; see :func:`pick_echo`)."""
    rule, text = rules.series[role], _text(series)
    if says_diffusion(series):
        return False
    if evidence is None:
        evidence = contrast_evidence(series, [series], rules)
    if evidence.conflict:
        return False
    given = bool(evidence.given)  # silent counts as no contrast
    found = echoes(series)
    tes = [te for te, _ in found]
    te_ok = any(_in(te, rule.te_ms) for te in tes) if len(found) > 1 else _in(
        series.echo_time_ms, rule.te_ms)
    return (any(p.search(text) for p in rule.description)
            and not any(p.search(text) for p in rule.exclude)
            and (rule.contrast is None or given == rule.contrast)
            and _in(series.repetition_time_ms, rule.tr_ms) and te_ok)


def describe_series(series: Any, evidence: ContrastEvidence | None = None) -> str:
    """One line naming a series for a problem message (no personal data)."""
    contrast = "?"
    if evidence is not None:
        contrast = ("conflict" if evidence.conflict else "yes" if evidence.given
                    else "no" if evidence.given is False else "not recorded")
    return (f"{series.description or '(no description)'!r} (series number "
            f"{_ms(getattr(series, 'series_number', None))}, TR {_ms(series.repetition_time_ms)}"
            f" ms, TE {_ms(series.echo_time_ms)} ms, date {series.series_date or '?'}, "
            f"contrast {contrast}, UID {series.series_uid})")


def _description_matches_a_role(series: Any, rules: Rules) -> list[str]:
    text = _text(series)
    return [role for role, rule in rules.series.items() if role in ROLES
            and any(p.search(text) for p in rule.description)
            and not any(p.search(text) for p in rule.exclude)]


def assign_roles(series: Sequence[Any], rules: Rules, patient_id: str
                 ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Pick the T1, CE-T1 and T2 series of one patient, and the DWI and ADC where the rules'
    ``roles_to_import`` name them (:func:`parotidlib.dicom.diffusion_roles.assign_diffusion`).

    Parameters
    ----------
    series : sequence of Series
        The patient's MR series (:class:`parotidlib.dicom.headers.Series`).
    rules : Rules
    patient_id : str
        The DICOM PatientID (for pins).

    Returns
    -------
    roles : dict
        Role -> series, for the roles decided (a multi-echo series reduced to the echo
        picked).
    problems : list of str
        One message per undecided role, listing the candidates (or every series when none
        matched), and one per series whose contrast tags and text disagree; empty when all
        roles to import are decided, each by a different series (an ``optional`` role may
        stay undecided where the patient has no such series).
    notes : dict
        Role -> how it was decided where the report should say so (the contrast evidence,
        an echo picked, the b-value picked, a pin).
    """
    series = list(series)
    evidence = {id(s): contrast_evidence(s, series, rules) for s in series}
    roles: dict[str, Any] = {}
    notes: dict[str, str] = {}
    problems: list[str] = []
    for s in series:
        conflict = evidence[id(s)].conflict
        candidate_of = _description_matches_a_role(s, rules)
        if conflict and candidate_of:
            problems.append(f"contrast of {describe_series(s, evidence[id(s)])}: {conflict}; "
                            f"pin the series to a role in the rules file if you know which")
    pins = rules.pin.get(str(patient_id), {})
    for role in ROLES:
        if role in pins:
            found = [s for s in series if pins[role] in (s.series_uid, s.description)]
            if len(found) != 1:
                problems.append(f"{role}: the rules pin {pins[role]!r}, which matches "
                                f"{len(found)} series")
                continue
            chosen, echo_note = pick_echo(found[0], role, rules)
            if chosen is None:
                problems.append(f"{role}: the pinned {describe_series(found[0])} {echo_note}")
                continue
            roles[role] = chosen
            notes[role] = "; ".join(x for x in ("pinned in the rules", echo_note) if x)
            continue
        candidates = [s for s in series if matches(s, role, rules, evidence[id(s)])]
        if len(candidates) == 1:
            chosen, echo_note = pick_echo(candidates[0], role, rules)
            if chosen is None:
                problems.append(f"{role}: {describe_series(candidates[0])} {echo_note}")
                continue
            roles[role] = chosen
            ev = evidence[id(candidates[0])]
            how = (f"contrast: {ev.tag_fact}" if ev.tags is not None else
                   f"contrast: the description says {ev.text_fact}" if ev.text is not None
                   else "contrast: nothing recorded")
            notes[role] = "; ".join(x for x in (how, echo_note) if x)
        elif not candidates:
            listed = "; ".join(describe_series(s, evidence[id(s)]) for s in series) \
                or "no MR series"
            problems.append(f"{role}: no series matches the rules; series found: {listed}")
        else:
            listed = "; ".join(describe_series(s, evidence[id(s)]) for s in candidates)
            problems.append(f"{role}: {len(candidates)} candidate series, pin one in the "
                            f"rules file (pin: {{PatientID: {{{role}: SeriesInstanceUID}}}}): "
                            f"{listed}")
    for role in DIFFUSION_ROLES:
        if role not in rules.roles_to_import:
            continue
        chosen, found, note = assign_diffusion(
            role, series, rules, patient_id, required=rules.roles_to_import[role] == "required")
        problems += found
        if chosen is not None:
            roles[role] = chosen
        if note:
            notes[role] = note
    used: dict[str, str] = {}
    for role, s in roles.items():
        key = (s.series_uid, getattr(s, "echo_time_ms", None), getattr(s, "frames_b_value", None))
        if key in used:
            problems.append(f"{role}: the same series as {used[key]} ({describe_series(s)})")
        used[key] = role
    return roles, problems, notes
