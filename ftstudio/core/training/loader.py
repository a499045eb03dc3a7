"""Batches on the device: in-memory splits are sliced (or gathered, shuffled) on the device;
streamed splits decode through a DataLoader. No per-sample Python in the hot path.

A small split is normalised to float32 once, up front: its batches are then views or one gather, the
cheapest a step can get (the seed's MLP at batch 256 reached 0.84 of the GEMM-bound limit this way and
0.79 normalising each batch). A large one stays uint8 on the device and each batch is normalised as it
is taken: the float copy is 4× the images (a 1 GB folder of 64×64 photos peaked at 9.2 GB of RAM and
spent 6 s before the first step), while a batch's normalisation is noise next to a network that
needs such data. Elementwise arithmetic gives the same bits per element either way. On the CPU the
float copy lies on 2 MB pages where Linux gives them (``allocator.empty_on_huge_pages``): a shuffled
batch gathers its rows from all over it, and with 4 KB pages each row costs a TLB miss.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch

from ftstudio.core.allocator import empty_on_huge_pages
from ftstudio.core.datasets.bundle import Split, StreamSplit
from ftstudio.core.config.recipe import AugmentSpec
from ftstudio.core.training.augment import augment_batch

__all__ = ["DeviceBatches", "augment_batch", "normalize"]

FLOAT_COPY_LIMIT = 512 * 2**20  # bytes of float32 up to which a split is normalised once instead of per batch


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images → float32 ``(x / 255 - mean) / std`` per channel (in one new tensor, not two, or in ``out``)."""
    x = x.to(torch.float32) if out is None else out.copy_(x)
    return x.div_(255.0).sub_(mean).div_(std)


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
        self.per_batch = False  # True: self.x holds uint8 images, normalised as each batch is taken
        if isinstance(split, Split):
            x = split.x.pin_memory() if device.type == "cuda" else split.x
            x = x.to(device, non_blocking=True)
            self.per_batch = x.numel() * 4 > FLOAT_COPY_LIMIT
            if not self.per_batch:
                # on the CPU, into memory on huge pages: a shuffled batch's rows come from all over it
                out = empty_on_huge_pages(tuple(x.shape), torch.float32) if device.type == "cpu" else None
                x = normalize(x, self.mean, self.std, out)
            self.x = x.contiguous(memory_format=self.memory_format)

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
                if self.per_batch:
                    xb = normalize(xb, self.mean, self.std).contiguous(memory_format=self.memory_format)
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
