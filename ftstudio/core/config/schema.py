"""Validate plain JSON into frozen dataclasses, naming the exact field that is wrong.

Recipes, dataset specs and training configs are dataclasses whose fields carry their rules
(`spec(min=, max=, choices=, help=)`); `from_dict` checks types and ranges before anything is
built, so a bad file gives `train.lr: must be > 0 (got -1)` instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from ftstudio.core.errors import InputError

T = TypeVar("T")


# No number in a recipe needs more: bigger ones overflow torch, numpy or float() further in.
INT_LIMIT = 2**63 - 1


def spec(default: Any = dataclasses.MISSING, *, help: str = "", min: float | None = None,
         max: float | None = None, min_exclusive: bool = False, factory: Any = None,
         choices: tuple[Any, ...] | None = None) -> Any:
    """A dataclass field with its validation rules and help text (shown as tooltips).

    ``min``/``max`` bound a number, or each number of a tuple (``image_size``); ``choices`` lists
    the only values allowed (``channels``: 1 or 3)."""
    meta = {"help": help, "min": min, "max": max, "min_exclusive": min_exclusive, "choices": choices}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_help(cls: type, name: str) -> str:
    """The help text of one field (for tooltips and `--help`)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(name)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain JSON-ready data; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from plain data, or raise InputError naming the bad field."""
    where = path or cls.__name__
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected an object with fields, got {_kind(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(f"{_join(path, name)}: missing (required)")
            continue
        values[name] = _check(hints[name], data[name], _join(path, name), f.metadata)
    return cls(**values)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _check(tp: Any, value: Any, path: str, meta: typing.Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _check(a, value, path, meta)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0])
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise InputError(f"{path}: must be one of {', '.join(map(str, choices))} (got {value!r})")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{path}: expected a list, got {_kind(value)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(args[0], v, f"{path}[{i}]", meta) for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_check(a, v, f"{path}[{i}]", meta) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{path}: expected an object, got {_kind(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int) if tp is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            want = "a whole number" if tp is int else "a number"
            raise InputError(f"{path}: expected {want}, got {_kind(value)} {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{path}: must be a finite number (got {value!r})")
        _check_range(value, path, meta)
        if isinstance(value, int) and abs(value) > INT_LIMIT:
            raise InputError(f"{path}: number too large (at most {INT_LIMIT:,})")
        _check_choices(value, path, meta)
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{path}: expected text, got {_kind(value)}")
        return value
    raise TypeError(f"schema cannot check {tp!r} at {path}")  # a bug in our dataclasses


def _check_range(value: float, path: str, meta: typing.Mapping[str, Any]) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None:
        if meta.get("min_exclusive") and value <= lo:
            raise InputError(f"{path}: must be > {lo} (got {value})")
        if value < lo:
            raise InputError(f"{path}: must be ≥ {lo} (got {value})")
    if hi is not None and value > hi:
        raise InputError(f"{path}: must be ≤ {hi} (got {value})")


def _check_choices(value: Any, path: str, meta: typing.Mapping[str, Any]) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise InputError(f"{path}: must be one of {', '.join(map(str, choices))} (got {value!r})")


def check_value(cls: type, name: str, value: Any) -> Any:
    """Validate one field of ``cls`` (used by CLI flags and form widgets)."""
    hints = get_type_hints(cls)
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return _check(hints[name], value, name, meta)
