"""Running a recipe under torchrun (PyTorch DDP); a plain call when launched without it."""

from __future__ import annotations

import os

from ftstudio.core.errors import InputError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def train_maybe_distributed(recipe, out=None, **kwargs):
    """``train_recipe`` in this process, or as one rank of a torchrun job."""
    from ftstudio.core.pipeline import train_recipe

    if world_size() > 1:
        raise InputError("running under torchrun with WORLD_SIZE > 1 is not supported by this build yet")
    return train_recipe(recipe, out, **kwargs)
