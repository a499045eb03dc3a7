"""LoRA: low-rank adapters on Linear and Conv2d layers, trained while the base weights stay frozen.

A small implementation of our own rather than `peft`: peft brings transformers-sized dependencies
and targets modules by name patterns, while our networks are registry-built ``nn.Sequential``s whose
layers we already know by path. The adapted layers *subclass* ``nn.Linear`` / ``nn.Conv2d``, so a
LoRA model keeps the plain model's state-dict keys (``3.weight``) and only adds ``3.lora_a`` and
``3.lora_b``. Checkpoints store exactly that; `merge_state_dict` folds the adapters into plain
weights (``W + scale · B·A``, exact up to float rounding), which is what evaluation, further
fine-tuning and every export load.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

A_SUFFIX, B_SUFFIX = "lora_a", "lora_b"


class LoRALinear(nn.Linear):
    """``x·Wᵀ + b + scale · x·Aᵀ·Bᵀ`` with ``A: [r, in]`` (random) and ``B: [out, r]`` (zeros)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device=base.weight.device, dtype=base.weight.dtype)
        self.load_state_dict(base.state_dict())
        self.rank, self.scale = rank, alpha / rank
        like = {"device": base.weight.device, "dtype": base.weight.dtype}  # adapters live where the layer does
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, **like))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, **like))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def delta(self) -> torch.Tensor:
        return _delta(self.lora_a, self.lora_b, self.scale)


class LoRAConv2d(nn.Conv2d):
    """A Conv2d plus ``scale · B(A(x))``: A is a ``rank``-channel conv like the base, B a 1×1 conv."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float) -> None:
        super().__init__(base.in_channels, base.out_channels, base.kernel_size, base.stride, base.padding,
                         base.dilation, base.groups, base.bias is not None, base.padding_mode,
                         device=base.weight.device, dtype=base.weight.dtype)
        self.load_state_dict(base.state_dict())
        self.rank, self.scale = rank, alpha / rank
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_channels, *base.kernel_size, **like))
        self.lora_b = nn.Parameter(torch.zeros(base.out_channels, rank, **like))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = F.conv2d(x, self.lora_a, None, self.stride, self.padding, self.dilation)
        return super().forward(x) + F.conv2d(low, self.lora_b[:, :, None, None]) * self.scale

    def delta(self) -> torch.Tensor:
        return _delta(self.lora_a, self.lora_b, self.scale)


def _delta(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The weight change an adapter stands for: ``scale · B·A`` (per kernel tap for convolutions)."""
    return torch.einsum("or,r...->o...", b, a) * scale


def adaptable(module: nn.Module) -> bool:
    """Plain Linear layers and ungrouped, zero-padded Conv2d layers take adapters."""
    if type(module) is nn.Linear:
        return True
    return type(module) is nn.Conv2d and module.groups == 1 and module.padding_mode == "zeros"


def is_transformer(model: nn.Module) -> bool:
    """A ViT-like network (timm's attention blocks have a ``qkv`` projection)."""
    return any(isinstance(getattr(m, "qkv", None), nn.Linear) for m in model.modules())


def add_lora(model: nn.Module, rank: int, alpha: float, skip: tuple[nn.Module, ...] = (),
             linear_only: bool | None = None) -> list[str]:
    """Replace every adaptable layer (except ``skip`` and their children) with its LoRA version, in place.

    In transformers (``linear_only`` None → `is_transformer`) only Linear layers — attention's qkv and
    projection, the MLP's two layers — get adapters, the usual LoRA recipe; the patch embedding stays.
    Returns the module names that got adapters. Parameters are left as they were: the caller
    decides what trains."""
    skipped = {id(m) for s in skip for m in s.modules()}
    if linear_only is None:
        linear_only = is_transformer(model)
    names = []
    for name, module in list(model.named_modules()):
        if not name or id(module) in skipped or not adaptable(module):
            continue
        if linear_only and type(module) is not nn.Linear:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapper = LoRALinear if isinstance(module, nn.Linear) else LoRAConv2d
        setattr(parent, child, wrapper(module, rank, alpha))
        names.append(name)
    return names


def set_alpha(model: nn.Module, alpha: float) -> None:
    """Scale every adapter by ``alpha / rank`` from now on (before training: B is zero, outputs do not change)."""
    for m in model.modules():
        if isinstance(m, (LoRALinear, LoRAConv2d)):
            m.scale = alpha / m.rank


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in model.modules() if isinstance(m, (LoRALinear, LoRAConv2d)) for p in (m.lora_a, m.lora_b)]


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put plain layers back, in place; returns ``model``."""
    for name, module in list(model.named_modules()):
        if not isinstance(module, (LoRALinear, LoRAConv2d)):
            continue
        if isinstance(module, LoRALinear):
            plain = nn.Linear(module.in_features, module.out_features, module.bias is not None)
        else:
            plain = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                              module.padding, module.dilation, module.groups, module.bias is not None)
        plain = plain.to(module.weight.device)
        plain.weight.copy_(module.weight + module.delta())
        if module.bias is not None:
            plain.bias.copy_(module.bias)
        plain.weight.requires_grad_(module.weight.requires_grad)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, plain)
    return model


@torch.no_grad()
def merge_state_dict(state: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A plain state dict from one with adapters (``info`` is a checkpoint's ``lora`` entry)."""
    rank, alpha = info.get("rank"), info.get("alpha")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1 or not isinstance(alpha, (int, float)):
        raise ValueError(f"malformed lora entry (rank {rank!r}, alpha {alpha!r})")
    scale = float(alpha) / rank
    out = {k: v for k, v in state.items() if not k.endswith((f".{A_SUFFIX}", f".{B_SUFFIX}"))}
    for key, a in state.items():
        if key.endswith(f".{A_SUFFIX}"):
            prefix = key[: -len(A_SUFFIX)]
            weight = out[f"{prefix}weight"]
            out[f"{prefix}weight"] = weight + _delta(a, state[f"{prefix}{B_SUFFIX}"], scale).to(weight.dtype)
    return out
