"""Time to ready: process start → the window is *usable* (engine loaded, data and model shown,
Start enabled: what ``ftstudio --screenshot`` waits for), page by page, vs a bare PySide6 +
pyqtgraph window that imports torch after its first paint — each a fresh process, alternated.

    python bench/ready.py [--rounds 3] [--pages data,model,train,runs,export] [--profile]

Target: ≤ 1.3× the reference on every page. ``--profile`` also prints, for one ftstudio start,
the heaviest imports that ran before ready (from ``python -X importtime``). Offscreen when
there is no display. A fresh ``FTSTUDIO_HOME`` per invocation: a first start on a new profile.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REFERENCE = '''
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
import pyqtgraph as pg
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setCentralWidget(pg.PlotWidget())
window.resize(1280, 800)
def load():
    import torch  # noqa: F401  the engine a training app needs
    print(time.monotonic(), flush=True)
    __import__("os")._exit(0)
class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and obj.isWidgetType():
            app.removeEventFilter(self)
            QTimer.singleShot(0, load)
        return False
spy = FirstPaint()
app.installEventFilter(spy)
window.show()
app.exec()
'''

FTSTUDIO = '''
import sys, time
from ftstudio.core.allocator import one_arena
one_arena()  # as `ftstudio` does first
from ftstudio.gui.app import make_app, settle, SCREENSHOT_SIZE
from ftstudio.gui.main_window import MainWindow
app = make_app()
window = MainWindow()
window.persist = False
window.resize(*SCREENSHOT_SIZE)
window.show_page(sys.argv[1])
window.show()
ready = []
def check():
    if not ready and window.settled():
        ready.append(time.monotonic())
    return bool(ready)
settle(app, check)
print(ready[0] if ready else "not-ready", flush=True)
__import__("os")._exit(0)
'''


def timed(code: str, env: dict[str, str], *args: str, importtime: bool = False) -> tuple[float, str]:
    flags = ["-X", "importtime"] if importtime else []
    start = time.monotonic()
    out = subprocess.run([sys.executable, *flags, "-c", code, *args], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=180)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines or lines[-1] == "not-ready":
        raise SystemExit(f"child failed or never ready: {out.stderr[-3000:]}")
    return float(lines[-1]) - start, out.stderr


def heaviest_imports(stderr: str, top: int = 15) -> list[tuple[float, str]]:
    """Top-level packages by cumulative import time, from ``-X importtime`` output."""
    cumulative: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # a module imported at the top level of the import tree
            cumulative[m.group(3)] = cumulative.get(m.group(3), 0.0) + int(m.group(1)) / 1e6
    return sorted(((s, name) for name, s in cumulative.items()), reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pages", default="data,model,train,runs,export")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "FTSTUDIO_HOME": tempfile.mkdtemp(prefix="ftstudio-ready-"),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        env["QT_QPA_PLATFORM"] = "offscreen"
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    timed(REFERENCE, env)  # warm the file cache for both
    timed(FTSTUDIO, env, pages[0])
    reference: list[float] = []
    ours: dict[str, list[float]] = {p: [] for p in pages}
    for _ in range(args.rounds):
        for page in pages:
            reference.append(timed(REFERENCE, env)[0])
            ours[page].append(timed(FTSTUDIO, env, page)[0])
    ref = statistics.median(reference)
    print(f"reference (bare PySide6 + pyqtgraph window, imports torch after its first paint): {ref:.2f} s")
    worst = 0.0
    for page, times in ours.items():
        ratio = statistics.median(times) / ref
        worst = max(worst, ratio)
        print(f"  --page {page:<7} ready in {statistics.median(times):.2f} s   ×{ratio:.2f}")
    print(f"worst ratio: {worst:.2f} (target ≤ 1.3; medians of {args.rounds} rounds)")
    if args.profile:
        _, stderr = timed(FTSTUDIO, env, pages[0], importtime=True)
        print("heaviest imports before ready (cumulative s, top-level):")
        for seconds, name in heaviest_imports(stderr):
            print(f"  {seconds:6.2f}  {name}")


if __name__ == "__main__":
    main()
