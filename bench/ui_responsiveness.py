"""The window while training: event-loop lateness of a 10 ms timer, and plot redraw rate with
10^6 points on the loss curve.

    QT_QPA_PLATFORM=offscreen python bench/ui_responsiveness.py [--data digits|FOLDER] [--seconds 10]

Targets: p99 lateness ≤ 50 ms while a run trains; ≥ 10 redraws per second with 10^6 points.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("FTSTUDIO_HOME", tempfile.mkdtemp(prefix="ftstudio-ui-bench-"))


def wait(app, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    from PySide6.QtCore import QEventLoop, Qt, QTimer

    from ftstudio.core.config.recipe import DatasetSpec, TrainConfig
    from ftstudio.gui.app import make_app
    from ftstudio.gui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.persist = False
    window.resize(1280, 800)
    window.show()
    wait(app, window.settled, 120)
    window.session.set_data_spec(DatasetSpec(name=args.data))
    wait(app, lambda: window.session.bundle is not None and window.settled(), 300)
    window.session.train = TrainConfig(epochs=100_000, batch_size=64)
    window.start_training()
    wait(app, lambda: len(window.train_page.live.loss) > 0, 120)  # data on the device, steps flowing

    ticks: list[float] = []
    timer = QTimer(interval=10)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    loop = QEventLoop()
    QTimer.singleShot(int(args.seconds * 1000), loop.quit)
    loop.exec()  # a real event loop, with the plots' redraw timer and the run's packets
    timer.stop()
    steps_seen = len(window.train_page.live.loss)
    window.controller.stop()
    wait(app, lambda: not window.controller.running, 60)
    gaps = np.diff(np.array(ticks))
    late = np.clip(gaps - 0.010, 0, None) * 1000
    print(f"while training ({args.data}, {steps_seen:,} steps plotted): {len(ticks)} ticks of a 10 ms timer; "
          f"lateness p50 {np.percentile(late, 50):.1f} ms, p99 {np.percentile(late, 99):.1f} ms, "
          f"max {late.max():.1f} ms (target p99 ≤ 50 ms)")

    live, plots = window.train_page.live, window.train_page.plots
    n = 1_000_000
    steps = np.arange(n, dtype=float) + len(live.loss)
    noise = np.random.default_rng(0).random(n)
    raw = 2.3 * np.exp(-steps / 2e5) + 0.05 + 0.3 * noise  # a loss curve's shape, with per-step noise
    live.loss.extend(steps, raw)
    live.smooth.extend(steps, np.convolve(raw, np.full(50, 1 / 50), mode="same"))
    window.show_page("train")
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3.0:
        more = steps[-1] + 1 + np.arange(10, dtype=float)  # as in training: a few new steps per frame
        steps = np.append(steps, more)
        live.loss.extend(more, raw[-10:])
        live.smooth.extend(more, raw[-10:])
        live.version += 1
        window.train_page.redraw()
        plots.loss_plot.repaint()
        app.processEvents()
        frames += 1
    rate = frames / (time.perf_counter() - start)
    print(f"redraw with {len(live.loss):,} points on the loss curve: {rate:.1f} per second (target ≥ 10)")
    window.shutdown()
    window.close()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of the Qt objects (a benchmark, not the app)


if __name__ == "__main__":
    main()
