"""Turn a raw YAML tree into frozen config dataclasses, checking every key and type.

The dataclasses are the schema: field types drive checking, ``field(metadata=...)`` carries a
``doc`` string and an optional ``check`` (a function returning an error message or ``None``).
Unknown keys are errors. Problems are collected, not raised one at a time.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

from onyproxy.config.env import Expanded
from onyproxy.config.errors import Problems, join

T = TypeVar("T")
_MISSING = object()


def build(cls: type[T], raw: Any, problems: Problems, path: str = "") -> T | None:
    """Build dataclass ``cls`` from ``raw``; ``None`` (with problems recorded) when invalid."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping, got {_kind(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    # A field's YAML key is its name, or metadata "key" where the name cannot be a Python
    # identifier (e.g. smtp ``from``).
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)
              if not f.metadata.get("derived")}
    for key in raw:
        if key not in fields:
            known = ", ".join(fields) or "none"
            problems.add(join(path, str(key)), f"unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    before = len(problems.items)
    for key, f in fields.items():
        value = _field_value(f, key, hints[f.name], raw, problems, join(path, key))
        if value is not _MISSING:
            values[f.name] = value
    if len(problems.items) != before:
        return None
    return cls(**values)


def _field_value(f: dataclasses.Field, key: str, hint: Any, raw: dict, problems: Problems,
                 path: str) -> Any:
    if key not in raw:
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.add(path, f"required key is missing ({describe(hint)})")
        return _MISSING
    value = convert(hint, raw[key], problems, path)
    check = f.metadata.get("check")
    if check is not None and value is not None and value is not _MISSING:
        message = check(value)
        if message:
            problems.add(path, message)
    return value


def convert(hint: Any, value: Any, problems: Problems, path: str) -> Any:
    """Check ``value`` against the type ``hint`` and return it converted."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(hint, value, problems, path)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            problems.add(path, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (list, tuple):
        return _convert_list(hint, value, problems, path)
    if origin is dict:
        return _convert_dict(hint, value, problems, path)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, problems, path)
    return _convert_scalar(hint, value, problems, path)


def _convert_union(hint: Any, value: Any, problems: Problems, path: str) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
        if len(args) != len(typing.get_args(hint)):
            return None
        problems.add(path, f"expected {describe(hint)}, got null")
        return None
    if len(args) == 1:
        return convert(args[0], value, problems, path)
    for arg in args:
        trial = Problems(problems.source)
        result = convert(arg, value, trial, path)
        if not trial.items:
            return result
    problems.add(path, f"expected {describe(hint)}, got {_kind(value)}")
    return None


def _convert_list(hint: Any, value: Any, problems: Problems, path: str) -> Any:
    if not isinstance(value, list):
        problems.add(path, f"expected a list, got {_kind(value)}")
        return None
    (item,) = typing.get_args(hint)[:1] or (Any,)
    items = [convert(item, v, problems, join(path, i)) for i, v in enumerate(value)]
    return tuple(items) if typing.get_origin(hint) is tuple else items


def _convert_dict(hint: Any, value: Any, problems: Problems, path: str) -> Any:
    if not isinstance(value, dict):
        problems.add(path, f"expected a mapping, got {_kind(value)}")
        return None
    _, item = typing.get_args(hint) or (str, Any)
    return {str(k): convert(item, v, problems, join(path, str(k))) for k, v in value.items()}


def _convert_scalar(hint: Any, value: Any, problems: Problems, path: str) -> Any:
    if hint is Any:
        return value
    if isinstance(value, Expanded) and hint is not str:
        value = _from_env_text(hint, value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Decimal and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            pass
    elif isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    problems.add(path, f"expected {describe(hint)}, got {_kind(value)} {value!r}"
                 if not isinstance(value, (dict, list)) else
                 f"expected {describe(hint)}, got {_kind(value)}")
    return None


def _from_env_text(hint: Any, text: str) -> Any:
    """Read an environment-provided string as the number or boolean the field wants."""
    try:
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is bool and text.lower() in ("true", "false", "1", "0", "yes", "no"):
            return text.lower() in ("true", "1", "yes")
    except ValueError:
        pass
    return text


def describe(hint: Any) -> str:
    """A human name for a type hint, used in error messages."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (list, tuple):
        return f"a list of {describe(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             Decimal: "a decimal number", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
