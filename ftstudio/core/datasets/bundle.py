"""DataBundle: what every data source becomes — splits of uint8 images, classes, statistics.

Images stay uint8 ``[N, C, H, W]`` on the CPU (4× smaller than floats, and what previews
show); the trainer normalises them once onto the device. Data too large for memory is a
StreamSplit of file paths, decoded batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass
class Split:
    """Images held in memory as a uint8 tensor ``[N, C, H, W]`` and int64 labels ``[N]``; ``paths``
    names each image's file when it came from a folder (so a mistake can be relabelled at its source)."""

    x: torch.Tensor
    y: torch.Tensor
    paths: list[str] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def images(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """uint8 ``[n, C, H, W]`` arrays of the chosen samples (for previews)."""
        return self.x[list(indices)].numpy()

    def relabel(self, y: torch.Tensor) -> Split:
        return Split(self.x, y, self.paths)

    def subset(self, indices: np.ndarray) -> Split:
        import torch

        idx = np.asarray(indices, dtype=np.int64)
        paths = [self.paths[i] for i in idx] if self.paths is not None else None
        return Split(self.x[torch.as_tensor(idx)], self.y[torch.as_tensor(idx)], paths)


@dataclass
class StreamSplit:
    """Images left on disk (too large to decode into memory), decoded per batch."""

    paths: list[str]
    y: torch.Tensor
    size: tuple[int, int]
    channels: int

    def __len__(self) -> int:
        return len(self.paths)

    def images(self, indices: np.ndarray | list[int]) -> np.ndarray:
        from ftstudio.core.datasets.decode import decode

        return np.stack([decode(self.paths[i], self.size, self.channels) for i in indices])

    def relabel(self, y: torch.Tensor) -> StreamSplit:
        return StreamSplit(self.paths, y, self.size, self.channels)

    def subset(self, indices: np.ndarray) -> StreamSplit:
        import torch

        idx = np.asarray(indices, dtype=np.int64)
        return StreamSplit([self.paths[i] for i in idx], self.y[torch.as_tensor(idx)], self.size, self.channels)


@dataclass
class DataBundle:
    """A dataset ready to train on: splits, class names, input shape and normalisation."""

    name: str
    train: Split | StreamSplit
    val: Split | StreamSplit
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test: Split | StreamSplit | None = None
    source: str = ""
    skipped: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    augment_default: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, Split)

    def class_counts(self, split: str = "train") -> list[int]:
        part = getattr(self, split)
        if part is None:
            return [0] * self.num_classes
        return np.bincount(part.y.numpy(), minlength=self.num_classes).tolist()

    def held_out(self) -> Split | StreamSplit:
        """The split to report final numbers on: the official test split, else validation."""
        return self.test if self.test is not None and len(self.test) else self.val

    def summary(self) -> dict:
        """Plain facts for run summaries and the GUI."""
        return {
            "name": self.name,
            "source": self.source,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test) if self.test is not None else 0,
            "mean": list(self.mean),
            "std": list(self.std),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "split": self.extra.get("split"),
        }


def channel_stats(x: torch.Tensor, limit: int = 20_000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1] (on at most ``limit`` images)."""
    import torch

    sample = x[:limit].to(torch.float64).div_(255.0)
    dims = (0, 2, 3)
    mean = sample.mean(dim=dims)
    std = sample.std(dim=dims).clamp_min(1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def display_path(path: str | Path, root: str | Path) -> str:
    """A path relative to the dataset root, for messages."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
