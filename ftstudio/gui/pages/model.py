"""The Model page: the visual layer composer.

Presets and the layer palette on the left, the network as cards in the middle, the selected
layer's properties on the right. Every edit is an undoable command (`composer.editor`); after
each one the page re-analyses the network on the meta device (debounced, in the background) and
puts every shape, parameter count and error on the cards. New / Open / Save / Save As read and
write exactly the architecture JSON `ftstudio train --model PATH` takes. "Start from a run" loads a
trained network to fine-tune from its weights; "Check" runs one real batch forward and backward.
Under the summary, one line says whether the network fits the chosen device for training at the batch
size (`core.planning.memory`), and what to change when it does not; its tooltip has the numbers.

The page takes and gives a `ModelSpec` (``set_model`` / ``model_spec`` / ``model_value``) and emits
``changed`` when the architecture changes, so the main window and the wizard can embed it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QScrollArea, QSplitter,
                               QStyle, QVBoxLayout, QWidget)

from ftstudio.core.architecture import ModelSpec
from ftstudio.core.architecture.presets import load_preset, preset_description, preset_names, resolve_model
from ftstudio.core.errors import InputError
from ftstudio.gui.composer.canvas import Canvas, scrolling
from ftstudio.gui.composer.cards import shape_text
from ftstudio.gui.composer.documents import DocumentActions
from ftstudio.gui.composer.editor import DocState, Editor
from ftstudio.gui.composer.graph_view import GraphView
from ftstudio.gui.composer.palette import Palette
from ftstudio.gui.composer.properties import PropertyEditor
from ftstudio.gui.composer.runs import RunActions
from ftstudio.gui.pages.base import Page
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.toolbar import CompactToolBar

ANALYSE_DELAY_MS = 120  # edits in quick succession are analysed once


def _sync(fn, on_done, on_failed) -> None:
    """Without a task runner (a page under test), work runs at once on the calling thread."""
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 — shown in the page's banner
        on_failed(str(exc))
    else:
        on_done(result)


def _analyse(spec: ModelSpec, shape, classes: int, device: str):
    """The engine's analysis, the stages of every valid backbone, and the memory side: the network's
    activations and the device's free memory (or why it is unknown) — background work."""
    from ftstudio.core.architecture import analyze
    from ftstudio.core.planning.memory import activation_profile, device_budget

    analysis = analyze(spec, shape, classes)
    stages = {}
    for info in analysis.layers:
        if info.type == "Backbone" and not info.error and info.in_shape:
            from ftstudio.core.architecture.backbones import backbone_stages

            stages[info.path] = backbone_stages(info.resolved["name"], info.in_shape)
    try:
        budget = device_budget(device)
    except (InputError, RuntimeError) as exc:  # not on this machine; a CUDA driver that will not answer
        budget = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return analysis, stages, (activation_profile(analysis), budget)


def dense_widths(analysis) -> str:
    """"64-256-10" for a network of only Flatten / Linear / activations / dropout, else ""."""
    dense = {"Flatten", "Linear", "Dropout", "BatchNorm1d", "LayerNorm", "ReLU", "LeakyReLU", "GELU", "SiLU",
             "Sigmoid", "Tanh"}
    top = [i for i in analysis.layers if "." not in i.path]
    linear = [i for i in top if i.type == "Linear"]
    if not linear or any(i.type not in dense or not i.in_shape or not i.out_shape for i in top):
        return ""
    return "-".join(str(v) for v in (linear[0].in_shape[-1], *(i.out_shape[-1] for i in linear)))


class ModelPage(Page, DocumentActions, RunActions, QWidget):
    """See the module docstring. ``document_changed``: the file name or unsaved marker changed."""

    changed = Signal()  # the architecture changed (an edit, undo, a preset, a file, a run)
    analysed = Signal()  # the cards show the analysis of the current network
    document_changed = Signal()

    def __init__(self, tasks=None, parent=None) -> None:
        super().__init__(parent)
        self.tasks = tasks  # workers.Tasks: background jobs with their own names (None: run at once)
        self.editor = Editor(resolve_model("mlp"), self)
        self.editor.load(DocState(self.editor.spec, preset="mlp", preset_spec=self.editor.spec), "", undoable=False)
        self._input: tuple[tuple[int, int, int], int] | None = None
        self._batch_size = 64
        # optimizer, momentum, amp, checkpointing: what the memory estimate depends on besides the batch size
        self.train_settings: tuple[str, float, bool, bool] = ("adam", 0.9, False, False)
        self._device = "auto"
        self.memory_side = None  # (Activations, DeviceBudget or why not) of the analysed network
        self.memory_fit = None  # the MemoryFit shown
        self._data = None  # (DataBundle, device) for Check
        self._generation = self._shown = 0  # analyses asked for / shown
        self._pending = 0  # background jobs of this page still running
        self.analysis = None
        self.analysed_spec: ModelSpec | None = None
        self.check_report = None
        self.check_banner = ""  # the banner's text while it shows a Check result (about the network then)
        self.timer = QTimer(self, singleShot=True, interval=ANALYSE_DELAY_MS)
        self.timer.timeout.connect(self._analyse_now)
        self._make_actions()
        self._build()
        self.editor.changed.connect(self._network_changed)
        self.editor.state_changed.connect(self._document_changed)
        self._document_changed()
        self._show_choice()

    # --------------------------------------------------------------------------- building
    def _make_actions(self) -> None:
        style, stack = self.style(), self.editor.stack
        spec = {"new": ("New", "Start an empty network (Ctrl+N)", ["Ctrl+N"], QStyle.StandardPixmap.SP_FileIcon,
                        self.new_network),
                "open": ("Open…", "Open an architecture JSON file (Ctrl+Shift+O)", ["Ctrl+Shift+O"],
                         QStyle.StandardPixmap.SP_DialogOpenButton, self.open_file),
                "save": ("Save", "Save the architecture as JSON — the file `ftstudio train --model PATH` takes "
                         "(Ctrl+S)", ["Ctrl+S"], QStyle.StandardPixmap.SP_DialogSaveButton, self.save),
                "save_as": ("Save As…", "Save the architecture to another file (Ctrl+Shift+S)", ["Ctrl+Shift+S"],
                            None, self.save_as),
                "start_from": ("Start from run…", "Load a trained run's network and fine-tune from its weights",
                               [], QStyle.StandardPixmap.SP_DirIcon, self.start_from_run),
                "check": ("Check", "Run one real batch forward and backward: time, peak memory, or the layer "
                          "that fails (F5)", ["F5"], QStyle.StandardPixmap.SP_DialogApplyButton, self.check),
                "search": ("Find layer", "Search the palette (Ctrl+F)", ["Ctrl+F"], None, self._focus_search)}
        self.actions_: dict[str, QAction] = {}
        for key, (text, tip, keys, icon, slot) in spec.items():
            action = QAction(text, self)
            if icon is not None:
                action.setIcon(style.standardIcon(icon))
            action.triggered.connect(lambda _=False, fn=slot: fn())
            self.actions_[key] = action
            self._register(action, tip, keys)
        undo, redo = stack.createUndoAction(self, "Undo"), stack.createRedoAction(self, "Redo")
        undo.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowBack))
        redo.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowForward))
        self._register(undo, "Undo the last edit (Ctrl+Z)", ["Ctrl+Z"])
        self._register(redo, "Redo (Ctrl+Shift+Z)", ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.actions_["undo"], self.actions_["redo"] = undo, redo

    def _register(self, action: QAction, tip: str, keys: list[str]) -> None:
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # only while on this page
        self.addAction(action)

    def _build(self) -> None:
        self.presets = QListWidget()
        self.presets.setToolTip("Ready-made architectures; each adapts to your data's image size and classes")
        for name in preset_names():
            try:
                title, tip = load_preset(name).name or name, preset_description(name)
            except InputError as exc:
                title, tip = name, str(exc)
            item = QListWidgetItem(f"{name} — {title}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(tip)
            self.presets.addItem(item)
        self.presets.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.presets.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.presets.setMaximumHeight(self.presets.sizeHintForRow(0) * (self.presets.count() + 1) + 6)
        self.presets.currentItemChanged.connect(self._preset_clicked)
        self.palette = Palette()
        self.palette.insert_requested.connect(lambda kind: self._guard(lambda: self.editor.insert(kind)))
        self.palette.insert_layer_requested.connect(self._insert_backbone)
        self.palette.backbones_wanted.connect(self._load_backbones)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        for title, widget, stretch in (("Presets", self.presets, 0), ("Layers", self.palette, 1)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            lv.addWidget(box, stretch)

        # undo/redo: their text names the edit, too long for the bar (it is the tooltip); Check keeps its label
        self.toolbar = CompactToolBar("Architecture", keep_text=(self.actions_["check"],),
                                      icon_only=(self.actions_["undo"], self.actions_["redo"]))
        for key in ("new", "open", "save", "save_as", None, "undo", "redo", None, "start_from", "check"):
            self.toolbar.addSeparator() if key is None else self.toolbar.addAction(self.actions_[key])
        self.header = header_label("Load data to see shapes and parameter counts")
        self.memory = header_label("", "memoryFit")
        self.memory.setTextFormat(Qt.TextFormat.RichText)
        self.memory.hide()
        self.banner = Banner()
        self.source_note = QLabel()
        self.source_note.setObjectName("hint")
        self.source_note.setWordWrap(True)
        self.source_note.hide()
        self.canvas = Canvas(self.editor, lambda text: self.banner.show_message("error", text))
        self.graph = GraphView(self.editor, lambda text: self.banner.show_message("error", text))
        self.views = QSplitter(Qt.Orientation.Vertical)  # the graph, and the card list as its outline
        self.views.addWidget(self.graph)
        self.views.addWidget(scrolling(self.canvas))
        self.views.setStretchFactor(0, 3)
        self.views.setStretchFactor(1, 2)
        self.views.setChildrenCollapsible(False)
        center = QWidget()
        cv = QVBoxLayout(center)
        cv.setContentsMargins(0, 0, 0, 0)
        for w, stretch in ((self.toolbar, 0), (self.header, 0), (self.memory, 0), (self.banner, 0),
                           (self.source_note, 0), (self.views, 1)):
            cv.addWidget(w, stretch)

        self.properties = PropertyEditor(self.editor)
        right = QScrollArea()
        right.setWidget(self.properties)
        right.setWidgetResizable(True)
        right.setMinimumWidth(250)
        splitter = QSplitter()
        for w in (left, center, right):
            splitter.addWidget(w)
        splitter.setSizes([210, 620, 250])  # at 1024 px the composer column keeps its tool bar labelled
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        layout = QHBoxLayout(self)
        layout.addWidget(splitter)

    def _insert_backbone(self, kind: str, params: dict) -> None:
        from ftstudio.core.architecture.composer import new_layer

        self._guard(lambda: self.editor.insert_layers([new_layer(kind, **params)]))

    def _load_backbones(self) -> None:
        """The catalogue's names for the palette's search (timm's import takes a second or two: background)."""
        def names():
            from ftstudio.core.architecture.catalogue import backbone_names, timm_available

            return backbone_names(), "" if timm_available() else "timm models: pip install 'ftstudio[timm]'"

        self._run("catalogue", names, lambda result: self.palette.set_backbones(*result),
                  lambda message: self.palette.set_backbones([], f"the catalogue could not be read: {message}"))

    def _focus_search(self) -> None:
        self.palette.search.setFocus()
        self.palette.search.selectAll()

    # ---------------------------------------------------------------------------- the API
    def set_model(self, value: str | dict | ModelSpec) -> None:
        """Show an architecture: a preset name, a JSON file path, an architecture dict or a ModelSpec.

        Undoable once the user has edited; raises InputError for a bad value (nothing changes)."""
        spec = resolve_model(value)
        if isinstance(value, str) and value.lower() in preset_names():
            state = DocState(spec, preset=value.lower(), preset_spec=spec)
        elif isinstance(value, str):
            state = DocState(spec, path=Path(value).expanduser())
        else:
            state = DocState(spec)
        if state != self.editor.state:
            self.editor.load(state, "Load network", undoable=self.editor.stack.count() > 0)

    def model_spec(self) -> ModelSpec:
        return self.editor.spec

    def model_value(self) -> str | dict:
        """What a recipe stores: the preset name while it is unchanged, or the architecture itself."""
        return self.editor.value()

    def finetune_plan(self):
        """The fine-tune plan when the network starts from a trained run's weights, else None."""
        from ftstudio.core.finetune.start_from import plan_for

        start = self.editor.state.start
        return plan_for(start, self.editor.spec) if start is not None else None

    def set_input(self, shape: tuple[int, int, int] | None, num_classes: int = 0) -> None:
        """The input the network will see (the caller resolves the model's input wishes, see
        `Session.model_input`); None: no data yet."""
        new = (tuple(shape), num_classes) if shape else None
        if new != self._input or self.analysis is None:
            self._input = new
            self._schedule(debounce=False)

    def set_train(self, train) -> None:
        """The training settings the memory estimate depends on (a `TrainConfig`)."""
        self._batch_size = train.batch_size
        self.train_settings = (train.optimizer, train.momentum, train.amp, train.grad_checkpoint)
        self._show_totals()

    def set_data(self, bundle, device: str = "auto") -> None:
        """The loaded data (a DataBundle) and the device Check runs one batch on and the memory fit is for."""
        self._data = (bundle, device) if bundle is not None else None
        if (device or "auto") != self._device:
            self._device = device or "auto"
            self._schedule(debounce=False)  # the free memory is the new device's

    def dirty(self) -> bool:
        return self.editor.dirty()

    def title(self) -> str:
        return self.editor.title()

    def restore_settings(self, store) -> None:
        self.restore_document_path(str(store.value("model/path") or ""))

    def save_settings(self, store) -> None:
        store.setValue("model/path", self.document_path())

    def busy(self) -> bool:
        """True while an analysis or another background job of this page is due."""
        return self.timer.isActive() or self._pending > 0 or self._shown != self._generation

    def _show_choice(self) -> None:
        name = self.model_value()
        self.presets.blockSignals(True)
        self.presets.setCurrentRow(-1)
        for i in range(self.presets.count()):
            if self.presets.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.presets.setCurrentRow(i)
        self.presets.blockSignals(False)

    def _document_changed(self) -> None:
        self._show_totals()
        self.document_changed.emit()

    # ---------------------------------------------------------------------- the network
    def _guard(self, fn) -> None:
        try:
            fn()
        except InputError as exc:
            self.banner.show_message("error", str(exc))

    def _network_changed(self) -> None:
        if self.check_banner and self.banner.text() == self.check_banner:  # about the network before this edit
            self.banner.clear()
        self.check_banner = ""
        self._show_choice()
        self._show_source()
        self._schedule()
        self.changed.emit()

    def _schedule(self, debounce: bool = True) -> None:
        # edits in quick succession are analysed once; new data or a new device are single events that
        # need no wait (at start-up the delay was most of the time between torch loaded and ready)
        self.timer.setInterval(ANALYSE_DELAY_MS if debounce else 0)
        self.timer.start()

    def _run(self, name: str, fn: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[str], None],
             counted: bool = True) -> None:
        """Run ``fn`` in the background (``tasks``; without them, at once); ``busy()`` meanwhile.

        Analyses are not ``counted``: a newer one replaces an older, and `busy` compares generations."""
        if self.tasks is None:
            self._pending += counted

            def finish(callback, value) -> None:
                self._pending -= counted
                callback(value)

            _sync(fn, lambda result: finish(done, result), lambda message: finish(failed, message))
            return
        task = self.tasks.start(f"model-{name}", lambda cancel: fn())
        if task.cancel.is_set():  # the window is closing: nothing runs
            return
        task.done.connect(done)
        task.failed.connect(failed)
        if counted:
            self._pending += 1
            task.relayed.connect(self._job_over)  # also when a result is dropped

    @Slot()
    def _job_over(self) -> None:
        self._pending -= 1

    def _analyse_now(self) -> None:
        self._generation += 1
        generation, spec = self._generation, self.editor.spec
        if self._input is None:
            self._shown = generation
            self._show_analysis(spec, None, {})
            return
        shape, classes = self._input
        device = self._device
        self.header.setText("Analysing…")

        def done(result) -> None:
            if generation == self._generation:
                self._shown = generation
                self._show_analysis(spec, *result)

        def failed(message: str) -> None:
            if generation == self._generation:
                self._shown = generation
                self._show_analysis(spec, None, {})
                self.banner.show_message("error", message)

        self._run("analysis", lambda: _analyse(spec, shape, classes, device), done, failed, counted=False)

    def _show_analysis(self, spec: ModelSpec, analysis, stages: dict, memory_side=None) -> None:
        self.analysis, self.analysed_spec, self.memory_side = analysis, spec, memory_side
        note = ""
        if self._data is not None and analysis is not None:
            bundle = self._data[0]
            data_shape = tuple(bundle.input_shape)
            note = f"{html.escape(bundle.name)}: {bundle.num_classes} classes"
            if data_shape != tuple(analysis.input_shape):
                note += f", images {shape_text(data_shape)} resized to {shape_text(analysis.input_shape)}"
        self.canvas.show_analysis(analysis, stages, note)
        self.graph.show_analysis(analysis, spec)
        problem = analysis.error if analysis is not None and spec.layers else ""
        quiet = not self.banner.text() or self.banner.kind == "warning"  # never hide what the user just did
        if problem and quiet:  # said above the cards too: the red card may be scrolled out of view
            self.banner.show_message("warning", f"The network cannot train yet: {problem}")
        elif not problem and self.banner.text() and self.banner.kind == "warning":
            self.banner.clear()
        self.properties.set_analysis(analysis)
        self._show_totals()
        self.analysed.emit()

    def is_analysed(self) -> bool:
        """The cards show the engine's view of the current network."""
        return not self.busy() and self.analysed_spec == self.editor.spec

    def _show_totals(self) -> None:
        marker = " •" if self.dirty() else ""
        doc = f"<b>{html.escape(self.title())}{marker}</b>"
        a = self.analysis
        if self._input is None or a is None or self.analysed_spec != self.editor.spec:
            layers = len(self.editor.spec.layers)
            wait = "Analysing…" if self._input is not None else "load data to see shapes and parameter counts"
            self.header.setText(f"{doc} — {layers} layers · {wait}")
            self.memory.hide()
            return
        name = self.editor.spec.name
        if name and name != self.title():
            doc += f" — {html.escape(name)}"
        out = shape_text(a.output_shape)
        widths = dense_widths(a)
        if widths:  # a plain MLP is known by its widths (64-256-10 on 8×8 digits), which depend on the data
            doc += f" · {widths}"
        self.header.setText(f"{doc} — {len(a.layers)} layers · <b>{a.params:,}</b> parameters "
                            f"({a.trainable:,} trainable) · {a.size_mb():.1f} MB · input {shape_text(a.input_shape)} → "
                            f"output {out}")
        self._show_memory(a)

    def _show_memory(self, a) -> None:
        """The one line: fits or not, and the first change that would make it fit; the numbers in its tooltip."""
        from ftstudio.gui import theme

        if self.memory_side is None or any(i.error for i in a.layers):  # a head still to add: memory is known
            self.memory.hide()
            return
        from ftstudio.core.planning.memory import plan

        profile, budget = self.memory_side
        if isinstance(budget, str):  # the chosen device is not there (cuda:1 on a one-GPU machine)
            self.memory_fit = None
            self.memory.setText(f"<b>Memory:</b> unknown — {html.escape(budget, quote=False)}")
            self.memory.setToolTip("")
            self.memory.show()
            return
        optimizer, momentum, amp, checkpointing = self.train_settings  # one process: fsdp needs torchrun
        fit = self.memory_fit = plan(a.params, a.trainable, profile, self._batch_size, budget, optimizer, momentum,
                                     amp, checkpointing)
        kind, symbol = ("success", "✔") if fit.fits else ("warning", "⚠")
        line = html.escape(fit.line(), quote=False).replace("Memory:", "<b>Memory:</b>", 1)
        self.memory.setText(f'<span style="color:{theme.banner_colors(kind)[1]}">{symbol}</span> {line}')
        self.memory.setToolTip("<br>".join(html.escape(row, quote=False) for row in fit.details().splitlines())
                               + "<br><i>An estimate made before anything is allocated; Check (F5) measures one "
                                 "real batch.</i>")
        self.memory.show()
