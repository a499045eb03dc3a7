"""Questions, file choosers and the file manager, in one place so tests can answer them without a modal dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def confirm(parent: QWidget | None, title: str, text: str, yes: str = "OK") -> bool:
    """Ask a yes/no question; True when the user agrees."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    ok = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is ok


def choose_folder(parent: QWidget | None, title: str, start: str = "") -> str | None:
    path = QFileDialog.getExistingDirectory(parent, title, start)
    return path or None


def choose_file(parent: QWidget | None, title: str, start: str = "", filters: str = "") -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, start, filters)
    return path or None


def choose_save_file(parent: QWidget | None, title: str, start: str = "", filters: str = "") -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, start, filters)
    return path or None


FOLDER_KEY = "files/folder"


def documents_folder() -> Path:
    """Where Save/Open dialogs start: the folder last saved to or opened from, else the user's
    Documents folder (else home). Save recipe started in the working directory and Save
    architecture in home; now both start in the same place."""
    from PySide6.QtCore import QStandardPaths

    from ftstudio.gui.settings import settings

    last = settings().value(FOLDER_KEY)
    if isinstance(last, str) and last and Path(last).is_dir():
        return Path(last)
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(docs) if docs and Path(docs).is_dir() else Path.home()


def remember_folder(path: str | Path) -> None:
    """The file at ``path`` was saved or opened: dialogs start in its folder next time."""
    from ftstudio.gui.settings import settings

    store = settings()
    store.setValue(FOLDER_KEY, str(Path(path).parent))
    store.sync()


def reveal(path: str | Path) -> bool:
    """Open a folder (or file) in the system's file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def choose_files(parent: QWidget | None, title: str, start: str = "", filters: str = "") -> list[str]:
    paths, _ = QFileDialog.getOpenFileNames(parent, title, start, filters)
    return list(paths)


def ask_text(parent: QWidget | None, title: str, label: str, text: str = "") -> str | None:
    """One line of text from the user (None when cancelled)."""
    from PySide6.QtWidgets import QInputDialog

    value, ok = QInputDialog.getText(parent, title, label, text=text)
    return value.strip() if ok and value.strip() else None
