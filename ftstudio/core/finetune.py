"""Fine-tuning: per-layer freezing and learning-rate multipliers (more in the fine-tune plan)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from torch import nn

from ftstudio.core.architecture import ModelSpec, iter_layers, module_at


def layer_multipliers(model: nn.Module, spec: ModelSpec) -> dict[int, float]:
    """``id(param) → lr multiplier`` from each layer's ``lr_mult`` (inner layers override blocks)."""
    out: dict[int, float] = {}
    for path, layer in iter_layers(spec.layers):  # parents come before children: children win
        if layer.lr_mult != 1.0 or path in out:
            for p in module_at(model, path).parameters():
                out[id(p)] = layer.lr_mult
    return out


def strip_pretrained(spec: ModelSpec) -> ModelSpec:
    """The same architecture with backbones set to random init (weights come from a checkpoint)."""

    def strip(layers):
        out = []
        for layer in layers:
            if layer.type == "Backbone" and layer.params.get("weights") != "none":
                layer = dataclasses.replace(layer, params=MappingProxyType({**layer.params, "weights": "none",
                                                                           "weights_file": ""}))
            out.append(dataclasses.replace(layer, layers=tuple(strip(layer.layers))))
        return out

    return spec.replace(layers=tuple(strip(spec.layers)))
