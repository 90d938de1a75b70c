"""The one set of value checks behind every setting (:mod:`parotidlib.config`) and the study
definition (:mod:`parotidlib.study`): integers, reals, booleans, choices, channels, series.

Each check returns the value it accepts (as a tuple for lists) and raises
:class:`ParamsError` naming the key, the value and what is allowed. Torch-free; imports only
:mod:`parotidlib.constants`, so that the config and the study definition can both build on it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from parotidlib.constants import (
    CHANNELS,
    CLINICAL_COLUMNS,
    GLAND_CHANNEL,
    REFERENCE_SERIES,
)


class ParamsError(ValueError):
    """A params file or value is invalid; the message names the key and value."""


def is_int(value: Any) -> bool:
    # numpy integers count (a notebook may pass one); bools do not, although they are ints
    name = type(value).__name__
    return (isinstance(value, int) or name.startswith(("int", "uint"))) \
        and name not in ("bool", "bool_")


def is_real(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str) and type(value).__name__ not in ("bool", "bool_") \
        and math.isfinite(number)


def check_int(key: str, value: Any, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``value`` as an int, or ParamsError naming ``key``, the value and the allowed range."""
    ok = is_int(value) and (minimum is None or value >= minimum) \
        and (maximum is None or value <= maximum)
    if not ok:
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        raise ParamsError(f"{key} must be an integer{' ' + ' and '.join(bounds) if bounds else ''}"
                          f", got {value!r}")
    return int(value)


def check_real(key: str, value: Any, low: float, high: float, *, low_open: bool = False,
               high_open: bool = False) -> float:
    """``value`` as a finite float in the interval, or ParamsError naming key and value."""
    ok = is_real(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = ("(" if low_open else "[") + f"{low:g}, {high:g}" + (")" if high_open else "]")
        raise ParamsError(f"{key} must be a number in {interval}, got {value!r}")
    return float(value)


def check_bool(key: str, value: Any) -> bool:
    """``value`` if it is a bool, else ParamsError."""
    if not isinstance(value, bool):
        raise ParamsError(f"{key} must be true or false, got {value!r}")
    return value


def check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else ParamsError listing them."""
    if value not in allowed:
        raise ParamsError(f"{key} must be one of {list(allowed)}, got {value!r}")
    return value


def check_channels(key: str, channels: Any, available: tuple[str, ...] = CHANNELS
                   ) -> tuple[str, ...]:
    """A non-empty subset of ``available`` without repeats, in ``available``'s order.

    A single name or a list is accepted; the tuple is returned. The one check behind the
    ``channels`` param (``available``: the series plus gland, :attr:`.Study.channels`), the
    ablation's compositions and the channels a dataset is loaded with.
    """
    if isinstance(channels, str):
        channels = (channels,)
    if not isinstance(channels, list | tuple):
        raise ParamsError(f"{key} must be a list of channel names, got {channels!r}")
    channels = tuple(channels)
    unknown = [c for c in channels if c not in available]
    if not channels or unknown or len(set(channels)) != len(channels):
        why = f"unknown channel(s) {unknown}, " if unknown else ""
        raise ParamsError(f"{key} must be a non-empty subset of {list(available)} without "
                          f"duplicates; {why}got {list(channels)!r}")
    canonical = tuple(c for c in available if c in channels)
    if channels != canonical:
        raise ParamsError(f"{key} must be in the canonical order {list(available)}, got "
                          f"{list(channels)}; use {list(canonical)}")
    return channels


#: A series name: a manifest column name of lower-case letters, digits and underscores.
_SERIES_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_series(key: str, series: Any) -> tuple[str, ...]:
    """The ``series`` param as a tuple: distinct manifest column names, ``t1`` among them.

    A name is lower-case letters, digits and underscores, and is neither the gland channel,
    a clinical column nor a label-map column (``*_labels``). T1 is the reference grid and
    the gland channel's source (:data:`parotidlib.study.REFERENCE_SERIES`).
    """
    if isinstance(series, str):
        series = (series,)
    if not isinstance(series, list | tuple) or not series:
        raise ParamsError(f"{key} must be a non-empty list of MR series names, got {series!r}")
    series = tuple(series)
    for name in series:
        if (not isinstance(name, str) or not _SERIES_NAME.fullmatch(name)
                or name == GLAND_CHANNEL or name in CLINICAL_COLUMNS
                or name.endswith("_labels")):
            raise ParamsError(
                f"{key} entry {name!r} is not a series name: use a manifest column name of "
                f"lower-case letters, digits and '_', other than {GLAND_CHANNEL!r}, the "
                f"clinical columns {list(CLINICAL_COLUMNS)} and '<series>_labels'; got "
                f"{list(series)}")
    twice = sorted({name for name in series if series.count(name) > 1})
    if twice:
        raise ParamsError(f"{key} lists {', '.join(map(repr, twice))} twice; got {list(series)}")
    if REFERENCE_SERIES not in series:
        raise ParamsError(f"{key} must include {REFERENCE_SERIES!r}: the other series are "
                          f"aligned to its grid and the gland channel is cropped from it; got "
                          f"{list(series)}")
    return series


def check_labels_from(labels_from: Any, series: tuple[str, ...]) -> str:
    """The ``labels_from`` param: "" (each series' own label map) or one of ``series``."""
    if labels_from != "" and (not isinstance(labels_from, str) or labels_from not in series):
        raise ParamsError(f"labels_from must be empty (each series has its own label map) or "
                          f"one of series {list(series)}, got {labels_from!r}")
    return labels_from


def check_channels_of_series(channels: Any, series: tuple[str, ...]) -> tuple[str, ...]:
    """The ``channels`` param: a subset of ``series`` plus gland, in that order.

    Raises
    ------
    ParamsError
        Naming the first channel that is not a series (nor gland), the series, or (from
        :func:`check_channels`) a repeat or another order.
    """
    available = (*series, GLAND_CHANNEL)
    names = (channels,) if isinstance(channels, str) else channels
    if isinstance(names, list | tuple):
        for name in names:
            if name not in available:
                raise ParamsError(f"channels entry {name!r} is not one of series "
                                  f"[{', '.join(series)}] (+ {GLAND_CHANNEL}); add it to "
                                  f"series (and its columns to the manifest) or leave it out")
    return check_channels("channels", channels, available)
