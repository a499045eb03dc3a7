"""What a recipe resolves to before training, and seeding: shared by the engine and fine-tuning.

Both `engine.prepare` (a plain recipe) and `finetune.strategies.prepare_finetune` (a fine-tune plan)
build a `Prepared`; it lives below both so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftstudio.core.architecture import ModelSpec
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.datasets import DataBundle
    from ftstudio.core.training.callbacks import Callback


@dataclass
class Prepared:
    """What a recipe resolves to before training: data, model and its concrete architecture."""

    recipe: Recipe
    data: DataBundle
    model: Any  # torch.nn.Module
    architecture: ModelSpec  # every "auto" resolved
    lr_multipliers: dict[int, float]
    lineage: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    lora: dict[str, Any] | None = None  # {rank, alpha, layers} when the model carries LoRA adapters
    deferred: list[Any] = field(default_factory=list)  # parameters that join training later (gradual unfreezing)
    callbacks: list[Callback] = field(default_factory=list)  # what the plan adds to training (gradual unfreezing)
    summary: dict[str, Any] = field(default_factory=dict)  # extra summary.json fields (fine-tune: baseline, bn)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
