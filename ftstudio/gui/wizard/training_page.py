"""A wizard step that trains: pretraining, or the fine-tune run with its from-scratch baseline.

Training starts when the page is entered (unless the same settings already finished), with the
Train page's live plots — several runs overlaid on the same axes. Next waits until every run has
completed; Back stops the run in progress (its checkpoint is kept) and joins its thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QHBoxLayout, QPlainTextEdit, QProgressBar, QPushButton, QSplitter, QVBoxLayout,
                               QWizardPage)

from ftstudio.gui.live import format_duration
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.plots import TrainingPlots
from ftstudio.gui.wizard import texts
from ftstudio.gui.wizard.model import PageId, WizardModel
from ftstudio.gui.wizard.runner import Stage, StageRunner
from ftstudio.gui.workers import Outcome

REDRAW_MS = 66  # ~15 Hz, like the Train page


class TrainingStepPage(QWizardPage):
    """See the module docstring. ``stages()`` gives the (stage, recipe factory) list to run."""

    def __init__(self, model: WizardModel, stages: Callable[[], list[Stage]], labels: dict[str, str],
                 key: Callable[[], object], next_id: PageId, title: str, subtitle: str) -> None:
        super().__init__()
        self.model, self.stages, self.labels, self.key, self.next_id = model, stages, labels, key, next_id
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self.runner = StageRunner(self)
        self.runner.stage_started.connect(self._stage_started)
        self.runner.stage_ended.connect(self._stage_ended)
        self.runner.done.connect(self._done)
        self.runner.halted.connect(self._halted)
        self.runner.line.connect(lambda stage, text: self.log.appendPlainText(f"{self.labels.get(stage, stage)}: "
                                                                              f"{text}"))
        self.finished_key: str | None = None  # the settings whose runs all completed
        self._started_key: str | None = None
        self.order: list[str] = []
        self.banner = Banner()
        self.status = header_label("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.again = QPushButton("Train again")
        self.again.setToolTip("Start this step's training over with the current settings")
        self.again.clicked.connect(self.start)
        self.again.hide()
        self.hint = header_label(texts.BACK_STOPS, "hint")
        head = QHBoxLayout()
        head.addWidget(self.status, 1)
        head.addWidget(self.again)
        self.plots = TrainingPlots(runs=tuple(labels.values()) if len(labels) > 1 else ("",))
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setToolTip("What happened: the run folders, how the model was prepared, each epoch")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plots)
        split.addWidget(self.log)
        split.setSizes([480, 110])
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(head)
        layout.addWidget(self.progress)
        layout.addWidget(self.hint)
        layout.addWidget(split, 1)
        self.timer = QTimer(self, interval=REDRAW_MS)
        self.timer.timeout.connect(self.redraw)

    # ---------------------------------------------------------------------------- QWizardPage
    def initializePage(self) -> None:  # noqa: N802
        if self.finished_key is not None and self.finished_key == self._key() and \
                all(self.model.stage_done(stage) for stage in self.order):
            return  # these settings already trained: nothing to redo
        self.start()

    def cleanupPage(self) -> None:  # noqa: N802 — Back: stop what runs (joined), keep the settings
        if self.runner.running:
            self.runner.stop()

    def isComplete(self) -> bool:  # noqa: N802
        return not self.runner.running and self.finished_key is not None and self.finished_key == self._key()

    def nextId(self) -> int:  # noqa: N802
        return int(self.next_id)

    def _key(self) -> str:
        return json.dumps(self.key(), sort_keys=True, default=str)

    # ---------------------------------------------------------------------------------- runs
    def start(self) -> None:
        if self.runner.running:
            return
        stages = self.stages()
        self.order = [name for name, _ in stages]
        for name in self.order:
            self.model.runs.pop(name, None)
        self.finished_key = None
        self._started_key = self._key()
        self.banner.clear()
        self.log.clear()
        self.again.hide()
        self.hint.show()
        self.completeChanged.emit()
        self.runner.start(stages)
        self.timer.start()
        self.redraw()

    def _stage_started(self, stage: str) -> None:
        self.log.appendPlainText(f"{self.labels.get(stage, stage)}: preparing the data and the model…")

    def _stage_ended(self, stage: str, outcome: Outcome) -> None:
        label = self.labels.get(stage, stage)
        if outcome.run_path is not None:
            self.log.appendPlainText(f"{label}: {outcome.status} — run folder {outcome.run_path}")
            if outcome.status in ("completed", "early_stopping"):
                self.model.runs[stage] = outcome.run_path

    def _done(self) -> None:
        self.timer.stop()
        self.hint.hide()
        self.finished_key = self._started_key
        self.redraw()
        self.banner.show_message("success", "Done. Press Next to continue.")
        self.completeChanged.emit()

    def _halted(self, message: str) -> None:
        self.timer.stop()
        self.hint.hide()
        self.redraw()
        self.banner.show_message("error" if "stopped" not in message else "info", f"Training did not finish — "
                                 f"{message}. Press “Train again” to retry, or go Back to change the settings.")
        self.again.show()
        self.completeChanged.emit()

    def shutdown(self) -> None:
        self.timer.stop()
        self.runner.shutdown()

    # ------------------------------------------------------------------------------- drawing
    def lives(self) -> list:
        return [self.runner.lives[name] for name in self.order if name in self.runner.lives]

    def redraw(self) -> None:
        lives = self.lives()
        if not lives:
            return
        self.plots.refresh(*lives)
        current = self.runner.current
        done = sum(1 for name in self.order if name in self.runner.outcomes)
        fraction = (done + (self.runner.lives[current].progress.fraction() if current else 0)) / len(self.order)
        self.progress.setValue(round(min(fraction, 1.0) * 1000))
        self.status.setText(self._status_text(current))

    def _status_text(self, current: str | None) -> str:
        if current is None:
            parts = []
            for name in self.order:
                live = self.runner.lives.get(name)
                acc = live.val_acc.last() if live is not None else None
                outcome = self.runner.outcomes.get(name)
                word = outcome.status if outcome else "not run"
                parts.append(f"{self.labels.get(name, name)}: {word}" + (f", last val acc {acc:.1%}" if acc else ""))
            return " · ".join(parts)
        live, p = self.runner.lives[current], self.runner.lives[current].progress
        n = f" ({self.order.index(current) + 1} of {len(self.order)})" if len(self.order) > 1 else ""
        head = f"<b>{self.labels.get(current, current)}</b>{n}"
        if not p.epochs:
            return f"{head} · preparing the data and the model…"
        parts = [f"epoch {max(p.epoch, 1)}/{p.epochs}", f"step {p.step:,}",
                 f"ETA {format_duration(p.eta_seconds())}"]
        if live.val_acc.n:
            parts.append(f"last val acc {live.val_acc.last():.1%}")
        return f"{head} · " + " · ".join(parts)
