"""The property editor, generated from the registry's schema for the selected layer.

Spin boxes carry the parameter's range (its special word — auto, classes, same — sits at the
bottom of the range), choices become combo boxes, switches check boxes, and the help text is each
row's tooltip. Typing is validated as it happens (the row turns red with the schema's message);
a value is committed — as one undoable edit — when it is complete. Below the parameters: the
layer's name, freeze switch and learning-rate multiplier; for the input card, the input size.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QSpinBox,
                               QVBoxLayout, QWidget)

from ftstudio.core.architecture import AUTO, LAYERS, Param
from ftstudio.core.architecture.spec import check_param
from ftstudio.core.errors import InputError
from ftstudio.gui import theme
from ftstudio.gui.composer.editor import INPUT, Editor
from ftstudio.gui.widgets.form import FloatSpin

INPUT_PARAM = {0: Param("int", AUTO, "Channels of the images the network takes (auto: the data's)", 1, 3, (), (AUTO,)),
               1: Param("int", AUTO, "Image height the network takes (auto: the data's; set it to resize)", 1, 4096,
                        (), (AUTO,)),
               2: Param("int", AUTO, "Image width the network takes (auto: the data's; set it to resize)", 1, 4096,
                        (), (AUTO,))}
HOW_TO = ("Click a node or a card to edit its parameters.<br><br><b>Wire</b> (branches, skips): drag from a node's "
          "blue output port onto a layer below; join branches with Add or Concat (palette: Merge). Select a wire "
          "and press Del to remove it; Ctrl+wheel zooms, 0 fits.<br><b>Add</b>: drag a layer from the palette to "
          "where it goes, "
          "double-click it, or type in the search box and press Enter (it goes after the selected card)."
          "<br><b>Move</b>: drag a card, or Alt+↑ / Alt+↓.<br><b>Delete</b>: Del.<br><b>Copy / paste / duplicate"
          "</b>: Ctrl+C / Ctrl+V / Ctrl+D.<br><b>Freeze</b>: the ❄ on a card, or F.<br><b>Undo / redo</b>: Ctrl+Z / "
          "Ctrl+Shift+Z.<br><b>More</b>: right-click a card.")
LR_PARAM = Param("float", 1.0, "Learning-rate multiplier: this layer trains at lr × this (0 stops it)", 0.0, 1000.0)


class IntSpin(QSpinBox):
    """A spin box that lets a too-large number be typed (so the editor can say why it is refused)."""

    def validate(self, text: str, pos: int):
        state, text, pos = super().validate(text, pos)
        if state == QValidator.State.Invalid and text.strip().lstrip("-").isdigit():
            return QValidator.State.Intermediate, text, pos
        return state, text, pos


def make_widget(param: Param) -> QWidget:
    """The input widget for one parameter of the schema."""
    if param.kind == "bool":
        return QCheckBox()
    if param.kind == "choice":
        box = QComboBox()
        for choice in param.choices:
            box.addItem(str(choice), choice)
        return box
    if param.kind == "str":
        return QLineEdit()
    spin = IntSpin() if param.kind == "int" else FloatSpin()
    lo = param.min if param.min is not None else (-2**31 + 2 if param.kind == "int" else -1e9)
    hi = param.max if param.max is not None else (2**31 - 1 if param.kind == "int" else 1e9)
    if param.special:  # the word sits one step below the range
        spin.setSpecialValueText(param.special[0])
        lo -= 1
    if param.kind == "float":
        spin.setSingleStep(0.05 if hi <= 1 else 0.1)
    spin.setRange(int(lo) if param.kind == "int" else lo, int(hi) if param.kind == "int" else hi)
    spin.setKeyboardTracking(False)  # commit when complete; the text is still validated as typed
    spin.setAccelerated(True)
    return spin


def set_value(widget: QWidget, param: Param, value: Any) -> None:
    widget.blockSignals(True)
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        widget.setCurrentIndex(max(widget.findData(value), 0))
    elif isinstance(widget, QLineEdit):
        widget.setText(str(value))
    elif isinstance(value, str):  # a special word
        widget.setValue(widget.minimum())
    else:
        widget.setValue(value)
    widget.blockSignals(False)


def get_value(widget: QWidget, param: Param) -> Any:
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, QLineEdit):
        return widget.text()
    if param.special and widget.value() == widget.minimum():
        return param.special[0]
    return int(widget.value()) if param.kind == "int" else float(widget.value())


def changed_signal(widget: QWidget):
    if isinstance(widget, QCheckBox):
        return widget.toggled
    if isinstance(widget, QComboBox):
        return widget.currentIndexChanged
    if isinstance(widget, QLineEdit):
        return widget.editingFinished
    return widget.valueChanged


class PropertyEditor(QWidget):
    """See the module docstring."""

    def __init__(self, editor: Editor, parent=None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.path = None
        self.kind = None
        self.analysis = None  # the engine's view of the network, for what "auto" means
        self.widgets: dict[str, QWidget] = {}
        self.params: dict[str, Param] = {}
        self.hints: dict[str, QLabel] = {}
        self.title = QLabel()
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.help.setObjectName("hint")
        self.box = QGroupBox("Parameters")
        self.form = QFormLayout(self.box)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {theme.WRONG};")
        self.message.hide()
        self.training = QGroupBox("Training")
        t = QFormLayout(self.training)
        self.name = QLineEdit()
        self.name.setPlaceholderText("optional")
        self.name.setToolTip("A name for this layer; fine-tune plans and the CLI can refer to it")
        self.name.editingFinished.connect(self._name_edited)
        self.freeze = QCheckBox("Frozen")
        self.freeze.setToolTip("Frozen layers keep their weights while the rest trains (a frozen block freezes "
                               "everything inside it)")
        self.freeze.toggled.connect(lambda on: self._commit_fields(freeze=on))
        self.lr_mult = make_widget(LR_PARAM)
        self.lr_mult.setToolTip(LR_PARAM.help)
        self.lr_mult.valueChanged.connect(lambda v: self._commit_fields(lr_mult=float(v)))
        self.node_id = QLineEdit()
        self.node_id.setPlaceholderText("none (wiring gives one)")
        self.node_id.setToolTip("The id other layers' inputs name this layer by (letters, digits, _ or -); "
                                "wires follow a rename")
        self.node_id.editingFinished.connect(self._id_edited)
        self.inputs = QLabel()
        self.inputs.setWordWrap(True)
        self.inputs.setToolTip("Where this layer takes its input from; wire on the graph to change it")
        t.addRow("Name", self.name)
        t.addRow("Id", self.node_id)
        t.addRow("Inputs", self.inputs)
        t.addRow("", self.freeze)
        t.addRow("LR multiplier", self.lr_mult)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.help)
        layout.addWidget(self.box)
        layout.addWidget(self.message)
        layout.addWidget(self.training)
        layout.addStretch(1)
        editor.selection_changed.connect(self.refresh)
        editor.changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------------------ building
    def refresh(self, *_) -> None:
        """Show the selected layer's values (rebuilding the rows only when another kind is selected)."""
        path = self.editor.selected
        layer = self.editor.selected_layer()
        kind = INPUT if path == INPUT else (layer.type if layer is not None else None)
        if (path, kind) != (self.path, self.kind):
            self._build(path, kind)
        self.message.hide()
        if kind == INPUT:
            for i, widget in enumerate(self.widgets.values()):
                set_value(widget, INPUT_PARAM[i], self.editor.spec.input_shape[i])
            set_value(self.name, Param("str", "", ""), self.editor.spec.name)
        elif layer is not None:
            for name, widget in self.widgets.items():
                set_value(widget, self.params[name], layer.params.get(name, self.params[name].default))
            set_value(self.name, Param("str", "", ""), layer.name)
            set_value(self.freeze, Param("bool", False, ""), layer.freeze)
            set_value(self.lr_mult, LR_PARAM, layer.lr_mult)
            self._show_wiring(path, layer)
        self._show_resolved()

    def _show_wiring(self, path: str, layer) -> None:
        from ftstudio.core.architecture.graph import wiring

        top = "." not in path
        for widget in (self.node_id, self.inputs):
            widget.setVisible(top)
            self.training.layout().labelForField(widget).setVisible(top)
        if not top:
            return
        set_value(self.node_id, Param("str", "", ""), layer.id)
        index = int(path)
        sources = wiring(self.editor.spec.layers).sources[index]
        names = ["the input" if s < 0 else (self.editor.spec.layers[s].id or f"layer {s}") for s in sources]
        self.inputs.setText(", ".join(names) + ("" if layer.inputs else " (the previous layer)"))

    def _id_edited(self) -> None:
        if self.path and self.kind not in (None, INPUT) and "." not in self.path:
            try:
                self.editor.set_id(self.path, self.node_id.text().strip())
            except InputError as exc:
                self._show_error(self.node_id, str(exc))

    def _build(self, path: str, kind: str | None) -> None:
        self.path, self.kind = path, kind
        while self.form.rowCount():
            self.form.removeRow(0)
        self.widgets, self.params, self.hints = {}, {}, {}
        if kind is None:
            self.title.setText("<b>No layer selected</b>")
            self.help.setText(HOW_TO)
            self.box.hide()
            self.training.hide()
            return
        self.box.show()
        if kind == INPUT:
            self.title.setText("<b>Input</b>")
            self.help.setText("The images the network takes. auto: as the data comes; a number resizes the "
                              "data to it when training.")
            self.training.show()
            self.freeze.hide()
            self.lr_mult.hide()
            self.training.layout().labelForField(self.lr_mult).hide()
            for widget in (self.node_id, self.inputs):
                widget.hide()
                self.training.layout().labelForField(widget).hide()
            self.training.layout().labelForField(self.name).setText("Network name")
            for i, label in enumerate(("Channels", "Height", "Width")):
                self._add_row(str(i), label, INPUT_PARAM[i])
            return
        layer_type = LAYERS[kind]
        self.title.setText(f"<b>{kind}</b> <span style='color:gray'>({layer_type.group})</span>")
        self.help.setText(layer_type.help)
        self.box.setVisible(bool(layer_type.params))
        self.training.show()
        self.freeze.show()
        self.lr_mult.show()
        self.training.layout().labelForField(self.lr_mult).show()
        self.training.layout().labelForField(self.name).setText("Name")
        for name, param in layer_type.params.items():
            self._add_row(name, name.replace("_", " "), param)

    def _add_row(self, name: str, label: str, param: Param) -> None:
        widget = make_widget(param)
        widget.setToolTip(param.help)
        widget.setObjectName(f"param_{name}")
        changed_signal(widget).connect(lambda *_, n=name: self._commit(n))
        if isinstance(widget, (QSpinBox, FloatSpin)):
            line = widget.lineEdit()
            line.textEdited.connect(lambda text, n=name: self._validate(n, text))
            widget.editingFinished.connect(lambda n=name, line=line: self._validate(n, line.text()))
        caption = QLabel(label)
        caption.setToolTip(param.help)
        self.form.addRow(caption, widget)
        self.widgets[name], self.params[name] = widget, param

    # ------------------------------------------------------------------------------ editing
    def _validate(self, name: str, text: str) -> bool:
        """Check what is being typed against the schema; show why it is refused."""
        param, widget = self.params[name], self.widgets[name]
        text = text.strip()
        value: Any = text
        if isinstance(widget, (QSpinBox, FloatSpin)) and text == widget.specialValueText():
            value = param.special[0]
        elif text not in param.special:
            try:
                value = float(text.replace(",", ".")) if param.kind == "float" else int(text)
            except ValueError:
                value = text
        try:
            check_param(param, value, name.replace("_", " ") if not name.isdigit() else "size")
        except InputError as exc:
            self._show_error(widget, str(exc))
            return False
        self._show_error(widget, "")
        return True

    def _show_error(self, widget: QWidget, message: str) -> None:
        widget.setStyleSheet(f"border: 1px solid {theme.WRONG};" if message else "")
        self.message.setText(message)
        self.message.setVisible(bool(message))

    def _commit(self, name: str) -> None:
        widget, param = self.widgets[name], self.params[name]
        value = get_value(widget, param)
        self._show_error(widget, "")
        try:
            if self.kind == INPUT:
                shape = list(self.editor.spec.input_shape)
                shape[int(name)] = value
                self.editor.set_input_shape(tuple(shape))
            elif self.path:
                self.editor.set_param(self.path, name, value)
        except InputError as exc:
            self._show_error(widget, str(exc))

    def _commit_fields(self, **changes) -> None:
        if self.path and self.kind not in (None, INPUT):
            self.editor.set_fields(self.path, **changes)

    def _name_edited(self) -> None:
        name = self.name.text().strip()
        if self.kind == INPUT:
            self.editor.set_name(name)
        elif self.path and self.kind is not None:
            self._commit_fields(name=name)

    def set_analysis(self, analysis) -> None:
        self.analysis = analysis
        self._show_resolved()

    def _show_resolved(self) -> None:
        """Beside an "auto" / "classes" value, what it resolves to for the current data."""
        infos = self.analysis.layers if self.analysis is not None else ()
        info = next((i for i in infos if i.path == self.path), None)
        if info is None or self.kind in (None, INPUT) or info.type != self.kind:
            return
        for name, widget in self.widgets.items():
            param = self.params[name]
            resolved = info.resolved.get(name)
            if param.special and get_value(widget, param) in param.special and resolved not in (None, *param.special):
                widget.setToolTip(f"{param.help}\nNow: {resolved}")
                if isinstance(widget, (QSpinBox, FloatSpin)):
                    widget.setSpecialValueText(f"{param.special[0]} ({resolved})")
            elif isinstance(widget, (QSpinBox, FloatSpin)) and param.special:
                widget.setSpecialValueText(param.special[0])
