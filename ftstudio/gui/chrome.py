"""The main window's chrome: its actions and shortcuts, the run toolbar, the menus and the status bar.

`MainWindow` builds its pages and keeps the wiring between them; what surrounds the pages is made
here. Also the start-up helper `AfterFirstPaint` and the status bar's `memory_text`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QComboBox, QLabel, QMainWindow, QProgressBar, QStyle, QToolBar, QWidget


def memory_text(engine_ready: bool = False) -> str:
    """This process's memory (and the GPU's, when training there) for the status bar.

    torch is looked at only once ``engine_ready``: while the background import is under way,
    ``sys.modules["torch"]`` is a partly initialised module without ``cuda`` yet."""
    rss = 0
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            rss = peak if sys.platform == "darwin" else peak * 1024
        except (ImportError, OSError):
            pass
    text = f"RAM {rss / 2**20:,.0f} MB" if rss else ""
    torch = sys.modules.get("torch") if engine_ready else None
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        text += f" · GPU {torch.cuda.memory_allocated() / 2**20:,.0f} MB"
    return text


class AfterFirstPaint(QObject):
    """Calls ``callback`` once, just after the first paint of any widget in ``window`` (or after
    ``fallback_ms`` if nothing paints, e.g. a window built but never shown)."""

    def __init__(self, window: QWidget, callback, fallback_ms: int = 1500) -> None:
        super().__init__(window)
        self.window, self.callback, self.fired = window, callback, False
        QApplication.instance().installEventFilter(self)
        QTimer.singleShot(fallback_ms, self, self._fire)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 — Qt override
        if (event.type() == QEvent.Type.Paint and not self.fired and obj.isWidgetType()
                and obj.window() is self.window):
            QTimer.singleShot(0, self, self._fire)
        return False

    def _fire(self) -> None:
        if not self.fired:
            self.fired = True
            QApplication.instance().removeEventFilter(self)
            self.callback()


def make_actions(window: QMainWindow) -> dict[str, QAction]:
    """The window-wide actions with their shortcuts, added to ``window`` (menus and toolbar show them)."""
    style = window.style()
    spec = {
        "open": ("Open folder…", "Use a folder of images, one subfolder per class", ["Ctrl+O"],
                 QStyle.StandardPixmap.SP_DirOpenIcon, window.open_folder),
        "start": ("Start", "Train the model on the data with these settings (Ctrl+R)", ["Ctrl+R"],
                  QStyle.StandardPixmap.SP_MediaPlay, lambda: window.start_training()),
        "pause": ("Pause", "Pause training after the current batch (Ctrl+P)", ["Ctrl+P"],
                  QStyle.StandardPixmap.SP_MediaPause, window.controller.pause),
        "resume": ("Resume", "Continue the paused run (Ctrl+Shift+P)", ["Ctrl+Shift+P"],
                   QStyle.StandardPixmap.SP_MediaSeekForward, window.controller.resume),
        "stop": ("Stop", "Stop training and keep a checkpoint (Esc or Ctrl+.)", ["Esc", "Ctrl+."],
                 QStyle.StandardPixmap.SP_MediaStop, window.controller.stop),
        "wizard": ("Pretrain && fine-tune wizard…", "Pretrain a model, fine-tune it on a few images and compare "
                   "with training from scratch, step by step (Ctrl+Shift+W)", ["Ctrl+Shift+W"], None,
                   window.open_wizard),
        "quit": ("Quit", "Close ftstudio (Ctrl+Q)", ["Ctrl+Q"], None, window.close),
    }
    actions: dict[str, QAction] = {}
    for key, (text, tip, keys, icon, slot) in spec.items():
        action = QAction(text, window)
        if icon is not None:
            action.setIcon(style.standardIcon(icon))
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        window.addAction(action)
        actions[key] = action
    return actions


@dataclass
class Bars:
    """The widgets of the toolbar and status bar the window updates."""

    device: QComboBox
    status_device: QLabel
    status_run: QLabel
    status_progress: QProgressBar
    status_memory: QLabel


def build_bars(window: QMainWindow, actions: dict[str, QAction], model_actions: dict[str, QAction],
               on_device: Callable[..., None], on_about: Callable[[], None]) -> Bars:
    """The run toolbar (with the device chooser), the menus and the status bar of ``window``."""
    bar = QToolBar("Run")
    bar.setObjectName("runToolbar")
    bar.setMovable(False)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    bar.addAction(actions["open"])
    bar.addSeparator()
    bar.addWidget(QLabel(" Device "))
    device = QComboBox()
    device.setMinimumContentsLength(28)
    device.setToolTip("Where to train: the CPU, a CUDA GPU or Apple's MPS (what torch sees)")
    device.addItem("Auto (detecting devices…)", "auto")
    device.currentIndexChanged.connect(on_device)
    bar.addWidget(device)
    bar.addSeparator()
    for key in ("start", "pause", "resume", "stop"):
        bar.addAction(actions[key])
    window.addToolBar(bar)

    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addAction(actions["open"])
    arch_menu = file_menu.addMenu("&Architecture")
    for key in ("new", "open", "save", "save_as", None, "start_from", "check"):
        arch_menu.addSeparator() if key is None else arch_menu.addAction(model_actions[key])
    file_menu.addSeparator()
    file_menu.addAction(actions["quit"])
    edit_menu = menu.addMenu("&Edit")
    edit_menu.addAction(model_actions["undo"])
    edit_menu.addAction(model_actions["redo"])
    run_menu = menu.addMenu("&Run")
    run_menu.addAction(actions["wizard"])
    run_menu.addSeparator()
    for key in ("start", "pause", "resume", "stop"):
        run_menu.addAction(actions[key])
    help_menu = menu.addMenu("&Help")
    about = help_menu.addAction("About ftstudio")
    about.triggered.connect(on_about)

    status = window.statusBar()
    bars = Bars(device, QLabel("Device: detecting…"), QLabel("No run"), QProgressBar(), QLabel())
    bars.status_progress.setRange(0, 1000)
    bars.status_progress.setMaximumWidth(160)
    bars.status_progress.setTextVisible(False)
    for w, tip in ((bars.status_device, "The device training will use"),
                   (bars.status_run, "The current run"), (bars.status_progress, "Progress of the current run"),
                   (bars.status_memory, "Memory this app uses")):
        w.setToolTip(tip)
        status.addPermanentWidget(w)
    return bars
