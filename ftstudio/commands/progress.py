"""Console output for long work: a tqdm bar per epoch (loss, samples/s, ETA) and epoch lines."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

from ftstudio.core.errors import Interrupted, Terminated
from ftstudio.core.training.callbacks import Callback
from ftstudio.core.training.events import BatchFinished, EpochFinished, EpochStarted, FitFailed, FitStarted


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


class ConsoleProgress(Callback):
    """A progress bar on a terminal; one line per epoch otherwise (logs, CI)."""

    order = 200

    def __init__(self, stream=None, prefix: str = "") -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.bar = None
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def on_fit_started(self, event: FitStarted) -> None:
        resumed = f", resuming after epoch {event.start_epoch}" if event.start_epoch else ""
        print(f"{self.prefix}training on {event.device}: {event.train_size} train / {event.val_size} val images, "
              f"{len(event.classes)} classes, {event.trainable_params:,} of {event.params:,} parameters trainable"
              f"{resumed}", file=self.stream, flush=True)

    def on_epoch_started(self, event: EpochStarted) -> None:
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=None, desc=f"{self.prefix}epoch {event.epoch}/{event.epochs}", unit="batch",
                            file=self.stream, leave=False, dynamic_ncols=True)

    def on_batch_finished(self, event: BatchFinished) -> None:
        if self.bar is not None:
            self.bar.total = event.batches
            self.bar.n = event.batch
            self.bar.set_postfix_str(f"loss {event.loss:.4f}, {event.samples_per_s:,.0f} samples/s", refresh=False)
            self.bar.refresh()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_finished(self, event: EpochFinished) -> None:
        self._close()
        mark = " *" if event.best else ""
        print(f"{self.prefix}epoch {event.epoch:>3}/{event.epochs}  train loss {_fmt(event.train_loss)}  "
              f"acc {_fmt(event.train_accuracy, 3)}  val loss {_fmt(event.val_loss)}  "
              f"val acc {_fmt(event.val_accuracy, 3)}  {event.samples_per_s:,.0f} samples/s  "
              f"{event.seconds:.1f}s{mark}", file=self.stream, flush=True)

    def on_fit_failed(self, event: FitFailed) -> None:
        self._close()


class Interruption(threading.Event):
    """Set by the first Ctrl-C or SIGTERM; ``signum`` says which (SIGTERM exits 143, Ctrl-C 130)."""

    signum: int = 0

    def error(self, message: str) -> Interrupted:
        return (Terminated if self.signum == signal.SIGTERM else Interrupted)(message)


@contextmanager
def ctrl_c_stops(stop_event: threading.Event):
    """First Ctrl-C or SIGTERM asks the trainer to stop (it saves a checkpoint); a second one aborts.

    SIGTERM is what `kill`, systemd and cluster schedulers send: it used to end the process at
    once, the summary left "running" and the partial epoch lost."""
    interrupted = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.signum = signum
        interrupted.set()
        stop_event.set()
        again = "Ctrl-C" if signum == signal.SIGINT else "a second signal"
        print(f"\nstopping after this batch and saving a checkpoint ({again} to abort)…",
              file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
