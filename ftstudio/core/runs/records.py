"""Typed readers for what a run folder says about itself: summary.json and metrics.jsonl rows.

These files are written by us but read back from disk, where anything can happen to them
(hand edits, other tools, a disk gone bad): ``"created_ts": "yesterday"`` once made
`ftstudio runs` exit 1 and the app refuse to start. ``RunSummary.parse`` keeps every field of
the right type, drops the rest and says what it dropped; unknown fields ride along untouched.
One writer (``RunSummary.to_dict``) and one reader, used by the CLI, the Runs page and the engine.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints

MAX_PROBLEMS = 5


@dataclass(frozen=True)
class RunSummary:
    """summary.json as typed fields (None where missing or unreadable)."""

    id: str | None = None
    name: str | None = None
    status: str | None = None
    created: str | None = None
    created_ts: float | None = None
    finished: str | None = None
    data: str | None = None
    data_source: str | None = None
    model: str | None = None
    classes: list[str] | None = None
    input_shape: list[int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    train_size: int | None = None
    val_size: int | None = None
    device: str | None = None
    params: int | None = None
    trainable_params: int | None = None
    world_size: int | None = None
    pid: int | None = None
    epochs: int | None = None
    epochs_planned: int | None = None
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    samples_per_s: float | None = None
    duration_s: float | None = None
    duration_s_before: float | None = None
    error: str | None = None
    failed_kind: str | None = None
    finetune: bool | None = None
    lineage: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    skipped_files: list[Any] | None = None
    warnings: list[Any] | None = None
    notes: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know
    problems: tuple[str, ...] = ()  # what the reader dropped, for the user
    given: frozenset[str] = frozenset()  # the known fields the file had (None ones too): written back as such

    @classmethod
    def parse(cls, data: Any) -> RunSummary:
        """Whatever JSON value was on disk → a summary; never raises."""
        if not isinstance(data, dict):
            return cls(problems=(f"not an object ({type(data).__name__}); ignored",))
        known, extra, problems = {}, {}, []
        for key, value in data.items():
            fits = _CHECKS.get(key)
            if fits is None:
                extra[str(key)] = value
            elif value is None or fits(value):
                known[key] = value
            else:
                problems.append(f"{key}: expected {_describe(_HINTS[key])}, got {_short(value)}; ignored")
        return cls(**known, extra=extra, problems=tuple(problems[:MAX_PROBLEMS]), given=frozenset(known))

    def to_dict(self) -> dict[str, Any]:
        """The JSON the writer stores: the known fields that are set or were given, and unknown ones."""
        out = {name: getattr(self, name) for name in _HINTS if name in self.given or getattr(self, name) is not None}
        return {**self.extra, **out}

    def updated(self, **fields: Any) -> RunSummary:
        """A copy with ``fields`` changed (known names set, others kept in ``extra``)."""
        merged = {**self.to_dict(), **fields}
        return RunSummary.parse(merged)

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in _HINTS else self.extra.get(key)
        return default if value is None else value


_HINTS = {k: v for k, v in get_type_hints(RunSummary).items() if k not in ("extra", "problems", "given")}


def _fits(tp: Any, value: Any) -> bool:
    return _checker(tp)(value)


@functools.cache
def _checker(tp: Any) -> Callable[[Any], bool]:
    """Whether a JSON value is of the type hint ``tp``, as a function made once per hint: walking the
    hint with ``typing.get_origin`` for every value took 1.3 s of the 2 s that listing 3,000 runs took."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        parts = tuple(_checker(a) for a in get_args(tp) if a is not type(None))
        return parts[0] if len(parts) == 1 else lambda v: any(part(v) for part in parts)
    if origin is list:
        (item,) = get_args(tp)
        if item is Any:
            return lambda v: isinstance(v, list)
        each = _checker(item)
        return lambda v: isinstance(v, list) and all(each(x) for x in v)
    if origin is dict:
        return lambda v: isinstance(v, dict)
    if tp is Any:
        return lambda v: True
    if tp is bool:
        return lambda v: isinstance(v, bool)
    if tp is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63
    if tp is float:
        return lambda v: not isinstance(v, bool) and (
            isinstance(v, int) and abs(v) < 2**63 or isinstance(v, float) and math.isfinite(v))
    return lambda v: isinstance(v, tp)


_CHECKS = {name: _checker(tp) for name, tp in _HINTS.items()}


def _describe(tp: Any) -> str:
    inner = [a for a in get_args(tp) if a is not type(None)] or [tp]
    t = inner[0]
    origin = get_origin(t)
    if origin is list:
        return f"a list of {_describe(get_args(t)[0])}s"
    if origin is dict:
        return "an object"
    return {str: "text", int: "a whole number", float: "a number", bool: "true/false"}.get(t, "a value")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


# ---------------------------------------------------------------- metrics.jsonl rows

_EPOCH_NUMBERS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_s", "time")


def clean_metrics_row(row: Any) -> dict[str, Any] | None:
    """A metrics.jsonl row with the types the plots and resume rely on, or None to skip it.

    Epoch rows need a whole ``epoch`` ≥ 1; their numbers may be NaN (a diverged run) but not
    text. Step rows need equal-length lists of whole steps and numeric losses."""
    if not isinstance(row, dict):
        return None
    kind = row.get("kind")
    if kind == "epoch":
        epoch = row.get("epoch")
        if not _fits(int, epoch) or epoch < 1:
            return None
        if row.get("step") is not None and not _fits(int, row.get("step")):
            return None
        if any(row.get(k) is not None and not _number(row[k]) for k in _EPOCH_NUMBERS):
            return None
        if not isinstance(row.get("best", False), bool):
            return None
        return row
    if kind == "steps":
        steps, losses = row.get("steps"), row.get("losses")
        if not (isinstance(steps, list) and isinstance(losses, list) and len(steps) == len(losses)):
            return None
        if not all(_fits(int, s) for s in steps) or not all(_number(v) for v in losses):
            return None
        if row.get("epoch") is not None and not _fits(int, row["epoch"]):
            return None
        return row
    return row  # other kinds (notes from newer versions) pass through to whoever knows them


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
