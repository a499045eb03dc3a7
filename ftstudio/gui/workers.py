"""Background work — the only module that creates threads (one QThread per job or run).

`Tasks` runs short jobs (importing torch, loading data, analysing a model, exporting) on a QThread
each and reports ``done(result)`` / ``failed(message)`` on the GUI thread. `RunController` runs
one training run at a time: a worker object on its own QThread calls `engine.train` (or
`engine.resume`), and a `SignalBridge` callback turns the trainer's events into at most ~10 Qt
signals a second. Stop and pause are `threading.Event`s the trainer checks between batches;
exactly one of ``finished`` / ``failed`` fires per run; ``shutdown`` stops and joins everything
before the window goes away.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from ftstudio.core.allocator import keep_freed_memory
from ftstudio.core.training.callbacks import Callback
from ftstudio.gui import training_levers
from ftstudio.gui.bridge import DataPreview, Outcome, Packet, SignalBridge, make_preview

__all__ = ["DataPreview", "Outcome", "Packet", "RunController", "SignalBridge", "Task", "Tasks",
           "describe_unexpected"]


def describe_unexpected(exc: BaseException) -> str:
    """A one-line message for a bug, with the traceback kept in a log file for a report."""
    from datetime import datetime

    from ftstudio import __version__
    from ftstudio.core.paths import log_dir

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"crash-{datetime.now():%Y%m%d-%H%M%S-%f}.log"
        log.write_text(f"ftstudio {__version__} (desktop app)\n\n{text}", encoding="utf-8")
        where = f"; details in {log}"
    except OSError:
        where = ""
    return f"unexpected failure ({type(exc).__name__}: {exc}){where}"


def _message(exc: BaseException) -> str:
    from ftstudio.core.errors import FtError, os_error_message

    if isinstance(exc, FtError):
        return str(exc)
    return (isinstance(exc, OSError) and os_error_message(exc)) or describe_unexpected(exc)


# ------------------------------------------------------------------------------------------ tasks
class _Job(QObject):
    """Runs one function on a worker thread; emits exactly one of done / failed, then over."""

    done = Signal(object)
    failed = Signal(str)
    over = Signal()

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.fn = fn

    @Slot()
    def run(self) -> None:
        try:
            with keep_freed_memory():  # predicting, evaluating, exporting: large blocks reused (core/allocator.py)
                result = self.fn()
        except BaseException as exc:  # noqa: BLE001 — a worker never lets anything escape
            self.failed.emit(_message(exc))
        else:
            self.done.emit(result)
        self.over.emit()


class Task(QObject):
    """The GUI-thread face of one background job (its signals arrive on the GUI thread).

    `Tasks` keeps it alive until its result has been relayed (``delivered``), so a result queued
    behind another thread's end is never lost with its receiver."""

    done = Signal(object)
    failed = Signal(str)
    message = Signal(str)  # emitted from the job's thread; delivered queued to GUI-thread slots
    relayed = Signal()

    def __init__(self, name: str, cancel: threading.Event) -> None:
        super().__init__()
        self.name = name
        self.cancel = cancel
        self.delivered = False
        self.quiet = False  # see Tasks.start

    @Slot(object)
    def relay_done(self, result: Any) -> None:
        self.delivered = True
        if not self.cancel.is_set():
            self.done.emit(result)
        self.relayed.emit()

    @Slot(str)
    def relay_failed(self, message: str) -> None:
        self.delivered = True
        if not self.cancel.is_set():
            self.failed.emit(message)
        self.relayed.emit()


class Tasks(QObject):
    """Short background jobs, one QThread each; ``idle`` fires when none is left."""

    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[QThread, tuple[_Job, Task]] = {}
        self.closed = False

    def start(self, name: str, fn: Callable[..., Any], reports: bool = False, quiet: bool = False) -> Task:
        """Run ``fn(cancel_event)`` — or ``fn(cancel_event, report)`` with ``reports`` — in the background.

        A newer task of the same name cancels this one (its result is dropped). ``report(text)`` may
        be called from the job; the task's ``message`` signal carries it to the GUI thread. A
        ``quiet`` task does not make the window busy (``busy()``): work ahead of need, such as
        importing a library, that nothing on screen waits for."""
        for _, (_, older) in list(self._running.items()):
            if older.name == name:
                older.cancel.set()
        cancel = threading.Event()
        task = Task(name, cancel)
        task.quiet = quiet
        if self.closed:  # the window is going away: nothing new starts
            cancel.set()
            return task
        job = _Job((lambda: fn(cancel, task.message.emit)) if reports else (lambda: fn(cancel)))
        thread = QThread()
        thread.setObjectName(f"ftstudio-{name}")
        job.moveToThread(thread)
        job.done.connect(task.relay_done)
        job.failed.connect(task.relay_failed)
        job.over.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # may be blocked in wait()
        thread.started.connect(job.run)
        thread.finished.connect(self._reap)
        task.relayed.connect(self._reap)
        self._running[thread] = (job, task)
        thread.start()
        return task

    @Slot()
    def _reap(self) -> None:
        """Forget jobs whose thread has ended and whose result has reached the GUI thread."""
        for thread in [t for t, (_, task) in self._running.items() if t.isFinished() and task.delivered]:
            job, _ = self._running.pop(thread)
            thread.wait()
            job.deleteLater()
            thread.deleteLater()
        if not self._running:
            self.idle.emit()

    def busy(self, name: str | None = None) -> bool:
        return any((task.name == name) if name is not None else not task.quiet for _, task in self._running.values())

    def shutdown(self) -> None:
        """Cancel every job and join its thread (torch imports cannot be cut short: we wait).

        Afterwards ``start`` runs nothing: late timers of a closing window cannot start threads."""
        self.closed = True
        for _, task in list(self._running.values()):
            task.cancel.set()
        for thread, (_, task) in list(self._running.items()):
            thread.wait()
            QCoreApplication.sendPostedEvents(task)  # its (cancelled, so silent) relay
        self._reap()


# --------------------------------------------------------------------------------------- training
class _TrainJob(QObject):
    prepared = Signal(object)  # DataPreview
    progress = Signal(object)  # Packet
    over = Signal()

    def __init__(self, recipe, out: Path | None, resume: bool, stop: threading.Event, pause: threading.Event,
                 callbacks: tuple[Callback, ...]) -> None:
        super().__init__()
        self.recipe, self.out, self.resume = recipe, out, resume
        self.stop, self.pause = stop, pause
        self.extra = callbacks
        self.outcome: Outcome | None = None  # set on the worker thread before ``over``; read after join

    @Slot()
    def run(self) -> None:
        from ftstudio.core.errors import Cancelled

        run_path = self.out
        try:
            from ftstudio.core import engine
            from ftstudio.core.runs.folders import new_run_dir

            if run_path is None:  # created here so the window knows the folder from the start
                run_path = new_run_dir(None, self.recipe.name or "run")
            bridge = SignalBridge(self.progress.emit)

            def on_prepared(prepared) -> None:
                self.prepared.emit(make_preview(run_path, prepared))

            controls = engine.RunControls(stop=self.stop, pause=self.pause, callbacks=(bridge, *self.extra),
                                          progress=bridge.loading, on_prepared=on_prepared)
            with training_levers.applied(training_levers.DEFAULT):  # the window stays responsive
                if self.resume:
                    result = engine.resume(run_path, controls)
                else:
                    result = engine.train(self.recipe, run_path, controls)
            self.outcome = Outcome(str(result.summary.get("status") or result.finished.reason),
                                   result.run.path, result.summary)
        except BaseException as exc:  # noqa: BLE001 — exactly one outcome per run, always
            cancelled = self.stop.is_set() and isinstance(exc, Cancelled)
            _remove_if_empty(run_path)
            if cancelled:
                self.outcome = Outcome("cancelled", None, {}, "stopped before training started")
            else:
                kept = run_path if run_path is not None and run_path.exists() else None
                self.outcome = Outcome("failed", kept, _summary(kept), _message(exc))
        self.over.emit()


def _remove_if_empty(path: Path | None) -> None:
    """Remove a run folder nothing was written to (its lock file does not count)."""
    from ftstudio.core.runs.lock import LOCK_NAME

    try:
        if path is not None and path.is_dir() and all(p.name == LOCK_NAME for p in path.iterdir()):
            (path / LOCK_NAME).unlink(missing_ok=True)
            path.rmdir()
    except OSError:
        pass


def _summary(path: Path | None) -> dict[str, Any]:
    from ftstudio.core.runs.folders import Run

    return Run(path).read_summary() if path is not None and path.exists() else {}


class RunController(QObject):
    """Starts, pauses, resumes and stops training runs, one at a time, each on its own QThread.

    ``finished(Outcome)`` or ``failed(Outcome)`` fires once per run, after its thread has ended."""

    state_changed = Signal(str)  # idle, running, paused, stopping
    prepared = Signal(object)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stop_event = threading.Event()
        self.pause_event = threading.Event()
        self._thread: QThread | None = None
        self._job: _TrainJob | None = None
        self._silent = False
        self.state = "idle"
        self.run_path: Path | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, recipe, out: str | Path | None = None, resume: bool = False,
              callbacks: tuple[Callback, ...] = ()) -> bool:
        """Start a run in the background; False if one is already running."""
        if self.running:
            return False
        self.stop_event = threading.Event()
        self.pause_event = training_levers.YieldingPause(training_levers.DEFAULT.yield_s)
        self.run_path = Path(out) if out is not None else None
        job = _TrainJob(recipe, self.run_path, resume, self.stop_event, self.pause_event, tuple(callbacks))
        thread = QThread()
        thread.setObjectName("ftstudio-training")
        job.moveToThread(thread)
        job.prepared.connect(self._on_prepared)
        job.progress.connect(self._on_progress)
        job.over.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # may be blocked in wait()
        thread.started.connect(job.run)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._job, self._silent = thread, job, False
        self._set_state("running")
        thread.start()
        return True

    def pause(self) -> None:
        if self.running and self.state == "running":
            self.pause_event.set()
            self._set_state("paused")

    def resume(self) -> None:
        if self.running and self.state == "paused":
            self.pause_event.clear()
            self._set_state("running")

    def stop(self) -> None:
        """Ask the run to stop at the next batch boundary (the trainer writes a checkpoint)."""
        if self.running:
            self.stop_event.set()
            self.pause_event.clear()
            self._set_state("stopping")

    def wait(self) -> None:
        """Block until the training thread has ended, then deliver what it said, in order."""
        if self._thread is not None:
            self._thread.wait()
            QCoreApplication.sendPostedEvents(self)
            self._on_thread_finished()

    def shutdown(self) -> None:
        """Stop and join the run without announcing its end (the window is closing)."""
        self._silent = True
        self.stop()
        self.wait()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    @Slot(object)
    def _on_prepared(self, preview: DataPreview) -> None:
        self.run_path = preview.run_path
        if not self._silent:
            self.prepared.emit(preview)

    @Slot(object)
    def _on_progress(self, packet: Packet) -> None:
        if not self._silent:
            self.progress.emit(packet)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, job = self._thread, self._job
        if thread is None or job is None:
            return
        thread.wait()
        self._thread = self._job = None
        outcome = job.outcome or Outcome("failed", self.run_path, {}, "the training thread ended without a result")
        job.deleteLater()
        thread.deleteLater()
        self._set_state("idle")
        if self._silent:
            return
        (self.failed if outcome.status == "failed" else self.finished).emit(outcome)
