"""Window sizes that fit the screen they open on.

The wizard opened at a fixed 1180×780, so on a 1024×640 laptop screen its Next and Cancel buttons
were off the screen; the main window's first size was 1280×800 wherever it opened.
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

MARGIN = 0.95  # leave a little of the screen around the window (title bar, panels)


def fitted(widget: QWidget, preferred: tuple[int, int], near: QWidget | None = None) -> QSize:
    """``preferred``, shrunk to fit the available area of the screen ``near`` (or ``widget``) is on."""
    screen = (near or widget).screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return QSize(*preferred)
    area = screen.availableGeometry()
    return QSize(min(preferred[0], int(area.width() * MARGIN)), min(preferred[1], int(area.height() * MARGIN)))


def resize_to_fit(widget: QWidget, preferred: tuple[int, int], near: QWidget | None = None) -> None:
    widget.resize(fitted(widget, preferred, near))
