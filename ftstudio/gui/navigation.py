"""The main window's pages in order, and the sidebar that switches between them.

The order here is the sidebar's and the shortcuts' (Ctrl+1 … Ctrl+N); the titles and tips are
what the sidebar shows.
"""

from __future__ import annotations

from collections.abc import Callable

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


def build_navigation(window: QWidget, pages: dict[str, QWidget],
                     show_page: Callable[[str], None]) -> tuple[QListWidget, QStackedWidget]:
    """The sidebar (one item per page, in `PAGES` order) and the stack of ``pages`` it switches
    (row i is page i); Ctrl+1 … Ctrl+N on ``window`` call ``show_page``."""
    sidebar = QListWidget()
    sidebar.setObjectName("sidebar")
    sidebar.setFixedWidth(130)
    sidebar.setIconSize(QSize(20, 20))
    sidebar.setToolTip(f"Pages (Ctrl+1 … Ctrl+{len(PAGES)})")
    stack = QStackedWidget()
    for i, key in enumerate(PAGES):
        item = QListWidgetItem(theme.icon(f"page-{key}"), TITLES[key])
        item.setToolTip(f"{PAGE_TIPS[key]} (Ctrl+{i + 1})")
        sidebar.addItem(item)
        stack.addWidget(pages[key])
        action = QAction(TITLES[key], window)
        action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
        action.triggered.connect(lambda _=False, k=key: show_page(k))
        window.addAction(action)
    return sidebar, stack
