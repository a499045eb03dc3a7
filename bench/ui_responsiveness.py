"""The window while training: event-loop lateness of a 10 ms timer, and plot redraw rate with
10^6 points on the loss curve.

    QT_QPA_PLATFORM=offscreen python bench/ui_responsiveness.py [--data digits|FOLDER] [--seconds 10]
        [--hog N] [--levers default|none|nice|threads|switch|yield|yield-1ms|all] [--nice N] [--no-redraw]
        [--emit S] [--profile N]

``--hog N`` starts N processes that spin on the CPU (default: none; ``--hog 0`` = one per core)
for the whole measurement, as other programs on a busy machine would. ``--levers`` picks what
the app's training thread does to leave the window room (gui/training_levers.py): ``default``
is what the app ships; the others are one lever each, or none, to measure them. ``--emit S`` sets
the signal bridge's packet interval (each packet means a redraw of the plots); ``--profile N``
prints the N costliest functions of the GUI thread while measured (cProfile, that thread only).

Targets: p99 lateness ≤ 50 ms idle and ≤ 100 ms with the CPU saturated by other processes while a
run trains; ≥ 10 redraws per second with 10^6 points.
"""

from __future__ import annotations

import argparse
import multiprocessing
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


def _spin() -> None:
    while True:
        pass


def start_hogs(n: int) -> list[multiprocessing.Process]:
    """N processes busy on the CPU at normal priority (killed at the end)."""
    hogs = [multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
            for _ in range(n or os.cpu_count() or 1)]
    for h in hogs:
        h.start()
    return hogs


def lever_presets():
    from ftstudio.gui.training_levers import DEFAULT, Levers

    return {"default": DEFAULT, "none": Levers(), "nice": Levers(nice=10), "threads": Levers(spare_cores=1),
            "switch": Levers(switch_interval_s=0.001), "yield": Levers(yield_s=0.0),
            "yield-1ms": Levers(nice=5, yield_s=0.001),
            "all": Levers(nice=10, spare_cores=1, switch_interval_s=0.001, yield_s=0.0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hog", type=int, default=None, metavar="N", help="N CPU-spinning processes (0 = one per core)")
    ap.add_argument("--levers", default="default",
                    choices=("default", "none", "nice", "threads", "switch", "yield", "yield-1ms", "all"))
    ap.add_argument("--nice", type=int, help="override the chosen levers' niceness increment")
    ap.add_argument("--no-redraw", action="store_true", help="skip the 10^6-point redraw measurement")
    ap.add_argument("--emit", type=float, metavar="S", help="the signal bridge's packet interval (app: bridge.py)")
    ap.add_argument("--profile", type=int, metavar="N", help="profile the GUI thread while measured; print N rows")
    args = ap.parse_args()
    before_load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    hogs = start_hogs(args.hog) if args.hog is not None else []

    from ftstudio.gui import bridge, training_levers

    if args.emit is not None:
        bridge.EMIT_INTERVAL_S = args.emit
    training_levers.DEFAULT = lever_presets()[args.levers]
    if args.nice is not None:
        import dataclasses

        training_levers.DEFAULT = dataclasses.replace(training_levers.DEFAULT, nice=args.nice)

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

    steps_before = len(window.train_page.live.loss)
    ticks: list[float] = []
    timer = QTimer(interval=10)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    loop = QEventLoop()
    QTimer.singleShot(int(args.seconds * 1000), loop.quit)
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()  # this thread only: what the GUI thread spends its time on
        profile.enable()
    loop.exec()  # a real event loop, with the plots' redraw timer and the run's packets
    timer.stop()
    if profile is not None:
        import pstats

        profile.disable()
        stats = pstats.Stats(profile).sort_stats("cumulative")
        stats.print_stats(args.profile)
    steps_seen = len(window.train_page.live.loss)
    window.controller.stop()
    wait(app, lambda: not window.controller.running, 60)
    gaps = np.diff(np.array(ticks))
    late = np.clip(gaps - 0.010, 0, None) * 1000
    load = f"{len(hogs)} CPU hogs" if hogs else "no hog"
    print(f"levers {args.levers} ({training_levers.DEFAULT}), packets every {bridge.EMIT_INTERVAL_S} s, {load}, "
          f"{os.cpu_count()} cores, load average before {before_load}")
    rate_steps = (steps_seen - steps_before) / args.seconds
    print(f"while training ({args.data}, {rate_steps:.0f} steps/s while measured): {len(ticks)} ticks of a 10 ms "
          f"timer; "
          f"lateness p50 {np.percentile(late, 50):.1f} ms, p99 {np.percentile(late, 99):.1f} ms, "
          f"max {late.max():.1f} ms (target p99 ≤ {100 if hogs else 50} ms)")
    if args.no_redraw:
        for h in hogs:
            h.kill()
        window.shutdown()
        window.close()
        sys.stdout.flush()
        os._exit(0)

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
    for h in hogs:
        h.kill()
    window.shutdown()
    window.close()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of the Qt objects (a benchmark, not the app)


if __name__ == "__main__":
    main()
