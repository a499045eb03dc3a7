"""Output shapes of layers on the meta device, without running the ones whose shape rule is known.

Why: in torch 2.14 many layers have no C++ meta kernel (ReLU, GELU, Tanh, Dropout, BatchNorm,
LayerNorm, adaptive pooling, Linear's addmm…); their meta path is a Python reference wrapped to disable
torch._dynamo, and the first call imports torch._dynamo, sympy and triton — about 4 s of the
app's start, and with Qt's GTK theme loaded, importing triton crashed the process. Layers that
keep their input's shape (or whose output is a formula of it) are checked and answered here;
everything else still runs on the meta device.
"""

from __future__ import annotations

import torch
from torch import nn

Shape = tuple[int, ...]

# elementwise layers: output shape = input shape, nothing to check
_SAME_SHAPE = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Identity)


def probe_shape(module: nn.Module, shape: Shape, device: torch.device | str) -> Shape:
    """The per-sample output shape of ``module`` on a per-sample input of ``shape``."""
    if isinstance(module, _SAME_SHAPE):
        return tuple(shape)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        dims = {nn.BatchNorm1d: (1, 2), nn.BatchNorm2d: (3,), nn.BatchNorm3d: (4,)}.get(type(module))
        if dims is not None and len(shape) not in dims:
            raise ValueError(f"expected {' or '.join(f'{d}D' for d in dims)} input per sample (got {len(shape)}D "
                             f"input {list(shape)})")
        if shape[0] != module.num_features:
            raise RuntimeError(f"running_mean should contain {shape[0]} elements not {module.num_features}")
        return tuple(shape)
    if isinstance(module, nn.LayerNorm):
        normalized = tuple(module.normalized_shape)
        if tuple(shape[len(shape) - len(normalized):]) != normalized or len(normalized) > len(shape):
            raise RuntimeError(f"Given normalized_shape={list(normalized)}, expected input with shape "
                               f"[*, {', '.join(map(str, normalized))}], but got input of size {list(shape)}")
        return tuple(shape)
    if isinstance(module, nn.Linear):  # meta addmm decomposes into Python references, too
        if not shape or shape[-1] != module.in_features:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied (2x{shape[-1] if shape else 0} and "
                               f"{module.in_features}x{module.out_features})")
        return (*shape[:-1], module.out_features)
    if isinstance(module, nn.AdaptiveAvgPool2d) and len(shape) == 3:
        size = module.output_size
        h, w = (size, size) if isinstance(size, int) else size
        return (shape[0], shape[1] if h is None else h, shape[2] if w is None else w)
    with torch.no_grad():
        probe = torch.zeros((2, *shape), device=device)
        was_training = module.training
        module.eval()
        try:
            return tuple(module(probe).shape[1:])
        finally:
            module.train(was_training)
