"""The Export page: turn a run's checkpoint into files other runtimes load, and prove they match.

Uses `ftstudio.core.export.export_run` in the background: each file is written, reloaded the way
its users load it, and compared with the PyTorch model; the page shows every file with its
verification result and opens the folder. If this build has no export module yet, the page says
so instead of offering buttons that cannot work.
"""

from __future__ import annotations

import importlib
import math
import importlib.util
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from ftstudio.core.runs.folders import Run, list_runs
from ftstudio.gui import dialogs, theme
from ftstudio.gui.pages.base import Page
from ftstudio.gui.settings import read_json, write_json
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.workers import Tasks

MODULE = "ftstudio.core.export"
DEFAULT_FORMATS = ("onnx", "safetensors")
COLUMNS = ("Format", "File", "Size", "Latency (1 image)", "Verified", "Max difference", "Note")
VERIFIED_COLUMN = COLUMNS.index("Verified")
FORMAT_HELP = {
    "onnx": "ONNX: runs in onnxruntime, OpenCV, TensorRT… (one .onnx file)",
    "pt2": "torch.export program (.pt2): loads with torch.export.load, no Python class needed",
    "safetensors": "safetensors weights: safe to load anywhere, with the architecture JSON beside it",
    "state-dict": "A PyTorch state dict (.pt) that loads with torch.load(weights_only=True)",
    "onnx-int8": "ONNX quantized to int8 (smaller, often faster on CPUs), calibrated on the training images; "
                 "verified by its held-out accuracy against the float model",
}


def export_available() -> bool:
    return importlib.util.find_spec(MODULE) is not None


def _diff(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return "0" if value == 0 else f"{value:.1e}"


def _size(path: Path) -> str:
    try:
        n = path.stat().st_size
    except OSError:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "–"


class ExportPage(Page, QWidget):
    """See the module docstring."""

    def __init__(self, tasks: Tasks, parent=None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.formats: dict[str, QCheckBox] = {}
        self.wanted_formats: tuple[str, ...] = ()
        self.out_dir: str | None = None
        self.report = None
        self.report_for: tuple[Path, str] | None = None  # the (run, checkpoint) the shown results are about
        self._exporting_for: tuple[Path, str] | None = None
        self.exporting = False
        self.available = export_available()
        self._build()
        self.refresh()

    def _build(self) -> None:
        box = QGroupBox("What to export")
        f = QFormLayout(box)
        self.run = QComboBox()
        self.run.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run.setMinimumContentsLength(16)
        self.run.setToolTip("The run whose trained model to export")
        self.run.currentIndexChanged.connect(self._run_changed)
        self.checkpoint = QComboBox()
        self.checkpoint.addItem("best (highest validation accuracy)", "best")
        self.checkpoint.addItem("last (end of training)", "last")
        self.checkpoint.setToolTip("Which checkpoint of the run to export")
        self.checkpoint.currentIndexChanged.connect(self._run_changed)
        f.addRow("Run", self.run)
        f.addRow("Checkpoint", self.checkpoint)
        self.formats_box = QVBoxLayout()
        f.addRow("Formats", self.formats_box)
        self.folder = QLabel()
        self.folder.setWordWrap(True)
        self.folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose = QPushButton("Change folder…")
        self.choose.setToolTip("Write the files somewhere else (default: the run's export/ folder)")
        self.choose.clicked.connect(self._choose_folder)
        f.addRow("Folder", self.folder)
        f.addRow("", self.choose)
        self.export_button = QPushButton("Export and verify")
        self.export_button.setToolTip("Write the files, reload each one as its users would, and compare its "
                                      "outputs with the PyTorch model")
        self.export_button.clicked.connect(self.export)
        self.open_button = QPushButton("Open folder")
        self.open_button.setToolTip("Show the exported files in the file manager")
        self.open_button.clicked.connect(self.open_folder)
        self.open_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.open_button)
        left = QVBoxLayout()
        left.addWidget(box)
        left.addLayout(buttons)
        left.addStretch(1)
        holder = QWidget()
        holder.setLayout(left)
        holder.setFixedWidth(380)

        self.banner = Banner()
        self.header = header_label("Choose a run and formats, then Export and verify.")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setToolTip("Every exported file and whether it reproduced the model's outputs")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(140)
        self.log.setToolTip("What the exporter did")
        right = QVBoxLayout()
        right.addWidget(self.banner)
        right.addWidget(self.header)
        right.addWidget(self.table, 1)
        right.addWidget(self.log)
        layout = QHBoxLayout(self)
        layout.addWidget(holder)
        layout.addLayout(right, 1)
        if not self.available:
            self.banner.show_message("info", "Export is not part of this build yet. Runs are kept as checkpoints "
                                     "(checkpoints/best.pt) that load with torch.load(weights_only=True).")
            self.export_button.setEnabled(False)

    # ------------------------------------------------------------------------- choices
    def load_formats(self) -> None:
        """Fill the format check boxes; the exporter is imported in the background."""
        if not self.available or self.formats:
            return
        task = self.tasks.start("exporter", lambda cancel: tuple(getattr(importlib.import_module(MODULE), "OFFERED",
                                                                        importlib.import_module(MODULE).FORMATS)))
        task.done.connect(self.set_formats)
        task.failed.connect(self._exporter_failed)

    @Slot(object)
    def set_formats(self, names: tuple[str, ...]) -> None:
        for name in names:
            check = QCheckBox(name)
            check.setChecked(name in (self.wanted_formats or DEFAULT_FORMATS))
            check.setToolTip(FORMAT_HELP.get(name, f"Export as {name}"))
            self.formats[name] = check
            self.formats_box.addWidget(check)

    @Slot(str)
    def _exporter_failed(self, message: str) -> None:
        self.banner.show_message("error", f"The exporter could not be loaded: {message}")
        self.available = False
        self.export_button.setEnabled(False)

    def refresh(self, select: Path | None = None) -> None:
        """List the runs that have a checkpoint (newest first)."""
        current = select or self.selected_run()
        self.run.blockSignals(True)
        self.run.clear()
        for run in list_runs():
            if run.checkpoint("best").exists() or run.checkpoint("last").exists():
                s = run.read_summary()
                acc = s.get("best_val_accuracy")
                label = f"{s.get('name') or run.id} — {str(s.get('created', '')).replace('T', ' ')}"
                if isinstance(acc, (int, float)):
                    label += f" — best val acc {acc:.1%}"
                self.run.addItem(label, str(run.path))
        if current is not None:
            self.run.setCurrentIndex(max(self.run.findData(str(current)), 0))
        self.run.blockSignals(False)
        self._run_changed()

    def selected_run(self) -> Path | None:
        data = self.run.currentData()
        return Path(data) if data else None

    def restore_settings(self, store) -> None:
        formats = read_json(store, "export/formats")
        if isinstance(formats, list):
            self.set_selected_formats([str(f) for f in formats])

    def save_settings(self, store) -> None:
        if self.formats:  # (the list of formats is known once the engine has loaded)
            write_json(store, "export/formats", self.selected_formats())

    def selected_formats(self) -> list[str]:
        return [name for name, check in self.formats.items() if check.isChecked()]

    def set_selected_formats(self, names: list[str]) -> None:
        """Tick these formats (remembered until the exporter has said which formats exist)."""
        self.wanted_formats = tuple(names)
        for name, check in self.formats.items():
            check.setChecked(name in names)

    def target_folder(self) -> Path | None:
        run = self.selected_run()
        if self.out_dir:
            return Path(self.out_dir)
        return run / "export" if run else None

    def _choice(self) -> tuple[Path, str] | None:
        run = self.selected_run()
        return (run, self.checkpoint.currentData()) if run is not None else None

    def _clear_results(self) -> None:
        """Forget the shown export: it was about another run (or checkpoint) than the one selected now."""
        self.report = self.report_for = None
        self.table.setRowCount(0)
        self.log.clear()
        if self.available:
            self.banner.clear()
        self.open_button.setEnabled(False)

    def _run_changed(self, *_) -> None:
        if self.report is not None and self.report_for != self._choice():
            self._clear_results()
        target = self.target_folder()
        self.folder.setText(str(target) if target else "–")
        has_run = self.selected_run() is not None
        self.export_button.setEnabled(self.available and has_run and not self.exporting)
        if not has_run:
            self.header.setText("No trained runs yet: train one on the Train page, then export it here.")
        elif self.report is None:
            self.header.setText("Choose a run and formats, then Export and verify.")

    def _choose_folder(self) -> None:
        path = dialogs.choose_folder(self, "Export into", str(self.target_folder() or ""))
        if path:
            self.out_dir = path
            self._run_changed()

    # -------------------------------------------------------------------------- export
    def export(self) -> None:
        run, formats = self.selected_run(), self.selected_formats()
        if run is None or not self.available:
            return
        if not formats:
            self.banner.show_message("warning", "Tick at least one format to export.")
            return
        export_run = importlib.import_module(MODULE).export_run
        which, out = self.checkpoint.currentData(), self.out_dir
        self._clear_results()
        self._exporting_for = self._choice()
        self.header.setText(f"Exporting {Run(run).read_summary().get('name') or run.name} as {', '.join(formats)}…")
        self.exporting = True
        self.export_button.setEnabled(False)
        self.open_button.setEnabled(False)
        def job(cancel, report):
            from ftstudio.core.engine import quant_data  # calibrates onnx-int8 on the run's training images

            return export_run(run, formats=formats, out_dir=out, checkpoint=which, progress=report,
                              quant_loader=quant_data)

        task = self.tasks.start("export", job, reports=True)
        task.message.connect(self._message)
        task.done.connect(self._done)
        task.failed.connect(self._failed)

    @Slot(str)
    def _message(self, text: str) -> None:
        self.log.appendPlainText(text)

    @Slot(object)
    def _done(self, report) -> None:
        self.report, self.report_for, self.exporting = report, self._exporting_for, False
        if self.report_for != self._choice():  # another run was selected meanwhile: don't show these as its files
            name = Run(self.report_for[0]).read_summary().get("name") or self.report_for[0].name
            self._clear_results()
            self.banner.show_message("info", f"The export of {name} finished in {report.out_dir}.")
            self._run_changed()
            return
        files = list(report.files)
        self.table.setRowCount(len(files))
        for r, f in enumerate(files):
            latency = getattr(f, "latency_ms", math.nan)
            cells = [f.format, Path(f.path).name, _size(Path(f.path)),
                     f"{latency:.2f} ms" if math.isfinite(latency) else "–", "✔ yes" if f.verified else "✖ no",
                     _diff(f.max_abs_diff), f.message]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == VERIFIED_COLUMN:
                    item.setForeground(QBrush(QColor(theme.OK if f.verified else theme.WRONG)))
                item.setToolTip(str(f.path) if c == 1 else text)
                self.table.setItem(r, c, item)
        extra = [Path(p).name for p in (report.signature_path, report.card_path) if p]
        also = f", with {' and '.join(extra)}" if extra else ""
        self.header.setText(f"{len(files)} model file(s){also}, in {report.out_dir}")
        if report.ok:
            int8 = " (int8: within its accuracy limit, see the note)" if any(
                f.format == "onnx-int8" for f in files) else ""
            self.banner.show_message("success", f"Exported and verified: every file reloads and reproduces the "
                                     f"model's outputs{int8}. Folder: {report.out_dir}")
        else:
            bad = ", ".join(f.format for f in files if not f.verified) or "see the table"
            self.banner.show_message("error", f"Verification failed for {bad}: the reloaded file does not reproduce "
                                     "the model's outputs (details in the table).")
        self.open_button.setEnabled(True)
        self._run_changed()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.exporting = False
        self.banner.show_message("error", f"Export failed: {message}")
        self.header.setText("Nothing was exported.")
        self._run_changed()

    def open_folder(self) -> None:
        folder = self.report.out_dir if self.report is not None else self.target_folder()
        if folder is not None:
            dialogs.reveal(folder)
