"""The threading layer: rate-limited bridge, background tasks, live buffers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QThread

from ftstudio.core.errors import InputError
from ftstudio.core.training.events import BatchFinished, EpochFinished, FitFinished, FitStarted, ValidationFinished
from ftstudio.gui.live import LiveRun, Series
from ftstudio.gui.workers import Packet, SignalBridge, Tasks


def _batch(step: int, epoch: int = 1) -> BatchFinished:
    return BatchFinished(epoch, step, step, 1000, 1.0 / step, 0.01, 500.0, (step,), (1.0 / step,))


def _epoch(epoch: int, best: bool = False) -> EpochFinished:
    return EpochFinished(epoch, 3, epoch * 10, 0.5, 0.8, 0.6, 0.7 + epoch / 100, 0.01, 1.0, 100.0, best)


def test_bridge_sends_few_packets_and_loses_nothing():
    sent: list[Packet] = []
    bridge = SignalBridge(sent.append, interval=3600)  # nothing is due by time: only forced flushes
    bridge.on_fit_started(FitStarted(3, 0, 1000, "cpu", 10, 10, 100, 20, ("a", "b"), 8))
    for step in range(1, 1001):
        bridge.on_batch_finished(_batch(step))
    for epoch in (1, 2, 3):
        bridge.on_validation_finished(ValidationFinished(epoch, 0.5, 0.9, np.eye(2, dtype=int) * epoch))
        bridge.on_epoch_finished(_epoch(epoch, best=epoch == 2))
    assert len(sent) == 1 and sent[0].started is not None  # fit started is flushed at once
    bridge.on_fit_finished(FitFinished("completed", 3, 2, 0.9, 0.5, 0.9, 0.5, 1.0))
    assert len(sent) == 2
    last = sent[1]
    assert last.steps == list(range(1, 1001)) and len(last.losses) == 1000
    assert [e.epoch for e in last.epochs] == [1, 2, 3]
    assert last.validation.epoch == 3 and last.batch.step == 1000  # only the latest of these


def test_bridge_emits_when_due_and_only_then():
    sent: list[Packet] = []
    bridge = SignalBridge(sent.append, interval=0.0)
    bridge.on_batch_finished(_batch(1))
    bridge.on_batch_finished(_batch(2))
    assert [p.steps for p in sent] == [[1], [2]]
    bridge.flush(force=True)
    assert len(sent) == 2  # nothing new: no empty packet


def test_live_run_builds_curves_from_packets():
    live = LiveRun()
    live.apply(Packet(started=FitStarted(3, 0, 10, "cpu", 10, 10, 100, 20, ("a", "b"), 8)))
    before = live.version
    lines = live.apply(Packet(batch=_batch(10), steps=list(range(1, 11)), losses=[1.0] * 9 + [float("nan")],
                              lrs=[(10, 0.01)], epochs=[_epoch(1, best=True)],
                              validation=ValidationFinished(1, 0.5, 0.9, np.eye(2, dtype=int))))
    assert live.version > before
    assert len(live.loss) == 10 and len(live.smooth) == 10
    assert live.smooth.last() == pytest.approx(1.0)  # NaN does not poison the smoothed curve
    assert live.val_acc.view()[1].tolist() == [pytest.approx(0.71)] and live.best_epoch == 1
    assert live.best_step == 10 and live.confusion.trace() == 2
    assert any("epoch 1/3" in line and "best" in line for line in lines)
    assert 0 < live.progress.fraction() < 1


def test_series_grows_without_losing_points():
    s = Series(capacity=4)
    for i in range(100):
        s.extend([i], [i * 2])
    x, y = s.view()
    assert len(s) == 100 and x.tolist() == list(range(100)) and y[-1] == 198


def test_tasks_report_on_the_gui_thread(qtbot):
    tasks = Tasks()
    seen = {}

    def work(cancel):
        seen["worker"] = QThread.currentThread()
        return 42

    task = tasks.start("answer", work)
    task.done.connect(lambda value: seen.update(value=value, slot=QThread.currentThread()))
    with qtbot.waitSignal(tasks.idle, timeout=10_000):
        pass
    qtbot.waitUntil(lambda: "value" in seen)
    assert seen["value"] == 42
    assert seen["slot"] is QThread.currentThread() and seen["worker"] is not seen["slot"]


def test_tasks_turn_errors_into_messages(qtbot):
    tasks = Tasks()
    messages = []

    def bad_input(cancel):
        raise InputError("data/cats: no images found")

    def bug(cancel):
        raise ZeroDivisionError("oops")

    for fn in (bad_input, bug):
        task = tasks.start(fn.__name__, fn)
        task.failed.connect(messages.append)
    qtbot.waitUntil(lambda: len(messages) == 2, timeout=10_000)
    assert "data/cats: no images found" in messages
    unexpected = next(m for m in messages if "oops" in m)
    assert unexpected.startswith("unexpected failure (ZeroDivisionError: oops)") and "crash-" in unexpected
    tasks.shutdown()


def test_a_newer_task_supersedes_an_older_one(qtbot):
    tasks = Tasks()
    release = threading.Event()
    results = []

    def slow(cancel):
        release.wait(10)
        return "old"

    old = tasks.start("data", slow)
    old.done.connect(results.append)
    new = tasks.start("data", lambda cancel: "new")
    new.done.connect(results.append)
    assert old.cancel.is_set()
    qtbot.waitUntil(lambda: results == ["new"], timeout=10_000)
    release.set()
    tasks.shutdown()
    QCoreApplication.sendPostedEvents()  # deliver a stale result now, if it were (wrongly) relayed
    QCoreApplication.processEvents()
    assert results == ["new"] and not tasks.busy()


def test_a_result_survives_another_thread_ending_first(qtbot):
    """B's end is handled before A's result arrives; A's task must live until it is relayed."""
    tasks = Tasks()
    results = []
    go = threading.Event()
    tasks.start("b", lambda cancel: "b").done.connect(results.append)  # nobody else keeps these tasks
    tasks.start("a", lambda cancel: go.wait(10) and "a").done.connect(results.append)
    thread_b, thread_a = list(tasks._running)
    thread_b.wait()
    go.set()
    thread_a.wait()  # both ended; their results and ends are queued: b's first
    qtbot.waitUntil(lambda: sorted(results) == ["a", "b"], timeout=10_000)
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)


def test_a_quiet_task_does_not_make_the_window_busy(qtbot):
    """Work ahead of need (importing pyqtgraph after start-up) must not hold back "ready" (#19)."""
    tasks = Tasks()
    release = threading.Event()
    quiet = tasks.start("ahead", lambda cancel: release.wait(10), quiet=True)
    results = []
    quiet.done.connect(results.append)
    assert not tasks.busy() and tasks.busy("ahead")
    loud = tasks.start("data", lambda cancel: release.wait(10))
    assert tasks.busy() and not loud.quiet
    release.set()
    qtbot.waitUntil(lambda: not tasks.busy("ahead") and not tasks.busy(), timeout=10_000)
    assert results == [True]
    tasks.shutdown()


def test_background_jobs_run_with_freed_memory_kept(qtbot):
    """Predicting, evaluating, exporting in the app reuse large blocks as training does (#19)."""
    from ftstudio.core import allocator

    tasks = Tasks()
    seen = []
    tasks.start("probe", lambda cancel: allocator.holding()).done.connect(seen.append)
    qtbot.waitUntil(lambda: seen == [True], timeout=10_000)
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)
    assert not allocator.holding()
    tasks.shutdown()
