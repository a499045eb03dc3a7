"""LoRA adapters are created in the adapted layer's dtype, so a half-precision model stays one dtype."""

import pytest
import torch
from torch import nn

from ftstudio.core.architecture.lora import LoRAConv2d, LoRALinear


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_adapters_take_the_layers_dtype(dtype):
    linear = LoRALinear(nn.Linear(6, 4, dtype=dtype), rank=2, alpha=4.0)
    conv = LoRAConv2d(nn.Conv2d(3, 5, 3, padding=1, dtype=dtype), rank=2, alpha=4.0)
    for layer in (linear, conv):
        assert {p.dtype for p in layer.parameters()} == {dtype}
    assert linear(torch.randn(2, 6, dtype=dtype)).dtype == dtype
    assert conv(torch.randn(1, 3, 8, 8, dtype=dtype)).dtype == dtype
