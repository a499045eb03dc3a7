"""The main window's pages in order, and the sidebar that switches between them.

The order here is the sidebar's and the shortcuts' (Ctrl+1 … Ctrl+N); the titles and tips are
what the sidebar shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QStackedWidget, QWidget

from ftstudio.gui import theme

PAGES = ("data", "dataset", "model", "train", "runs", "export", "try")
TITLES = {"data": "Data", "dataset": "Build data", "model": "Model", "train": "Train", "runs": "Runs",
          "export": "Export", "try": "Try"}
PAGE_TIPS = {"data": "Choose and inspect the dataset",
             "dataset": "Make a dataset: classes, images dropped or imported, its health",
             "model": "Choose the architecture",
             "train": "Set hyper-parameters and watch training live", "runs": "Past runs: compare, resume, delete",
             "export": "Export a trained model to ONNX, safetensors…",
             "try": "Try a trained model on new images: answer, confidence, where it looked"}


class PageStack:
    """The window's pages in a QStackedWidget, each made by its factory the first time it is asked
    for (``stack[key]``, or shown); until then its row holds an empty placeholder.

    ``on_made(key, page)`` runs once per page, right after it is made (the window wires it there).
    Iterating gives the pages made so far, so that settings, restyles and shutdowns reach every
    page that exists and make none."""

    def __init__(self, factories: dict[str, Callable[[], QWidget]],
                 on_made: Callable[[str, QWidget], None]) -> None:
        self.widget = QStackedWidget()
        self._factories, self._on_made = dict(factories), on_made
        self._made: dict[str, QWidget] = {}
        for _ in PAGES:
            self.widget.addWidget(QWidget())

    def __getitem__(self, key: str) -> QWidget:
        page = self._made.get(key)
        if page is None:
            page = self._factories[key]()
            row = PAGES.index(key)
            placeholder = self.widget.widget(row)
            current = self.widget.currentWidget()
            self.widget.insertWidget(row, page)
            self.widget.removeWidget(placeholder)
            placeholder.deleteLater()
            self.widget.setCurrentWidget(page if current is placeholder else current)
            self._made[key] = page
            self._on_made(key, page)
        return page

    def made(self, key: str) -> bool:
        return key in self._made

    def __iter__(self) -> Iterator[QWidget]:
        return iter(list(self._made.values()))

    def show(self, key: str) -> None:
        """Make ``key``'s page if it is not yet, and show it."""
        page = self[key]
        self.widget.setCurrentWidget(page)


def build_navigation(window: QWidget, show_page: Callable[[str], None]) -> QListWidget:
    """The sidebar (one item per page, in `PAGES` order: row i is page i); Ctrl+1 … Ctrl+N on
    ``window`` call ``show_page``."""
    sidebar = QListWidget()
    sidebar.setObjectName("sidebar")
    sidebar.setFixedWidth(130)
    sidebar.setIconSize(QSize(20, 20))
    sidebar.setToolTip(f"Pages (Ctrl+1 … Ctrl+{len(PAGES)})")
    for i, key in enumerate(PAGES):
        item = QListWidgetItem(theme.icon(f"page-{key}"), TITLES[key])
        item.setToolTip(f"{PAGE_TIPS[key]} (Ctrl+{i + 1})")
        sidebar.addItem(item)
        action = QAction(TITLES[key], window)
        action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
        action.triggered.connect(lambda _=False, k=key: show_page(k))
        window.addAction(action)
    return sidebar
