"""Callbacks: typed no-op hooks with an order; a callback asks to stop by setting a flag.

The trainer calls every callback's hook for each event, lowest ``order`` first. A callback that
wants training to end sets ``stop_reason`` (it never raises); `Trainer.done` gathers the reasons.
States returned by ``state_dict`` travel in checkpoints, so resuming restores them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core.training.events import (BatchFinished, EpochFinished, EpochStarted, FitFailed, FitFinished,
                                           FitStarted, ValidationFinished)

if TYPE_CHECKING:
    from ftstudio.core.training.trainer import Trainer


class Callback:
    """Base class: override the hooks you need."""

    order = 0

    def __init__(self) -> None:
        self.stop_reason: str | None = None
        self.trainer: Trainer | None = None

    @property
    def key(self) -> str:
        return type(self).__name__

    def setup(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_fit_started(self, event: FitStarted) -> None: ...
    def on_epoch_started(self, event: EpochStarted) -> None: ...
    def on_batch_finished(self, event: BatchFinished) -> None: ...
    def on_validation_finished(self, event: ValidationFinished) -> None: ...
    def on_epoch_finished(self, event: EpochFinished) -> None: ...
    def on_fit_finished(self, event: FitFinished) -> None: ...
    def on_fit_failed(self, event: FitFailed) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class History(Callback):
    """Keeps every event and the per-epoch rows in memory (for tests, the demo and reports)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []
        self.epochs: list[EpochFinished] = []
        self.steps: list[int] = []
        self.losses: list[float] = []

    def _record(self, event: Any) -> None:
        self.events.append(event)

    on_fit_started = on_epoch_started = on_validation_finished = on_fit_finished = on_fit_failed = _record

    def on_batch_finished(self, event: BatchFinished) -> None:
        self.events.append(event)
        self.steps.extend(event.steps)
        self.losses.extend(event.losses)

    def on_epoch_finished(self, event: EpochFinished) -> None:
        self.events.append(event)
        self.epochs.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` epochs."""

    order = 10

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        super().__init__()
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.wait = 0

    def on_epoch_finished(self, event: EpochFinished) -> None:
        value = event.val_loss if event.val_loss is not None else event.train_loss
        if self.best is None or value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stop_reason = "early_stopping"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state.get("best"), int(state.get("wait", 0))


class Checkpoint(Callback):
    """Writes ``last.pt`` after every epoch (and on stop), ``best.pt`` on improvement; atomically.

    ``on_saved`` is called with the epoch's event once its files have landed: what a record of the
    run says of ``best.pt`` must wait for that (a full disk used to leave summary.json naming the
    failed epoch as the best while best.pt held the one before)."""

    order = 100

    def __init__(self, folder: str | Path, on_saved: Callable[[EpochFinished], None] | None = None) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.on_saved = on_saved

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def on_epoch_finished(self, event: EpochFinished) -> None:
        assert self.trainer is not None
        self.trainer.save_checkpoint(self.last)
        if event.best:
            _atomic_copy(self.last, self.best)
        if self.on_saved is not None:
            self.on_saved(event)

    def on_fit_finished(self, event: FitFinished) -> None:
        assert self.trainer is not None
        if self.trainer.progress.mid_epoch:  # stopped inside an epoch: keep exactly where it stood
            self.trainer.save_checkpoint(self.last)


def _atomic_copy(src: Path, dst: Path) -> None:
    from ftstudio.core.fileio import atomic_write

    def write(f) -> None:
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    atomic_write(dst, write)
