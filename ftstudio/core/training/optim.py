"""Optimizers with per-group learning rates and the step-wise schedules of TrainConfig."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ftstudio.core.config.recipe import TrainConfig


def param_groups(model: torch.nn.Module, multipliers: dict[int, float] | None = None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by learning-rate multiplier (``id(param) → mult``)."""
    multipliers = multipliers or {}
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault(multipliers.get(id(p), 1.0), []).append(p)
    return [{"params": params, "lr_mult": mult} for mult, params in sorted(groups.items(), reverse=True)]


def make_optimizer(groups: Iterable[dict[str, Any]], cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [dict(g, lr=cfg.lr * g.get("lr_mult", 1.0)) for g in groups]
    if not groups:
        groups = [{"params": [], "lr": cfg.lr, "lr_mult": 1.0}]
    kind = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}.get(cfg.optimizer, torch.optim.Adam)
    options: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if kind is torch.optim.SGD:
        options["momentum"] = cfg.momentum
    if _fusable(groups):
        try:
            return kind(groups, fused=True, **options)
        except (RuntimeError, ValueError):  # a device or dtype the fused kernels don't cover
            pass
    return kind(groups, **options)


def _fusable(groups: list[dict[str, Any]]) -> bool:
    """One fused kernel per step instead of a Python loop over parameters (measured +1–3 % on the
    seed MLP on this CPU, more on GPUs): only where every parameter is a float on the CPU or CUDA."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step LR scheduler (``step()`` after every optimizer step)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.scheduler == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        pct = min(0.9, max(0.05, warmup / total if warmup else 0.3))
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, Schedule(cfg.scheduler, total, warmup, steps_per_epoch,
                                                                 cfg.step_size, cfg.gamma))


class Schedule:
    """The LR factor at a step: linear warm-up, then constant, step decay or cosine to 1 %."""

    def __init__(self, kind: str, total: int, warmup: int, steps_per_epoch: int, step_size: int, gamma: float) -> None:
        self.kind, self.total, self.warmup = kind, total, warmup
        self.steps_per_epoch, self.step_size, self.gamma = steps_per_epoch, step_size, gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "step":
            return self.gamma ** ((step // self.steps_per_epoch) // self.step_size)
        if self.kind == "cosine":
            progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0
