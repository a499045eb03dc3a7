"""Architectures as data: the layer registry, JSON specs, shape inference and model building.

The registry and specs import no torch (the GUI's palette loads instantly); `analyze` and
`build_model` import it on first use.
"""

from ftstudio.core.architecture.registry import AUTO, CLASSES, GROUPS, LAYERS, LayerType, Param
from ftstudio.core.architecture.spec import (LayerSpec, ModelSpec, iter_layers, parse_layer, parse_model,
                                            strip_pretrained)

__all__ = ["AUTO", "CLASSES", "GROUPS", "LAYERS", "Analysis", "LayerInfo", "LayerSpec", "LayerType", "ModelSpec",
           "Param", "analyze", "build_model", "iter_layers", "layer_multipliers", "module_at", "parse_layer",
           "parse_model", "strip_pretrained"]


def __getattr__(name: str):
    if name in ("Analysis", "LayerInfo", "analyze", "build_model", "layer_multipliers", "module_at"):
        from ftstudio.core.architecture import build

        return getattr(build, name)
    raise AttributeError(name)
