"""Build an nn.Module from a ModelSpec, and infer every layer's shape without allocating weights.

`analyze` runs the network on the meta device: output shape, parameter count and a readable
error for each layer, plus totals and size guards, in milliseconds and for any size. `build_model`
does the same walk for real, resolving "auto" and "classes" into concrete numbers.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ftstudio.core.architecture.dag import GraphNet
from ftstudio.core.architecture.graph import Wiring, merge_shape, source_name, wiring
from ftstudio.core.architecture.modules import Residual
from ftstudio.core.architecture.registry import AUTO, CLASSES, LAYERS
from ftstudio.core.architecture.shapes import probe_shape
from ftstudio.core.architecture.spec import LayerSpec, ModelSpec, iter_layers, uses_graph
from ftstudio.core.errors import InputError

MAX_PARAMS = 2_000_000_000
Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerInfo:
    """What the composer shows on a card: shapes, parameters, and the error if any."""

    path: str
    type: str
    in_shape: Shape | None
    out_shape: Shape | None
    params: int
    trainable: int
    error: str = ""
    resolved: dict[str, Any] = field(default_factory=dict)
    id: str = ""  # the layer's id in a graph (version 2), which messages name it by


@dataclass(frozen=True)
class Analysis:
    """Every layer's info plus totals for a model on a given input."""

    layers: tuple[LayerInfo, ...]
    input_shape: Shape
    output_shape: Shape | None
    params: int
    trainable: int
    activation_bytes: int  # per sample, forward outputs (float32)
    error: str = ""  # the first problem, naming its layer

    @property
    def ok(self) -> bool:
        return not self.error

    def size_mb(self) -> float:
        return self.params * 4 / 1e6

    def memory_estimate(self, batch_size: int) -> int:
        """Rough training memory in bytes: weights + grads + Adam state + activations (fwd + bwd)."""
        return self.params * 4 * 4 + self.activation_bytes * batch_size * 2


class _LayerError(Exception):
    pass


def _resolve(layer: LayerSpec, shape: Shape, num_classes: int) -> dict[str, Any]:
    p = dict(layer.params)
    t = layer.type
    if t in ("Linear", "BatchNorm1d", "LayerNorm") and len(shape) != 1 and t != "LayerNorm":
        raise _LayerError(f"{t} expects a vector but receives {list(shape)}; add a Flatten layer before it")
    if t in ("Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Backbone",
             "TimmBackbone") and len(shape) != 3:
        raise _LayerError(f"{t} expects an image [C, H, W] but receives {list(shape)}")
    auto_key = {"Linear": "in_features", "Conv2d": "in_channels", "BatchNorm1d": "num_features",
                "BatchNorm2d": "num_features", "LayerNorm": "normalized_shape"}.get(t)
    if auto_key:
        actual = shape[-1] if t in ("Linear", "LayerNorm") else shape[0]
        if p[auto_key] == AUTO:
            p[auto_key] = actual
        elif p[auto_key] != actual:
            raise _LayerError(f"{auto_key} is {p[auto_key]} but the input has {actual}; set it to \"auto\"")
    if p.get("out_features") == CLASSES:
        p["out_features"] = num_classes
    if t == "Conv2d":
        if p["padding"] == "same" and p["stride"] != 1:
            p["padding"] = p["dilation"] * (p["kernel_size"] - 1) // 2
        if p["in_channels"] % p["groups"] or p["out_channels"] % p["groups"]:
            raise _LayerError(f"groups ({p['groups']}) must divide in_channels ({p['in_channels']}) "
                              f"and out_channels ({p['out_channels']})")
    if t in ("MaxPool2d", "AvgPool2d") and p["padding"] * 2 > p["kernel_size"]:
        raise _LayerError(f"padding ({p['padding']}) must be at most half the kernel size ({p['kernel_size']})")
    return p


def _make(layer: LayerSpec, p: dict[str, Any], shape: Shape, num_classes: int, meta: bool) -> nn.Module:
    if layer.type == "Backbone":
        from ftstudio.core.architecture.backbones import build_backbone

        return build_backbone(p["name"], shape[0], p["weights"], p["weights_file"], load=not meta)
    if layer.type == "TimmBackbone":
        from ftstudio.core.architecture.timm_backbones import build_timm_backbone

        return build_timm_backbone(p["name"], shape[0], p["weights"], p["weights_file"], load=not meta)
    return LAYERS[layer.type].build(p, shape)


def _explain(layer: LayerSpec, shape: Shape, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "too small" in text or "Kernel size can't be greater" in text or "negative" in text.lower():
        k = layer.params.get("kernel_size")
        return (f"the input {list(shape)} is too small for {layer.type}"
                + (f" with kernel {k}" if k else "") + "; use a smaller kernel, padding, or fewer pooling layers")
    return text


def _walk(layers: tuple[LayerSpec, ...], shape: Shape, num_classes: int, meta: bool, prefix: str,
          infos: list[LayerInfo], device: torch.device | None) -> tuple[list[nn.Module], list[LayerSpec], Shape | None]:
    """Build ``layers`` from ``shape``, each on the outputs its wiring names (top level: a graph; inside a
    block: a chain); record an info per layer. Returns modules, resolved specs and the last layer's shape."""
    modules, resolved_specs = [], []
    wired = wiring(layers) if not prefix else Wiring(tuple((i - 1,) for i in range(len(layers))), {})
    outs: dict[int, Shape | None] = {-1: shape}
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        ins = [outs.get(s) for s in wired.sources[i]]
        current = ins[0] if ins else None
        if i in wired.errors or any(s is None for s in ins):
            reason = wired.errors.get(i, "after an invalid layer")
            infos.append(LayerInfo(path, layer.type, current, None, 0, 0, reason, id=layer.id))
            infos.extend(LayerInfo(p, c.type, None, None, 0, 0, "after an invalid layer")
                         for p, c in iter_layers(layer.layers, f"{path}."))
            outs[i] = None
            continue
        start = len(infos)
        infos.append(None)  # placeholder, filled below (children come after their container)
        try:
            if LAYERS[layer.type].merge:
                if prefix:
                    raise _LayerError(f"{layer.type} joins branches of the network; use it outside blocks")
                out = merge_shape(layer, ins, [source_name(layers, s) for s in wired.sources[i]])
                p = dict(layer.params)
                module = LAYERS[layer.type].build(p, ins)
                resolved = layer
            elif len(ins) != 1:
                raise _LayerError(f"{layer.type} takes one input but is wired to {len(ins)}; "
                                  "join them first with an Add or Concat layer")
            elif layer.type == "Residual":
                module, resolved, out = _residual(layer, current, num_classes, meta, path, infos, device)
                p = dict(layer.params)
            else:
                p = _resolve(layer, current, num_classes)
                module = _make(layer, p, current, num_classes, meta)
                if meta:
                    module = module.to("meta")
                elif device is not None:
                    module = module.to(device)
                resolved = dataclasses.replace(layer, params=MappingProxyType(p))
                out = probe_shape(module, current, "meta" if meta else (device or "cpu"))
            n = sum(t.numel() for t in module.parameters())
            trainable = 0 if layer.freeze else n
            infos[start] = LayerInfo(path, layer.type, current, out, n, trainable, "", p, id=layer.id)
            modules.append(module)
            resolved_specs.append(resolved)
            outs[i] = out
        except _LayerError as exc:
            infos[start] = LayerInfo(path, layer.type, current, None, 0, 0, str(exc), id=layer.id)
            outs[i] = None
        except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError, InputError) as exc:
            infos[start] = LayerInfo(path, layer.type, current, None, 0, 0, _explain(layer, current, exc),
                                     id=layer.id)
            outs[i] = None
    return modules, resolved_specs, outs[len(layers) - 1] if layers else shape


def _residual(layer, shape, num_classes, meta, path, infos, device):
    mods, specs, out = _walk(layer.layers, shape, num_classes, meta, f"{path}.", infos, device)
    if out is None:
        raise _LayerError("a layer inside this block is invalid")
    shortcut = None
    if out != shape:
        if not layer.params.get("projection", True):
            raise _LayerError(f"the block outputs {list(out)} but its input is {list(shape)}; "
                              "turn on projection or keep the shape")
        if len(shape) == 1 and len(out) == 1:
            shortcut = nn.Linear(shape[0], out[0], bias=False)
        elif len(shape) == 3 and len(out) == 3 and shape[1] % out[1] == 0 and shape[1] // out[1] == shape[2] // out[2] \
                and shape[2] % out[2] == 0:
            shortcut = nn.Conv2d(shape[0], out[0], 1, stride=shape[1] // out[1], bias=False)
        else:
            raise _LayerError(f"cannot project the input {list(shape)} onto the block's output {list(out)}")
        shortcut = shortcut.to("meta" if meta else (device or "cpu"))
    module = Residual(nn.Sequential(*mods), shortcut)
    return module, dataclasses.replace(layer, layers=tuple(specs)), out


def _name(info: LayerInfo) -> str:
    return f"layer {info.id!r}" if info.id else f"layer {info.path}"


def _check_final(output: Shape | None, num_classes: int) -> str:
    if output is None:
        return ""
    if output != (num_classes,):
        return (f"the network outputs {list(output)} per image but the data has {num_classes} classes; "
                "end with a Linear layer whose out_features is \"classes\"")
    return ""


def analyze(spec: ModelSpec, input_shape: Shape, num_classes: int) -> Analysis:
    """Shapes, parameter counts and errors for every layer, on the meta device (no real weights)."""
    infos: list[LayerInfo] = []
    with torch.device("meta"):
        _, _, output = _walk(spec.layers, tuple(input_shape), num_classes, True, "", infos, None)
    top = [i for i in infos if "." not in i.path]
    params = sum(i.params for i in top)
    trainable = _trainable_count(spec, infos, params)
    activation = sum(math.prod(i.out_shape) for i in infos if i.out_shape) * 4
    first_error = next((f"{_name(i)} ({i.type}): {i.error}" for i in infos if i.error), "")
    error = first_error or _check_final(output, num_classes) or _size_error(params, top)
    return Analysis(tuple(infos), tuple(input_shape), output, params, trainable, activation, error)


def _trainable_count(spec: ModelSpec, infos: list[LayerInfo], total: int) -> int:
    """Parameters not frozen by the spec (a frozen block freezes everything inside it)."""
    by_path = {i.path: i for i in infos}
    frozen = [p for p, layer in iter_layers(spec.layers) if layer.freeze]
    outermost = [p for p in frozen if not any(p.startswith(f + ".") for f in frozen)]
    return total - sum(by_path[p].params for p in outermost if p in by_path)


def _size_error(params: int, top: list[LayerInfo]) -> str:
    if params <= 0:
        return ""
    biggest = max(top, key=lambda i: i.params)
    if params > MAX_PARAMS:
        return (f"the network has {params:,} parameters (over {MAX_PARAMS:,}); layer {biggest.path} "
                f"({biggest.type}) alone has {biggest.params:,} — make it smaller")
    ram = _total_memory()
    if ram and params * 4 * 4 > ram:
        return (f"training {params:,} parameters needs about {params * 16 / 1e9:.1f} GB, more than this machine's "
                f"{ram / 1e9:.1f} GB; layer {biggest.path} ({biggest.type}) has {biggest.params:,}")
    return ""


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def build_model(spec: ModelSpec, input_shape: Shape, num_classes: int) -> tuple[nn.Module, ModelSpec]:
    """The real nn.Module (on the CPU) and the spec with every "auto"/"classes" resolved.

    Refuses invalid or absurdly large networks before allocating anything."""
    analysis = analyze(spec, input_shape, num_classes)
    if analysis.error:
        raise InputError(f"invalid architecture: {analysis.error}")
    infos: list[LayerInfo] = []
    modules, resolved, output = _walk(spec.layers, tuple(input_shape), num_classes, False, "", infos,
                                      torch.device("cpu"))
    error = next((f"{_name(i)} ({i.type}): {i.error}" for i in infos if i.error), "")
    if error:
        raise InputError(f"invalid architecture: {error}")
    if uses_graph(spec.layers):
        model: nn.Module = GraphNet(modules, wiring(spec.layers).sources)
    else:
        model = nn.Sequential(*modules)  # a chain: exactly the version-1 module and state-dict keys
    concrete = spec.replace(layers=tuple(resolved), input_shape=tuple(input_shape))
    apply_freeze(model, concrete)
    return model, concrete


def apply_freeze(model: nn.Module, spec: ModelSpec) -> None:
    """Set requires_grad from each layer's ``freeze`` flag (a frozen block freezes its layers)."""
    for path, layer in iter_layers(spec.layers):
        if layer.freeze:
            for p in module_at(model, path).parameters():
                p.requires_grad_(False)


def module_at(model: nn.Module, path: str) -> nn.Module:
    """The module for a spec path like '3' or '5.1' (Residual children live in ``body``)."""
    module = model
    for part in path.split("."):
        if isinstance(module, Residual):
            module = module.body
        module = module[int(part)]
    return module


def layer_multipliers(model: nn.Module, spec: ModelSpec) -> dict[int, float]:
    """``id(param) → lr multiplier`` from each layer's ``lr_mult`` (inner layers override blocks)."""
    out: dict[int, float] = {}
    for path, layer in iter_layers(spec.layers):  # parents come before children: children win
        if layer.lr_mult != 1.0 or path in out:
            for p in module_at(model, path).parameters():
                out[id(p)] = layer.lr_mult
    return out
