"""A network cut into its stages: what gradient checkpointing recomputes and what FSDP shards as one unit.

ftstudio's own networks (``nn.Sequential`` chains and graphs) are cut into their layers with
parameters; a pretrained backbone (torchvision or timm, wrapped as one layer) into its stages —
ResNet's ``layer1``…``layer4``, the blocks of a ViT, ConvNeXt's ``stages``, MobileNet's ``features``.
The rule looks only at the module tree, so it needs no list of model families.

`checkpoint_stages` sets each stage's forward to run under `torch.utils.checkpoint.checkpoint`
(non-reentrant): the forward pass keeps only each stage's input and the backward pass recomputes the
rest. The recomputation must not move BatchNorm running statistics a second time (momentum applied
twice), so it runs with those layers' momentum at 0 and their batch counters restored.
"""

from __future__ import annotations

import types

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

# children that hold a backbone's repeated blocks (timm and torchvision names): each of their children is a stage
BLOCK_LISTS = ("features", "blocks", "stages", "layers")
_CHECKPOINTED = "_ftstudio_checkpointed"


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _unwrap(module: nn.Module) -> nn.Module:
    """Through wrappers — no parameters of their own and one child with parameters that is a network, not a
    plain chain (Backbone → its torchvision / timm net; a Residual's Sequential body is not unwrapped)."""
    while next(module.parameters(recurse=False), None) is None:
        kids = [c for c in module.children() if _has_params(c)]
        if len(kids) != 1 or isinstance(kids[0], (nn.Sequential, nn.ModuleList)):
            break
        module = kids[0]
    return module


def _wraps_network(module: nn.Module) -> bool:
    inner = _unwrap(module)
    return inner is not module and sum(1 for c in inner.children() if _has_params(c)) > 1


def network_stages(model: nn.Module) -> list[nn.Module]:
    """The stages of ``model``, in order; parameters outside them (a ViT's position embedding) stay with the root."""
    stages: list[nn.Module] = []

    def collect(net: nn.Module, top: bool) -> None:
        for name, child in net.named_children():
            if not _has_params(child):
                continue  # ReLU, Add, Flatten, a removed head: nothing to shard, nothing worth recomputing
            inner = _unwrap(child)
            kids = [c for c in inner.children() if _has_params(c)]
            if top and _wraps_network(child):  # a backbone layer: its own stages
                collect(inner, False)
            elif name in BLOCK_LISTS and isinstance(child, (nn.Sequential, nn.ModuleList)) and len(kids) > 1:
                stages.extend(kids)  # one level down only: a block's own layers stay together
            else:
                stages.append(child)

    root = _unwrap(model)
    collect(root, True)
    return stages or ([root] if _has_params(root) else [])


class _HeldNorms:
    """While a stage is recomputed: its BatchNorm layers in training mode keep their running statistics."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.saved: list[tuple[nn.Module, float | None, torch.Tensor | None]] = []

    def __enter__(self) -> None:
        for m in self.module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
                count = m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
                self.saved.append((m, m.momentum, count))
                m.momentum = 0.0  # running = (1 - 0)·running + 0·batch: unchanged

    def __exit__(self, *exc) -> None:
        for m, momentum, count in self.saved:
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)
        self.saved.clear()


def _contexts(module: nn.Module):
    import contextlib

    return contextlib.nullcontext(), _HeldNorms(module)


def _checkpointed_forward(self: nn.Module, *args, **kwargs):
    plain = type(self).forward.__get__(self)  # the class's forward (FSDP's subclass keeps it)
    if not torch.is_grad_enabled():  # evaluation: nothing to save memory on
        return plain(*args, **kwargs)
    return checkpoint(plain, *args, use_reentrant=False, context_fn=lambda: _contexts(self), **kwargs)


def _run_layers(chain: nn.Sequential, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
    for i in range(start, stop):
        x = chain[i](x)
    return x


def _checkpointed_chain(self: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_grad_enabled():
        return nn.Sequential.forward(self, x)
    for start, stop, recompute in getattr(self, _CHECKPOINTED):
        if recompute:
            x = checkpoint(_run_layers, self, start, stop, x, use_reentrant=False, context_fn=lambda: _contexts(self))
        else:
            x = _run_layers(self, start, stop, x)
    return x


_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def _chain_blocks(chain: nn.Sequential) -> list[tuple[int, int, bool]]:
    """A chain's blocks: a layer with parameters, the norms that follow it and the parameter-free layers
    after them (conv → norm → relu → pool); a wrapped backbone stands alone (its stages are checkpointed)."""
    blocks: list[list] = []
    for i, layer in enumerate(chain):
        backbone = _wraps_network(layer)
        starts = _has_params(layer) and not isinstance(layer, _NORMS)
        if backbone or not blocks or (starts and blocks[-1][2]) or blocks[-1][3]:
            blocks.append([i, i + 1, not backbone, backbone])
        else:
            blocks[-1][1] = i + 1
    return [(a, b, recompute and any(_has_params(chain[j]) for j in range(a, b))) for a, b, recompute, _ in blocks]


def _wrap(module: nn.Module) -> None:
    if not getattr(module, _CHECKPOINTED, False):
        module.forward = types.MethodType(_checkpointed_forward, module)
        setattr(module, _CHECKPOINTED, True)


def checkpoint_stages(model: nn.Module) -> int:
    """Turn on gradient checkpointing for ``model`` (in place; state-dict keys unchanged); returns the
    number of regions recomputed in the backward pass.

    A plain chain (an ftstudio ``nn.Sequential``) is cut into its blocks (`_chain_blocks`); anything
    else — a graph network, a backbone inside a chain or alone — into its `network_stages`. Each
    forward is set on the instance as a bound method, so a deep copy is rebound to the copy."""
    root = _unwrap(model)
    if type(root) is not nn.Sequential:  # a graph (its nodes take several inputs) or a backbone
        stages = network_stages(model)
        for stage in stages:
            _wrap(stage)
        return len(stages)
    if getattr(root, _CHECKPOINTED, False):
        return sum(1 for *_, recompute in getattr(root, _CHECKPOINTED) if recompute)
    blocks = _chain_blocks(root)
    regions = sum(1 for *_, recompute in blocks if recompute)
    for start, stop, recompute in blocks:
        if not recompute and stop - start == 1 and _has_params(root[start]):  # a wrapped backbone
            stages = network_stages(root[start])
            for stage in stages:
                _wrap(stage)
            regions += len(stages)
    setattr(root, _CHECKPOINTED, tuple(blocks))
    root.forward = types.MethodType(_checkpointed_chain, root)
    return regions
