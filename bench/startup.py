"""Start-up: process start → first painted main window, ftstudio vs a bare PySide6 + pyqtgraph
window (a QMainWindow holding one PlotWidget), each as a fresh process, alternated.

    python bench/startup.py [--rounds 5]

Each child prints the CLOCK_MONOTONIC time of its window's first paint; the parent subtracts the
time it launched the child. Runs offscreen when there is no display. Target: ≤ 1.3× the bare window.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FIRST_PAINT = '''
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and obj.isWidgetType():  # any widget of the window
            print(time.monotonic(), flush=True)
            QTimer.singleShot(0, lambda: __import__("os")._exit(0))
        return False
'''

BARE = FIRST_PAINT + '''
from PySide6.QtWidgets import QApplication, QMainWindow
import pyqtgraph as pg
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setCentralWidget(pg.PlotWidget())
window.resize(1280, 800)
spy = FirstPaint()
app.installEventFilter(spy)
window.show()
app.exec()
'''

FTSTUDIO = FIRST_PAINT + '''
from ftstudio.cli import build_parser
args = build_parser().parse_args([])  # the same front door as `ftstudio`
from ftstudio.gui.app import make_app
from ftstudio.gui.main_window import MainWindow
app = make_app()
window = MainWindow()
window.persist = False
window.resize(1280, 800)
spy = FirstPaint()
app.installEventFilter(spy)
window.show()
app.exec()
'''


def first_paint(code: str, env: dict[str, str]) -> float:
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"child failed: {out.stderr[-2000:]}")
    return float(lines[-1]) - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    env = {**os.environ, "FTSTUDIO_HOME": tempfile.mkdtemp(prefix="ftstudio-startup-")}
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env["QT_QPA_PLATFORM"] = "offscreen"
    first_paint(BARE, env)  # warm the file cache for both
    first_paint(FTSTUDIO, env)
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(first_paint(BARE, env))
        ours.append(first_paint(FTSTUDIO, env))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"first painted window (median of {args.rounds}, {env.get('QT_QPA_PLATFORM', 'display')}): "
          f"bare PySide6 + pyqtgraph {b:.2f} s, ftstudio {o:.2f} s; ratio {o / b:.2f} (target ≤ 1.3)")


if __name__ == "__main__":
    main()
