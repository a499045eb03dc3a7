"""Shared by the fine-tune and export tests: a tiny CNN and a tiny trained source run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# conv → BN → ReLU → residual(conv, ReLU) → pool → Linear(8) → ReLU → head; the head is layer 8
TINY = {"name": "tiny cnn", "layers": [
    {"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
    {"type": "BatchNorm2d"},
    {"type": "ReLU"},
    {"type": "Residual", "layers": [{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
                                    {"type": "ReLU"}]},
    {"type": "AdaptiveAvgPool2d"},
    {"type": "Flatten"},
    {"type": "Linear", "params": {"out_features": 8}, "name": "features"},
    {"type": "ReLU"},
    {"type": "Linear", "params": {"out_features": "classes"}, "name": "head"},
]}
HEAD = 8
SOURCE_CLASSES = ["0", "1", "2", "3", "4"]


def recipe(data: dict, train: dict | None = None, finetune: dict | None = None, model=TINY):
    from ftstudio.core.config.recipe import Recipe

    doc = {"data": data, "model": model, "train": {"epochs": 2, "batch_size": 32, "device": "cpu", **(train or {})}}
    if finetune is not None:
        doc["finetune"] = finetune
    return Recipe.from_dict(doc)


def train_source(out: Path, epochs: int = 2) -> Path:
    """A tiny CNN trained on digits 0–4 (20 images each) into ``out``."""
    from ftstudio.core.engine import train

    train(recipe({"name": "digits", "classes": SOURCE_CLASSES, "per_class": 20}, {"epochs": epochs}), out)
    return out


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("source-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTSTUDIO_HOME", str(home))
        mp.setenv("TORCH_HOME", str(home / "torch"))
        return train_source(tmp_path_factory.mktemp("source") / "run")


class _Payload:
    """Pickles to ``os.system("touch TARGET")``: what a hostile checkpoint would run on an unsafe load."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def save_payload(path: Path, marker: Path) -> None:
    """A checkpoint-looking file that creates ``marker`` if anything unpickles it unsafely."""
    import torch

    torch.save({"format": "ftstudio.checkpoint", "model": _Payload(marker)}, path)
