"""The metrics.json contract (docs/metrics.md) and its validator.

The contract is a JSON Schema (draft 2020-12) shipped beside this module,
``metrics.schema.json``, checked with the ``jsonschema`` package (Berman et al.,
https://python-jsonschema.readthedocs.io). What JSON Schema cannot express is named in the
schema by the extension keyword ``x-check`` and checked here in :func:`_x_check` once the
structure is valid: a proportion's value equals successes/total and lies in its interval, an
interval has lower <= upper, a Table 5 row has correct <= patients, Table 4 lists each task
once, a reason for an undefined quantity stands only beside a quantity that is null.
Extra keys are allowed everywhere (docs/metrics.md: "Keys may be added"); the listed
ones must keep their meaning.

Undefined quantities (docs/metrics.md, "Undefined quantities") are null with a reason: a
block is ``{"value": null, "ci95": null, "undefined": reason}`` and a bare number ``k`` that
is null has its reason in ``k_undefined`` beside it. The schema requires the reason where
the quantity is null (``if``/``then``); the ``reasons`` rule here refuses a reason beside a
quantity that is defined.

References
----------
JSON Schema Validation, draft 2020-12: https://json-schema.org/draft/2020-12
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from importlib.resources import files
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator, ValidationError, validators

from parotidlib.constants import CLASSES
from parotidlib.evaluation.stats import UNDEFINED_KEY

__all__ = ["METRICS_SCHEMA", "validate_metrics", "to_jsonable"]

#: The metrics.json schema (docs/metrics.md), as loaded from ``metrics.schema.json``.
METRICS_SCHEMA: dict[str, Any] = json.loads(
    files(__package__).joinpath("metrics.schema.json").read_text(encoding="utf-8"))
Draft202012Validator.check_schema(METRICS_SCHEMA)  # a broken schema file fails at import

#: Tolerances of the semantic checks: the interval bounds and value are rounded floats.
_INTERVAL_TOL = 1e-9
_VALUE_TOL = 1e-6


# ---- types: numpy values are accepted before conversion (to_jsonable), as before ----------

def _is_number(_checker: Any, x: Any) -> bool:
    # jsonschema's own "number" accepts nan and inf, which strict JSON (and the contract) does not.
    return (isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)
            and math.isfinite(float(x)))


def _is_integer(_checker: Any, x: Any) -> bool:
    # jsonschema's own "integer" accepts 3.0 and rejects np.int64; counts must be integers.
    return isinstance(x, numbers.Integral) and not isinstance(x, bool | np.bool_)


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine_many({
    "object": lambda _c, x: isinstance(x, Mapping),
    "array": lambda _c, x: isinstance(x, list | tuple | np.ndarray),
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda _c, x: isinstance(x, bool | np.bool_),
    "string": lambda _c, x: isinstance(x, str),
})


# ---- semantic rules (the schema's "x-check" keyword) --------------------------------------

def _interval_errors(value: Any) -> Iterator[ValidationError]:
    if value[0] > value[1]:
        yield ValidationError(f"must be [lower, upper] with lower <= upper, got {list(value)}")


def _proportion_errors(value: Mapping[str, Any]) -> Iterator[ValidationError]:
    k, n = value["successes"], value["total"]
    if k > n:
        yield ValidationError(f"must be <= total={n}, got {k}", path=["successes"])
        return
    if abs(value["value"] - k / n) > _VALUE_TOL:
        yield ValidationError(f"must equal successes/total = {k / n:.6g}, got {value['value']}",
                              path=["value"])
        return
    lo, hi = value["ci95"]
    if not lo - _INTERVAL_TOL <= value["value"] <= hi + _INTERVAL_TOL:
        yield ValidationError(f"must lie in ci95 {list(value['ci95'])}, got {value['value']}",
                              path=["value"])


def _table5_row_errors(value: Mapping[str, Any]) -> Iterator[ValidationError]:
    if value["correct"] > value["patients"]:
        yield ValidationError(f"must be <= patients={value['patients']}, "
                              f"got {value['correct']}", path=["correct"])
        return
    accuracy = value.get("accuracy")
    if accuracy is None:
        return
    undefined = UNDEFINED_KEY in accuracy
    if undefined != (value["patients"] == 0):
        yield ValidationError(
            f"must be undefined exactly when patients is 0 (patients={value['patients']}), "
            f"got {'an undefined' if undefined else 'a defined'} block", path=["accuracy"])


def _reasons_errors(value: Mapping[str, Any]) -> Iterator[ValidationError]:
    # A reason explains a null: "undefined" in a block whose value is defined, "k_undefined"
    # beside a k that is defined, or a left-out entry of a mapping k that k holds, is refused.
    suffix = f"_{UNDEFINED_KEY}"
    if UNDEFINED_KEY in value and value.get("value") is not None:
        yield ValidationError(f"must be absent when value is defined ({value['value']!r}), "
                              f"got {value[UNDEFINED_KEY]!r}", path=[UNDEFINED_KEY])
        return
    for key, reason in value.items():
        if not key.endswith(suffix) or key == suffix:
            continue
        base = key[: -len(suffix)]
        target = value.get(base)
        if isinstance(reason, Mapping):
            held = sorted(set(reason) & set(target)) if isinstance(target, Mapping) else []
            if held:
                yield ValidationError(f"must name only entries left out of {base}, got {held}",
                                      path=[key])
                return
        elif target is not None:
            yield ValidationError(f"must be absent when {base} is defined ({target!r}), "
                                  f"got {reason!r}", path=[key])
            return


def _unique_tasks_errors(value: Sequence[Mapping[str, Any]]) -> Iterator[ValidationError]:
    tasks = [row["task"] for row in value]
    if len(set(tasks)) != len(tasks):
        yield ValidationError(f"must list each task once, got {tasks}")


def _square_errors(matrix: Sequence[Sequence[Any]], size: int, what: str,
                   path: list[Any]) -> Iterator[ValidationError]:
    if len(matrix) != size or any(len(row) != size for row in matrix):
        yield ValidationError(f"must be {size} x {size} ({what}), got "
                              f"{len(matrix)} rows of {[len(r) for r in matrix]}", path=path)


def _class_scheme_errors(value: Mapping[str, Any]) -> Iterator[ValidationError]:
    # The slice matrices are K x K and the patient matrix (K - 1) x (K - 1), K the classes of
    # class_scheme (the paper's CLASSES when absent); Table 4's tasks and Table 5's rows are
    # among the scheme's (diagnostic_accuracy.table4_tasks, table5_groups).
    from parotidlib.evaluation.classes import scheme_of
    from parotidlib.evaluation.diagnostic_accuracy import table4_tasks, table5_groups

    scheme = scheme_of(value)
    classes = list(value.get("class_scheme", {}).get("classes", CLASSES))
    tasks = [t.name for t in table4_tasks(scheme)]
    for i, row in enumerate(value["table4"]):
        if row["task"] not in tasks:
            yield ValidationError(f"must be one of {tasks}, got {row['task']!r}",
                                  path=["table4", i, "task"])
    types = [name for name, _, _ in table5_groups(scheme)]
    for i, row in enumerate(value["patient"]["table5"]):
        if row["type"] not in types:
            yield ValidationError(f"must be one of {types}, got {row['type']!r}",
                                  path=["patient", "table5", i, "type"])
    for split, block in value["slice"].items():
        if isinstance(block, Mapping) and "confusion_matrix" in block:
            yield from _square_errors(block["confusion_matrix"], len(classes),
                                      f"classes {classes}", ["slice", split, "confusion_matrix"])
    matrix = value["patient"].get("confusion_matrix")
    if matrix is not None:
        yield from _square_errors(matrix, len(classes) - 1, f"lesion classes {classes[1:]}",
                                  ["patient", "confusion_matrix"])


_RULES = {"class_scheme": _class_scheme_errors, "interval": _interval_errors,
          "proportion": _proportion_errors,
          "table5_row": _table5_row_errors, "unique_tasks": _unique_tasks_errors,
          "reasons": _reasons_errors}


def _x_check(_validator: Any, rule: str, instance: Any, _schema: Any
             ) -> Iterator[ValidationError]:
    """The ``x-check`` keyword: semantic rule ``rule`` on an instance of valid structure."""
    if instance is None:  # a nullable block that is null has nothing to check
        return
    yield from _RULES[rule](instance)


#: Structure only (run first, so that the semantic rules may assume it).
_StructureValidator = validators.extend(Draft202012Validator, type_checker=_TYPES)
#: Structure plus the ``x-check`` semantic rules.
_SemanticValidator = validators.extend(_StructureValidator, validators={"x-check": _x_check})


# ---- error messages: "<key path> <what is wrong>", as the hand-written validator had -------

def _key_path(metrics: Any, path: Sequence[Any]) -> str:
    """``slice.test.accuracy`` / ``table4[1].task`` for a jsonschema instance path."""
    out, node = "", metrics
    for key in path:
        if isinstance(node, Mapping):
            out = f"{out}.{key}" if out else str(key)
        else:
            out = f"{out}[{key}]"
        node = node[key]
    return out


def _message(metrics: Any, error: ValidationError) -> str:
    path = _key_path(metrics, error.absolute_path)
    where = path or "metrics"
    schema, kind = error.schema, error.validator
    if kind == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"{path + '.' if path else ''}{missing} is required but missing"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where} must be {expected}, got {error.instance!r}"
    if kind in ("minItems", "maxItems"):
        lo, hi = schema.get("minItems", 0), schema.get("maxItems", math.inf)
        allowed = f"{lo}" if lo == hi else f"{lo}..{hi}"
        return f"{where} must have {allowed} items, got {len(error.instance)}"
    if kind in ("minimum", "maximum"):
        return (f"{where} must be in [{schema.get('minimum', '-inf')}, "
                f"{schema.get('maximum', 'inf')}], got {error.instance!r}")
    if kind == "enum":
        return f"{where} must be one of {error.validator_value}, got {error.instance!r}"
    if kind == "const":
        return f"{where} must be {json.dumps(error.validator_value)}, got {error.instance!r}"
    if kind == "minLength":
        return (f"{where} must have at least {error.validator_value} characters, "
                f"got {error.instance!r}")
    if kind == "x-check":
        return f"{where} {error.message}"
    return f"{where}: {error.message}"  # a keyword the schema may use in future


def _first(errors: Iterator[ValidationError]) -> ValidationError | None:
    # The outermost problem (shortest path) first, ties in schema order: deterministic, and
    # [0][1] before [2][1] (jsonschema's best_match prefers the *last* of equal siblings).
    return min(errors, key=lambda e: len(e.absolute_path), default=None)


def validate_metrics(metrics: Mapping[str, Any]) -> None:
    """Check a metrics dict against :data:`METRICS_SCHEMA` (``metrics.schema.json``).

    Parameters
    ----------
    metrics : mapping
        The content of metrics.json (after ``json.load`` or before ``json.dump``; numpy
        scalars and arrays are accepted).

    Raises
    ------
    ValueError
        At the outermost offending entry; the message starts with its key path, e.g.
        ``"slice.test.accuracy.ci95 must have 2 items, got 3"``. Structural errors are
        reported before semantic ones (``x-check`` rules).

    References
    ----------
    JSON Schema draft 2020-12; ``jsonschema.Draft202012Validator``.
    """
    for cls in (_StructureValidator, _SemanticValidator):
        error = _first(cls(METRICS_SCHEMA).iter_errors(metrics))
        if error is not None:
            raise ValueError(_message(metrics, error))


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
