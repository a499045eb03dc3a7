"""Runs a wizard step's stages one after another on a `RunController`, each into its own `LiveRun`.

A stage's recipe is made when the stage starts (the baseline's depends on the fine-tune run that
just finished). Exactly one of ``done`` / ``halted(message)`` fires per `start`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from ftstudio.core.errors import FtError
from ftstudio.core.config.recipe import Recipe
from ftstudio.gui.live import LiveRun
from ftstudio.gui.workers import DataPreview, Outcome, Packet, RunController, describe_unexpected

Stage = tuple[str, Callable[[], Recipe]]  # (stage name, recipe factory)
DONE = ("completed", "early_stopping")


class StageRunner(QObject):
    """See the module docstring."""

    stage_started = Signal(str)
    stage_ended = Signal(str, object)  # stage, Outcome
    line = Signal(str, str)  # stage, a line for the log (preparation notes, one per epoch)
    done = Signal()
    halted = Signal(str)  # why the sequence ended early

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = RunController(self)
        self.controller.prepared.connect(self._prepared)
        self.controller.progress.connect(self._progress)
        self.controller.finished.connect(self._ended)
        self.controller.failed.connect(self._ended)
        self.lives: dict[str, LiveRun] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.notes: dict[str, tuple[str, ...]] = {}
        self._queue: list[Stage] = []
        self.current: str | None = None

    @property
    def running(self) -> bool:
        return self.controller.running

    def start(self, stages: list[Stage]) -> bool:
        if self.running:
            return False
        self._queue = list(stages)
        self.lives = {name: LiveRun() for name, _ in stages}
        self.outcomes, self.notes = {}, {}
        self._next()
        return True

    def _next(self) -> None:
        if not self._queue:
            self.current = None
            self.done.emit()
            return
        name, make = self._queue.pop(0)
        try:
            recipe = make()
        except FtError as exc:
            self._halt(f"{name}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 — a bug: said, logged, never a crash of the wizard
            self._halt(describe_unexpected(exc))
            return
        self.current = name
        self.lives[name] = LiveRun()
        self.stage_started.emit(name)
        self.controller.start(recipe)

    def _halt(self, message: str) -> None:
        self._queue, self.current = [], None
        self.halted.emit(message)

    @Slot(object)
    def _prepared(self, preview: DataPreview) -> None:
        if self.current:
            self.lives[self.current].set_preview(preview)
            self.notes[self.current] = preview.notes
            self.line.emit(self.current, f"run folder: {preview.run_path}")
            for note in preview.notes:
                self.line.emit(self.current, note)

    @Slot(object)
    def _progress(self, packet: Packet) -> None:
        if self.current:
            for text in self.lives[self.current].apply(packet):
                self.line.emit(self.current, text)

    @Slot(object)
    def _ended(self, outcome: Outcome) -> None:
        name = self.current or "?"
        self.outcomes[name] = outcome
        self.stage_ended.emit(name, outcome)
        if outcome.status in DONE:
            self._next()
        else:
            why = outcome.message or {"stopped": "stopped", "cancelled": "stopped before training started"}.get(
                outcome.status, outcome.status)
            self._halt(f"{name}: {why}")

    def run_path(self, stage: str) -> Path | None:
        """The stage's run folder: from its outcome, or, for the stage in progress, as soon as it is known."""
        outcome = self.outcomes.get(stage)
        if outcome is not None:
            return outcome.run_path
        return self.controller.run_path if stage == self.current else None

    def stop(self) -> None:
        """Stop the current run at the next batch and join its thread; nothing further starts."""
        self._queue = []
        self.controller.stop()
        self.controller.wait()

    def shutdown(self) -> None:
        """Stop and join without announcing anything (the wizard is going away)."""
        self._queue = []
        self.controller.shutdown()
