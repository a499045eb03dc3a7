"""Relabel from a gallery: the "Move to class" menu a wrongly answered image offers.

The Runs page's mistakes gallery, the wizard's results and the Try page show images a model gets
wrong; when such an image belongs to a dataset made in the app (`core.datasets.builder`), its
menu moves it to its right class — the model's answer first — through a `Relabeler` (the Build
data page), whose undo stack the edit joins. Anything else gets a disabled line saying why:
files in the user's own folders are never moved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal, SignalInstance
from PySide6.QtGui import QBrush, QPalette, QUndoStack
from PySide6.QtWidgets import QListWidgetItem, QMenu

from ftstudio.core.errors import InputError


class Relabeler(Protocol):
    """What a gallery needs from the page that edits datasets (`gui.pages.dataset.DatasetPage`)."""

    undo_stack: QUndoStack
    edited: SignalInstance  # a dataset's files changed (an edit, its undo or redo)

    def relabel_classes(self, path: str | None) -> list[str]:
        """The classes ``path`` can move to; InputError says why it cannot be relabelled."""

    def relabel_image(self, path: str, to_class: str) -> str:
        """Move ``path`` to ``to_class`` (undoable); returns its new path; InputError when refused."""


class DeferredRelabeler(QObject):
    """A `Relabeler` that stands for the Build data page before that page is made: the galleries
    wire to it at start, and only a relabel (a right-click's "Move to class") makes the page.

    The undo stack is made here and handed to the page when it is made, so a gallery's Undo button
    is wired to the stack every edit joins; the page's ``edited`` is forwarded (`attach`)."""

    edited = Signal()

    def __init__(self, page: Callable[[], Relabeler], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._page = page
        self.undo_stack = QUndoStack(self)

    def attach(self, page: Relabeler) -> None:
        """Called once the page is made (with ``undo_stack`` as its stack)."""
        page.edited.connect(self.edited)

    def relabel_classes(self, path: str | None) -> list[str]:
        from ftstudio.core.datasets.builder import relabel_target  # (what the page answers, without making it)

        return relabel_target(path)[0].classes()

    def relabel_image(self, path: str, to_class: str) -> str:
        return self._page().relabel_image(path, to_class)


def add_relabel_menu(menu: QMenu, relabeler: Relabeler | None, path: str | None, current: str | None,
                     suggested: str | None, report: Callable[[str], None]) -> QMenu | None:
    """Add "Move to class" (or why not) and an undo entry to ``menu``; returns the submenu, if any.
    ``report`` shows a refusal or the outcome where the gallery can show it."""
    if relabeler is None:
        return None
    if is_moved(path):
        menu.addAction("Moved to another class (Undo to move it back)").setEnabled(False)
        _add_undo(menu, relabeler)
        return None
    try:
        classes = relabeler.relabel_classes(path)
    except InputError as exc:
        why = menu.addAction("Relabel: only images of datasets made in the app")
        why.setEnabled(False)
        why.setToolTip(str(exc))
        menu.setToolTipsVisible(True)
        _add_undo(menu, relabeler)
        return None
    sub = menu.addMenu("Move to class")
    order = sorted(classes, key=lambda c: c != suggested)  # the model's answer first
    for name in order:
        if name == current:
            continue
        text = f"{name}  (the model's answer)" if name == suggested else name
        sub.addAction(text, lambda n=name: _move(relabeler, path, n, report))
    _add_undo(menu, relabeler)
    return sub


def _move(relabeler: Relabeler, path: str, to_class: str, report: Callable[[str], None]) -> None:
    try:
        new = relabeler.relabel_image(path, to_class)
    except (InputError, OSError) as exc:
        report(f"Not moved: {exc}")
        return
    report(f"Moved {Path(path).name} to {to_class} ({Path(new).parent.parent.name}); Undo moves it back.")


def _add_undo(menu: QMenu, relabeler: Relabeler) -> None:
    stack = relabeler.undo_stack
    if stack.canUndo():
        menu.addAction(f"Undo: {stack.undoText()}", stack.undo)


def is_moved(path: str | None) -> bool:
    """Whether a gallery's image has left its place (a relabel moved it; an undo brings it back)."""
    return path is not None and not Path(path).exists()


def mark_moved(item: QListWidgetItem, text: str, moved: bool, palette: QPalette,
               normal: QBrush | None = None) -> None:
    """Show ``item`` as moved (greyed, ticked) or as it was (``text`` in ``normal``); the folder decides."""
    item.setText(f"✓ {text}" if moved else text)
    item.setForeground(palette.placeholderText() if moved else (normal or QBrush()))
    item.setStatusTip("moved to another class" if moved else "")
