"""Batches of an in-memory split: a large split stays uint8 and is normalised per batch, with the same bits."""

from pathlib import Path

import pytest
import torch

from ftstudio.core.config.recipe import AugmentSpec
from ftstudio.core.datasets.bundle import Split
from ftstudio.core.engine import RunControls, train
from ftstudio.core.training import checkpoint, loader
from ftstudio.core.training.callbacks import History
from ftstudio.core.training.loader import DeviceBatches
from tests.core.test_trainer import recipe

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, -0.3)  # a negative std: an inverted run's normalisation


def _split(n: int = 300) -> Split:
    gen = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 8, 8), generator=gen, dtype=torch.uint8),
                 torch.randint(0, 5, (n,), generator=gen))


def _batches(batches: DeviceBatches, seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(batches.epoch(torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("kwargs", [
    {}, {"shuffle": True}, {"shuffle": True, "rank": 1, "world": 2},
    {"shuffle": True, "augment": AugmentSpec(flip=True, crop=1, noise=0.1)},
    {"channels_last": True},
])
def test_per_batch_normalisation_gives_the_same_bits(monkeypatch, kwargs):
    split = _split()
    once = DeviceBatches(split, MEAN, STD, torch.device("cpu"), 64, **kwargs)
    monkeypatch.setattr(loader, "FLOAT_COPY_LIMIT", 0)
    per_batch = DeviceBatches(split, MEAN, STD, torch.device("cpu"), 64, **kwargs)
    assert not once.per_batch and once.x.dtype == torch.float32
    assert per_batch.per_batch and per_batch.x.dtype == torch.uint8
    if not kwargs.get("channels_last"):  # on the CPU: the images themselves, no copy
        assert per_batch.x.data_ptr() == split.x.data_ptr()
    a, b = _batches(once), _batches(per_batch)
    assert len(a) == len(b) == len(once)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xb.dtype == torch.float32 and torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.is_contiguous(memory_format=once.memory_format) == xb.is_contiguous(memory_format=once.memory_format)


def test_normalisation_matches_the_documented_formula():
    x = _split().x
    mean, std = torch.tensor(MEAN).view(1, -1, 1, 1), torch.tensor(STD).view(1, -1, 1, 1)
    assert torch.equal(loader.normalize(x, mean, std), (x.float() / 255 - mean) / std)


def test_a_large_split_trains_to_the_same_weights(tmp_path, monkeypatch):
    """The whole fit (shuffled batches, validation) through either path ends on identical weights."""
    h_once, h_batch = History(), History()
    train(recipe(epochs=2), tmp_path / "once", RunControls(callbacks=[h_once]))
    monkeypatch.setattr(loader, "FLOAT_COPY_LIMIT", 0)
    train(recipe(epochs=2), tmp_path / "batch", RunControls(callbacks=[h_batch]))
    a = checkpoint.load(tmp_path / "once" / "checkpoints" / "last.pt")["model"]
    b = checkpoint.load(tmp_path / "batch" / "checkpoints" / "last.pt")["model"]
    assert h_once.losses == h_batch.losses and all(torch.equal(a[k], b[k]) for k in a)


def test_a_float_copy_on_the_cpu_lies_on_huge_pages_and_gives_the_same_batches(monkeypatch):
    from ftstudio.core import allocator

    split = _split()
    monkeypatch.setattr(allocator, "HUGE_PAGES_MIN_BYTES", 2**62)  # off: the copy in ordinary memory
    plain = DeviceBatches(split, MEAN, STD, torch.device("cpu"), 64, shuffle=True)
    monkeypatch.setattr(allocator, "HUGE_PAGES_MIN_BYTES", 0)  # this small split too
    huge = DeviceBatches(split, MEAN, STD, torch.device("cpu"), 64, shuffle=True)
    assert plain.x.untyped_storage().nbytes() == plain.x.nbytes  # an ordinary tensor
    if Path("/sys/kernel/mm/transparent_hugepage").exists():  # Linux with them: a mapping of its own, from 2 MB
        assert huge.x.data_ptr() % allocator.HUGE_PAGE == 0 and huge.x.untyped_storage().nbytes() > huge.x.nbytes
    assert torch.equal(huge.x, plain.x) and huge.x.is_contiguous()
    for (xa, ya), (xb, yb) in zip(_batches(plain), _batches(huge), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
