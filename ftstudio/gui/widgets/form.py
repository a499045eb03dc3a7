"""A form generated from a recipe dataclass: one widget per field, ranges and tooltips from its schema.

The engine's dataclasses (`TrainConfig`, `AugmentSpec`, …) carry help text and ranges in their
field metadata; this form reads them, so a tooltip and the CLI's ``--help`` never disagree.
Optional numbers get an "Off" / "All" value at the bottom of their range.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QScrollArea, QSpinBox, QWidget

from ftstudio.core.config.schema import field_help

LABELS = {
    "epochs": "Epochs", "batch_size": "Batch size", "lr": "Learning rate", "optimizer": "Optimizer",
    "momentum": "Momentum", "weight_decay": "Weight decay", "scheduler": "LR schedule",
    "warmup_epochs": "Warm-up epochs", "step_size": "Decay every (epochs)", "gamma": "Decay factor",
    "grad_clip": "Gradient clipping", "amp": "Mixed precision", "grad_checkpoint": "Gradient checkpointing",
    "seed": "Seed",
    "early_stopping": "Early stopping (patience)", "label_smoothing": "Label smoothing",
    "crop": "Random shift (px)", "flip": "Horizontal flip", "rotation": "Random rotation (°)",
    "color": "Colour jitter (±)", "blur": "Blur (max sigma px)", "noise": "Noise (std)", "erase": "Random erasing (p)",
    "val_split": "Validation split", "split_seed": "Split seed", "per_class": "Max images per class",
    "min_steps": "Optimizer steps (at least)", "backbone_lr_mult": "Backbone rate ×",
    "chance_backbone_lr_mult": "… if the base is at chance", "head_lr_mult": "Head rate ×",
    "lora_rank": "LoRA rank", "lora_alpha": "LoRA alpha", "chance_lora_alpha": "LoRA alpha if at chance",
    "unfreeze_after": "Unfreeze after (epochs)", "bn": "Frozen BatchNorm",
    "polarity": "Input polarity", "new_rows": "New classes' rows",
}
OFF_TEXT = {"per_class": "All"}  # otherwise "Off"
INT_MAX = 2_147_483_647
FLOAT_MAX = 1e9


class FloatSpin(QDoubleSpinBox):
    """A spin box that shows numbers like 0.001 or 3e-05 and, optionally, steps by factors of 2."""

    def __init__(self, log_steps: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.log_steps = log_steps
        self.setDecimals(10)

    def textFromValue(self, value: float) -> str:  # noqa: N802 — Qt override
        if self.specialValueText() and value == self.minimum():
            return self.specialValueText()
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        if self.specialValueText() and text == self.specialValueText():
            return QValidator.State.Acceptable, text, pos
        try:
            value = float(text.replace(",", "."))
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        if not self.log_steps or self.value() <= 0:
            return super().stepBy(steps)
        self.setValue(float(f"{self.value() * 2.0 ** steps:.3g}"))


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None``."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(get_args(tp))
    return tp, False


class DataclassForm(QWidget):
    """Widgets for ``names`` of dataclass ``cls``; ``values()`` gives plain field values back."""

    changed = Signal()

    def __init__(self, cls: type, names: list[str], parent=None, float_steps: dict[str, float] | None = None) -> None:
        super().__init__(parent)
        self.cls = cls
        self.layout_ = QFormLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.widgets: dict[str, QWidget] = {}
        self._optional: dict[str, bool] = {}
        self._quiet = False
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in names:
            widget = self._make(name, hints[name], fields[name], (float_steps or {}).get(name))
            widget.setObjectName(f"field_{name}")
            self.widgets[name] = widget
            self.layout_.addRow(LABELS.get(name, name.replace("_", " ").capitalize()), widget)

    def _make(self, name: str, tp: Any, f: dataclasses.Field, step: float | None) -> QWidget:
        inner, optional = _unwrap(tp)
        self._optional[name] = optional
        meta = f.metadata
        lo, hi = meta.get("min"), meta.get("max")
        default = f.default if f.default is not dataclasses.MISSING else None
        tip = field_help(self.cls, name)
        if inner is bool:
            w: QWidget = QCheckBox()
            w.toggled.connect(self._emit)
        elif get_origin(inner) is Literal:
            w = QComboBox()
            for choice in get_args(inner):
                w.addItem(str(choice), choice)
            w.currentIndexChanged.connect(self._emit)
        elif inner is int:
            w = QSpinBox()
            low = int(lo) if lo is not None else 0
            if optional:
                low -= 1
                w.setSpecialValueText(OFF_TEXT.get(name, "Off"))
            w.setRange(low, min(int(hi), INT_MAX) if hi is not None else INT_MAX)  # QSpinBox is 32-bit
            w.valueChanged.connect(self._emit)
        elif inner is float:
            w = FloatSpin(log_steps=name == "lr")
            low = float(lo) if lo is not None else 0.0
            if optional:
                w.setSpecialValueText(OFF_TEXT.get(name, "Off"))
            elif meta.get("min_exclusive"):
                low = 1e-8
            w.setRange(low, float(hi) if hi is not None else FLOAT_MAX)
            w.setSingleStep(step or _default_step(lo, hi))
            w.valueChanged.connect(self._emit)
        else:
            raise TypeError(f"DataclassForm cannot edit {name}: {tp!r}")
        if lo is not None or hi is not None:
            tip += f"\nRange: {_fmt(lo) if lo is not None else '…'} – {_fmt(hi) if hi is not None else '…'}"
        if optional:
            tip += f"\n“{OFF_TEXT.get(name, 'Off')}” turns it off."
        if default is not None:
            tip += f"\nDefault: {_fmt(default)}"
        w.setToolTip(tip)
        return w

    def _emit(self, *_: Any) -> None:
        if not self._quiet:
            self.changed.emit()

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, w in self.widgets.items():
            if isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QComboBox):
                out[name] = w.currentData()
            elif self._optional[name] and w.specialValueText() and w.value() == w.minimum():
                out[name] = None
            else:
                out[name] = w.value()
        return out

    def set_values(self, values: Any) -> None:
        """Show a dataclass instance's (or a dict's) values without emitting ``changed``."""
        get = values.get if isinstance(values, dict) else lambda k, d=None: getattr(values, k, d)
        self._quiet = True
        try:
            for name, w in self.widgets.items():
                value = get(name, None)
                if isinstance(w, QCheckBox):
                    w.setChecked(bool(value))
                elif isinstance(w, QComboBox):
                    index = w.findData(value)
                    if index >= 0:
                        w.setCurrentIndex(index)
                elif value is None:
                    w.setValue(w.minimum())
                else:
                    w.setValue(value)
        finally:
            self._quiet = False

    def set_field_enabled(self, name: str, enabled: bool) -> None:
        self.widgets[name].setEnabled(enabled)
        label = self.layout_.labelForField(self.widgets[name])
        if label is not None:
            label.setEnabled(enabled)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value and (abs(value) < 1e-3 or abs(value) >= 1e6) and math.isfinite(value):
        return f"{value:.0e}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default_step(lo: float | None, hi: float | None) -> float:
    if hi is not None and hi <= 1.0:
        return 0.05
    return 1.0


def side_panel(controls: QWidget, width: int = 310, most: int = 420) -> QScrollArea:
    """A page's left column of controls: fixed width, scrolls vertically when the window is short.

    At least as wide as the controls need plus the vertical scroll bar (up to ``most``): with a
    fixed 310 px, GTK's wider spin boxes and combo boxes lost their arrows under the scroll bar."""
    scroll = QScrollArea()
    scroll.setWidget(controls)
    scroll.setWidgetResizable(True)
    bar = scroll.verticalScrollBar().sizeHint().width()
    need = controls.minimumSizeHint().width() + bar + 2 * scroll.frameWidth()
    scroll.setFixedWidth(min(max(width, need), most))
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll
