"""The Results page: fine-tuned vs from scratch on the same held-out images, exports, and "Save recipe".

The numbers come from `workflow.runner.compare` — `engine.evaluate_run`, the function behind
`ftstudio evaluate` — on each run's last checkpoint and its own held-out split, so the page, the
command line and a headless replay of the saved recipe agree.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QGroupBox, QHBoxLayout, QHeaderView,
                               QPushButton, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
                               QWizardPage)

from ftstudio.gui import dialogs, theme
from ftstudio.gui.live import format_duration
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.charts import ConfusionMatrix
from ftstudio.gui.widgets.plots import OverlayPlots, load_pyqtgraph
from ftstudio.gui.wizard.model import WizardModel
from ftstudio.gui.workers import Tasks

COLUMNS = ("Model", "Held-out accuracy", "Loss", "Trainable parameters", "Training time")
EXPORT_FORMATS = ("onnx", "pt2", "safetensors", "state-dict")


class ComparisonBars(QWidget):
    """Accuracy, loss and training time of each model as bars, one colour per model."""

    METRICS = (("accuracy", "Held-out accuracy"), ("loss", "Held-out loss"), ("seconds", "Training time (s)"))

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plots = {}
        pg = load_pyqtgraph()
        for key, title in self.METRICS:
            w = pg.PlotWidget()
            item = w.getPlotItem()
            item.setTitle(title, size="10pt")
            item.setMenuEnabled(False)
            item.setMouseEnabled(False, False)
            item.hideButtons()
            item.showGrid(y=True, alpha=0.2)
            theme.style_plot(w)
            self.plots[key] = w
            layout.addWidget(w)
        self.values: dict[str, list[float]] = {}

    def set_rows(self, rows) -> None:
        self.values = {key: [float(getattr(r, key)) for r in rows] for key, _ in self.METRICS}
        ticks = [[(i, r.label) for i, r in enumerate(rows)]]
        pg = load_pyqtgraph()
        for key, w in self.plots.items():
            item = w.getPlotItem()
            item.clear()
            values = self.values[key]
            brushes = [pg.mkBrush(theme.series_color(i)) for i in range(len(values))]
            item.addItem(pg.BarGraphItem(x=list(range(len(values))), height=values, width=0.6, brushes=brushes))
            for i, v in enumerate(values):
                text = f"{v:.1%}" if key == "accuracy" else f"{v:.3g}"
                label = pg.TextItem(text, color=theme.text(), anchor=(0.5, 1.0))
                label.setPos(i, v)
                item.addItem(label)
            item.getAxis("bottom").setTicks(ticks)
            top = 1.0 if key == "accuracy" else max(values + [1e-9]) * 1.2
            item.setXRange(-0.6, len(values) - 0.4, padding=0)
            item.setYRange(0, top * 1.08, padding=0)


class ResultsPage(QWizardPage):
    """See the module docstring."""

    def __init__(self, model: WizardModel, tasks: Tasks) -> None:
        super().__init__()
        self.model, self.tasks = model, tasks
        self.comparison = None
        self.export_report = None
        self.saved_path: Path | None = None
        self.setTitle("Results")
        self.setSubTitle("Did fine-tuning pay off? Both models are measured on the same held-out images.")
        self.banner = Banner()
        self.verdict = header_label("Measuring both models on the held-out images…")
        self.lineage = header_label("", "hint")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.bars = ComparisonBars()
        self.confusion = ConfusionMatrix("The confusion matrix appears once the models are measured")
        self.confusion_of = QComboBox()
        self.confusion_of.currentIndexChanged.connect(self._show_confusion)
        matrix = QWidget()
        mv = QVBoxLayout(matrix)
        mv.addWidget(self.confusion_of)
        mv.addWidget(self.confusion, 1)
        self.curves = OverlayPlots()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.bars, "Comparison")
        self.tabs.addTab(matrix, "Confusion matrix")
        self.tabs.addTab(self.curves, "Curves per epoch")
        from ftstudio.gui.widgets.mistakes import MistakesPanel

        self.mistakes = MistakesPanel(tasks)  # the fine-tuned model's per-class numbers and mistakes
        self.tabs.addTab(self.mistakes, "Per class && mistakes")
        self.tabs.setMinimumHeight(260)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.verdict)
        layout.addWidget(self.table)
        layout.addWidget(self.lineage)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self._export_box())

    def _export_box(self) -> QGroupBox:
        box = QGroupBox("Export and save")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.formats: dict[str, QCheckBox] = {}
        for name in EXPORT_FORMATS:
            check = QCheckBox(name)
            check.setChecked(name in self.model.export.formats)
            self.formats[name] = check
            row.addWidget(check)
        row.addStretch(1)
        self.buttons: dict[str, QPushButton] = {}
        for key, text, tip in (
                ("finetune", "Export fine-tuned model", "Write the fine-tuned model in the ticked formats and verify "
                                                        "each file by reloading it"),
                ("scratch", "Export from-scratch model", "The same for the model trained from scratch"),
                ("save", "Save recipe…", "Save the whole pipeline as JSON; `ftstudio run FILE` replays it "
                                         "headless")):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, k=key: self.save_recipe() if k == "save" else self.export(k))
            self.buttons[key] = b
            row.addWidget(b)
        v.addLayout(row)
        self.export_note = header_label("", "hint")
        self.export_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.export_note)
        return box

    # ------------------------------------------------------------------------- measuring
    def initializePage(self) -> None:  # noqa: N802
        from ftstudio.core.workflow.runner import compare, write_comparison

        runs, model = dict(self.model.runs), self.model
        self.comparison = None
        self.table.setRowCount(0)
        self.verdict.setText("Measuring both models on the held-out images…")
        for key in ("finetune", "scratch", "save"):
            self.buttons[key].setEnabled(False)
        pipeline = model.pipeline()

        def work(cancel):
            comparison = compare({k: v for k, v in runs.items() if k in ("finetune", "scratch")}, pipeline.compare)
            write_comparison(runs["finetune"], pipeline, comparison)
            return comparison

        task = self.tasks.start("compare", work)
        task.done.connect(self._measured)
        task.failed.connect(lambda message: self.banner.show_message("error", f"Could not measure: {message}"))

    def cleanupPage(self) -> None:  # noqa: N802
        pass

    def _measured(self, comparison) -> None:
        from ftstudio.core.runs.folders import Run

        self.comparison = comparison
        rows = comparison.rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = (row.label, f"{row.accuracy:.1%}", f"{row.loss:.3f}", f"{row.trainable:,} of {row.params:,}",
                     format_duration(row.seconds))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{row.run}\nftstudio evaluate {row.run} --checkpoint {row.checkpoint}")
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.setFixedHeight(self.table.horizontalHeader().height() + sum(
            self.table.rowHeight(r) for r in range(len(rows))) + 2 * self.table.frameWidth())
        first = rows[0]
        verdict = comparison.verdict() or f"The fine-tuned model scores {first.accuracy:.1%}."
        self.verdict.setText(f"<b>{html.escape(verdict[0].upper() + verdict[1:])}</b> — {first.count} held-out "
                             f"images ({html.escape(first.split)} split of the fine-tune data), {first.checkpoint} "
                             f"checkpoint of each run — <code>ftstudio evaluate RUN --checkpoint "
                             f"{first.checkpoint}</code> prints the same numbers.")
        from ftstudio.core.finetune.baseline import describe

        summary = Run(first.run).read_summary()
        before = describe(summary)
        self.lineage.setText(html.escape(_lineage_text(summary.get("lineage") or {})
                                         + (f" Before fine-tuning, the base model scored {before}." if before else "")))
        self.bars.set_rows(rows)
        self.confusion_of.blockSignals(True)
        self.confusion_of.clear()
        for row in rows:
            self.confusion_of.addItem(f"Confusion matrix of the {row.label} model", row.stage)
        self.confusion_of.blockSignals(False)
        self._show_confusion()
        self.curves.set_runs([(row.label, Run(row.run).epochs()) for row in rows])
        self.mistakes.set_run(first.run, first.checkpoint, measure=True)
        for key in ("finetune", "save"):
            self.buttons[key].setEnabled(True)
        self.buttons["scratch"].setEnabled(comparison.row("scratch") is not None)

    def _show_confusion(self, *_) -> None:
        if self.comparison is None:
            return
        row = self.comparison.row(self.confusion_of.currentData() or "finetune")
        if row is not None:
            import numpy as np

            self.confusion.set_matrix(np.array(row.confusion), list(row.classes), row.label)

    # ---------------------------------------------------------------------- export, save
    def selected_formats(self) -> list[str]:
        return [name for name, check in self.formats.items() if check.isChecked()]

    def export(self, stage: str) -> None:
        import dataclasses

        from ftstudio.core.export import export_run

        run, formats = self.model.runs.get(stage), self.selected_formats()
        if run is None or not formats:
            self.export_note.setText("Tick at least one format." if run else "")
            return
        plan = dataclasses.replace(self.model.export, formats=tuple(formats), run=stage)
        self.model.set(export=plan)
        self.export_report = None
        self.export_note.setText(f"Exporting {', '.join(formats)}…")
        for b in self.buttons.values():
            b.setEnabled(False)
        task = self.tasks.start("export", lambda cancel: export_run(run, formats, None, checkpoint=plan.checkpoint))
        task.done.connect(self._exported)
        task.failed.connect(self._export_failed)

    def _exported(self, report) -> None:
        self.export_report = report
        files = ", ".join(f"{f.path.name} ({'verified' if f.verified else 'NOT verified: ' + f.message})"
                          for f in report.files)
        self.export_note.setText(f"{'Exported' if report.ok else 'Exported with problems'} to "
                                 f"{html.escape(str(report.out_dir))}: {html.escape(files)}")
        self._enable_buttons()

    def _export_failed(self, message: str) -> None:
        self.banner.show_message("error", f"Export failed: {message}")
        self.export_note.setText("")
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        for key, b in self.buttons.items():
            b.setEnabled(key != "scratch" or "scratch" in self.model.runs)

    def save_recipe(self) -> None:
        """Write the pipeline document (with this process's CPU threads, so a replay rounds the same way)."""
        import torch

        from ftstudio.core.errors import InputError
        from ftstudio.core.workflow.pipeline import save_pipeline

        start = str(dialogs.documents_folder() / "pipeline.json")
        path = dialogs.choose_save_file(self, "Save the pipeline recipe", start, "Pipeline recipe (*.json)")
        if not path:
            return
        dialogs.remember_folder(path)
        try:
            save_pipeline(path, self.model.pipeline(cpu_threads=torch.get_num_threads()))
        except (InputError, OSError) as exc:
            self.banner.show_message("error", f"Could not save the recipe: {exc}")
            return
        self.saved_path = Path(path)
        self.banner.show_message("success", f"Saved {path}. Replay the whole pipeline headless with: "
                                            f"ftstudio run {path}")


def _lineage_text(lineage: dict) -> str:
    """Where the fine-tuned model came from, in one line."""
    if not lineage:
        return ""
    if lineage.get("kind") == "torchvision":
        weights = "ImageNet weights" if lineage.get("weights") != "none" else "random initialisation"
        return f"Fine-tuned from {lineage.get('source')} ({weights}); strategy {lineage.get('strategy')}."
    acc = lineage.get("val_accuracy")
    acc_text = f", best validation accuracy {acc:.1%} on {lineage.get('data')}" if isinstance(acc, (int, float)) else ""
    checkpoint = Path(str(lineage.get("checkpoint") or "")).stem or "?"
    return (f"Fine-tuned from run {lineage.get('run_id') or lineage.get('source')} ({checkpoint} checkpoint, epoch "
            f"{lineage.get('epoch')}{acc_text}); strategy {lineage.get('strategy')}.")
