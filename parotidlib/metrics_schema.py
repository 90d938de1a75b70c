"""The metrics.json contract (DESIGN.md, "Run folder") and a small validator for it.

:data:`METRICS_SCHEMA` is a JSON-Schema-like dict (a small subset: ``type``, ``properties``,
``required``, ``additional``, ``items``, ``min_items``/``max_items``, ``minimum``/``maximum``,
``enum``, ``nullable``) plus named semantic ``check`` rules (a proportion's value equals
successes/total and lies in its interval, a confusion matrix is square). Written by hand so
that the kit does not depend on the ``jsonschema`` package. Extra keys are allowed
everywhere (DESIGN.md: "other keys may be added"); the listed ones must keep their meaning.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from parotidlib.constants import CLASSES, HISTOLOGIES

__all__ = ["METRICS_SCHEMA", "validate_metrics", "to_jsonable"]

_UNIT = {"type": "number", "minimum": 0.0, "maximum": 1.0}
_CI = {"type": "array", "items": _UNIT, "min_items": 2, "max_items": 2, "check": "interval"}
_COUNT = {"type": "integer", "minimum": 0}

#: A proportion block, as written by ``stats.proportion_summary``.
PROPORTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["value", "ci95", "successes", "total"],
    "properties": {"value": _UNIT, "ci95": _CI, "successes": _COUNT,
                   "total": {"type": "integer", "minimum": 1}},
    "check": "proportion",
}


def _matrix(size: int) -> dict[str, Any]:
    row = {"type": "array", "items": _COUNT, "min_items": size, "max_items": size}
    return {"type": "array", "items": row, "min_items": size, "max_items": size}


_SLICE_SPLIT = {
    "type": "object",
    "required": ["accuracy", "micro_auc", "confusion_matrix"],
    "properties": {
        "accuracy": PROPORTION_SCHEMA,
        # ci95 may be null when the bootstrap could not run (fewer than 2 patients).
        "micro_auc": {"type": "object", "required": ["value", "ci95"],
                      # A percentile bootstrap interval need not contain the estimate.
                      "properties": {"value": _UNIT, "ci95": {**_CI, "nullable": True}}},
        "confusion_matrix": _matrix(len(CLASSES)),
    },
}

_TABLE4_ROW = {
    "type": "object",
    "required": ["task", "positive", "accuracy", "sensitivity", "specificity"],
    "properties": {
        "task": {"type": "string",
                 "enum": ["benign_vs_malignant", "pleomorphic_vs_warthin", "lesion_vs_none"]},
        "positive": {"type": "string"},
        "accuracy": PROPORTION_SCHEMA,
        # null when the denominator is 0 (e.g. a test set without one of the classes).
        "sensitivity": {**PROPORTION_SCHEMA, "nullable": True},
        "specificity": {**PROPORTION_SCHEMA, "nullable": True},
        "ppv": {**PROPORTION_SCHEMA, "nullable": True},
        "npv": {**PROPORTION_SCHEMA, "nullable": True},
        "tp": _COUNT, "fn": _COUNT, "fp": _COUNT, "tn": _COUNT,
    },
}

_TABLE5_ROW = {
    "type": "object",
    "required": ["type", "patients", "correct"],
    "properties": {
        "type": {"type": "string", "enum": [*HISTOLOGIES[:2], "benign", HISTOLOGIES[2]]},
        "patients": {"type": "integer", "minimum": 1},
        "correct": _COUNT,
        "accuracy": PROPORTION_SCHEMA,
    },
    "check": "table5_row",
}

#: The metrics.json schema (DESIGN.md).
METRICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["synthetic", "slice", "table4", "patient", "timing_s"],
    "properties": {
        "synthetic": {"type": "boolean"},
        "slice": {"type": "object", "required": ["train", "test"],
                  "properties": {"train": _SLICE_SPLIT, "test": _SLICE_SPLIT}},
        "table4": {"type": "array", "items": _TABLE4_ROW, "check": "unique_tasks"},
        "patient": {"type": "object", "required": ["table5", "confusion_matrix"],
                    "properties": {"table5": {"type": "array", "items": _TABLE5_ROW},
                                   "confusion_matrix": _matrix(len(HISTOLOGIES))}},
        # Seconds per pipeline stage; any stage names, non-negative numbers.
        "timing_s": {"type": "object", "additional": {"type": "number", "minimum": 0.0}},
    },
}


def _is_number(x: Any) -> bool:
    return (isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)
            and math.isfinite(float(x)))


def _check_type(value: Any, schema: Mapping[str, Any], path: str) -> None:
    kind = schema["type"]
    ok = {
        "object": lambda v: isinstance(v, Mapping),
        "array": lambda v: isinstance(v, list | tuple | np.ndarray),
        "number": _is_number,
        "integer": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool | np.bool_),
        "string": lambda v: isinstance(v, str),
    }[kind](value)
    if not ok:
        raise ValueError(f"{path} must be {kind}, got {value!r}")


def _check_semantics(value: Any, rule: str, path: str) -> None:
    tol = 1e-9
    if rule == "interval" and isinstance(value, list | tuple):
        if value[0] > value[1]:
            raise ValueError(f"{path} must be [lower, upper] with lower <= upper, got {value}")
    elif rule == "interval":
        lo, hi = value["ci95"]
        if not lo - tol <= value["value"] <= hi + tol:
            raise ValueError(f"{path}.value must lie in ci95 {value['ci95']}, "
                             f"got {value['value']}")
    elif rule == "proportion":
        k, n = value["successes"], value["total"]
        if k > n:
            raise ValueError(f"{path}.successes must be <= total={n}, got {k}")
        if abs(value["value"] - k / n) > 1e-6:
            raise ValueError(f"{path}.value must equal successes/total = {k / n:.6g}, "
                             f"got {value['value']}")
        _check_semantics(value, "interval", path)
    elif rule == "table5_row" and value["correct"] > value["patients"]:
        raise ValueError(f"{path}.correct must be <= patients={value['patients']}, "
                         f"got {value['correct']}")
    elif rule == "unique_tasks":
        tasks = [row["task"] for row in value]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"{path} must list each task once, got {tasks}")


def _validate(value: Any, schema: Mapping[str, Any], path: str) -> None:
    if value is None and schema.get("nullable"):
        return
    _check_type(value, schema, path)
    if schema["type"] == "object":
        for key in schema.get("required", ()):
            if key not in value:
                raise ValueError(f"{path + '.' if path else ''}{key} is required but missing")
        props = schema.get("properties", {})
        for key, item in value.items():
            sub = props.get(key, schema.get("additional"))
            if sub is not None:
                _validate(item, sub, f"{path}.{key}" if path else str(key))
    elif schema["type"] == "array":
        lo, hi = schema.get("min_items", 0), schema.get("max_items", math.inf)
        if not lo <= len(value) <= hi:
            allowed = f"{lo}" if lo == hi else f"{lo}..{hi}"
            raise ValueError(f"{path} must have {allowed} items, got {len(value)}")
        for i, item in enumerate(value):
            _validate(item, schema["items"], f"{path}[{i}]")
    elif schema["type"] in ("number", "integer"):
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            raise ValueError(f"{path} must be in [{schema.get('minimum', '-inf')}, "
                             f"{schema.get('maximum', 'inf')}], got {value!r}")
    elif schema["type"] == "string" and "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{path} must be one of {schema['enum']}, got {value!r}")
    if "check" in schema:
        _check_semantics(value, schema["check"], path)


def validate_metrics(metrics: Mapping[str, Any]) -> None:
    """Check a metrics dict against :data:`METRICS_SCHEMA`.

    Parameters
    ----------
    metrics : mapping
        The content of metrics.json (after ``json.load`` or before ``json.dump``; numpy
        scalars are accepted).

    Raises
    ------
    ValueError
        At the first offending entry; the message starts with its key path, e.g.
        ``"slice.test.accuracy.ci95 must have 2 items, got 3"``.
    """
    _validate(metrics, METRICS_SCHEMA, "")


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas values, tuples and mappings into plain JSON types, recursively.

    Numpy scalars become Python scalars, arrays nested lists, tuples lists, mapping keys
    strings; non-finite floats become None so the output is strict JSON (``json.dump(...,
    allow_nan=False)`` succeeds).
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # pandas Series / DataFrame
        return to_jsonable(obj.to_dict(orient="records") if hasattr(obj, "columns")
                           else obj.to_dict())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"to_jsonable: cannot convert {type(obj).__name__} {obj!r} to JSON")
