"""Which of a patient's MR series is the DWI and which the ADC map; the b-value taken from a
series holding several; the unit of the ADC's values.

The tags decide first (:func:`diffusion_verdict`): ImageType (0008,0008) and the b-value
(:mod:`.diffusion`). The description is read where the tags are silent, and against them: a
series whose tags and description disagree (ImageType TRACEW described "eADC") is no role and
is listed naming both. Exponential ADC maps, computed b-value images and tensor maps are never
a role. A DWI series holding several b-values is split and the rule picks one
(:func:`pick_b_value`); directional images are left out where the trace image of that b-value
is there and refused where it is not. The ADC's unit comes from its Real World Value Mapping,
else the manufacturer's convention (:func:`adc_scale`), and the values read must be plausible
in it (:func:`check_adc_values`).

References
----------
DICOM PS3.3 C.8.13.5.9 (MR Diffusion Macro: DiffusionBValue (0018,9087), DiffusionDirectionality
(0018,9075)), C.7.6.1.1.2 (ImageType (0008,0008)), C.7.6.16.2.11 (Real World Value Mapping);
PS3.17 Annex EEEE (ADC units).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from parotidlib.dicom.diffusion import B_TOLERANCE, UNIT_MM2_S, image_kind, split_directional
from parotidlib.dicom.rules import Rules, SeriesRule, normalise_description

#: What an ImageType kind makes of a series: a role, or the reason it is none.
_KIND_ROLE = {"adc": "adc", "trace": "dwi", "diffusion": "dwi"}
_KIND_REFUSED = {
    "eadc": "an exponential ADC map (ImageType EXP/EADC), not an ADC",
    "computed": "a computed b-value image (ImageType CALC_BVALUE/COMPUTED/SYNTHETIC), not a "
                "measured DWI",
    "tensor": "a tensor map (ImageType FA/COLFA/TENSOR), neither DWI nor ADC",
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a series is for the diffusion roles.

    Attributes
    ----------
    role : str or None
        ``"dwi"``, ``"adc"`` or None.
    fact : str
        What decided it, for the report ("ImageType ADC", "the description"); for no role
        the reason ("" when the series is not a diffusion image at all).
    conflict : tuple of str
        Where the tags and the description disagree, the role each says (``fact`` names
        both); () otherwise.
    """

    role: str | None
    fact: str = ""
    conflict: tuple[str, ...] = ()


def _text(series: Any) -> str:
    return (f"{normalise_description(series.description)} | "
            f"{normalise_description(getattr(series, 'protocol', ''))}")


def _files(series: Any) -> tuple[Any, ...]:
    return tuple(getattr(series, "files", ()) or ())


def _kinds(series: Any) -> set[str]:
    """The ImageType kinds of the series' files (of the series when it has no files)."""
    files = _files(series)
    types = [getattr(f, "image_type", "") for f in files] or [getattr(series, "image_type", "")]
    return {image_kind(t) for t in types} - {""}


def _images(series: Any) -> tuple[Any, ...]:
    """The series' images: its files, or the frames of its one multi-frame object (each with
    its own b-value and directionality)."""
    files = _files(series)
    if any(getattr(f, "number_of_frames", 1) > 1 for f in files):
        from parotidlib.dicom.volume import frames_of

        return tuple(frames_of(series) or files)
    return files


def b_values(series: Any) -> list[float]:
    """The distinct b-values (s/mm²) of the series' files (frames), ascending; [] when none
    has one; ``[frames_b_value]`` where :func:`pick_b_value` took one of a multi-frame
    object's b-values."""
    if getattr(series, "frames_b_value", None) is not None:
        return [float(series.frames_b_value)]
    found = sorted({round(float(f.b_value)) for f in _images(series)
                    if getattr(f, "b_value", None) is not None})
    return [float(b) for b in found]


def says_diffusion(series: Any) -> bool:
    """Whether the series' tags say it is a diffusion image of some kind (an ImageType of
    :mod:`.diffusion`'s kinds, or a b-value > 0): never a T1, CE-T1 or T2."""
    return bool(_kinds(series)) or any(b > 0 for b in b_values(series))


def _text_verdict(series: Any, rules: Rules) -> tuple[str | None, str]:
    """(role | "refused" | None, fact) from the description alone."""
    text = _text(series)
    for reason, patterns in (rules.diffusion_refused or {}).items():
        hit = next((p.pattern for p in patterns if p.search(text)), None)
        if hit:
            return "refused", f"{reason} (the description matches {hit!r})"
    for role in ("adc", "dwi"):
        rule = rules.series[role]
        hit = next((p.pattern for p in rule.description if p.search(text)), None)
        if hit and not any(p.search(text) for p in rule.exclude):
            return role, f"the description matches {hit!r}"
    return None, ""


def diffusion_verdict(series: Any, rules: Rules) -> Verdict:
    """The series' diffusion role by its tags, else its description (see the module
    docstring)."""
    kinds = _kinds(series)
    text_role, text_fact = _text_verdict(series, rules)
    refused = sorted(k for k in kinds if k in _KIND_REFUSED)
    if refused:
        return Verdict(None, "; ".join(_KIND_REFUSED[k] for k in refused))
    roles = {_KIND_ROLE[k] for k in kinds}
    if len(roles) > 1:
        return Verdict(None, f"holds images of several kinds (ImageType {sorted(kinds)}); "
                             f"export the DWI and the ADC map as separate series")
    if roles:
        tag_role = roles.pop()
        tag_fact = "ImageType " + "/".join(sorted(k.upper() for k in kinds))
    elif any(b > 0 for b in b_values(series)):
        # A map derived from several b-values may carry "the most representative b-value"
        # (PS3.3 C.8.13.5.9): a b-value alone says diffusion, the description which kind.
        tag_fact = f"a b-value > 0 ({_tag_names(series)})"
        if text_role == "refused":
            return Verdict(None, text_fact)
        if text_role == "adc":
            return Verdict("adc", f"{tag_fact}, and {text_fact}")
        return Verdict("dwi", tag_fact)
    else:
        if text_role == "refused":
            return Verdict(None, text_fact)
        return Verdict(text_role, text_fact)
    if text_role is not None and text_role != tag_role:
        said = text_fact if text_role == "refused" else f"{text_fact} ({text_role})"
        return Verdict(None, f"the tags say {tag_role} ({tag_fact}), but {said}",
                       (tag_role, text_role))
    return Verdict(tag_role, tag_fact)


def _tag_names(series: Any) -> str:
    tags = sorted({getattr(f, "b_value_tag", "") for f in _files(series)} - {""})
    return ", ".join(tags) or "no b-value element"


def describe(series: Any) -> str:
    """One line naming a series for a diffusion message (no personal data)."""
    bs = b_values(series)
    return (f"{series.description or '(no description)'!r} (series number "
            f"{getattr(series, 'series_number', None) or '?'}, ImageType "
            f"{getattr(series, 'image_type', '') or '?'}, b-values "
            f"{', '.join(f'{b:g}' for b in bs) or 'not recorded'}, UID {series.series_uid})")


def _position_key(f: Any) -> float | None:
    from parotidlib.dicom.headers import slice_normal

    if getattr(f, "image_position", None) is None or getattr(f, "image_orientation",
                                                              None) is None:
        return None
    return round(float(np.dot(slice_normal(f.image_orientation), f.image_position)), 2)


def _b_groups(files: Sequence[Any]) -> tuple[dict[float | None, list[Any]], str]:
    """Files by b-value; files without one beside files with one are b = 0 (Canon writes
    DiffusionBValue only where b > 0); a note when that was applied."""
    with_b = [f for f in files if getattr(f, "b_value", None) is not None]
    note = ""
    groups: dict[float | None, list[Any]] = {}
    for f in files:
        b = getattr(f, "b_value", None)
        if b is None and with_b:
            b, note = 0.0, "files without a b-value taken as b = 0"
        key = None if b is None else float(round(b))
        groups.setdefault(key, []).append(f)
    return groups, note


def _choose_b(found: list[float], rule: SeriesRule, every: Sequence[float] = ()
              ) -> tuple[float | None, str]:
    """The b-value the rule picks among ``found`` (> 0), or (None, why not); messages list
    ``every`` b-value of the series (``found`` when not given)."""
    listed = ", ".join(f"{b:g}" for b in (every or found)) or "none > 0"
    if isinstance(rule.b_value, float):
        match = [b for b in found if abs(b - rule.b_value) <= B_TOLERANCE]
        if not match:
            return None, (f"holds b-values {listed} s/mm²; series.dwi.b_value "
                          f"{rule.b_value:g} is not among them")
        return match[0], f"b = {match[0]:g} s/mm² (of {listed}) by the rule b_value: " \
                         f"{rule.b_value:g}"
    low, high = rule.b_range or (0.0, float("inf"))
    inside = [b for b in found if low <= b <= high]
    if not inside:
        return None, (f"holds b-values {listed} s/mm², none within series.dwi.b_range "
                      f"[{low:g}, {high:g}]; set series.dwi.b_value (a number) or b_range")
    b = min(inside) if rule.b_value == "lowest" else max(inside)
    return b, (f"b = {b:g} s/mm² (of {listed}) by the rule b_value: "
               f"{rule.b_value or 'highest'} within [{low:g}, {high:g}]")


def pick_b_value(series: Any, rules: Rules) -> tuple[Any | None, str]:
    """``(series, note)``: the DWI series reduced to the images of the b-value the rule picks
    (the trace images where directional ones are beside them), or ``(None, reason)``.

    The images are the files of a classic series, or the frames of one multi-frame object
    (Enhanced MR: each frame's MR Diffusion Macro, PS3.3 C.8.13.5.9), which are split the same
    way: the series returned keeps its file and names the b-value whose frames are read
    (``frames_b_value``, see :func:`parotidlib.dicom.volume.read_volume`). b = 0 is never the
    DWI; several images at one position of the b-value picked (directional images without a
    DiffusionDirectionality) are refused.
    """
    rule = rules.series["dwi"]
    multiframe = any(getattr(f, "number_of_frames", 1) > 1 for f in _files(series))
    images = _images(series)
    groups, zero_note = _b_groups(images)
    if None in groups:  # no image has a b-value: a DWI by its description
        if isinstance(rule.b_value, float):
            return None, (f"records no b-value; series.dwi.b_value {rule.b_value:g} cannot "
                          f"be checked")
        chosen, note = groups[None], "b-value not recorded"
    else:
        found = sorted(b for b in groups if b > 0)
        if not found:
            return None, "holds only b = 0 images (not diffusion-weighted)"
        b, note = _choose_b(found, rule, sorted(groups))  # type: ignore[arg-type]
        if b is None:
            return None, note
        chosen = groups[b]
        if zero_note and len(groups) > 1:
            note += f"; {zero_note}"
    kept, directional = split_directional(chosen)
    if directional:
        if not kept:
            return None, (f"holds only directional images at that b-value ({note}); the "
                          f"trace (isotropic) image is needed: export the scanner's trace "
                          f"series (Siemens TRACEW, Philips isotropic, GE ALL)")
        chosen = kept
        note += f"; {len(directional)} directional image(s) left out, the trace kept"
    per_position: dict[float, int] = {}
    for f in chosen:
        key = _position_key(f)
        if key is not None:
            per_position[key] = per_position.get(key, 0) + 1
    crowded = sorted(k for k, n in per_position.items() if n > 1)
    if crowded:
        return None, (f"holds {max(per_position.values())} images at one position for that "
                      f"b-value ({note}; {len(crowded)} positions): directional images "
                      f"without a DiffusionDirectionality tag? Export the trace series")
    if multiframe:
        note += (f" ({len(chosen)} of the {len(images)} frames of one multi-frame object)"
                 if len(chosen) < len(images) else " (one multi-frame object)")
    if len(chosen) == len(images):
        return series, note
    if not dataclasses.is_dataclass(series):
        return series, note
    if multiframe:
        return dataclasses.replace(series, frames_b_value=float(  # type: ignore[arg-type]
            round(chosen[0].b_value))), note
    return dataclasses.replace(series, files=tuple(chosen)), note


def adc_scale(series: Any, rules: Rules) -> tuple[float | None, str]:
    """``(mm²/s per NIfTI value, how it was decided)`` or ``(None, why it cannot be)``.

    A Real World Value Mapping (0040,9096) in a diffusivity unit on every file wins: the
    factor is unit * RealWorldValueSlope / RescaleSlope (the readers apply the rescale), one
    for all files, with no intercepts. Else the manufacturer's convention of the rules
    (``series.adc.units_by_manufacturer``).
    """
    files = _files(series)
    maps = [getattr(f, "real_world", None) for f in files]
    ignored = ""
    if maps and all(m is not None for m in maps):
        units = {m.units for m in maps}
        known = [u for u in units if u in UNIT_MM2_S]
        if len(known) == len(units):
            if any(m.intercept for m in maps) or any(
                    getattr(f, "rescale", (1.0, 0.0))[1] for f in files):
                return None, ("its Real World Value Mapping or rescale has an intercept; the "
                              "import takes an ADC whose unit is a factor only")
            scales = {float(f"{UNIT_MM2_S[m.units] * m.slope / f.rescale[0]:.9g}")
                      for m, f in zip(maps, files, strict=True)}
            if len(scales) > 1:
                return None, (f"its files map to mm²/s by different factors "
                              f"({sorted(scales)}); one volume needs one")
            scale = scales.pop()
            return scale, (f"RealWorldValueMapping (0040,9096): slope {maps[0].slope:g} "
                           f"{maps[0].units}")
        ignored = (f" (its RealWorldValueMapping names no diffusivity unit: "
                   f"{sorted(u or '(none)' for u in units)})")
    manufacturer = str(getattr(series, "manufacturer", "") or "")
    for pattern, scale in rules.series["adc"].units_by_manufacturer:
        if pattern.search(manufacturer):
            return scale, (f"the convention of {manufacturer} (series.adc."
                           f"units_by_manufacturer: {scale:g} mm²/s per value){ignored}")
    return None, (f"the unit of its values is not recorded (no RealWorldValueMapping in "
                  f"mm²/s{ignored}) and Manufacturer {manufacturer or '(none)'!r} has no entry "
                  f"in series.adc.units_by_manufacturer; add one (1.0e-6 for 10^-6 mm²/s)")


def check_adc_values(data: np.ndarray, scale: float, rules: Rules) -> str:
    """"" when the median of the map's positive values times ``scale`` lies in
    ``series.adc.median_mm2_s``, else the problem."""
    bounds = rules.series["adc"].median_mm2_s
    values = np.asarray(data, dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    if bounds is None:
        return ""
    if positive.size == 0:
        return "the ADC map has no positive value"
    median = float(np.median(positive)) * scale
    if bounds[0] <= median <= bounds[1]:
        return ""
    return (f"the ADC map's median positive value is {median:.3g} mm²/s with the unit taken "
            f"({scale:g} mm²/s per value), outside series.adc.median_mm2_s "
            f"[{bounds[0]:g}, {bounds[1]:g}]: the unit is wrong; set "
            f"series.adc.units_by_manufacturer")


def assign_diffusion(role: str, series: Sequence[Any], rules: Rules, patient_id: str,
                     required: bool = True) -> tuple[Any | None, list[str], str]:
    """Pick the ``role`` (dwi or adc) series of one patient.

    Parameters
    ----------
    role : {"dwi", "adc"}
    series : sequence of Series
        The patient's MR series.
    rules : Rules
    patient_id : str
        The DICOM PatientID (for pins).
    required : bool
        False: no candidate is no problem (an ``optional`` role of ``roles_to_import``).

    Returns
    -------
    chosen : Series or None
        The series (a DWI reduced to the files of its b-value), None when none is taken.
    problems : list of str
        Why the role is undecided, listing the candidates or every diffusion series found.
    note : str
        How it was decided (for the import report).
    """
    pin = rules.pin.get(str(patient_id), {}).get(role)
    verdicts = {id(s): diffusion_verdict(s, rules) for s in series}
    if pin is not None:
        found = [s for s in series if pin in (s.series_uid, s.description)]
        if len(found) != 1:
            return None, [f"{role}: the rules pin {pin!r}, which matches {len(found)} "
                          f"series"], ""
        pool, how = found, "pinned in the rules"
    else:
        pool = [s for s in series if verdicts[id(s)].role == role]
        how = ""
    taken, left = [], []
    for s in pool:
        if role == "dwi":
            chosen, note = pick_b_value(s, rules)
        else:
            scale, note = adc_scale(s, rules)
            chosen = s if scale is not None else None
        if chosen is None:
            left.append(f"{describe(s)} {'is not taken: ' if role == 'adc' else ''}{note}")
        else:
            fact = how or verdicts[id(s)].fact
            taken.append((chosen, "; ".join(x for x in (fact, note) if x)))
    conflicts = [f"{describe(s)}: {verdicts[id(s)].fact}; pin the series in the rules file if "
                 f"you know which it is" for s in series
                 if role in verdicts[id(s)].conflict]
    if len(taken) == 1 and not conflicts:
        return taken[0][0], [], taken[0][1]
    if len(taken) > 1:
        listed = "; ".join(f"{describe(s)} ({note})" for s, note in taken)
        return None, [f"{role}: {len(taken)} candidate series, pin one in the rules file "
                      f"(pin: {{PatientID: {{{role}: SeriesInstanceUID}}}}): {listed}"], ""
    if conflicts:
        return None, [f"{role}: {c}" for c in conflicts], ""
    if left:
        return None, [f"{role}: no series can be taken: " + "; ".join(left)], ""
    if not required:
        return None, [], "no series found (optional)"
    others = [f"{describe(s)}: {verdicts[id(s)].fact}" for s in series
              if verdicts[id(s)].fact]
    listed = "; ".join(others) or "no diffusion series; series found: " + "; ".join(
        describe(s) for s in series)
    return None, [f"{role}: no series matches the rules; {listed}"], ""
