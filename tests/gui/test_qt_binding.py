"""The Qt binding itself: signals carrying Python objects across threads must not corrupt
reference counts (PySide6 6.12.0 dropped a reference to True on every such emission, which
aborted the app about a minute into a live training run)."""

import sys

from PySide6.QtCore import QObject, QThread, Signal


class _Emitter(QObject):
    progress = Signal(object)
    over = Signal()

    def run(self) -> None:
        for i in range(300):
            self.progress.emit({"step": i, "losses": [0.5, 0.4]})
        self.over.emit()


def test_cross_thread_object_signals_keep_refcounts(qtbot):
    received = []
    before = sys.getrefcount(True), sys.getrefcount(None)
    thread, job = QThread(), _Emitter()
    job.moveToThread(thread)
    thread.started.connect(job.run)
    job.progress.connect(received.append)
    job.over.connect(thread.quit)
    with qtbot.waitSignal(thread.finished, timeout=30_000):
        thread.start()
    qtbot.waitUntil(lambda: len(received) == 300, timeout=30_000)
    thread.wait()
    true_after, none_after = sys.getrefcount(True), sys.getrefcount(None)
    assert true_after >= before[0] - 20, f"lost {before[0] - true_after} references to True"
    assert none_after >= before[1] - 20, f"lost {before[1] - none_after} references to None"
