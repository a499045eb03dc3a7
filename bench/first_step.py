"""Start → first step: how long the app's Start button takes to give a first training step, once the
window has been ready for ``--pause`` seconds (a user reading the screen), with the training warm-up
(`gui.state.warm_up_training`, run quietly once the window is usable) and without it — each a fresh
process, alternated. Also the event loop's lateness during the pause (a 10 ms timer), which the
warm-up must not spoil.

    python bench/first_step.py [--rounds 3] [--pause 2]

Offscreen when there is no display; a fresh ``FTSTUDIO_HOME`` per process (the bundled digits and
the default MLP).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = '''
import json, os, sys, time
from ftstudio.core.allocator import one_arena
one_arena()  # as `ftstudio` does first
from PySide6.QtCore import QTimer
from ftstudio.gui.app import make_app, settle, SCREENSHOT_SIZE
from ftstudio.gui.main_window import MainWindow
from ftstudio.core.training.callbacks import Callback
if sys.argv[1] == "without":
    MainWindow._warm_up_training = lambda self: None
app = make_app()
window = MainWindow()
window.persist = False
window.resize(*SCREENSHOT_SIZE)
window.show_page("train")
window.show()
settle(app, window.settled)
late, last = [], [time.monotonic()]
def tick():
    now = time.monotonic()
    late.append(now - last[0] - 0.010)
    last[0] = now
timer = QTimer()
timer.setInterval(10)
timer.timeout.connect(tick)
timer.start()
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    app.processEvents()
    time.sleep(0.001)
timer.stop()
first = []
class First(Callback):
    def on_batch_finished(self, event):
        if not first:
            first.append(time.monotonic())
start = time.monotonic()
window.start_training(callbacks=(First(),))
while not first and time.monotonic() - start < 120:
    app.processEvents()
    time.sleep(0.002)
late.sort()
print(json.dumps({"first step": first[0] - start if first else None, "late max": late[-1],
                  "late p99": late[int(len(late) * 0.99)]}), flush=True)
os._exit(0)
'''


def one(variant: str, pause: float) -> dict:
    env = {**os.environ, "FTSTUDIO_HOME": tempfile.mkdtemp(prefix="ftstudio-first-step-")}
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(pause)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines or json.loads(lines[-1])["first step"] is None:
        raise SystemExit(f"{variant}: no first step\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between ready and Start")
    args = ap.parse_args()
    results: dict[str, list[dict]] = {"with": [], "without": []}
    for _ in range(args.rounds):
        for variant in results:
            results[variant].append(one(variant, args.pause))
    print(f"Start → first step, {args.pause:g} s after the window was ready; {args.rounds} rounds, medians")
    for variant, rows in results.items():
        print(f"  {variant + ' the warm-up':<20} {statistics.median(r['first step'] for r in rows):6.2f} s   "
              f"event loop during the pause: p99 {statistics.median(r['late p99'] for r in rows) * 1000:5.1f} ms, "
              f"max {max(r['late max'] for r in rows) * 1000:5.1f} ms")
    ratios = [w["first step"] / o["first step"] for w, o in zip(results["without"], results["with"])]
    print(f"ratio without / with: {statistics.median(ratios):.1f} (per round: "
          f"{', '.join(f'{r:.1f}' for r in ratios)})")


if __name__ == "__main__":
    main()
