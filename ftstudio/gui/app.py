"""Starting the desktop app: the QApplication, theme, display check and ``--screenshot`` mode.

`run_app` is what `ftstudio` (no subcommand) calls. The window is shown before torch is
imported — the engine loads in the background — so the app opens in well under a second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
import time

PAGES = ("data", "dataset", "model", "train", "runs", "export", "try")
SCREENSHOT_SIZE = (1280, 800)
SETTLE_TIMEOUT_S = 120.0
NO_DISPLAY = ("ftstudio: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the desktop app "
              "cannot open its window.\n"
              "  • run it inside a desktop session, or over `ssh -X` / a VNC or RDP session;\n"
              "  • or use the command line, which does everything without a window: `ftstudio --help` "
              "(e.g. `ftstudio train --data digits --model mlp`);\n"
              "  • to render the window to an image without a display: `ftstudio --screenshot window.png`.")


def has_display() -> bool:
    """Whether Qt can open a window here (always on Windows/macOS; on Linux it needs X11 or Wayland)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_app():
    """The QApplication, set up once: names (for settings), high-DPI, style sheet, plot defaults."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from ftstudio.core import native_libs

    native_libs.install()  # before GTK can bring a second LLVM in: see native_libs
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
    configure(app)
    return app


def configure(app) -> None:
    from ftstudio.gui import theme

    app.setApplicationName("ftstudio")
    app.setOrganizationName("ftstudio")
    app.setApplicationDisplayName("ftstudio")
    app.setWindowIcon(theme.icon("ftstudio"))
    app.setStyleSheet(theme.style_sheet())


def run_app(screenshot: str | None = None, page: str = "data") -> int:
    """Open the main window (or render it to ``screenshot`` and exit); returns the exit code."""
    page = (page or "data").lower()
    if page not in (*PAGES, "wizard"):
        print(f"error: --page {page}: expected one of {', '.join(PAGES)}, wizard", file=sys.stderr)
        return 2
    if screenshot and not _writable_target(screenshot):
        print(f"error: --screenshot {screenshot}: cannot write there (no such folder, or not writable); "
              "choose another file", file=sys.stderr)
        return 2
    if not has_display():
        if not screenshot:
            print(NO_DISPLAY, file=sys.stderr)
            return 1
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = make_app()
    from ftstudio.gui.main_window import MainWindow

    window = MainWindow()
    if screenshot:
        return save_screenshot(app, window, screenshot, page)
    sys.excepthook = lambda kind, exc, tb: report_bug(window, exc)
    app.aboutToQuit.connect(window.shutdown)  # quitting without closing the window (logout) joins threads too
    window.show()
    return app.exec()


def report_bug(window, exc: BaseException) -> None:
    """A bug in a slot: log it, say so, keep the window (and any run) alive."""
    from PySide6.QtWidgets import QMessageBox

    from ftstudio.gui.workers import describe_unexpected

    message = describe_unexpected(exc)
    print(message, file=sys.stderr)
    QMessageBox.warning(window, "Something went wrong", f"{message}\n\nThe app keeps running; please report "
                        "this with the log file.")


def settle(app, ready, timeout: float = SETTLE_TIMEOUT_S) -> bool:
    """Process events until ``ready()`` has held for a moment (work that finishes may start more,
    e.g. data loading once the engine is in), or until the timeout."""
    deadline = time.monotonic() + timeout
    steady = 0
    while steady < 10 and time.monotonic() < deadline:  # ~0.2 s of quiet: layouts and plot timers caught up
        app.processEvents()
        time.sleep(0.02)
        steady = steady + 1 if ready() else 0
    return bool(ready())


def _writable_target(path: str) -> bool:
    target = Path(path).expanduser()
    folder = target.parent
    return folder.is_dir() and os.access(folder, os.W_OK) and not target.is_dir()


def save_screenshot(app, window, path: str, page: str) -> int:
    """Show ``page`` at 1280×800 (``wizard``: the wizard's first page), wait until startup work has
    settled, save a PNG, close."""
    window.persist = False  # a screenshot must not overwrite the user's window geometry
    window.warm_up = False  # nor import for a first run (1 s more before it could close)
    window.resize(*SCREENSHOT_SIZE)
    window.show_page("data" if page == "wizard" else page)
    window.show()
    shown = window
    if page == "wizard":
        settle(app, window.settled)
        shown = window.open_wizard()
        shown.resize(*SCREENSHOT_SIZE)
    if not settle(app, shown.settled):
        print("warning: the window had not finished loading; the screenshot may show a loading state",
              file=sys.stderr)
    ok = shown.grab().save(path, "PNG")
    if shown is not window:
        shown.reject()
    window.close()
    if not ok:
        print(f"error: --screenshot {path}: could not write the image; choose another file", file=sys.stderr)
        return 2  # bad input, like every other unwritable output
    print(path)
    return 0
