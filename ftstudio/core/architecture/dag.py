"""The modules that run a network as a graph: merge layers and `GraphNet`, a DAG in list order.

`GraphNet` subclasses ``nn.Sequential`` on purpose: its children are numbered like a chain's, so
state-dict keys, ``model[i]``, freezing, per-layer learning rates, LoRA and head replacement work
per node unchanged. Its forward is plain Python over fixed integer wiring, which torch.export and
the ONNX dynamo exporter trace into a static graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Add(nn.Module):
    """Element-wise sum of its inputs."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(nn.Module):
    """Element-wise product of its inputs."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    """``torch.cat`` of its inputs along ``dim`` (batch axis = 0, so 1 is channels)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GraphNet(nn.Sequential):
    """Layers run in list order, each on the outputs named by ``sources`` (-1: the network input).

    The output is the last layer's. Intermediate outputs are dropped after their last use."""

    def __init__(self, modules: Sequence[nn.Module], sources: Sequence[Sequence[int]]) -> None:
        super().__init__(*modules)
        if len(sources) != len(modules):
            raise ValueError("one source list per layer")
        self.sources = tuple(tuple(int(s) for s in src) for src in sources)
        last_use: dict[int, int] = {}
        for i, src in enumerate(self.sources):
            for s in src:
                last_use[s] = i
        self.release = tuple(tuple(s for s, j in last_use.items() if j == i) for i in range(len(modules)))

    def __getitem__(self, idx):
        """``net[:k]`` is the graph of the first ``k`` nodes (they only take earlier outputs), whose
        output is node ``k - 1``'s: what fine-tuning measures as the body under a head at ``k``."""
        if not isinstance(idx, slice):
            return super().__getitem__(idx)
        start, stop, step = idx.indices(len(self))
        if start != 0 or step != 1:
            raise IndexError("a graph network can only be cut into its first k nodes (net[:k])")
        return GraphNet(list(self)[:stop], self.sources[:stop])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {-1: x}
        out = x
        for i, module in enumerate(self):
            out = module(*[values[s] for s in self.sources[i]])
            values[i] = out
            for s in self.release[i]:
                del values[s]
        return out

    def extra_repr(self) -> str:
        return "sources=" + str([list(s) for s in self.sources])
