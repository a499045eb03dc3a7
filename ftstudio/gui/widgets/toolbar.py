"""A tool bar that drops its labels before it drops its buttons.

QToolBar hides what does not fit behind an overflow button: at 1024×640 the Model page's Check,
Undo and Redo vanished there, and under the GTK theme the overflow button itself was not to be
seen. This one shows text beside the icons while everything fits, then icons only (the text is
the tooltip), keeping the labels of ``keep_text`` to the last.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QToolButton

BESIDE, ICON, TEXT = (Qt.ToolButtonStyle.ToolButtonTextBesideIcon, Qt.ToolButtonStyle.ToolButtonIconOnly,
                      Qt.ToolButtonStyle.ToolButtonTextOnly)


class CompactToolBar(QToolBar):
    """See the module docstring. ``icon_only``: actions never labelled (their text is too long)."""

    def __init__(self, title: str, keep_text: tuple[QAction, ...] = (), icon_only: tuple[QAction, ...] = (),
                 parent=None) -> None:
        super().__init__(title, parent)
        self.keep_text, self.icon_only = keep_text, icon_only
        self.setToolButtonStyle(BESIDE)
        self.compact = 0  # 0: all labelled, 1: only keep_text labelled, 2: icons only

    def _buttons(self) -> list[tuple[QAction, QToolButton]]:
        out = []
        for action in self.actions():
            button = self.widgetForAction(action)
            if isinstance(button, QToolButton):
                out.append((action, button))
        return out

    def _apply(self, level: int) -> int:
        """Set every button's style for ``level``; returns the width the buttons then need."""
        total = 0
        for action, button in self._buttons():
            labelled = action not in self.icon_only and (level == 0 or (level == 1 and action in self.keep_text))
            style = BESIDE if labelled else ICON
            if action.icon().isNull():
                style = TEXT  # nothing to show but its text
            if button.toolButtonStyle() != style:
                button.setToolButtonStyle(style)
            total += button.sizeHint().width()
        layout = self.layout()
        if layout is None:
            return total
        layout.invalidate()
        return layout.sizeHint().width()  # the bar's own measure: buttons, separators, spacing, handle

    def fit(self) -> None:
        """The most labels that fit the current width."""
        for level in (0, 1, 2):
            if self._apply(level) <= self.width() or level == 2:
                self.compact = level
                return

    def resizeEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self.fit()

    def hidden_actions(self) -> list[QAction]:
        """Actions whose button is not shown (pushed into the overflow menu): should be none."""
        return [a for a, b in self._buttons() if a.isVisible() and not b.isVisible()]
