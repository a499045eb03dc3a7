"""Architectures as data: LayerSpec / ModelSpec, their JSON form, and validation against the registry.

The JSON is versioned; the composer saves exactly what `ftstudio train --model PATH` takes.
Validation names the exact field (`layers[3].params.kernel_size: must be ≤ 31`) and happens
before anything is allocated.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from collections.abc import Mapping

from ftstudio.core.architecture.registry import AUTO, LAYERS, Param
from ftstudio.core.errors import InputError

FORMAT = "ftstudio.architecture"
VERSION = 2  # 2: layers may carry "id" and "inputs" (a graph); files without them are written as 1
# the wiring vocabulary of version 2 (`graph` resolves the wires; the spec checks their form)
INPUT = "input"  # the network's input, as an entry of ``inputs``
ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
MAX_INPUTS = 16
MAX_LAYERS = 500
MAX_DEPTH = 8


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a registered type, its parameters, and fine-tuning controls."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    layers: tuple[LayerSpec, ...] = ()
    name: str = ""
    freeze: bool = False
    lr_mult: float = 1.0
    id: str = ""  # version 2: a name other layers' inputs refer to
    inputs: tuple[str, ...] = ()  # version 2: ids of layers above (or "input"); empty: the previous layer

    def with_params(self, **changes: Any) -> LayerSpec:
        return dataclasses.replace(self, params=MappingProxyType({**self.params, **changes}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "params": dict(self.params)}
        if self.layers or LAYERS[self.type].container:
            out["layers"] = [layer.to_dict() for layer in self.layers]
        if self.name:
            out["name"] = self.name
        if self.freeze:
            out["freeze"] = True
        if self.lr_mult != 1.0:
            out["lr_mult"] = self.lr_mult
        if self.id:
            out["id"] = self.id
        if self.inputs:
            out["inputs"] = list(self.inputs)
        return out


@dataclass(frozen=True)
class ModelSpec:
    """A whole network: the input shape ([C, H, W], entries may be "auto") and its layers."""

    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int | str, int | str, int | str] = (AUTO, AUTO, AUTO)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        version = VERSION if uses_graph(self.layers) else 1  # a chain stays readable by older ftstudio
        return {"format": FORMAT, "version": version, "name": self.name,
                "input_shape": list(self.input_shape), "layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        return parse_model(data)

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def check_param(param: Param, value: Any, where: str) -> Any:
    """Validate one parameter value against its schema; returns the normalised value."""
    if isinstance(value, str) and value in param.special:
        return value
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {_kind(value)}")
        return value
    if param.kind == "choice":
        if value not in param.choices:
            raise InputError(f"{where}: must be one of {', '.join(map(str, param.choices))} (got {value!r})")
        return value
    if param.kind == "str":
        if not isinstance(value, str) or len(value) > 4096:
            raise InputError(f"{where}: expected text, got {_kind(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        words = f" or {' / '.join(repr(s) for s in param.special)}" if param.special else ""
        raise InputError(f"{where}: expected a number{words}, got {_kind(value)} {value!r}")
    if param.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise InputError(f"{where}: expected a whole number, got {value}")
        value = int(value)
    else:
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{where}: must be a finite number")
    if param.min is not None and value < param.min:
        raise InputError(f"{where}: must be ≥ {param.min:g} (got {value})")
    if param.max is not None and value > param.max:
        raise InputError(f"{where}: must be ≤ {param.max:g} (got {value})")
    return value


def parse_layer(data: Any, where: str, depth: int = 0, counter: list[int] | None = None) -> LayerSpec:
    """Validate one layer object from JSON."""
    counter = counter if counter is not None else [0]
    counter[0] += 1
    if counter[0] > MAX_LAYERS:
        raise InputError(f"{where}: more than {MAX_LAYERS} layers")
    if depth > MAX_DEPTH:
        raise InputError(f"{where}: blocks nested more than {MAX_DEPTH} deep")
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a layer object like {{\"type\": \"Linear\", \"params\": {{}}}}, "
                         f"got {_kind(data)}")
    unknown = sorted(set(data) - {"type", "params", "layers", "name", "freeze", "lr_mult", "id", "inputs"})
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in LAYERS:
        known = ", ".join(LAYERS)
        raise InputError(f"{where}.type: unknown layer type {kind!r}; known types: {known}")
    layer_type = LAYERS[kind]
    raw = data.get("params", {})
    if not isinstance(raw, dict):
        raise InputError(f"{where}.params: expected an object, got {_kind(raw)}")
    extra = sorted(set(raw) - set(layer_type.params))
    if extra:
        allowed = ", ".join(layer_type.params) or "none"
        raise InputError(f"{where}.params.{extra[0]}: {kind} has no such parameter (it takes: {allowed})")
    params = {name: check_param(p, raw.get(name, p.default), f"{where}.params.{name}")
              for name, p in layer_type.params.items()}
    children: tuple[LayerSpec, ...] = ()
    if layer_type.container:
        items = data.get("layers", [])
        if not isinstance(items, list):
            raise InputError(f"{where}.layers: expected a list of layers, got {_kind(items)}")
        children = tuple(parse_layer(item, f"{where}.layers[{i}]", depth + 1, counter) for i, item in enumerate(items))
    elif "layers" in data:
        raise InputError(f"{where}.layers: {kind} cannot hold other layers")
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise InputError(f"{where}.name: expected short text")
    freeze = data.get("freeze", False)
    if not isinstance(freeze, bool):
        raise InputError(f"{where}.freeze: expected true or false, got {_kind(freeze)}")
    lr_mult = check_param(Param("float", 1.0, "", 0.0, 1000.0), data.get("lr_mult", 1.0), f"{where}.lr_mult")
    layer_id, inputs = _parse_wiring(data, where, depth)
    return LayerSpec(kind, MappingProxyType(params), children, name, freeze, lr_mult, layer_id, inputs)


def _parse_wiring(data: dict[str, Any], where: str, depth: int) -> tuple[str, tuple[str, ...]]:
    """Check the form of "id" and "inputs" (what they refer to is checked by the analysis, per layer)."""
    if depth > 0 and ("id" in data or "inputs" in data):
        raise InputError(f"{where}: layers inside a block form a chain and take no \"id\" or \"inputs\"")
    layer_id = data.get("id", "")
    if not isinstance(layer_id, str) or (layer_id and (not ID_PATTERN.fullmatch(layer_id) or layer_id == INPUT)):
        raise InputError(f"{where}.id: expected a short name of letters, digits, _ or - starting with a letter "
                         f"(not {INPUT!r}), got {layer_id!r}")
    inputs = data.get("inputs", [])
    if not isinstance(inputs, list) or len(inputs) > MAX_INPUTS or \
            not all(isinstance(x, str) and (x == INPUT or ID_PATTERN.fullmatch(x)) for x in inputs):
        raise InputError(f"{where}.inputs: expected a list of up to {MAX_INPUTS} layer ids (or {INPUT!r}), "
                         f"got {inputs!r}"[:300])
    return layer_id, tuple(inputs)


def parse_model(data: Any, where: str = "architecture") -> ModelSpec:
    """Validate a whole architecture object from JSON."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected an object with \"layers\", got {_kind(data)}")
    unknown = sorted(set(data) - {"format", "version", "name", "input_shape", "layers", "description"})
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r}")
    if data.get("format", FORMAT) != FORMAT:
        raise InputError(f"{where}.format: expected {FORMAT!r}, got {data.get('format')!r}")
    version = data.get("version", VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise InputError(f"{where}.version: this ftstudio reads version {VERSION}, got {version!r}; update ftstudio")
    shape = data.get("input_shape", [AUTO, AUTO, AUTO])
    if not isinstance(shape, list) or len(shape) != 3:
        raise InputError(f"{where}.input_shape: expected [channels, height, width] (numbers or \"auto\")")
    dims = []
    for i, v in enumerate(shape):
        hi = 3 if i == 0 else 4096
        dims.append(check_param(Param("int", AUTO, "", 1, hi, (), (AUTO,)), v, f"{where}.input_shape[{i}]"))
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise InputError(f"{where}.layers: expected a non-empty list of layers")
    counter = [0]
    parsed = tuple(parse_layer(item, f"{where}.layers[{i}]", 0, counter) for i, item in enumerate(layers))
    name = data.get("name", "")
    if not isinstance(name, str):
        raise InputError(f"{where}.name: expected text")
    return ModelSpec(parsed, tuple(dims), name[:200])


def iter_layers(layers: tuple[LayerSpec, ...], prefix: str = ""):
    """(path, LayerSpec) for every layer, depth first; paths look like '3' or '5.1'."""
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        yield path, layer
        yield from iter_layers(layer.layers, f"{path}.")


def strip_pretrained(spec: ModelSpec) -> ModelSpec:
    """The same architecture with backbones set to random init (weights come from a checkpoint)."""

    def strip(layers):
        out = []
        for layer in layers:
            if layer.type in ("Backbone", "TimmBackbone") and layer.params.get("weights") != "none":
                layer = dataclasses.replace(layer, params=MappingProxyType({**layer.params, "weights": "none",
                                                                           "weights_file": ""}))
            out.append(dataclasses.replace(layer, layers=tuple(strip(layer.layers))))
        return out

    return spec.replace(layers=tuple(strip(spec.layers)))


def is_merge(layer: LayerSpec) -> bool:
    return LAYERS[layer.type].merge if layer.type in LAYERS else False


def uses_graph(layers: tuple[LayerSpec, ...]) -> bool:
    """True when the layers need format version 2 (an id, explicit inputs or a merge layer)."""
    return any(layer.id or layer.inputs or is_merge(layer) for layer in layers)
