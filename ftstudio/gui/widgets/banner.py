"""An in-place message strip: errors, warnings and notes shown where they happen, never a crash."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

from ftstudio.gui import theme

SYMBOLS = {"error": "✖", "warning": "⚠", "info": "ℹ", "success": "✔"}


class Banner(QFrame):
    """A coloured, dismissable message; hidden while empty."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.kind = "info"
        self._styling = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.symbol = QLabel()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss this message")
        close.clicked.connect(self.clear)
        layout.addWidget(self.symbol, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, kind: str, text: str) -> None:
        self.kind = kind
        self.symbol.setText(SYMBOLS.get(kind, ""))
        self.label.setText(text)
        self._restyle()
        self.show()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()

    def clear(self) -> None:
        self.label.setText("")
        self.hide()

    def _restyle(self) -> None:
        bg, border = theme.banner_colors(self.kind)
        fg = "#f2f2f2" if theme.is_dark() else "#1a1a1a"
        self._styling = True
        self.setStyleSheet(f"QFrame#banner {{ background: {bg}; border: 1px solid {border}; border-radius: 4px; }}"
                           f"QFrame#banner QLabel {{ color: {fg}; background: transparent; border: none; }}")
        self._styling = False

    def changeEvent(self, event) -> None:  # noqa: N802 — Qt override
        if event.type() in (event.Type.PaletteChange, event.Type.ApplicationPaletteChange) and not self.isHidden() \
                and not self._styling:
            self._restyle()
        super().changeEvent(event)
