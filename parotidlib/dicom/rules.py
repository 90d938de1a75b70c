"""The import rules in YAML: how series roles, contrast, ROI names and structure sets are decided.

The defaults (``default_rules.yaml`` beside this module, commented there) read the DICOM tags
first and names only where the tags are silent: contrast from the Contrast/Bolus module and
the acquisition order before the description (:mod:`.contrast`); series roles from
description, contrast and TR/TE ranges that cover the scanners of Xia et al. 2021, Table 2
(:mod:`.roles`); the DWI and ADC, opt-in through ``roles_to_import``, from ImageType and the
b-value before descriptions, a multi-b DWI split and picked by ``series.dwi.b_value``
(:mod:`.diffusion_roles`); ROI names matched whole against AAPM TG-263 names and the usual other
spellings, derived structures (margins, booleans, PTV/CTV, nodes, helpers) never taken
(:mod:`.roinames`); one structure set per label chosen by approval and date, never a union
(:mod:`.structures`). A rules file merges over the defaults section by section and can pin
series and ROIs per patient. Nothing is guessed: what stays ambiguous is a problem that lists
the candidates.

References
----------
Mayo CS et al. American Association of Physicists in Medicine Task Group 263: Standardizing
Nomenclatures in Radiation Oncology. Int J Radiat Oncol Biol Phys 2018;100(4):1057-1066.
DICOM PS3.3 C.7.6.4 (Contrast/Bolus Module), C.8.8.5-C.8.8.8 (Structure Set, ROI Contour,
RT ROI Observations, Approval modules).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from parotidlib.constants import LABEL_LEFT_GLAND, LABEL_RIGHT_GLAND, LABEL_TUMOR, SERIES

ROLES: tuple[str, ...] = SERIES  # t1, ce_t1, t2: every cohort has them
#: Diffusion roles, imported only where ``roles_to_import`` names them (:mod:`.diffusion_roles`).
DIFFUSION_ROLES: tuple[str, ...] = ("adc", "dwi")  # the synthetic cohort's order
ALL_ROLES: tuple[str, ...] = (*ROLES, *DIFFUSION_ROLES)
IMPORT_CHOICES = ("required", "optional")
B_VALUE_CHOICES = ("highest", "lowest")
LABELS: tuple[int, ...] = (LABEL_RIGHT_GLAND, LABEL_LEFT_GLAND, LABEL_TUMOR)
#: The structures an ROI can be, by label code, as pins and messages name them.
STRUCTURES: dict[int, str] = {LABEL_RIGHT_GLAND: "right_gland", LABEL_LEFT_GLAND: "left_gland",
                              LABEL_TUMOR: "tumour"}
ECHO_CHOICES = ("longest", "shortest", "te_range")
STRUCTURE_SET_CHOICES = ("newest_approved", "refuse")


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
    echo: str | None = None
    b_value: str | float | None = None
    """dwi: which b-value of a series holding several: ``highest`` or ``lowest`` within
    ``b_range``, or a number (s/mm²)."""
    b_range: tuple[float, float] | None = None
    """dwi: the b-values (s/mm²) ``highest``/``lowest`` choose among."""
    units_by_manufacturer: tuple[tuple[re.Pattern, float], ...] = ()
    """adc: Manufacturer pattern -> mm²/s per pixel value, where no Real World Value Mapping
    gives the unit."""
    median_mm2_s: tuple[float, float] | None = None
    """adc: the range the median of the map's positive values (in mm²/s) must lie in."""


@dataclass(frozen=True)
class Rules:
    """Parsed import rules (the sections of default_rules.yaml)."""

    series: dict[str, SeriesRule]
    contrast_patterns: tuple[re.Pattern, ...]
    rois: dict[int, tuple[re.Pattern, ...]]
    pin: dict[str, dict[str, str]]
    precontrast_patterns: tuple[re.Pattern, ...] = ()
    bilateral_glands: tuple[re.Pattern, ...] = ()
    derived_rois: dict[str, tuple[re.Pattern, ...]] | None = None
    boolean_rois: tuple[re.Pattern, ...] = ()
    derived_types: frozenset[str] = frozenset()
    structure_sets: str = "newest_approved"
    combine_studies: bool = False
    combine_frames_of_reference: bool = False
    roles_to_import: dict[str, str] = dataclasses.field(
        default_factory=lambda: {role: "required" for role in ROLES})
    """Role -> ``required`` or ``optional``: the series the import writes (t1, ce_t1, t2
    always required; dwi, adc opt-in)."""
    diffusion_refused: dict[str, tuple[re.Pattern, ...]] | None = None
    """Reason -> description patterns of diffusion images that are no role (eADC, computed
    b-values, tensor maps)."""


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
        raise RulesError(f"{where} must be [low, high], got {value!r}")
    return float(value[0]), float(value[1])


def _raw_defaults() -> dict[str, Any]:
    text = resources.files("parotidlib.dicom").joinpath("default_rules.yaml").read_text()
    return yaml.safe_load(text)


def _merge_user_rules(raw: dict[str, Any], path: Path) -> None:
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
            merged = {**raw["series"], **value}  # one role replaced, others kept
            for role in DIFFUSION_ROLES:  # new roles: a key given replaces that key only
                if isinstance(value.get(role), dict):
                    merged[role] = {**raw["series"].get(role, {}), **value[role]}
            raw["series"] = merged
        else:
            raw[section] = value


#: The keys a role's rule may have besides the common ones.
_ROLE_KEYS = {"dwi": {"b_value", "b_range"}, "adc": {"units_by_manufacturer", "median_mm2_s"}}


def _b_value(value: Any, where: str) -> str | float | None:
    if value is None or value in B_VALUE_CHOICES:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise RulesError(f"{where}.b_value must be one of {list(B_VALUE_CHOICES)} or a b-value "
                     f"in s/mm² (> 0), got {value!r}")


def _units(value: Any, where: str) -> tuple[tuple[re.Pattern, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            for v in value.values()):
        raise RulesError(f"{where}.units_by_manufacturer must map a Manufacturer pattern to "
                         f"mm²/s per pixel value (> 0, e.g. 1.0e-6), got {value!r}")
    return tuple((_patterns([k], f"{where}.units_by_manufacturer")[0], float(v))
                 for k, v in value.items())


def _series_rule(rule: Any, where: str, role: str = "") -> SeriesRule:
    if not isinstance(rule, dict):
        raise RulesError(f"{where} must be a mapping, got {rule!r}")
    unknown = sorted(set(rule) - {"description", "exclude", "contrast", "tr_ms", "te_ms",
                                  "echo"} - _ROLE_KEYS.get(role, set()))
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {unknown}")
    contrast = rule.get("contrast")
    if contrast is not None and not isinstance(contrast, bool):
        raise RulesError(f"{where}.contrast must be true, false or absent, got {contrast!r}")
    echo = rule.get("echo")
    if echo is not None and echo not in ECHO_CHOICES:
        raise RulesError(f"{where}.echo must be one of {list(ECHO_CHOICES)} or absent, got "
                         f"{echo!r}")
    te = _range(rule.get("te_ms"), f"{where}.te_ms")
    if echo == "te_range" and te is None:
        raise RulesError(f"{where}.echo is te_range but {where}.te_ms is not given")
    return SeriesRule(_patterns(rule.get("description", []), f"{where}.description"),
                      _patterns(rule.get("exclude", []), f"{where}.exclude"),
                      contrast, _range(rule.get("tr_ms"), f"{where}.tr_ms"), te, echo,
                      b_value=_b_value(rule.get("b_value"), where),
                      b_range=_range(rule.get("b_range"), f"{where}.b_range"),
                      units_by_manufacturer=_units(rule.get("units_by_manufacturer"), where),
                      median_mm2_s=_range(rule.get("median_mm2_s"), f"{where}.median_mm2_s"))


def _roles_to_import(value: Any, where: str) -> dict[str, str]:
    """``roles_to_import``: role -> required | optional; t1, ce_t1 and t2 required."""
    if not isinstance(value, dict):
        raise RulesError(f"{where} must map roles to required or optional, got {value!r}")
    bad = sorted(set(value) - set(ALL_ROLES))
    if bad:
        raise RulesError(f"{where}: unknown role(s) {bad}; roles: {list(ALL_ROLES)}")
    for role, choice in value.items():
        if choice not in IMPORT_CHOICES:
            raise RulesError(f"{where}.{role} must be one of {list(IMPORT_CHOICES)}, got "
                             f"{choice!r}")
    missing = [r for r in ROLES if value.get(r) != "required"]
    if missing:
        raise RulesError(f"{where}: {missing} must be required (every cohort has t1, ce_t1 "
                         f"and t2)")
    return {role: value[role] for role in ALL_ROLES if role in value}


def load_rules(path: str | Path | None = None) -> Rules:
    """The default rules, with the sections of ``path`` (a YAML file) replacing theirs.

    Raises
    ------
    RulesError
        The file is missing, not YAML, has an unknown section or key, a bad pattern, range or
        choice, or pins an unknown role or structure.
    """
    raw = _raw_defaults()
    source = "default rules"
    if path is not None:
        path, source = Path(path), str(path)
        _merge_user_rules(raw, path)
    series = {role: _series_rule((raw.get("series") or {}).get(role),
                                 f"{source}: series.{role}", role) for role in ALL_ROLES}
    unknown_roles = sorted(set(raw.get("series") or {}) - set(ALL_ROLES))
    if unknown_roles:
        raise RulesError(f"{source}: series: unknown role(s) {unknown_roles}; roles: "
                         f"{list(ALL_ROLES)}")
    refused = raw.get("diffusion_refused") or {}
    if not isinstance(refused, dict):
        raise RulesError(f"{source}: diffusion_refused must map a reason to patterns, got "
                         f"{refused!r}")
    rois = {}
    for key, values in (raw.get("rois") or {}).items():
        if str(key) not in {str(label) for label in LABELS}:
            raise RulesError(f"{source}: rois key {key!r} is not a label code {list(LABELS)}")
        rois[int(key)] = _patterns(values, f"{source}: rois.{key}")
    derived = raw.get("derived_rois") or {}
    if not isinstance(derived, dict):
        raise RulesError(f"{source}: derived_rois must map a reason to patterns, got "
                         f"{derived!r}")
    types = raw.get("derived_types") or []
    if not isinstance(types, list | tuple):
        raise RulesError(f"{source}: derived_types must be a list, got {types!r}")
    choice = raw.get("structure_sets", "newest_approved")
    if choice not in STRUCTURE_SET_CHOICES:
        raise RulesError(f"{source}: structure_sets must be one of "
                         f"{list(STRUCTURE_SET_CHOICES)}, got {choice!r}")
    combine = raw.get("combine") or {}
    if not isinstance(combine, dict) or set(combine) - {"studies", "frames_of_reference"} or \
            not all(isinstance(v, bool) for v in combine.values()):
        raise RulesError(f"{source}: combine must map studies and/or frames_of_reference to "
                         f"true or false, got {combine!r}")
    pin = {str(pid): {str(r): str(v) for r, v in (roles or {}).items()}
           for pid, roles in (raw.get("pin") or {}).items()}
    allowed = (*ALL_ROLES, *STRUCTURES.values())
    for pid, roles in pin.items():
        bad = sorted(set(roles) - set(allowed))
        if bad:
            raise RulesError(f"{source}: pin.{pid}: unknown key(s) {bad}; allowed: "
                             f"{list(allowed)}")
    return Rules(
        series=series,
        contrast_patterns=_patterns(raw.get("contrast_patterns", []),
                                    f"{source}: contrast_patterns"),
        rois=rois, pin=pin,
        precontrast_patterns=_patterns(raw.get("precontrast_patterns", []),
                                       f"{source}: precontrast_patterns"),
        bilateral_glands=_patterns(raw.get("bilateral_glands", []),
                                   f"{source}: bilateral_glands"),
        derived_rois={str(reason): _patterns(values, f"{source}: derived_rois.{reason}")
                      for reason, values in derived.items()},
        boolean_rois=_patterns(raw.get("boolean_rois", []), f"{source}: boolean_rois"),
        derived_types=frozenset(str(t).upper() for t in types),
        structure_sets=choice,
        combine_studies=combine.get("studies", False),
        combine_frames_of_reference=combine.get("frames_of_reference", False),
        roles_to_import=_roles_to_import(raw.get("roles_to_import"),
                                         f"{source}: roles_to_import"),
        diffusion_refused={str(reason): _patterns(values,
                                                  f"{source}: diffusion_refused.{reason}")
                           for reason, values in refused.items()})


def fold(text: str) -> str:
    """Accents dropped (NFKD, combining marks removed) and lower case: ``"Parótida"`` ->
    ``"parotida"``, ``"après"`` -> ``"apres"``."""
    decomposed = unicodedata.normalize("NFKD", str(text or ""))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def normalise_description(text: str) -> str:
    """A description as the series patterns see it: folded, every run of characters other than
    letters, digits, ``+`` and ``*`` one space (``"T1 w/o KM"`` -> ``"t1 w o km"``)."""
    return re.sub(r"[^a-z0-9+*]+", " ", fold(text)).strip()


def normalise_roi_name(name: str) -> str:
    """An ROI name as the name patterns see it: folded, every run of spaces, underscores,
    hyphens and dots one space (``"Parotid_R"`` -> ``"parotid r"``, ``"Lt. Parotid"`` ->
    ``"lt parotid"``); other characters (``+``, ``~``) kept."""
    return re.sub(r"[\s_.\-]+", " ", fold(name)).strip()


def rules_summary(rules: Rules) -> Mapping[str, Any]:
    """The rules as plain data (for the import report)."""
    return {"series": {r: [p.pattern for p in rule.description] for r, rule in
                       rules.series.items()},
            "rois": {k: [p.pattern for p in v] for k, v in rules.rois.items()},
            "structure_sets": rules.structure_sets,
            "roles_to_import": dict(rules.roles_to_import),
            "pinned_patients": len(rules.pin)}
