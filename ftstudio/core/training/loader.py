"""Batches on the device: in-memory splits are normalised once onto the device and sliced;
streamed splits decode through a DataLoader. No per-sample Python in the hot path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch

from ftstudio.core.datasets.bundle import Split, StreamSplit
from ftstudio.core.config.recipe import AugmentSpec
from ftstudio.core.training.augment import augment_batch

__all__ = ["DeviceBatches", "augment_batch", "normalize"]


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images → float32 ``(x / 255 - mean) / std`` per channel."""
    return (x.to(torch.float32).div_(255.0) - mean).div_(std)


class DeviceBatches:
    """Iterates (x, y) batches of one split on ``device``."""

    def __init__(self, split: Split | StreamSplit, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device, batch_size: int, shuffle: bool = False, augment: AugmentSpec | None = None,
                 channels_last: bool = False, rank: int = 0, world: int = 1) -> None:
        self.split = split
        self.rank, self.world = rank, world  # under DDP each rank takes its piece of every global batch
        self.device = device
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.enabled else None
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.y = split.y.to(device)
        self.x: torch.Tensor | None = None
        if isinstance(split, Split):
            x = split.x.pin_memory() if device.type == "cuda" else split.x
            self.x = normalize(x.to(device, non_blocking=True), self.mean, self.std).contiguous(
                memory_format=self.memory_format)

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def epoch(self, shuffle_gen: torch.Generator | None = None, augment_gen: torch.Generator | None = None,
              skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass; ``skip`` batches are passed over (resuming mid-epoch reproduces the same order)."""
        n = len(self.split)
        order = torch.randperm(n, generator=shuffle_gen) if self.shuffle else None
        if self.x is not None:
            order_dev = order.to(self.device) if order is not None else None
            plain = self.world == 1  # one process: labels permuted once per epoch, batches are views
            y = self.y.index_select(0, order_dev) if plain and order_dev is not None else self.y
            for start in range(skip * self.batch_size, n, self.batch_size):
                stop = start + self.batch_size
                if plain:
                    xb = self.x[start:stop] if order_dev is None else self.x.index_select(0, order_dev[start:stop])
                    yb = y[start:stop]
                else:
                    idx = self._piece(order_dev, start)
                    xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
                if self.augment is not None:
                    xb = augment_batch(xb, self.augment, augment_gen, self.mean, self.std)
                yield xb, yb
            return
        yield from self._stream(order, augment_gen, skip)

    def _piece(self, order: torch.Tensor | None, start: int) -> torch.Tensor:
        """This rank's share of the global batch that begins at ``start``."""
        stop = min(start + self.batch_size, len(self.split))
        idx = order[start:stop] if order is not None else torch.arange(start, stop, device=self.device)
        return torch.tensor_split(idx, self.world)[self.rank] if self.world > 1 else idx

    def _stream(self, order, augment_gen, skip):
        from torch.utils.data import DataLoader

        starts = range(skip * self.batch_size, len(self.split), self.batch_size)
        chunks = [self._piece(order, s).tolist() for s in starts]
        loader = DataLoader(_Decoded(self.split), batch_sampler=chunks, num_workers=min(4, os.cpu_count() or 1),
                            pin_memory=self.device.type == "cuda", persistent_workers=False)
        for xb, yb in loader:
            xb = normalize(xb.to(self.device, non_blocking=True), self.mean, self.std)
            if self.augment is not None:
                xb = augment_batch(xb, self.augment, augment_gen, self.mean, self.std)
            yield xb.contiguous(memory_format=self.memory_format), yb.to(self.device, non_blocking=True)


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, split: StreamSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        from ftstudio.core.datasets.decode import DecodeError, decode

        try:
            x = decode(self.split.paths[i], self.split.size, self.split.channels)
        except DecodeError:  # vanished or broken since the scan: a blank image keeps the batch shape
            x = torch.zeros((self.split.channels, *self.split.size), dtype=torch.uint8).numpy()
        return torch.from_numpy(x), self.split.y[i]
