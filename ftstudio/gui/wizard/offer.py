"""The first-launch offer: a slim strip above the pages that opens the wizard (or goes away)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

from ftstudio.gui import theme

TEXT = ("<b>New here?</b> The pretrain &amp; fine-tune wizard walks you through pretraining a model, fine-tuning it "
        "on a few images and comparing it with training from scratch — about a minute, no set-up.")


class WizardOffer(QFrame):
    """``open_requested`` when the user takes the offer; the strip hides itself either way."""

    open_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("wizardOffer")
        bg, border = theme.banner_colors("info")
        self.setStyleSheet(f"QFrame#wizardOffer {{ background: {bg}; border-bottom: 1px solid {border}; }}"
                           "QFrame#wizardOffer QLabel { background: transparent; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        label = QLabel(TEXT)
        label.setWordWrap(True)
        self.open_button = QPushButton("Open the wizard")
        self.open_button.setToolTip("Pretrain & fine-tune wizard (Ctrl+Shift+W; also in the Run menu)")
        self.open_button.clicked.connect(self._open)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss; the wizard stays in the Run menu")
        close.clicked.connect(self.hide)
        layout.addWidget(label, 1)
        layout.addWidget(self.open_button)
        layout.addWidget(close)

    def _open(self) -> None:
        self.hide()
        self.open_requested.emit()
