"""What crosses from the training thread to the window: packets of trainer events, and outcomes.

`SignalBridge` is an engine callback that runs on the training thread; it gathers events and
hands them over at most ~10 times a second (a fast trainer cannot flood the GUI), flushing at
once when training starts or ends. Everything here is plain data; `workers` does the threading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftstudio.core.training.callbacks import Callback
from ftstudio.core.training.events import (BatchFinished, EpochFinished, EpochStarted, FitFailed, FitFinished,
                                           FitStarted, ValidationFinished)

EMIT_INTERVAL_S = 0.25  # at most ~4 packets a second, however fast the epochs are (bench/README.md: 0.1 starved
# the window on a busy machine: each packet means a redraw of the plots)
VAL_SAMPLES = 64  # validation images shown with their predictions (the trainer predicts the first 64)


@dataclass
class Packet:
    """Everything the trainer said since the last packet (plain numbers and small arrays)."""

    started: FitStarted | None = None
    epoch_started: EpochStarted | None = None
    batch: BatchFinished | None = None  # the latest one
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[tuple[int, float]] = field(default_factory=list)  # (step, lr) per batch event
    epochs: list[EpochFinished] = field(default_factory=list)
    validation: ValidationFinished | None = None  # the latest one
    loading: tuple[int, int] | None = None  # (done, total) while a folder is decoded

    def empty(self) -> bool:
        return not (self.started or self.epoch_started or self.batch or self.epochs or self.validation
                    or self.loading)


class SignalBridge(Callback):
    """Collects trainer events on the worker thread and hands them over in rate-limited packets."""

    order = 200  # after RunLogger and Checkpoint: when the GUI hears of an epoch, its files exist

    def __init__(self, send: Callable[[Packet], None], interval: float | None = None) -> None:
        super().__init__()
        self.send = send
        self.interval = EMIT_INTERVAL_S if interval is None else interval
        self.packet = Packet()
        self.last = 0.0

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.packet.empty() or (not force and now - self.last < self.interval):
            return
        packet, self.packet, self.last = self.packet, Packet(), now
        self.send(packet)

    def loading(self, done: int, total: int) -> None:
        self.packet.loading = (done, total)
        self.flush()

    def on_fit_started(self, event: FitStarted) -> None:
        self.packet.started = event
        self.flush(force=True)

    def on_epoch_started(self, event: EpochStarted) -> None:
        self.packet.epoch_started = event

    def on_batch_finished(self, event: BatchFinished) -> None:
        p = self.packet
        p.batch = event
        p.steps.extend(event.steps)
        p.losses.extend(event.losses)
        p.lrs.append((event.step, event.lr))
        self.flush()

    def on_validation_finished(self, event: ValidationFinished) -> None:
        self.packet.validation = event

    def on_epoch_finished(self, event: EpochFinished) -> None:
        self.packet.epochs.append(event)
        self.flush()

    def on_fit_finished(self, event: FitFinished) -> None:
        self.flush(force=True)

    def on_fit_failed(self, event: FitFailed) -> None:
        self.flush(force=True)


@dataclass(frozen=True)
class DataPreview:
    """What the Train page shows before the first epoch: classes and the validation samples."""

    run_path: Path
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    val_images: Any  # uint8 [n, C, H, W] numpy array
    val_labels: Any  # int [n] numpy array
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``status`` is completed / stopped / early_stopping / cancelled / failed."""

    status: str
    run_path: Path | None
    summary: dict[str, Any]
    message: str = ""


def make_preview(run_path: Path, prepared) -> DataPreview:
    """The first validation images of a prepared run, for the predictions grid."""
    import numpy as np

    val = prepared.data.val
    n = min(VAL_SAMPLES, len(val))
    return DataPreview(run_path, tuple(prepared.data.classes), tuple(prepared.data.input_shape),
                       val.images(np.arange(n)), val.y[:n].numpy(), tuple(prepared.notes))
