"""Which series is T1, CE-T1 and T2, and which ROI is which label: rules in YAML.

The defaults (``default_rules.yaml`` beside this module, commented there) match series by
SeriesDescription/ProtocolName patterns, contrast (ContrastBolusAgent or a "+C"/"post"/"GAD"
description) and TR/TE ranges that cover the scanners of Xia et al. 2021, Table 2; ROI names
such as "Parotid_R", "parotid rt", "R Parotid", "GTV", "Tumor" map to the label codes of the
cohort format (1 right gland, 2 left gland, 3 tumour). A rules file merges over them, section
by section, and can pin series per patient. Nothing is guessed: a role without a candidate, or
with two, is a problem that lists the candidates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from parotidlib.constants import LABEL_LEFT_GLAND, LABEL_RIGHT_GLAND, LABEL_TUMOR, SERIES

ROLES: tuple[str, ...] = SERIES  # t1, ce_t1, t2
LABELS: tuple[int, ...] = (LABEL_RIGHT_GLAND, LABEL_LEFT_GLAND, LABEL_TUMOR)


class RulesError(ValueError):
    """A rules file is unreadable or malformed; names the file, key and value."""


@dataclass(frozen=True)
class SeriesRule:
    """What makes a series a candidate for one role (see default_rules.yaml)."""

    description: tuple[re.Pattern, ...]
    exclude: tuple[re.Pattern, ...]
    contrast: bool | None
    tr_ms: tuple[float, float] | None
    te_ms: tuple[float, float] | None


@dataclass(frozen=True)
class Rules:
    """Parsed import rules."""

    series: dict[str, SeriesRule]
    contrast_patterns: tuple[re.Pattern, ...]
    rois: dict[int, tuple[re.Pattern, ...]]
    pin: dict[str, dict[str, str]]


def _patterns(values: Any, where: str) -> tuple[re.Pattern, ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple):
        raise RulesError(f"{where} must be a list of regular expressions, got {values!r}")
    try:
        return tuple(re.compile(str(v), re.IGNORECASE) for v in values)
    except re.error as exc:
        raise RulesError(f"{where}: invalid regular expression ({exc})") from None


def _range(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int | float) for v in value) or value[0] > value[1]):
        raise RulesError(f"{where} must be [low, high] in ms, got {value!r}")
    return float(value[0]), float(value[1])


def _raw_defaults() -> dict[str, Any]:
    text = resources.files("parotidlib.dicom").joinpath("default_rules.yaml").read_text()
    return yaml.safe_load(text)


def load_rules(path: str | Path | None = None) -> Rules:
    """The default rules, with the sections of ``path`` (a YAML file) replacing theirs.

    Raises
    ------
    RulesError
        The file is missing, not YAML, has an unknown section, a bad pattern or range.
    """
    raw = _raw_defaults()
    source = "default rules"
    if path is not None:
        path, source = Path(path), str(path)
        if not path.is_file():
            raise RulesError(f"rules file not found: {path}")
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RulesError(f"rules file {path} is not valid YAML: {exc}") from None
        if not isinstance(user, dict):
            raise RulesError(f"rules file {path} must hold a mapping, got {type(user).__name__}")
        unknown = sorted(set(user) - set(raw))
        if unknown:
            raise RulesError(f"rules file {path}: unknown section(s) {unknown}; sections: "
                             f"{sorted(raw)}")
        for section, value in user.items():
            if section == "series" and isinstance(value, dict):
                raw["series"] = {**raw["series"], **value}  # one role replaced, others kept
            else:
                raw[section] = value
    series = {}
    for role in ROLES:
        rule = (raw.get("series") or {}).get(role)
        if not isinstance(rule, dict):
            raise RulesError(f"{source}: series.{role} must be a mapping, got {rule!r}")
        where = f"{source}: series.{role}"
        contrast = rule.get("contrast")
        if contrast is not None and not isinstance(contrast, bool):
            raise RulesError(f"{where}.contrast must be true, false or absent, got {contrast!r}")
        series[role] = SeriesRule(_patterns(rule.get("description", []), f"{where}.description"),
                                  _patterns(rule.get("exclude", []), f"{where}.exclude"),
                                  contrast, _range(rule.get("tr_ms"), f"{where}.tr_ms"),
                                  _range(rule.get("te_ms"), f"{where}.te_ms"))
    rois = {}
    for key, values in (raw.get("rois") or {}).items():
        if int(key) not in LABELS:
            raise RulesError(f"{source}: rois key {key!r} is not a label code {list(LABELS)}")
        rois[int(key)] = _patterns(values, f"{source}: rois.{key}")
    pin = {str(pid): {str(r): str(v) for r, v in roles.items()}
           for pid, roles in (raw.get("pin") or {}).items()}
    for pid, roles in pin.items():
        bad = sorted(set(roles) - set(ROLES))
        if bad:
            raise RulesError(f"{source}: pin.{pid}: unknown role(s) {bad}; roles: {list(ROLES)}")
    return Rules(series, _patterns(raw.get("contrast_patterns", []),
                                   f"{source}: contrast_patterns"), rois, pin)


# --------------------------------------------------------------------------- series roles


def _text(series: Any) -> str:
    """Description and protocol, normalised like ROI names ("t1_vibe_fs_post" -> "t1 vibe fs
    post", so that word boundaries work), "+" and "*" kept ("T1 +C", "T2*")."""
    return f"{normalise_roi_name(series.description)} | {normalise_roi_name(series.protocol)}"


def has_contrast(series: Any, rules: Rules) -> bool:
    """ContrastBolusAgent present, or a contrast pattern in the description/protocol."""
    return bool(str(series.contrast_agent or "").strip()) or any(
        p.search(_text(series)) for p in rules.contrast_patterns)


def _in(value: float | None, bounds: tuple[float, float] | None) -> bool:
    return bounds is None or value is None or bounds[0] <= value <= bounds[1]


def matches(series: Any, role: str, rules: Rules) -> bool:
    """Whether ``series`` is a candidate for ``role`` under ``rules``."""
    rule, text = rules.series[role], _text(series)
    return (any(p.search(text) for p in rule.description)
            and not any(p.search(text) for p in rule.exclude)
            and (rule.contrast is None or has_contrast(series, rules) == rule.contrast)
            and _in(series.repetition_time_ms, rule.tr_ms)
            and _in(series.echo_time_ms, rule.te_ms))


def describe_series(series: Any) -> str:
    """One line naming a series for a problem message (no personal data)."""
    def ms(v: float | None) -> str:
        return "?" if v is None else f"{v:g}"
    return (f"{series.description or '(no description)'!r} (TR {ms(series.repetition_time_ms)} "
            f"ms, TE {ms(series.echo_time_ms)} ms, date {series.series_date or '?'}, "
            f"contrast agent {series.contrast_agent or 'none'!r}, UID {series.series_uid})")


def assign_roles(series: Sequence[Any], rules: Rules, patient_id: str
                 ) -> tuple[dict[str, Any], list[str]]:
    """Pick the T1, CE-T1 and T2 series of one patient.

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
        Role -> series, for the roles decided.
    problems : list of str
        One message per undecided role, listing the candidates (or every series when none
        matched); empty when all three roles are decided, each by a different series.
    """
    roles: dict[str, Any] = {}
    problems: list[str] = []
    pins = rules.pin.get(str(patient_id), {})
    for role in ROLES:
        if role in pins:
            found = [s for s in series if pins[role] in (s.series_uid, s.description)]
            if len(found) != 1:
                problems.append(f"{role}: the rules pin {pins[role]!r}, which matches "
                                f"{len(found)} series")
                continue
            roles[role] = found[0]
            continue
        candidates = [s for s in series if matches(s, role, rules)]
        if len(candidates) == 1:
            roles[role] = candidates[0]
        elif not candidates:
            listed = "; ".join(describe_series(s) for s in series) or "no MR series"
            problems.append(f"{role}: no series matches the rules; series found: {listed}")
        else:
            listed = "; ".join(describe_series(s) for s in candidates)
            problems.append(f"{role}: {len(candidates)} candidate series, pin one in the "
                            f"rules file (pin: {{PatientID: {{{role}: SeriesInstanceUID}}}}): "
                            f"{listed}")
    used: dict[str, str] = {}
    for role, s in roles.items():
        if s.series_uid in used:
            problems.append(f"{role}: the same series as {used[s.series_uid]} "
                            f"({describe_series(s)})")
        used[s.series_uid] = role
    return roles, problems


# --------------------------------------------------------------------------- ROI names


def normalise_roi_name(name: str) -> str:
    """Lower case, every run of other characters one space: ``"Parotid_R"`` -> ``"parotid r"``."""
    return re.sub(r"[^a-z0-9+*]+", " ", str(name).lower()).strip()


def roi_label(name: str, rules: Rules) -> int | None:
    """The label code of an ROI name, or None when no label (or more than one) matches."""
    text = normalise_roi_name(name)
    found = [label for label, patterns in rules.rois.items()
             if any(p.search(text) for p in patterns)]
    return found[0] if len(found) == 1 else None


def map_rois(names: Sequence[str], rules: Rules) -> tuple[dict[str, int], list[str]]:
    """ROI name -> label for the names that match exactly one label, and the unmatched."""
    mapped, unmatched = {}, []
    for name in names:
        label = roi_label(name, rules)
        if label is None:
            unmatched.append(name)
        else:
            mapped[name] = label
    return mapped, unmatched


def rules_summary(rules: Rules) -> Mapping[str, Any]:
    """The rules as plain data (for the import report)."""
    return {"series": {r: [p.pattern for p in rule.description] for r, rule in
                       rules.series.items()},
            "rois": {k: [p.pattern for p in v] for k, v in rules.rois.items()},
            "pinned_patients": len(rules.pin)}
