"""Dropped files: one event filter that makes any widget take local files dragged onto it.

The Build data page (thumbnails, the class list) and the Try page both take files and folders
dropped from a file manager. An event filter instead of a subclass per widget: it works on a
list's viewport (where Qt delivers an item view's drops) as on a plain page, and it answers
before QListView's own drag handling, which a static icon view turns off.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, Signal
from PySide6.QtWidgets import QWidget


def local_paths(mime: QMimeData | None) -> list[str]:
    """The local files and folders a drag (or the clipboard) carries; remote URLs are left out."""
    if mime is None or not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]


class FileDrops(QObject):
    """Takes drops of local files on ``target``: ``dropped(paths, pos)`` with ``pos`` in ``target``'s
    coordinates (for an item view's viewport, what ``itemAt`` wants)."""

    dropped = Signal(list, QPoint)

    def __init__(self, target: QWidget) -> None:
        super().__init__(target)
        target.setAcceptDrops(True)
        target.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 — Qt override
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if local_paths(event.mimeData()):
                event.acceptProposedAction()
                return True
            return False
        if kind == QEvent.Type.Drop:
            paths = local_paths(event.mimeData())
            if paths:
                event.acceptProposedAction()
                self.dropped.emit(paths, event.position().toPoint())
                return True
        return False
