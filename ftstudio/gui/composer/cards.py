"""A layer as a card: type, key parameters, output shape, parameter count, frozen or trainable,
learning-rate multiplier — red with the engine's message when the layer is invalid. A Residual
card holds its layers as nested cards; a backbone card lists its stages (read-only)."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QMouseEvent
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from ftstudio.core.architecture import AUTO, CLASSES, LAYERS, LayerSpec
from ftstudio.core.finetune.start_from import WEIGHTED

PATH_MIME = "application/x-ftstudio-layer-path"  # a card being dragged to another place
SHORT = {"out_features": "out", "out_channels": "out", "kernel_size": "k", "stride": "stride", "padding": "pad",
         "dilation": "dil", "groups": "groups", "p": "p", "negative_slope": "slope", "output_size": "size",
         "name": "", "weights": "weights", "projection": "projection"}
ALWAYS = {"Linear": ("out_features",), "Conv2d": ("out_channels", "kernel_size"), "MaxPool2d": ("kernel_size",),
          "AvgPool2d": ("kernel_size",), "AdaptiveAvgPool2d": ("output_size",), "Dropout": ("p",),
          "LeakyReLU": ("negative_slope",), "Backbone": ("name", "weights"),
          "TimmBackbone": ("name", "weights")}


def shape_text(shape) -> str:
    return "×".join(str(d) for d in shape) if shape else "–"


def key_params(layer: LayerSpec, resolved: dict | None = None) -> str:
    """The few settings that tell layers apart: the main ones always, the others when not default."""
    schema = LAYERS[layer.type].params
    parts = []
    for name, p in schema.items():
        value = layer.params.get(name, p.default)
        if name not in ALWAYS.get(layer.type, ()) and (value == p.default or value == AUTO):
            continue
        if p.kind == "bool":
            parts.append(name if value else f"no {name}")
            continue
        if value in (CLASSES, AUTO) and resolved and name in resolved and resolved[name] != value:
            value = f"{value} ({resolved[name]})"
        if layer.type == "Conv2d" and name == "kernel_size":
            value = f"{value}×{value}"
        label = SHORT.get(name, name)
        parts.append(f"{label} {value}".strip() if value != "" else "")
    return " · ".join(p for p in parts if p)


class Card(QFrame):
    """A card on the canvas: selectable, draggable (layers only)."""

    clicked = Signal(str)

    def __init__(self, path: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layerCard")
        self.path = path
        self.setProperty("selected", False)
        self.setProperty("error", False)
        self.setProperty("frozen", False)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._press: QPoint | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(10, 5, 8, 5)
        outer.setSpacing(1)
        top = QHBoxLayout()
        top.setSpacing(6)
        self.index = QLabel(path.rpartition(".")[2] if path and path[0].isdigit() else "")
        self.index.setObjectName("cardIndex")
        self.title = QLabel(f"<b>{title}</b>")
        self.shape = QLabel()
        self.shape.setObjectName("cardShape")
        self.shape.setToolTip("Output shape per image")
        top.addWidget(self.index)
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.shape)
        self.top = top
        bottom = QHBoxLayout()
        self.detail = QLabel()
        self.detail.setObjectName("cardDetail")
        self.detail.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.weights = QLabel()
        self.weights.setObjectName("cardDetail")
        bottom.addWidget(self.detail, 1)
        bottom.addWidget(self.weights)
        self.error = QLabel()
        self.error.setObjectName("cardError")
        self.error.setWordWrap(True)
        self.error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.error.hide()
        outer.addLayout(top)
        outer.addLayout(bottom)
        outer.addWidget(self.error)
        self.body_layout = outer

    def set_flag(self, name: str, value: bool) -> None:
        if self.property(name) != value:
            self.setProperty(name, value)
            self.style().unpolish(self)
            self.style().polish(self)

    def set_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.set_flag("error", bool(message))
        self.setToolTip(message)

    def error_text(self) -> str:
        return self.error.text() if self.property("error") else ""

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 — Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
            self.clicked.emit(self.path)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None or not self.draggable():
            return
        if (event.position().toPoint() - self._press).manhattanLength() < QApplication.startDragDistance():
            return
        self._press = None
        drag = QDrag(self)
        drag.setMimeData(self.mime())
        drag.setPixmap(self.grab().scaledToWidth(min(self.width(), 320)))
        drag.exec(Qt.DropAction.MoveAction)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._press = None
        super().mouseReleaseEvent(event)

    def draggable(self) -> bool:
        return False

    def mime(self) -> QMimeData:
        mime = QMimeData()
        mime.setData(PATH_MIME, self.path.encode("utf-8"))
        return mime


class LayerCard(Card):
    """One layer; ``freeze_toggled(path, frozen)`` from its snowflake button."""

    freeze_toggled = Signal(str, bool)

    def __init__(self, path: str, layer: LayerSpec, parent: QWidget | None = None) -> None:
        super().__init__(path, layer.type, parent)
        self.layer = layer
        self.inherited_freeze = False
        if layer.name:
            name = QLabel(f"<i>{layer.name}</i>")
            name.setObjectName("cardDetail")
            self.top.insertWidget(2, name)
        if layer.id or layer.inputs:  # the graph's wiring, in the outline too
            wires = QLabel(" ".join(filter(None, (layer.id and f"<b>{layer.id}</b>",
                                                  layer.inputs and f"← {', '.join(layer.inputs)}"))))
            wires.setObjectName("cardWiring")
            wires.setToolTip("This layer's id, and the layers it takes its input from (wire them on the graph)")
            self.top.insertWidget(2, wires)
        self.freeze = QToolButton()
        self.freeze.setObjectName("freezeButton")
        self.freeze.setCheckable(True)
        self.freeze.setChecked(layer.freeze)
        self.freeze.setAutoRaise(True)
        self.freeze.setText("❄")
        self.freeze.setToolTip("Frozen: its weights do not train (click to toggle)" if layer.freeze else
                               "Trainable (click to freeze its weights)")
        self.freeze.toggled.connect(lambda on: self.freeze_toggled.emit(self.path, on))
        self.freeze.setVisible(layer.type in WEIGHTED or layer.freeze)  # nothing to freeze in a ReLU
        self.top.addWidget(self.freeze)
        self.set_flag("frozen", layer.freeze)
        self.detail.setText(key_params(layer))
        self.setToolTip(LAYERS[layer.type].help)
        self.children_box: QVBoxLayout | None = None
        self.placeholder: QLabel | None = None
        if LAYERS[layer.type].container or layer.type == "Backbone":
            self._add_body()

    def _add_body(self) -> None:
        body = QFrame()
        body.setObjectName("cardBody")
        box = QVBoxLayout(body)
        box.setContentsMargins(14, 4, 0, 2)
        box.setSpacing(4)
        self.children_box = box
        self.body = body
        self.body_layout.addWidget(body)
        if self.layer.type == "Backbone":
            self.stages_toggle = QToolButton()
            self.stages_toggle.setAutoRaise(True)
            self.stages_toggle.setCheckable(True)
            self.stages_toggle.setChecked(True)
            self.stages_toggle.setText("stages")
            self.stages_toggle.setToolTip("Show or hide the backbone's stages")
            self.stages_toggle.toggled.connect(body.setVisible)
            self.top.insertWidget(self.top.count() - 1, self.stages_toggle)
        elif not self.layer.layers:
            self.placeholder = QLabel("Drop layers here")
            self.placeholder.setObjectName("cardDetail")
            self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.placeholder.setMinimumHeight(28)
            box.addWidget(self.placeholder)

    def draggable(self) -> bool:
        return True

    def show_info(self, info, inherited_freeze: bool) -> None:
        """The engine's view of this layer: shape, parameters (None while it is being worked out)."""
        self.inherited_freeze = inherited_freeze
        layer = self.layer
        if info is None:
            self.shape.setText("…")
            self.weights.setText("")
            self.set_error("")
            return
        detail = key_params(layer, info.resolved)
        if layer.type == "Residual" and info.out_shape:
            skip = "identity" if info.in_shape == info.out_shape else "projected to the block's shape"
            detail = " · ".join(filter(None, [f"output + input ({skip})", detail]))
        self.detail.setText(detail)
        self.shape.setText(shape_text(info.out_shape) if info.out_shape else "")
        frozen = layer.freeze or inherited_freeze
        state = "frozen" + (" (block)" if inherited_freeze and not layer.freeze else "") if frozen else "trainable"
        parts = [f"{info.params:,} params · {state}" if info.params else "no weights" if info.out_shape else ""]
        if layer.lr_mult != 1.0:
            parts.append(f"lr ×{layer.lr_mult:g}")
        self.weights.setText(" · ".join(p for p in parts if p))
        self.set_flag("frozen", frozen)
        self.set_error(info.error if info.error != "after an invalid layer" else "")
        if info.error == "after an invalid layer":
            self.shape.setText("?")
            self.shape.setToolTip("Unknown until the layer before it is fixed")

    def show_stages(self, stages) -> None:
        """A backbone's stages as small read-only rows (name, type, shape, parameters)."""
        if self.children_box is None or self.layer.type != "Backbone":
            return
        while self.children_box.count():
            item = self.children_box.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for stage in stages:
            row = QLabel(f"{stage.name} <span style='color:gray'>{stage.type}</span> — "
                         f"{shape_text(stage.out_shape)} · {stage.params:,} params")
            row.setObjectName("stageRow")
            row.setToolTip("A stage of the torchvision backbone (its layers train or freeze together)")
            self.children_box.addWidget(row)
        self.stages_toggle.setText(f"{len(stages)} stages")
