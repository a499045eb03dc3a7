"""Shared pieces of the benchmarks: timing, machine description, the seed's MLP."""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")


@contextmanager
def timer(out: dict, key: str):
    start = time.perf_counter()
    yield
    out[key] = time.perf_counter() - start


def seed_mlp(in_features: int = 784, classes: int = 10):
    """The classic MLP the plain PyTorch loop trains: 784-256-10."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 256), nn.ReLU(), nn.Linear(256, classes))
