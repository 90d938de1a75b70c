"""Params profiles: flat YAML keys, validated against the library's config dataclasses.

Every tunable setting of the kit is a field of one frozen dataclass in
:mod:`parotidlib.config`. A params file is a flat mapping of those field names; this module
merges a file over the defaults, rejects unknown keys with the list of valid ones, converts
YAML lists to tuples and builds each section's dataclass (whose ``__post_init__`` validates
values), and writes resolved params back as YAML. Torch-free. See docs/design.md, "Params".
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from parotidlib.config import SECTIONS, ParamsError, field_defaults, section

__all__ = ["ParamsError", "section", "resolve", "load_params", "defaults", "valid_keys",
           "to_yaml", "from_namespace", "config_classes"]


def config_classes() -> dict[str, type]:
    """Section name -> config dataclass (:data:`parotidlib.config.SECTIONS`)."""
    return dict(SECTIONS)


def defaults() -> dict[str, Any]:
    """All valid keys with their default values (a key shared by sections appears once)."""
    out: dict[str, Any] = {}
    for cls in SECTIONS.values():
        for key, value in field_defaults(cls).items():
            out.setdefault(key, value)
    return out


def valid_keys() -> list[str]:
    """Sorted list of every key a params file may hold."""
    return sorted(defaults())


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML value to a field's annotated type (lists to tuples, ints to floats)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key) if len(args) == 1 else value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{key} must be a list, got {value!r}")
        args = typing.get_args(annotation)
        inner = args[0] if args else Any
        return tuple(_convert(v, inner, key) for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-6" as a string
            return float(value)
        except ValueError:
            raise ParamsError(f"{key} must be a number, got {value!r}") from None
    if annotation is int and isinstance(value, float):
        if not value.is_integer():
            raise ParamsError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if annotation is str and value is None:  # "key:" with nothing after it in YAML
        return ""
    not_number = isinstance(value, bool) or not isinstance(value, int | float)
    if annotation in (int, float) and not_number:
        raise ParamsError(f"{key} must be a number, got {value!r}")
    if annotation is bool and not isinstance(value, bool):
        raise ParamsError(f"{key} must be true or false, got {value!r}")
    if annotation is str and not isinstance(value, str):
        return str(value)
    return value


def _check_keys(params: Mapping[str, Any], source: str) -> None:
    valid = set(valid_keys())
    unknown = sorted(set(params) - valid)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParamsError(
            f"unknown params key(s) in {source}: {', '.join(hints)}. "
            f"Valid keys: {', '.join(sorted(valid))}"
        )


def resolve(params: Mapping[str, Any] | None = None, source: str = "params") -> dict[str, Any]:
    """Merge ``params`` over the defaults, convert types and validate every section.

    Raises
    ------
    ParamsError
        For an unknown key (listing the valid keys) or an invalid value (naming key and value).
    """
    params = dict(params or {})
    _check_keys(params, source)
    resolved = defaults()
    for cls in SECTIONS.values():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in params:
                resolved[f.name] = _convert(params[f.name], hints[f.name], f.name)
    for cls in SECTIONS.values():
        section(resolved, cls)  # runs __post_init__ validation
    return resolved


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a repeated key (PyYAML keeps the last one)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ParamsError(f"key {key!r} appears twice (lines {seen[key]} and "
                              f"{key_node.start_mark.line + 1}); keep one")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a params file, refused when empty or with a repeated key.

    An empty or comment-only file is refused rather than read as "all defaults": a file
    emptied by mistake would otherwise run silently with settings nobody chose.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (safe loader)
    except ParamsError as exc:
        raise ParamsError(f"params file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"params file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        raise ParamsError(f"params file {path} is empty (or only comments); give at least one "
                          f"key, e.g. start from params/default.yaml")
    if not isinstance(raw, dict):
        raise ParamsError(
            f"params file {path} must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a flat YAML params file, apply ``overrides`` and return the resolved params.

    Raises
    ------
    ParamsError
        Missing, empty or invalid file, a repeated or unknown key, an invalid value.
    """
    raw = read_params_file(path)
    raw.update(overrides or {})
    return resolve(raw, source=str(path))


def to_yaml(params: Mapping[str, Any]) -> str:
    """Serialise resolved params as flat YAML (tuples as lists), keys sorted."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    return yaml.safe_dump(plain, sort_keys=True, default_flow_style=None)


def from_namespace(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Resolved params from a notebook's namespace (its ``parameters`` cell plus injections).

    Keys absent from the namespace take their defaults, so a notebook opened in JupyterLab
    runs as it is, and one executed by papermill gets exactly the run's params.
    """
    return resolve({k: namespace[k] for k in valid_keys() if k in namespace}, source="notebook")
