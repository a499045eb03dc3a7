"""The training loop: a plain PyTorch loop, made fast, observable, stoppable and resumable.

`Trainer.fit` runs on whatever thread calls it. It talks outward only through events delivered to
callbacks, checks ``stop_event`` / ``pause_event`` between batches, never syncs with the GPU per
batch, and can save a checkpoint at any batch boundary that resumes to identical results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ftstudio.core import messages
from ftstudio.core.allocator import collector_paused, frozen_collector, keep_freed_memory
from ftstudio.core.datasets.bundle import DataBundle
from ftstudio.core.devices import resolve_device
from ftstudio.core.errors import FtError, GuardStop, os_error_hint, os_error_message
from ftstudio.core.config.recipe import AugmentSpec, TrainConfig
from ftstudio.core.training import checkpoint, sharded_checkpoint
from ftstudio.core.training.callbacks import Callback
from ftstudio.core.training.events import (HOOKS, BatchFinished, EpochFinished, EpochStarted, FitFailed, FitFinished,
                                           FitStarted, ValidationFinished)
from ftstudio.core.training.loader import DeviceBatches
from ftstudio.core.training.metrics import evaluate
from ftstudio.core.training.mlp_step import mlp_step
from ftstudio.core.training.optim import make_optimizer, make_scheduler, param_groups
from ftstudio.core.training.progress import TrainProgress
from ftstudio.core.training.stages import checkpoint_stages

_NO_AUTOCAST = contextlib.nullcontext()
EVENT_INTERVAL_S = 0.25  # BatchFinished at most ~4 times a second
SAMPLE_PREDICTIONS = 64


class _NotFinite(Exception):
    def __init__(self, value: float, step: int) -> None:
        self.value, self.step = value, step


BATCH_STATS = "_ftstudio_batch_stats"  # set on a frozen BatchNorm the fine-tune plan keeps in train mode (bn train)


def _hold_frozen_norms(model: torch.nn.Module) -> None:
    """Keep frozen BatchNorm layers in eval mode: frozen means their running statistics stay too
    (unless the fine-tune plan's ``bn: train`` marked them, see finetune.normalisation)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params) and not getattr(m, BATCH_STATS, False):
                m.eval()


class _Window:
    """The steps since the last event, kept on the device until read in one go (no per-step sync;
    train accuracy is computed for the whole window at once rather than per batch, and so is the loss
    of a step that left it to the caller: core/training/mlp_step)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing
        self.losses: list[torch.Tensor | None] = []  # None: the step's loss is computed from its logits
        self.outputs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.sizes: list[int] = []

    def add(self, loss: torch.Tensor | None, output: torch.Tensor, labels: torch.Tensor) -> None:
        self.losses.append(loss)
        self.outputs.append(output)
        self.labels.append(labels)
        self.sizes.append(int(labels.shape[0]))

    def read(self) -> tuple[list[float], int]:
        """(each step's loss, the number of right answers), read from the device in a few syncs."""
        losses: list[float | None] = [None] * len(self.sizes)
        given = [i for i, loss in enumerate(self.losses) if loss is not None]
        if given:
            for i, value in zip(given, torch.stack([self.losses[i] for i in given]).float().cpu().tolist()):
                losses[i] = value
        correct: torch.Tensor | int = 0  # summed on the logits' device
        computed: list[int] = []
        means: list[torch.Tensor] = []
        # the steps in runs of one batch size (all but an epoch's last batch), as steps × classes ×
        # samples: the classes are reduced vectorised along the samples (the MLP step's logits come as
        # transposed views of that layout; a log-softmax over 33,000 rows of 10 classes took 2.7 ms,
        # 0.14 ms so), and each step's numbers are the same bits whatever else the window holds, as an
        # interrupted and resumed run's must be (not so down one long row: a step's place in it moved its last bit)
        for _, run in itertools.groupby(range(len(self.sizes)), key=self.sizes.__getitem__):
            steps = list(run)
            logits = torch.stack([self.outputs[i].transpose(0, 1) for i in steps])
            labels = torch.stack([self.labels[i] for i in steps])
            correct = correct + (logits.max(1).indices == labels).sum()  # max's indices: the first of equals
            if all(losses[i] is not None for i in steps):
                continue
            each = F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=self.label_smoothing)
            computed += steps
            means.append(each.mean(1))
        if means:
            for i, value in zip(computed, torch.cat(means).cpu().tolist()):
                if losses[i] is None:
                    losses[i] = value
        return losses, int(correct)  # type: ignore[return-value]  # every step's is filled in

    def clear(self) -> None:
        for part in (self.losses, self.outputs, self.labels, self.sizes):
            part.clear()


class Trainer:
    """Trains ``model`` on ``data`` with ``config``; see module docstring."""

    def __init__(self, model: torch.nn.Module, data: DataBundle, config: TrainConfig,
                 callbacks: list[Callback] | tuple[Callback, ...] = (), *,
                 stop_event: threading.Event | None = None, pause_event: threading.Event | None = None,
                 lr_multipliers: dict[int, float] | None = None, state: dict[str, Any] | None = None,
                 augment: AugmentSpec | None = None, dist=None) -> None:
        self.model = model
        self.data = data
        self.config = config
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self._callback_stop = False
        self.stop_event = stop_event or threading.Event()
        self.pause_event = pause_event or threading.Event()
        self.lr_multipliers = lr_multipliers or {}
        self.augment = augment
        self.dist = dist  # a DistContext under torchrun, else None
        self.module = model  # the unwrapped network (``self.model`` may be its DDP wrapper)
        self.state = dict(state or {})  # recipe, architecture, classes… stored in every checkpoint
        self.device = resolve_device(config.device)
        self.progress = TrainProgress(config.seed)  # where the run stands: what a checkpoint resumes
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.scaler: torch.amp.GradScaler | None = None
        for cb in self.callbacks:
            cb.setup(self)

    # ----------------------------------------------------------------- control
    @property
    def done(self) -> bool:
        """True when anything asked training to end: the stop event or a callback's flag."""
        return self.stop_event.is_set() or self._callback_stop

    def stop_reason(self) -> str:
        if self.stop_event.is_set():
            return "stopped"
        return next((cb.stop_reason for cb in self.callbacks if cb.stop_reason), "completed")

    def emit(self, event: Any) -> None:
        hook = HOOKS[type(event)]
        for cb in self.callbacks:
            getattr(cb, hook)(event)
        # callbacks raise their flag only inside hooks: gather it here, not on every batch
        self._callback_stop = any(cb.stop_reason for cb in self.callbacks)

    def _wait_if_paused(self) -> float:
        if not self.pause_event.is_set():
            return 0.0
        start = time.perf_counter()
        while self.pause_event.is_set() and not self.stop_event.is_set():
            self.stop_event.wait(0.05)
        return time.perf_counter() - start

    # ------------------------------------------------------------------- setup
    def _amp_dtype(self) -> torch.dtype | None:
        if not self.config.amp or self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _prepare(self) -> tuple[DeviceBatches, DeviceBatches | None]:
        conv = any(isinstance(m, torch.nn.Conv2d) for m in self.model.modules())
        channels_last = conv and self.device.type == "cuda"
        self.module.to(self.device)
        if channels_last:
            self.module.to(memory_format=torch.channels_last)
        cfg = self.config
        if cfg.grad_checkpoint:
            checkpoint_stages(self.module)
        if self.dist is not None:  # fsdp: sharded in place, before the optimizer sees the (new) parameters
            moved = self.dist.shard(self.module)
            self.lr_multipliers = {moved.get(k, k): v for k, v in self.lr_multipliers.items()}
        rank, world = (self.dist.rank, self.dist.world) if self.dist else (0, 1)
        train = DeviceBatches(self.data.train, self.data.mean, self.data.std, self.device, cfg.batch_size,
                              shuffle=True, augment=self.augment, channels_last=channels_last, rank=rank, world=world)
        val = None
        if len(self.data.val):
            val = DeviceBatches(self.data.val, self.data.mean, self.data.std, self.device, max(cfg.batch_size, 512),
                                channels_last=channels_last, rank=rank, world=world)
        with collector_paused():  # a process's first optimizer imports torch._dynamo: `collector_paused`
            self.optimizer = make_optimizer(param_groups(self.module, self.lr_multipliers), cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, len(train))
        amp = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
        return train, val

    def rebuild_optimizer(self) -> None:
        """Re-create the optimizer after ``requires_grad`` changed (gradual unfreezing), keeping the step."""
        assert self.optimizer is not None
        if self.dist is not None:  # DDP syncs only what trained when it was wrapped: wrap again
            self.model = self.dist.wrap(self.module)
        old = self.optimizer
        self.optimizer = make_optimizer(param_groups(self.module, self.lr_multipliers), self.config)
        for p, st in old.state.items():
            if p.requires_grad:
                self.optimizer.state[p] = st
        steps = self.scheduler.last_epoch
        self.scheduler = make_scheduler(self.optimizer, self.config, self._steps_per_epoch)
        with warnings.catch_warnings():  # fast-forwarding a fresh schedule is not the misuse torch warns about
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            for _ in range(steps):
                self.scheduler.step()

    # ------------------------------------------------------------- checkpoint
    def checkpoint_state(self, weights: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything a checkpoint holds; ``weights`` (fsdp: the gathered model, the sharded folder's name)
        replace the model and optimizer state read from this process."""
        assert self.optimizer is not None
        return {
            **self.state,
            **(weights or {"model": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
                           "optimizer": self.optimizer.state_dict()}),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            **self.progress.state_dict(),
            "callbacks": {cb.key: cb.state_dict() for cb in self.callbacks},
            "config": {"epochs": self.config.epochs, "batch_size": self.config.batch_size, "seed": self.config.seed},
        }

    def save_checkpoint(self, path) -> None:
        try:
            if self.config.distributed == "fsdp":  # every rank writes its shards, rank 0 also ``path``
                sharded_checkpoint.save(path, self.module, self.optimizer, self.progress.step,
                                        lambda weights: checkpoint.save(path, self.checkpoint_state(weights)))
            else:
                checkpoint.save(path, self.checkpoint_state())
        except OSError as exc:
            kept = "the previous checkpoint is kept" if Path(path).exists() else "no checkpoint was written"
            raise FtError(f"cannot write checkpoint {path}: {exc.strerror or exc}; {kept}"
                          + (f" ({hint})" if (hint := os_error_hint(exc)) else "")) from None

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if ckpt.get("sharded_path"):  # an fsdp run: re-sharded for this job's processes (any number)
            sharded_checkpoint.load(ckpt["sharded_path"], self.module, self.optimizer)
        else:
            self.module.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.progress.load_state_dict(ckpt)

    def _restore_callbacks(self, ckpt: dict[str, Any]) -> None:
        states = ckpt.get("callbacks") or {}
        for cb in self.callbacks:
            if cb.key in states:
                cb.load_state_dict(states[cb.key])

    # -------------------------------------------------------------------- fit
    def fit(self, resume: dict[str, Any] | None = None) -> FitFinished:
        """Train for ``config.epochs`` (or until stopped); ``resume`` is a loaded checkpoint dict."""
        # a step's large blocks serve the next step; no full collection walks torch's objects (core/allocator.py)
        with keep_freed_memory(), frozen_collector():
            return self._fit(resume)

    def _fit(self, resume: dict[str, Any] | None) -> FitFinished:
        started = time.perf_counter()
        try:
            if resume is not None:  # first: a callback's state may change what trains (gradual unfreezing)
                self._restore_callbacks(resume)
            train, val = self._prepare()
            self._steps_per_epoch = len(train)
            if resume is not None:
                self._restore(resume)
            if self.dist is not None:
                self.model = self.dist.wrap(self.module)
            params = sum(p.numel() for p in self.module.parameters())
            trainable = sum(p.numel() for p in self.module.parameters() if p.requires_grad)
            self.emit(FitStarted(self.config.epochs, self.progress.epoch, len(train), str(self.device), params,
                                 trainable, len(self.data.train), len(self.data.val), self.data.classes,
                                 self.config.batch_size))
            while self.progress.epoch < self.config.epochs and not self.done:
                self._run_epoch(train, val)
        except _NotFinite as exc:
            message = messages.LOSS_NOT_FINITE.format(value=exc.value, epoch=self.progress.epoch + 1, step=exc.step)
            self.emit(FitFailed(message, "not_finite", self.progress.epoch + 1, exc.step))
            raise GuardStop(message) from None
        except torch.OutOfMemoryError:
            smaller = max(1, self.config.batch_size // 2)
            message = messages.OUT_OF_MEMORY.format(device=self.device, batch_size=self.config.batch_size,
                                                    smaller=smaller)
            self._free_memory()
            self.emit(FitFailed(message, "out_of_memory", self.progress.epoch + 1, self.progress.step))
            raise FtError(message) from None
        except FtError as exc:
            self.emit(FitFailed(str(exc), "error", self.progress.epoch + 1, self.progress.step))
            raise
        except OSError as exc:  # a run file could not be written (disk full, folder gone, read-only)
            message = os_error_message(exc) or f"cannot write {exc.filename or 'a run file'}: {exc.strerror or exc}"
            self._emit_failed_quietly(FitFailed(message, "io", self.progress.epoch + 1, self.progress.step))
            raise FtError(message) from None
        except Exception as exc:
            self.emit(FitFailed(f"{type(exc).__name__}: {exc}", "error", self.progress.epoch + 1, self.progress.step))
            raise
        p = self.progress
        val_loss, val_acc = p.last_val
        result = FitFinished(self.stop_reason(), p.epoch, p.best.epoch, p.best.val_accuracy, p.best.val_loss,
                             val_acc, val_loss, time.perf_counter() - started)
        self.emit(result)
        return result

    def _emit_failed_quietly(self, event: FitFailed) -> None:
        """Report a failure whose cause may also break the callbacks that record it."""
        for cb in self.callbacks:
            try:
                cb.on_fit_failed(event)
            except OSError:
                pass

    def _free_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _run_epoch(self, train: DeviceBatches, val: DeviceBatches | None) -> None:
        cfg, model, opt, progress = self.config, self.model, self.optimizer, self.progress
        epoch = progress.epoch + 1
        skip = progress.batch  # > 0 when resuming inside an epoch: replay its shuffle, skip what was done
        progress.begin_epoch()
        self.emit(EpochStarted(epoch, cfg.epochs, opt.param_groups[0]["lr"]))
        model.train()
        _hold_frozen_norms(self.module)
        amp = self._amp_dtype()
        scheduled = cfg.scheduler != "none" or cfg.warmup_epochs > 0  # a constant rate needs no per-step call
        window = _Window(cfg.label_smoothing)
        window_start = epoch_start = time.perf_counter()
        window_seen, paused, last_emit = 0, 0.0, window_start
        batches = len(train)
        b = skip
        step_on = self._step_function(amp)
        pause, stop, lone = self.pause_event, self.stop_event, self.dist is None
        for xb, yb in train.epoch(progress.shuffle, progress.augment, skip):
            if pause.is_set():
                paused += self._wait_if_paused()
            if (stop.is_set() or self._callback_stop) if lone else self._should_stop(window.losses):
                break
            out, loss = step_on(xb, yb)
            if scheduled:
                self.scheduler.step()
            progress.step += 1
            b += 1
            progress.batch = b
            # no per-step read of the loss, on the CPU either (it cost 3–6 % of an epoch at batch 64):
            # a non-finite loss is found, with its exact step, when the window is read below
            window.add(None if loss is None else loss.detach(), out.detach(), yb)
            now = time.perf_counter()
            if now - last_emit >= EVENT_INTERVAL_S or b == batches:
                losses = self._account(window)  # the one device sync per event
                bad = next((v for v in losses if not math.isfinite(v)), None)
                if bad is not None:
                    raise _NotFinite(bad, progress.step - len(losses) + losses.index(bad) + 1)
                n = sum(window.sizes)
                window.clear()
                window_seen += n * (self.dist.world if self.dist else 1)  # samples/s of the whole job
                elapsed = max(now - window_start - paused, 1e-9)
                steps = tuple(range(progress.step - len(losses) + 1, progress.step + 1))
                self.emit(BatchFinished(epoch, progress.step, b, batches, sum(losses) / len(losses),
                                        opt.param_groups[0]["lr"], window_seen / elapsed, steps, tuple(losses)))
                window_start, window_seen, paused, last_emit = now, 0, 0.0, now
        if window.losses:  # stopped between events: account for what ran
            self._account(window)
        progress.sums.seconds += time.perf_counter() - epoch_start
        progress.mid_epoch = b < batches
        if not progress.mid_epoch:
            self._finish_epoch(epoch, val)

    def _step_function(self, amp: torch.dtype | None):
        """One optimizer step on a batch → (outputs, loss); the common case without AMP or clipping
        is its own tight function (this is the hot path), and a plain Linear/ReLU chain on one process
        skips autograd altogether (core/training/mlp_step: 1.25–1.9× the hand-written loop's speed).

        Gradients are dropped by assigning None to the optimizer's parameters rather than through
        ``opt.zero_grad(set_to_none=True)``, which does the same behind a profiler range and a
        foreach dispatch: 3–8 % of a seed-MLP step at batch 64 on this CPU (bench/throughput.py).
        Built per epoch: the optimizer is rebuilt only between epochs (gradual unfreezing)."""
        model, opt, cfg, scaler = self.model, self.optimizer, self.config, self.scaler
        smoothing = cfg.label_smoothing
        params = [p for group in opt.param_groups for p in group["params"]]

        def zero_grad() -> None:
            for p in params:
                p.grad = None

        def plain(xb: torch.Tensor, yb: torch.Tensor):
            out = model(xb)
            loss = F.cross_entropy(out, yb, label_smoothing=smoothing)
            zero_grad()
            loss.backward()
            opt.step()
            return out, loss

        if amp is None and scaler is None and not cfg.grad_clip:
            fast = mlp_step(model, opt, plain, smoothing) if self.dist is None else None
            return fast or plain

        def general(xb: torch.Tensor, yb: torch.Tensor):
            with torch.autocast(self.device.type, dtype=amp) if amp is not None else _NO_AUTOCAST:
                out = model(xb)
                loss = F.cross_entropy(out, yb, label_smoothing=smoothing)
            zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
            return out, loss

        return general

    def _should_stop(self, pending: list[torch.Tensor | None]) -> bool:
        """Stop before the next batch? Under DDP all ranks decide together (and trip the NaN guard
        together), or one would wait forever for the others in the next all-reduce."""
        if self.dist is None:
            return self.done
        flags = torch.zeros(2, device=self.device)
        flags[0] = float(self.done)
        if pending and pending[-1] is not None:  # (None only from the MLP step, which DDP never runs)
            flags[1] = (~torch.isfinite(pending[-1])).float()
        self.dist.all_reduce(flags, op="max")
        if flags[1] > 0:
            raise _NotFinite(float("nan"), self.progress.step)
        if flags[0] > 0:
            self.stop_event.set()
            return True
        return False

    def _account(self, window: _Window) -> list[float]:
        """Add a window of steps to the epoch's running sums; returns its per-step losses."""
        losses, correct = window.read()
        sums = self.progress.sums
        sums.loss_sum += sum(v * s for v, s in zip(losses, window.sizes))
        sums.seen += sum(window.sizes)
        sums.correct += correct
        return losses

    def _finish_epoch(self, epoch: int, val: DeviceBatches | None) -> None:
        progress = self.progress
        part = progress.sums
        if self.dist is not None:  # average over every rank's samples
            sums = torch.tensor([part.loss_sum, part.correct, part.seen], dtype=torch.float64, device=self.device)
            loss_sum, correct, seen = self.dist.all_reduce(sums).tolist()
            part = dataclasses.replace(part, loss_sum=loss_sum, correct=correct, seen=seen)
        train_loss, train_acc = part.loss, part.accuracy
        val_loss = val_acc = None
        if val is not None:
            ev = evaluate(self.model, val, self.data.num_classes, self._amp_dtype(), self.dist)
            val_loss, val_acc = ev.loss, ev.accuracy
            self.emit(ValidationFinished(epoch, val_loss, val_acc, ev.confusion,
                                         tuple(int(p) for p in ev.predictions[:SAMPLE_PREDICTIONS])))
        best = progress.best.offer(epoch, train_loss, val_loss, val_acc)
        progress.end_epoch(epoch, val_loss, val_acc)
        seconds = part.seconds
        self.emit(EpochFinished(epoch, self.config.epochs, progress.step, train_loss, train_acc, val_loss, val_acc,
                                self.optimizer.param_groups[0]["lr"], seconds, part.seen / max(seconds, 1e-9), best))
