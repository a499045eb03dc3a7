"""The trainer's events: a small closed set of plain, frozen dataclasses of numbers and strings.

They cross threads and processes safely (no tensors, no graphs); numpy arrays only where a
matrix is the point (the confusion matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FitStarted:
    epochs: int
    start_epoch: int  # epochs already done (resuming), 0 for a fresh run
    steps_per_epoch: int
    device: str
    params: int
    trainable_params: int
    train_size: int
    val_size: int
    classes: tuple[str, ...]
    batch_size: int


@dataclass(frozen=True)
class EpochStarted:
    epoch: int  # 1-based
    epochs: int
    lr: float


@dataclass(frozen=True)
class BatchFinished:
    """Sent a few times a second, carrying every step's loss since the previous one."""

    epoch: int
    step: int  # global optimizer step, 1-based
    batch: int  # within the epoch, 1-based
    batches: int
    loss: float  # mean over ``losses``
    lr: float
    samples_per_s: float
    steps: tuple[int, ...] = ()
    losses: tuple[float, ...] = ()


@dataclass(frozen=True)
class ValidationFinished:
    epoch: int
    val_loss: float
    val_accuracy: float
    confusion: np.ndarray  # [true, predicted] counts
    sample_predictions: tuple[int, ...] = ()  # predicted class of the first validation samples


@dataclass(frozen=True)
class EpochFinished:
    epoch: int
    epochs: int
    step: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float
    samples_per_s: float
    best: bool = False


@dataclass(frozen=True)
class FitFinished:
    reason: str  # "completed", "stopped", "early_stopping", or a callback's reason
    epochs_done: int
    best_epoch: int
    best_val_accuracy: float | None
    best_val_loss: float | None
    final_val_accuracy: float | None
    final_val_loss: float | None
    seconds: float


@dataclass(frozen=True)
class FitFailed:
    message: str
    kind: str = "error"  # "not_finite", "out_of_memory", "error"
    epoch: int = 0
    step: int = 0


Event = FitStarted | EpochStarted | BatchFinished | ValidationFinished | EpochFinished | FitFinished | FitFailed

HOOKS = {FitStarted: "on_fit_started", EpochStarted: "on_epoch_started", BatchFinished: "on_batch_finished",
         ValidationFinished: "on_validation_finished", EpochFinished: "on_epoch_finished",
         FitFinished: "on_fit_finished", FitFailed: "on_fit_failed"}


