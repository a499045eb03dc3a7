"""An in-place message strip: errors, warnings and notes shown where they happen, never a crash.

Messages are plain text (engine messages name files and fields); the strip wraps them, long paths
included, so it never widens the window.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QToolButton

from ftstudio.gui import theme

SYMBOLS = {"error": "✖", "warning": "⚠", "info": "ℹ", "success": "✔"}
ZWSP = "\u200b"


def as_html(text: str) -> str:
    """Plain text for a wrapping label: escaped, line breaks kept, long paths breakable after separators."""
    escaped = html.escape(text, quote=False).replace("/", "/" + ZWSP).replace("\\", "\\" + ZWSP)
    return escaped.replace("\n", "<br>")


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
        self._text = ""
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        # a long path must wrap or clip, never widen the window
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(100)
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
        self._text = text
        self.label.setText(as_html(text))
        self._restyle()
        self.show()

    def text(self) -> str:
        return "" if self.isHidden() else self._text

    def clear(self) -> None:
        self._text = ""
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


def header_label(text: str = "", name: str = "pageHeader") -> QLabel:
    """A page's summary line: rich text that wraps, and never widens the window (long paths clip)."""
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(100)
    return label
