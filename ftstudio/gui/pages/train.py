"""The Train page: hyper-parameters on the left, the live run on the right.

The form edits the session's `TrainConfig` (defaults and tooltips from the engine's schema).
During a run, packets from the worker land in a `LiveRun`; a ~15 Hz timer redraws the curves,
progress line, confusion matrix and validation predictions from it, so a fast trainer can never
flood the window.
"""

from __future__ import annotations

import dataclasses
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QSizePolicy, QSplitter,
                               QTabWidget, QToolButton, QVBoxLayout, QWidget)

from ftstudio.core.config.recipe import TrainConfig
from ftstudio.gui import dialogs
from ftstudio.gui.live import LiveRun, format_duration
from ftstudio.gui.pages.base import Page
from ftstudio.gui.state import Session
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.charts import ConfusionMatrix
from ftstudio.gui.widgets.form import DataclassForm, side_panel
from ftstudio.gui.widgets.images import GridItem, ImageGrid
from ftstudio.gui.widgets.plots import TrainingPlots
from ftstudio.gui.workers import DataPreview, Outcome, Packet

FIELDS = ["epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "scheduler", "warmup_epochs",
          "step_size", "gamma", "grad_clip", "label_smoothing", "early_stopping", "amp", "grad_checkpoint",
          "seed"]
REDRAW_MS = 66  # ~15 Hz
VALIDATION_REDRAW_S = 0.5  # confusion matrix and prediction grid: at most twice a second while running
TEXT_REDRAW_S = 0.25  # progress bar and line: four times a second while running
SHORT_WORDS = {"running": "Training", "paused": "Paused", "stopping": "Stopping…", "completed": "Completed",
               "stopped": "Stopped", "early_stopping": "Stopped early", "cancelled": "Cancelled", "failed": "Failed"}
VAL_GRID = 40
STATUS_WORDS = {"completed": "Completed", "stopped": "Stopped — checkpoint saved", "early_stopping":
                "Stopped early (validation loss stopped improving)", "cancelled": "Stopped before training started",
                "failed": "Failed"}


class TrainPage(Page, QWidget):
    """See the module docstring."""

    def __init__(self, session: Session, actions: dict[str, QAction], parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.live = LiveRun()
        self.status = "idle"
        self._shown_confusion = -1
        self._shown_preview = None
        self._validation_shown_at = 0.0
        self._text_shown_at = 0.0
        self._build(actions)
        self.show_config()
        session.train_changed.connect(self.show_config)
        session.model_changed.connect(self._update_placeholder)
        session.data_spec_changed.connect(self._update_placeholder)
        self.timer = QTimer(self, interval=REDRAW_MS)
        self.timer.timeout.connect(self.redraw)

    # ------------------------------------------------------------------------------ layout
    def _build(self, actions: dict[str, QAction]) -> None:
        controls = QWidget()
        col = QVBoxLayout(controls)
        box = QGroupBox("Run")
        f = QFormLayout(box)
        self.name = QLineEdit()
        self.name.setToolTip("A label for the run folder and the Runs list (empty: model-data)")
        self.name.textEdited.connect(self._name_edited)
        f.addRow("Name", self.name)
        col.addWidget(box)
        box = QGroupBox("Hyper-parameters")
        v = QVBoxLayout(box)
        self.form = DataclassForm(TrainConfig, FIELDS, float_steps={"lr": 1e-4, "warmup_epochs": 0.5})
        self.form.changed.connect(self._edited)
        v.addWidget(self.form)
        self.reset = QPushButton("Reset to defaults")
        self.reset.setToolTip("Put every hyper-parameter back to its default")
        self.reset.clicked.connect(lambda: self.session.set_train(TrainConfig()))
        v.addWidget(self.reset)
        col.addWidget(box)
        buttons = QGridLayout()
        self.buttons = {}
        for i, key in enumerate(("start", "pause", "resume", "stop")):
            b = QToolButton()
            b.setDefaultAction(actions[key])
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.buttons[key] = b
            buttons.addWidget(b, i // 2, i % 2)
        self.launch = QPushButton("Cluster launch script…")
        self.launch.setToolTip("Write this recipe and a torchrun script that trains it on several GPUs or "
                               "machines (PyTorch DDP) into a folder")
        self.launch.clicked.connect(self.export_launch_script)
        col.addWidget(self.launch)
        col.addStretch(1)
        panel = side_panel(controls)
        scroll = QWidget()  # the run buttons stay in view below the scrolling form (they were cut off at 640 px)
        sv = QVBoxLayout(scroll)
        sv.setContentsMargins(0, 0, 0, 0)
        sv.addWidget(panel, 1)
        sv.addLayout(buttons)
        scroll.setFixedWidth(panel.width())

        self.banner = Banner()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setToolTip("Progress of the whole run")
        self.progress_label = header_label("Ready. Press Start (Ctrl+R) to train the model on the data.")
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setToolTip("Show the loss on a logarithmic axis")
        self.log_scale.toggled.connect(self._log_toggled)
        head = QHBoxLayout()
        head.addWidget(self.progress_label, 1)
        head.addWidget(self.log_scale)
        self.plots = TrainingPlots()
        self.confusion = ConfusionMatrix("The confusion matrix appears after the first epoch")
        self.confusion.setToolTip("Confusion matrix: rows are the true classes, columns the predictions")
        self.samples = ImageGrid("Validation images with the model's predictions appear after the first epoch")
        self.samples.setToolTip("Validation images: the caption is the prediction; red frames are mistakes")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setToolTip("What happened during the run")
        tabs = QTabWidget()
        tabs.addTab(self.samples, "Validation predictions")
        tabs.addTab(self.log, "Log")
        tabs.setToolTip("Validation predictions and the run's log")
        self.tabs = tabs
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.confusion)
        bottom.addWidget(tabs)
        bottom.setSizes([330, 480])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plots)
        split.addWidget(bottom)
        split.setSizes([460, 260])  # the curves first: at 1024×640 they are what is watched
        self.splitter = split
        right = QVBoxLayout()
        right.addWidget(self.banner)
        right.addLayout(head)
        right.addWidget(self.progress)
        right.addWidget(split, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addLayout(right, 1)

    # ----------------------------------------------------------------------- the form
    def show_config(self) -> None:
        self.form.set_values(self.session.train)
        self.name.setText(self.session.run_name)
        self._update_placeholder()
        self._update_enabled()

    def _edited(self) -> None:
        self.session.set_train(dataclasses.replace(self.session.train, **self.form.values()))
        self._update_enabled()

    def _name_edited(self, text: str) -> None:
        self.session.run_name = text

    def _update_placeholder(self) -> None:
        self.name.setPlaceholderText(self.session.default_run_name())

    def _update_enabled(self) -> None:
        values = self.form.values()
        self.form.set_field_enabled("momentum", values["optimizer"] == "sgd")
        self.form.set_field_enabled("step_size", values["scheduler"] == "step")
        self.form.set_field_enabled("gamma", values["scheduler"] == "step")
        self.form.set_field_enabled("warmup_epochs", values["scheduler"] in ("step", "cosine"))

    def _log_toggled(self, on: bool) -> None:
        self.plots.set_log_loss(on)
        self.plots.refresh(self.live)

    def set_editable(self, editable: bool) -> None:
        for w in (self.form, self.name, self.reset):
            w.setEnabled(editable)

    # ------------------------------------------------------------------------- a run
    def begin(self, title: str, history: LiveRun | list[dict] | None = None) -> None:
        """Reset the view for a new (or resumed) run; ``history``: the run's curves so far, as metrics rows
        or already loaded (in the background: a long run's took seconds)."""
        if isinstance(history, LiveRun):
            self.live = history
            self.live.started = time.monotonic()
        else:
            self.live = LiveRun()
            if history:
                self.live.load_history(history)
        self.status = "running"
        self._shown_confusion, self._shown_preview = -1, None
        self.banner.clear()
        self.log.clear()
        self.confusion.set_matrix(None, [])
        self.samples.clear()
        self.append_log(f"{title}: preparing the data and the model…")
        self.progress.setValue(0)
        self.set_editable(False)
        self.timer.start()
        self.redraw()

    def on_prepared(self, preview: DataPreview) -> None:
        self.live.set_preview(preview)
        self.append_log(f"run folder: {preview.run_path}")
        for note in preview.notes:
            self.append_log(note)

    def on_progress(self, packet: Packet) -> None:
        for line in self.live.apply(packet):
            self.append_log(line)

    def end(self, outcome: Outcome) -> None:
        self.status = outcome.status
        self._update_placeholder()  # the next run's default name differs from this one's
        self.timer.stop()
        self.set_editable(True)
        words = STATUS_WORDS.get(outcome.status, outcome.status)
        if outcome.status == "failed":
            kept = ""
            if outcome.run_path is not None and (outcome.run_path / "checkpoints" / "last.pt").exists():
                # (a checkpoint that could not be written already says the previous one is kept)
                kept = f" The last checkpoint is kept in {outcome.run_path}." \
                    if "checkpoint is kept" not in outcome.message else f" Run folder: {outcome.run_path}."
            self.banner.show_message("error", f"Training failed: {outcome.message.rstrip('.')}.{kept}")
            self.append_log(f"failed: {outcome.message}")
        else:
            acc = outcome.summary.get("best_val_accuracy")
            best = f" — best validation accuracy {acc:.1%} (epoch {outcome.summary.get('best_epoch')})" \
                if isinstance(acc, (int, float)) else ""
            kind = "success" if outcome.status == "completed" else "info"
            where = f" Run folder: {outcome.run_path}" if outcome.run_path else ""
            self.banner.show_message(kind, f"{words}{best}.{where}")
            self.append_log(f"{words.lower()}{best}")
        self.redraw()

    def set_state(self, state: str) -> None:
        """The controller's state (running / paused / stopping / idle), for the progress line."""
        if state in ("running", "paused", "stopping"):
            self.status = state
        self.redraw()

    def append_log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def export_launch_script(self) -> None:
        """Write recipe.json + launch.sh (torchrun) for the session's recipe into a chosen folder."""
        from ftstudio.core.errors import InputError
        from ftstudio.core.distributed.launch_script import write_launch_script

        try:
            recipe = self.session.recipe()
        except InputError as exc:
            self.banner.show_message("error", f"Cannot write a launch script: {exc}")
            return
        folder = dialogs.choose_folder(self, "Folder for the launch script")
        if not folder:
            return
        batch = recipe.train.batch_size
        per_node = 2 if batch % 2 == 0 else 1
        try:
            script = write_launch_script(recipe, folder, nproc_per_node=per_node)
        except InputError as exc:
            self.banner.show_message("error", str(exc))
            return
        self.banner.show_message(
            "success", f"Wrote {script.name} and recipe.json to {folder}. On one machine: bash {script.name}; on N "
                  f"machines run NNODES=N NODE_RANK=i MASTER_ADDR=node0 NPROC_PER_NODE=GPUs bash {script.name} "
                  f"on each (batch size {batch} is the global batch).")

    # ------------------------------------------------------------------------- drawing
    def restore_settings(self, store) -> None:
        self.log_scale.setChecked(store.value("train/log_scale", False, type=bool))

    def save_settings(self, store) -> None:
        store.setValue("train/log_scale", self.log_scale.isChecked())

    def restyle(self) -> None:
        self.plots.restyle()

    def shutdown(self) -> None:
        self.timer.stop()

    def redraw(self) -> None:
        live = self.live
        self.plots.refresh(live)
        now = time.monotonic()
        if now - self._text_shown_at >= TEXT_REDRAW_S or self.status != "running":
            # the wrapped rich-text line re-lays out the page: a few times a second reads just as live
            self._text_shown_at = now
            self.progress.setValue(round(live.progress.fraction() * 1000))
            text = self._progress_text()
            if text != self.progress_label.text():
                self.progress_label.setText(text)
        due = now - self._validation_shown_at >= VALIDATION_REDRAW_S or self.status != "running"
        if live.preview is not None and live.confusion_epoch != self._shown_confusion and due:
            # fast epochs would repaint the matrix and the image grid every frame: a few times a second is plenty
            self._shown_confusion = live.confusion_epoch
            self._validation_shown_at = time.monotonic()
            self._show_validation()
        elif live.preview is not None and self._shown_preview is not live.preview:
            self._show_validation()
        self._shown_preview = live.preview

    def _progress_text(self) -> str:
        p, live = self.live.progress, self.live
        if self.status == "idle":
            return "Ready. Press Start (Ctrl+R) to train the model on the data."
        if not p.epochs:
            if self.status not in ("running", "paused", "stopping"):  # the run ended before its first epoch
                return (f"<b>{SHORT_WORDS.get(self.status, self.status)}</b> before the first epoch"
                        + (": see the message above." if self.status == "failed" else "."))
            if live.loading:
                done, total = live.loading
                return f"Preparing the data… {done:,} / {total:,} images"
            return "Preparing the data and the model…"
        parts = [f"Epoch {max(p.epoch, 1)}/{p.epochs}", f"batch {p.batch}/{p.batches}", f"step {p.step:,}"]
        if p.samples_per_s:
            parts.append(f"{p.samples_per_s:,.0f} samples/s")
        if self.status == "running":  # a paused run has no finishing time
            parts.append(f"ETA {format_duration(p.eta_seconds())}")
        word = SHORT_WORDS.get(self.status, self.status)
        if live.val_acc.n:
            parts.append(f"last val acc {live.val_acc.last():.1%}")
        return f"<b>{word}</b> · " + " · ".join(parts)

    def _show_validation(self) -> None:
        live, preview = self.live, self.live.preview
        classes = list(live.classes)
        title = f"Validation, epoch {live.confusion_epoch}" if live.confusion is not None else ""
        self.confusion.set_matrix(live.confusion, classes, title)
        n = min(VAL_GRID, len(preview.val_labels))
        items = []
        for i in range(n):
            truth = classes[int(preview.val_labels[i])]
            if i < len(live.predictions):
                pred = classes[int(live.predictions[i])]
                wrong = pred != truth
                items.append(GridItem(preview.val_images[i], pred, "wrong" if wrong else "ok",
                                      f"true: {truth}, predicted: {pred}"))
            else:
                items.append(GridItem(preview.val_images[i], truth, "", f"true: {truth}"))
        self.samples.set_items(items)
