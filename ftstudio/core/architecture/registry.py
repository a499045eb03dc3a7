"""The layer registry: every layer type an architecture may name, with its parameter schema.

Only registered types can be built, so an architecture file can never name arbitrary Python.
Each parameter has a kind, default, range and help text; the composer generates its property
editor from this schema and the CLI validates files against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ftstudio.core.architecture.torchvision_names import TORCHVISION_BACKBONES

AUTO = "auto"
CLASSES = "classes"
# the composer's word on BatchNorm: frozen in a fine-tune, its statistics follow the new data
BN_FROZEN = ("Normalise each {} over the batch. Frozen in a fine-tune (head, LoRA), its running statistics are "
             "re-estimated on the new data first (--bn adapt, AdaBN); --bn keep keeps the source's")


@dataclass(frozen=True)
class Param:
    """One layer parameter: its kind ('int', 'float', 'bool', 'choice'), default, range, help."""

    kind: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    special: tuple[str, ...] = ()  # words allowed instead of a number: "auto", "classes", "same"


@dataclass(frozen=True)
class LayerType:
    """A buildable layer: its group in the palette, its params and how to construct it."""

    name: str
    group: str
    help: str
    params: dict[str, Param] = field(default_factory=dict)
    build: Callable[..., Any] | None = None  # build(params: dict, in_shape: tuple) -> nn.Module
    container: bool = False  # holds child layers (Residual)
    merge: bool = False  # joins several inputs (Add, Concat, Multiply): build(params, in_shapes)


def _nn(name: str) -> Any:
    import torch.nn as nn

    return getattr(nn, name)


def _linear(p, shape):
    return _nn("Linear")(p["in_features"], p["out_features"], bias=p["bias"])


def _conv(p, shape):
    return _nn("Conv2d")(p["in_channels"], p["out_channels"], p["kernel_size"], stride=p["stride"],
                         padding=p["padding"], dilation=p["dilation"], groups=p["groups"], bias=p["bias"])


def _pool(kind):
    def build(p, shape):
        return _nn(kind)(p["kernel_size"], stride=p["stride"] or p["kernel_size"], padding=p["padding"])
    return build


_I = lambda default, help, lo=1, hi=1_000_000, special=(): Param("int", default, help, lo, hi, (), special)  # noqa: E731

LAYERS: dict[str, LayerType] = {}


def register(layer: LayerType) -> LayerType:
    LAYERS[layer.name] = layer
    return layer


for _layer in (
    LayerType("Linear", "Dense", "Fully connected: every input feature to every output feature",
              {"in_features": _I(AUTO, "Inputs (auto: from the previous layer)", special=(AUTO,)),
               "out_features": _I(CLASSES, "Outputs (classes: one per class of the data)", special=(CLASSES,)),
               "bias": Param("bool", True, "Learn an additive bias")}, _linear),
    LayerType("Conv2d", "Convolution", "2-D convolution: learns local image filters",
              {"in_channels": _I(AUTO, "Input channels (auto: from the previous layer)", hi=65_536, special=(AUTO,)),
               "out_channels": _I(16, "Number of filters", hi=65_536),
               "kernel_size": _I(3, "Filter size (pixels)", hi=31),
               "stride": _I(1, "Step between filter positions", hi=16),
               "padding": _I(0, "Zero padding on each side (same: keep the size)", lo=0, hi=31, special=("same",)),
               "dilation": _I(1, "Spacing of the filter taps", hi=16),
               "groups": _I(1, "Channel groups (depthwise when = in_channels)", hi=65_536),
               "bias": Param("bool", True, "Learn an additive bias")}, _conv),
    LayerType("MaxPool2d", "Pooling", "Keep the largest value in each window (downsamples)",
              {"kernel_size": _I(2, "Window size", hi=31), "stride": _I(0, "Step (0: the window size)", lo=0, hi=31),
               "padding": _I(0, "Padding", lo=0, hi=15)}, _pool("MaxPool2d")),
    LayerType("AvgPool2d", "Pooling", "Average each window (downsamples)",
              {"kernel_size": _I(2, "Window size", hi=31), "stride": _I(0, "Step (0: the window size)", lo=0, hi=31),
               "padding": _I(0, "Padding", lo=0, hi=15)}, _pool("AvgPool2d")),
    LayerType("AdaptiveAvgPool2d", "Pooling", "Average down to a fixed output size (global pooling at 1)",
              {"output_size": _I(1, "Output height and width", hi=64)},
              lambda p, s: _nn("AdaptiveAvgPool2d")(p["output_size"])),
    LayerType("BatchNorm1d", "Normalisation", BN_FROZEN.format("feature"),
              {"num_features": _I(AUTO, "Features (auto)", special=(AUTO,))},
              lambda p, s: _nn("BatchNorm1d")(p["num_features"])),
    LayerType("BatchNorm2d", "Normalisation", BN_FROZEN.format("channel"),
              {"num_features": _I(AUTO, "Channels (auto)", hi=65_536, special=(AUTO,))},
              lambda p, s: _nn("BatchNorm2d")(p["num_features"])),
    LayerType("LayerNorm", "Normalisation", "Normalise over the last dimension of each sample",
              {"normalized_shape": _I(AUTO, "Size of the last dimension (auto)", special=(AUTO,))},
              lambda p, s: _nn("LayerNorm")(p["normalized_shape"])),
    LayerType("Dropout", "Regularisation", "Randomly zero activations while training",
              {"p": Param("float", 0.5, "Probability of zeroing", 0.0, 0.99)},
              lambda p, s: _nn("Dropout")(p["p"])),
    LayerType("Flatten", "Dense", "Turn an image [C, H, W] into a vector [C·H·W]", {},
              lambda p, s: _nn("Flatten")()),
    LayerType("ReLU", "Activation", "max(0, x)", {}, lambda p, s: _nn("ReLU")()),
    LayerType("LeakyReLU", "Activation", "ReLU with a small slope for negatives",
              {"negative_slope": Param("float", 0.01, "Slope for x < 0", 0.0, 1.0)},
              lambda p, s: _nn("LeakyReLU")(p["negative_slope"])),
    LayerType("GELU", "Activation", "Smooth ReLU used by transformers", {}, lambda p, s: _nn("GELU")()),
    LayerType("SiLU", "Activation", "x · sigmoid(x) (Swish)", {}, lambda p, s: _nn("SiLU")()),
    LayerType("Sigmoid", "Activation", "Squash to (0, 1)", {}, lambda p, s: _nn("Sigmoid")()),
    LayerType("Tanh", "Activation", "Squash to (-1, 1)", {}, lambda p, s: _nn("Tanh")()),
    LayerType("Residual", "Blocks", "Adds its input to the output of the layers inside (a skip connection)",
              {"projection": Param("bool", True, "Match shapes with a 1×1 convolution / linear map when they differ")},
              None, container=True),
    LayerType("Backbone", "Pretrained backbones", "A torchvision network without its classifier: image → features",
              {"name": Param("choice", "resnet18", "Which torchvision model", choices=TORCHVISION_BACKBONES),
               "weights": Param("choice", "none", "Start from ImageNet weights, or random",
                                choices=("none", "imagenet")),
               "weights_file": Param("str", "", "A local .pth/.safetensors file with the weights (optional)")},
              None),
    LayerType("TimmBackbone", "Pretrained backbones", "A timm network without its classifier: image → features",
              {"name": Param("str", "resnet18", "Which timm model (ftstudio backbones --search lists them)"),
               "weights": Param("choice", "none", "Start from the model's pretrained weights, or random",
                                choices=("none", "pretrained")),
               "weights_file": Param("str", "", "A local .safetensors/.pth file or Hugging Face model folder "
                                                "(optional; default: timm's / Hugging Face's cache)")},
              None),
):
    register(_layer)


def _dag(name):
    def build(p, shapes):
        from ftstudio.core.architecture import dag

        return getattr(dag, name)(**p)
    return build


for _layer in (  # merge layers (architecture version 2): their inputs are the ids of layers above them
    LayerType("Add", "Merge", "Adds its inputs element by element (a skip connection); they need the same shape",
              {}, _dag("Add"), merge=True),
    LayerType("Concat", "Merge", "Joins its inputs along one axis (channels by default), like DenseNet or "
              "Inception branches", {"dim": _I(1, "Axis to join along, counting the batch as 0 (1: channels)", hi=3)},
              _dag("Concat"), merge=True),
    LayerType("Multiply", "Merge", "Multiplies its inputs element by element (gating, attention masks)",
              {}, _dag("Multiply"), merge=True),
):
    register(_layer)

GROUPS = ("Dense", "Convolution", "Pooling", "Normalisation", "Activation", "Regularisation", "Blocks",
          "Merge", "Pretrained backbones")


def layer_type(name: str) -> LayerType | None:
    return LAYERS.get(name)
