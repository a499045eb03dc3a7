"""Editing an architecture as commands with apply/revert, so every edit can be undone exactly.

A path names a layer by position: "3" is the fourth top-level layer, "5.1" the second layer inside
block 5. Commands are immutable and capture what they need to revert (a removed layer, an old
value). `EditHistory` is a plain undo/redo stack for headless use; the composer wraps each command
in a thin QUndoCommand instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ftstudio.core.architecture.registry import LAYERS
from ftstudio.core.architecture.spec import LayerSpec, ModelSpec, check_param
from ftstudio.core.errors import InputError

Layers = tuple[LayerSpec, ...]


def _split(path: str) -> list[int]:
    try:
        return [int(p) for p in path.split(".")]
    except ValueError:
        raise InputError(f"layer path {path!r}: expected numbers like 3 or 5.1") from None


def get_layer(spec: ModelSpec, path: str) -> LayerSpec:
    layers: Layers = spec.layers
    layer = None
    for i in _split(path):
        if not 0 <= i < len(layers):
            raise InputError(f"no layer at {path}")
        layer = layers[i]
        layers = layer.layers
    assert layer is not None
    return layer


def _edit(layers: Layers, idx: list[int], fn) -> Layers:
    """Apply ``fn(list_of_layers, index)`` at the container that holds position ``idx``."""
    if len(idx) == 1:
        items = list(layers)
        fn(items, idx[0])
        return tuple(items)
    head = idx[0]
    if not 0 <= head < len(layers) or not LAYERS[layers[head].type].container:
        raise InputError(f"position {'.'.join(map(str, idx))}: not inside a block")
    inner = _edit(layers[head].layers, idx[1:], fn)
    return layers[:head] + (dataclasses.replace(layers[head], layers=inner),) + layers[head + 1:]


def insert_at(spec: ModelSpec, path: str, layer: LayerSpec) -> ModelSpec:
    def ins(items, i):
        if not 0 <= i <= len(items):
            raise InputError(f"cannot insert at {path}")
        items.insert(i, layer)
    return spec.replace(layers=_edit(spec.layers, _split(path), ins))


def remove_at(spec: ModelSpec, path: str) -> ModelSpec:
    def rm(items, i):
        if not 0 <= i < len(items):
            raise InputError(f"no layer at {path}")
        del items[i]
    return spec.replace(layers=_edit(spec.layers, _split(path), rm))


def replace_at(spec: ModelSpec, path: str, layer: LayerSpec) -> ModelSpec:
    def put(items, i):
        if not 0 <= i < len(items):
            raise InputError(f"no layer at {path}")
        items[i] = layer
    return spec.replace(layers=_edit(spec.layers, _split(path), put))


def new_layer(kind: str, **params: Any) -> LayerSpec:
    """A layer of a registered type with default parameters (overridden by ``params``)."""
    if kind not in LAYERS:
        raise InputError(f"unknown layer type {kind!r}")
    schema = LAYERS[kind].params
    values = {name: p.default for name, p in schema.items()}
    for name, value in params.items():
        if name not in schema:
            raise InputError(f"{kind} has no parameter {name!r}")
        values[name] = check_param(schema[name], value, f"{kind}.{name}")
    return LayerSpec(kind, MappingProxyType(values))


class Command:
    """An edit: ``apply`` and ``revert`` map a ModelSpec to a ModelSpec; ``label`` names it for menus."""

    label = "edit"

    def apply(self, spec: ModelSpec) -> ModelSpec:
        raise NotImplementedError

    def revert(self, spec: ModelSpec) -> ModelSpec:
        raise NotImplementedError


@dataclass(frozen=True)
class Insert(Command):
    path: str
    layer: LayerSpec

    @property
    def label(self) -> str:
        return f"Add {self.layer.type}"

    def apply(self, spec: ModelSpec) -> ModelSpec:
        return insert_at(spec, self.path, self.layer)

    def revert(self, spec: ModelSpec) -> ModelSpec:
        return remove_at(spec, self.path)


@dataclass(frozen=True)
class Remove(Command):
    path: str
    layer: LayerSpec  # what was there, to put back

    @classmethod
    def at(cls, spec: ModelSpec, path: str) -> Remove:
        return cls(path, get_layer(spec, path))

    @property
    def label(self) -> str:
        return f"Delete {self.layer.type}"

    def apply(self, spec: ModelSpec) -> ModelSpec:
        return remove_at(spec, self.path)

    def revert(self, spec: ModelSpec) -> ModelSpec:
        return insert_at(spec, self.path, self.layer)


@dataclass(frozen=True)
class Move(Command):
    """Move the layer at ``src`` so that it ends up at ``dst`` (a path in the edited spec)."""

    src: str
    dst: str
    label = "Move layer"

    def apply(self, spec: ModelSpec) -> ModelSpec:
        layer = get_layer(spec, self.src)
        return insert_at(remove_at(spec, self.src), self.dst, layer)

    def revert(self, spec: ModelSpec) -> ModelSpec:
        layer = get_layer(spec, self.dst)
        return insert_at(remove_at(spec, self.dst), self.src, layer)


@dataclass(frozen=True)
class Change(Command):
    """Replace the layer at ``path`` (a parameter, freeze, lr_mult or name changed)."""

    path: str
    old: LayerSpec
    new: LayerSpec
    label: str = "Change layer"

    @classmethod
    def param(cls, spec: ModelSpec, path: str, name: str, value: Any) -> Change:
        old = get_layer(spec, path)
        schema = LAYERS[old.type].params
        if name not in schema:
            raise InputError(f"{old.type} has no parameter {name!r}")
        checked = check_param(schema[name], value, f"{old.type}.{name}")
        return cls(path, old, old.with_params(**{name: checked}), f"Set {name}")

    @classmethod
    def fields(cls, spec: ModelSpec, path: str, **changes: Any) -> Change:
        """Change ``freeze``, ``lr_mult`` or ``name``."""
        old = get_layer(spec, path)
        bad = set(changes) - {"freeze", "lr_mult", "name"}
        if bad:
            raise InputError(f"cannot change {', '.join(sorted(bad))} this way")
        lr_mult = changes.get("lr_mult")
        if "lr_mult" in changes and not (isinstance(lr_mult, (int, float)) and 0 <= lr_mult <= 1000):
            raise InputError("lr_mult: expected a number from 0 to 1000")
        label = "Freeze" if changes.get("freeze") else "Unfreeze" if "freeze" in changes else "Change layer"
        return cls(path, old, dataclasses.replace(old, **changes), label)

    def apply(self, spec: ModelSpec) -> ModelSpec:
        return replace_at(spec, self.path, self.new)

    def revert(self, spec: ModelSpec) -> ModelSpec:
        return replace_at(spec, self.path, self.old)


@dataclass(frozen=True)
class ReplaceAll(Command):
    """Swap the whole architecture (load a preset, open a file, paste several layers)."""

    old: ModelSpec
    new: ModelSpec
    label: str = "Replace network"

    def apply(self, spec: ModelSpec) -> ModelSpec:
        return self.new

    def revert(self, spec: ModelSpec) -> ModelSpec:
        return self.old


@dataclass
class EditHistory:
    """A headless undo/redo stack over Commands."""

    spec: ModelSpec
    done: list[Command] = field(default_factory=list)
    undone: list[Command] = field(default_factory=list)

    def push(self, command: Command) -> ModelSpec:
        self.spec = command.apply(self.spec)
        self.done.append(command)
        self.undone.clear()
        return self.spec

    def undo(self) -> ModelSpec:
        if self.done:
            command = self.done.pop()
            self.spec = command.revert(self.spec)
            self.undone.append(command)
        return self.spec

    def redo(self) -> ModelSpec:
        if self.undone:
            command = self.undone.pop()
            self.spec = command.apply(self.spec)
            self.done.append(command)
        return self.spec
