"""The Model page: choose an architecture and see what it is — layers, output shapes, parameters.

A self-contained widget that takes and gives a `ModelSpec` (``set_model`` / ``model_spec``), so
the composer can replace its insides without touching the window. Shapes come from
`architecture.analyze` on the meta device (no weights allocated), in the background when a
runner is given.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ftstudio.core.architecture import ModelSpec
from ftstudio.core.architecture.presets import load_preset, preset_description, preset_names, resolve_model
from ftstudio.core.errors import InputError
from ftstudio.gui import dialogs, theme
from ftstudio.gui.widgets.banner import Banner, header_label

Runner = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[str], None]], None]
COLUMNS = ("#", "Layer", "Settings", "Output shape", "Parameters", "Trainable")


def _sync(fn, on_done, on_failed) -> None:
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 — shown in the page's banner
        on_failed(str(exc))
    else:
        on_done(result)


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape) if shape else "–"


def _settings(info) -> str:
    skip = {"bias"} if info.resolved.get("bias", True) is True else set()
    parts = [f"{k}={v}" for k, v in info.resolved.items() if k not in skip and v not in ("", None)]
    return ", ".join(parts)


class ModelPage(QWidget):
    """Presets (or an architecture file) and a summary table of the chosen network."""

    changed = Signal()  # the user picked another architecture

    def __init__(self, run_async: Runner | None = None, parent=None) -> None:
        super().__init__(parent)
        self.run_async = run_async or _sync
        self._spec: ModelSpec = resolve_model("mlp")
        self._value: str | dict = "mlp"
        self._input: tuple[tuple[int, int, int], int] | None = None
        self._batch_size = 64
        self._generation = 0
        self.analysis = None
        self._build()
        self._show_choice()

    def _build(self) -> None:
        left = QGroupBox("Architecture")
        v = QVBoxLayout(left)
        self.presets = QListWidget()
        self.presets.setToolTip("Ready-made architectures; each adapts to your data's image size and classes")
        for name in preset_names():
            try:
                title = load_preset(name).name or name
                tip = preset_description(name)
            except InputError as exc:
                title, tip = name, str(exc)
            item = QListWidgetItem(f"{name} — {title}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(tip)
            self.presets.addItem(item)
        self.presets.currentItemChanged.connect(self._preset_clicked)
        self.open_button = QPushButton("Open architecture file…")
        self.open_button.setToolTip("Load an architecture JSON (as saved by the composer or written by hand)")
        self.open_button.clicked.connect(self._open_file)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop)
        v.addWidget(self.presets)
        v.addWidget(self.open_button)
        v.addWidget(self.description, 1)
        left.setFixedWidth(310)

        right = QVBoxLayout()
        self.header = header_label("Load data to see shapes and parameter counts")
        self.banner = Banner()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setToolTip("Each layer with its settings, the shape it outputs per image, and its parameters")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        right.addWidget(self.header)
        right.addWidget(self.banner)
        right.addWidget(self.table, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(left)
        layout.addLayout(right, 1)

    # ------------------------------------------------------------------------- the API
    def set_model(self, value: str | dict | ModelSpec) -> None:
        """Show an architecture: a preset name, an architecture dict or a ModelSpec."""
        spec = resolve_model(value)
        self._value = spec.to_dict() if isinstance(value, ModelSpec) else value
        self._spec = spec
        self._show_choice()
        self._analyze()

    def model_spec(self) -> ModelSpec:
        return self._spec

    def model_value(self) -> str | dict:
        """What a recipe stores: the preset name, or the architecture itself."""
        return self._value

    def set_input(self, shape: tuple[int, int, int] | None, num_classes: int = 0) -> None:
        self._input = (tuple(shape), num_classes) if shape else None
        self._analyze()

    def set_batch_size(self, batch_size: int) -> None:
        self._batch_size = batch_size
        self._show_totals()

    # ---------------------------------------------------------------------------- view
    def _show_choice(self) -> None:
        name = self._value if isinstance(self._value, str) else None
        self.presets.blockSignals(True)
        self.presets.setCurrentRow(-1)
        for i in range(self.presets.count()):
            if self.presets.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.presets.setCurrentRow(i)
        self.presets.blockSignals(False)
        if name in preset_names():
            self.description.setText(preset_description(name))
        else:
            where = f" from {name}" if name else ""
            title = html.escape(self._spec.name or "Custom architecture")
            self.description.setText(f"<b>{title}</b>{html.escape(where)}: "
                                     f"{len(self._spec.layers)} layers")

    def _preset_clicked(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        if name != self._value:
            self.set_model(name)
            self.changed.emit()

    def _open_file(self) -> None:
        path = dialogs.choose_file(self, "Open an architecture", "", "Architecture JSON (*.json)")
        if not path:
            return
        try:
            self.set_model(str(Path(path)))
        except InputError as exc:
            self.banner.show_message("error", str(exc))
            return
        self.changed.emit()

    def _analyze(self) -> None:
        if self._input is None:
            self.analysis = None
            self.table.setRowCount(0)
            self.header.setText("Load data to see shapes and parameter counts")
            return
        from ftstudio.core.architecture import analyze

        spec, (shape, classes) = self._spec, self._input
        self._generation += 1
        generation = self._generation
        self.header.setText("Analysing…")

        def done(analysis) -> None:
            if generation == self._generation:
                self._show_analysis(analysis)

        def failed(message: str) -> None:
            if generation == self._generation:
                self.analysis = None
                self.banner.show_message("error", message)

        self.run_async(lambda: analyze(spec, shape, classes), done, failed)

    def _show_analysis(self, analysis) -> None:
        self.analysis = analysis
        rows = analysis.layers
        self.table.setRowCount(len(rows) + 1)
        self._set_row(0, ["", "input", "", _shape(analysis.input_shape), "", ""], None)
        for r, info in enumerate(rows, start=1):
            depth = info.path.count(".")
            cells = [info.path, "   " * depth + info.type, info.error or _settings(info), _shape(info.out_shape),
                     f"{info.params:,}", f"{info.trainable:,}"]
            self._set_row(r, cells, info.error or None)
        if analysis.error:
            self.banner.show_message("error", analysis.error)
        else:
            self.banner.clear()
        self._show_totals()

    def _set_row(self, row: int, cells: list[str], error: str | None) -> None:
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if c >= 4:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if error:
                item.setForeground(QBrush(QColor(theme.WRONG)))
                item.setToolTip(error)
            self.table.setItem(row, c, item)

    def _show_totals(self) -> None:
        a = self.analysis
        if a is None:
            return
        out = _shape(a.output_shape)
        memory = a.memory_estimate(self._batch_size) / 1e6
        title = html.escape(self._spec.name or "Custom architecture")
        self.header.setText(f"<b>{title}</b> — {len(a.layers)} layers · "
                            f"<b>{a.params:,}</b> parameters ({a.trainable:,} trainable) · {a.size_mb():.1f} MB · "
                            f"input {_shape(a.input_shape)} → output {out} · about {memory:,.0f} MB to train at "
                            f"batch size {self._batch_size}")
