"""What the Train page shows, as growing numpy buffers fed by the worker's packets.

The bridge delivers packets a few times a second; plots read these buffers on their own ~15 Hz
timer (``version`` tells them whether anything changed). Also reads a finished run's
metrics.jsonl into the same shape, so a resumed run continues its old curves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ftstudio.gui.workers import DataPreview, Packet

SMOOTHING = 0.9  # exponential moving average of the per-step loss


class Series:
    """Growing (x, y) float arrays: amortised O(1) appends, ``view()`` without copying."""

    def __init__(self, capacity: int = 1024) -> None:
        self.x = np.empty(capacity, dtype=np.float64)
        self.y = np.empty(capacity, dtype=np.float64)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def extend(self, xs, ys) -> None:
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        need = self.n + len(xs)
        if need > len(self.x):
            size = max(need, 2 * len(self.x))
            self.x = np.resize(self.x, size)
            self.y = np.resize(self.y, size)
        self.x[self.n:need] = xs
        self.y[self.n:need] = ys
        self.n = need

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[:self.n], self.y[:self.n]

    def last(self) -> float | None:
        return float(self.y[self.n - 1]) if self.n else None


@dataclass
class Progress:
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    step: int = 0
    samples_per_s: float = 0.0
    batch_size: int = 0
    start_epoch: int = 0

    def fraction(self) -> float:
        if not self.epochs or not self.batches:
            return 0.0
        done = (max(self.epoch - 1, 0) * self.batches + self.batch) / (self.epochs * self.batches)
        return min(max(done, 0.0), 1.0)

    def eta_seconds(self) -> float | None:
        if not self.samples_per_s or not self.batches or not self.batch_size:
            return None
        left = (self.epochs - self.epoch) * self.batches + (self.batches - self.batch)
        return left * self.batch_size / self.samples_per_s


class LiveRun:
    """Curves, progress, the latest confusion matrix and validation predictions of one run."""

    def __init__(self) -> None:
        self.loss = Series()  # (step, loss) raw
        self.smooth = Series()  # (step, EMA of loss)
        self.lr = Series()  # (step, lr)
        self.val_loss = Series()  # (step at epoch end, val loss)
        self.train_loss = Series()  # (step at epoch end, mean train loss)
        self.train_acc = Series()  # (epoch, accuracy)
        self.val_acc = Series()  # (epoch, accuracy)
        self.best_epoch = 0
        self.best_step = 0
        self.progress = Progress()
        self.confusion: np.ndarray | None = None
        self.confusion_epoch = 0
        self.predictions: tuple[int, ...] = ()
        self.preview: DataPreview | None = None
        self.classes: tuple[str, ...] = ()
        self.device = ""
        self.loading: tuple[int, int] | None = None
        self.version = 0
        self._ema: float | None = None
        self.started = time.monotonic()

    # -------------------------------------------------------------------------- feeding
    def set_preview(self, preview: DataPreview) -> None:
        self.preview = preview
        self.classes = preview.classes
        self.version += 1

    def apply(self, packet: Packet) -> list[str]:
        """Take in one packet; returns log lines worth showing."""
        lines: list[str] = []
        p = self.progress
        if packet.loading:
            self.loading = packet.loading
        if packet.started:
            s = packet.started
            p.epochs, p.batches, p.batch_size, p.start_epoch = s.epochs, s.steps_per_epoch, s.batch_size, s.start_epoch
            p.epoch = s.start_epoch
            self.classes, self.device, self.loading = s.classes, s.device, None
            resumed = f", resuming after epoch {s.start_epoch}" if s.start_epoch else ""
            lines.append(f"training on {s.device}: {s.train_size} train / {s.val_size} validation images, "
                         f"{len(s.classes)} classes, {s.trainable_params:,} of {s.params:,} parameters "
                         f"trainable{resumed}")
        if packet.epoch_started:
            p.epoch, p.batch = packet.epoch_started.epoch, 0
        if packet.steps:
            self._add_losses(packet.steps, packet.losses)
        if packet.lrs:
            self.lr.extend([s for s, _ in packet.lrs], [v for _, v in packet.lrs])
        if packet.batch:
            b = packet.batch
            p.epoch, p.batch, p.batches, p.step = b.epoch, b.batch, b.batches, b.step
            p.samples_per_s = b.samples_per_s if not p.samples_per_s else 0.7 * p.samples_per_s + 0.3 * b.samples_per_s
        for e in packet.epochs:
            lines.append(self._add_epoch(e))
        if packet.validation is not None:
            v = packet.validation
            self.confusion, self.confusion_epoch, self.predictions = v.confusion, v.epoch, v.sample_predictions
        self.version += 1
        return lines

    def _add_losses(self, steps, losses) -> None:
        self.loss.extend(steps, losses)
        smooth = []
        for v in losses:
            if math.isfinite(v):
                self._ema = v if self._ema is None else SMOOTHING * self._ema + (1 - SMOOTHING) * v
            smooth.append(self._ema if self._ema is not None else float("nan"))
        self.smooth.extend(steps, smooth)

    def _add_epoch(self, e) -> str:
        self.train_acc.extend([e.epoch], [e.train_accuracy])
        self.train_loss.extend([e.step], [e.train_loss])
        if e.val_accuracy is not None:
            self.val_acc.extend([e.epoch], [e.val_accuracy])
        if e.val_loss is not None:
            self.val_loss.extend([e.step], [e.val_loss])
        if e.best:
            self.best_epoch, self.best_step = e.epoch, e.step
        self.progress.epoch, self.progress.step = e.epoch, e.step
        if e.epoch >= self.progress.epochs:
            self.progress.batch = self.progress.batches
        val = "" if e.val_loss is None else f"  val loss {e.val_loss:.4f}  val acc {e.val_accuracy:.3f}"
        mark = "  ★ best" if e.best else ""
        return (f"epoch {e.epoch}/{e.epochs}  train loss {e.train_loss:.4f}  acc {e.train_accuracy:.3f}{val}  "
                f"{e.seconds:.1f}s{mark}")

    def load_history(self, rows: list[dict]) -> None:
        """Fill the curves from a run's metrics.jsonl rows (when resuming or opening a run)."""
        for row in rows:
            if row.get("kind") == "steps":
                self._add_losses(row.get("steps", []), row.get("losses", []))
                if row.get("steps") and row.get("lr") is not None:
                    self.lr.extend([row["steps"][-1]], [row["lr"]])
            elif row.get("kind") == "epoch":
                e = _EpochRow(row)
                self._add_epoch(e)
        self.version += 1


class _EpochRow:
    """A metrics.jsonl epoch row with the attributes of an EpochFinished event."""

    def __init__(self, row: dict) -> None:
        self.epoch = int(row.get("epoch", 0))
        self.epochs = int(row.get("epochs", self.epoch))
        self.step = int(row.get("step", 0))
        self.train_loss = float(row.get("train_loss") or 0.0)
        self.train_accuracy = float(row.get("train_accuracy") or 0.0)
        self.val_loss = row.get("val_loss")
        self.val_accuracy = row.get("val_accuracy")
        self.seconds = float(row.get("seconds") or 0.0)
        self.best = bool(row.get("best"))


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03`` / ``5s`` — short, for the progress line and the runs table."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
