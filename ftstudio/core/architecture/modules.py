"""The few nn.Modules of our own that architectures build: Residual and Backbone."""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; the shortcut is the identity or a projection to body's shape."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.body(x) + skip


class Backbone(nn.Module):
    """A torchvision classification network without its classifier: image → feature vector."""

    def __init__(self, name: str, net: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net(x), 1)

    def extra_repr(self) -> str:
        return self.name
