"""The small interface every page of the main window offers, so that the window treats them alike."""

from __future__ import annotations

from PySide6.QtCore import QSettings


class Page:
    """A mixin (listed before QWidget) with no-op defaults; each page overrides what it needs."""

    def restore_settings(self, store: QSettings) -> None:
        """Take back what `save_settings` kept (called once the window is built)."""

    def save_settings(self, store: QSettings) -> None:
        """Keep the choices worth finding again at the next start."""

    def restyle(self) -> None:
        """The palette changed (light ↔ dark): redraw what does not follow it by itself."""

    def shutdown(self) -> None:
        """The window is closing: stop timers (background work is the task runner's to cancel)."""

    def busy(self) -> bool:
        """True while the page has work of its own under way (screenshots wait for it)."""
        return False
