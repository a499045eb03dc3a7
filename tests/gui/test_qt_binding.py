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
    """The counts are the process's: objects of earlier tests freed meanwhile move them a little (24
    seen under pytest-xdist), the bug moved them by one per emission (300)."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # earlier tests' deleteLater()
    gc.collect()
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
    assert true_after >= before[0] - 100, f"lost {before[0] - true_after} references to True"
    assert none_after >= before[1] - 100, f"lost {before[1] - none_after} references to None"


def test_the_app_exits_cleanly_after_copying_a_layer(tmp_path):
    """A layer on the clipboard at exit must not crash the process (a QMimeData given to the
    clipboard did, with PySide6 6.11 offscreen)."""
    import os
    import subprocess

    from tests.helpers import ROOT

    code = ("from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "from ftstudio.gui.composer.editor import Editor\n"
            "from ftstudio.core.architecture.presets import load_preset\n"
            "editor = Editor(load_preset('mlp'))\n"
            "assert editor.copy('1')\n"
            "editor.paste('0')\n"
            "print(len(editor.spec.layers))\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FTSTUDIO_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
