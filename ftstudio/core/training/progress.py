"""Where a training run stands — the one object the trainer advances and a checkpoint stores.

Like PyTorch Lightning's progress objects: the counters (epochs done, global step, batches done in
the epoch in progress), the best epoch so far, the running sums of an unfinished epoch and the
random streams, with ``state_dict`` / ``load_state_dict``. Saving at any batch boundary and loading
resumes to identical results because everything that decides the next batch lives here.

``state_dict`` writes the keys of checkpoint format 1 (flat: ``epoch``, ``step``, ``batch``,
``partial``, ``rng``, ``best``), so checkpoints written before this class existed resume unchanged
and readers that look at ``ckpt["epoch"]`` keep working.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class EpochSums:
    """The running sums of the epoch in progress (a checkpoint written inside an epoch keeps them,
    so its train loss and accuracy come out as if it had never stopped)."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)


@dataclass
class Best:
    """The best epoch so far, by validation accuracy then loss (train loss when there is no validation)."""

    epoch: int = 0
    key: tuple[float, float] | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None

    def offer(self, epoch: int, train_loss: float, val_loss: float | None, val_accuracy: float | None) -> bool:
        """Record ``epoch`` if it beats the best so far; True when it does."""
        key = (val_accuracy, -(val_loss or 0.0)) if val_accuracy is not None else (-train_loss, 0.0)
        if self.key is not None and not key > self.key:  # (a NaN is never best)
            return False
        self.epoch, self.key, self.val_accuracy, self.val_loss = epoch, key, val_accuracy, val_loss
        return True


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass
class TrainProgress:
    """Counters, best epoch, unfinished-epoch sums and random streams of one training run."""

    seed: int = 0
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken, over the whole run
    batch: int = 0  # batches completed in the epoch in progress
    mid_epoch: bool = False  # stopped inside an epoch (its checkpoint resumes at ``batch``)
    sums: EpochSums = field(default_factory=EpochSums)
    best: Best = field(default_factory=Best)
    last_val: tuple[float | None, float | None] = (None, None)  # (loss, accuracy) of the last validation
    shuffle: torch.Generator = field(init=False)  # the order of the training samples
    augment: torch.Generator = field(init=False)  # random crops, flips, rotations
    epoch_shuffle: torch.Tensor = field(init=False)  # ``shuffle`` as the epoch in progress began

    def __post_init__(self) -> None:
        self.shuffle = _generator(self.seed)
        self.augment = _generator(self.seed + 1)
        self.epoch_shuffle = self.shuffle.get_state()

    def begin_epoch(self) -> None:
        """Remember how the epoch's shuffle starts (a mid-epoch checkpoint replays it); fresh sums
        unless this epoch is being resumed."""
        self.epoch_shuffle = self.shuffle.get_state()
        if self.batch == 0:
            self.sums = EpochSums()

    def end_epoch(self, epoch: int, val_loss: float | None, val_accuracy: float | None) -> None:
        self.epoch, self.batch, self.mid_epoch = epoch, 0, False
        self.last_val = (val_loss, val_accuracy)

    # ------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's progress keys (format 1); the global torch and CUDA generators are read now."""
        mid = self.mid_epoch
        return {
            "epoch": self.epoch,
            "batch": self.batch if mid else 0,
            "step": self.step,
            "partial": dataclasses.asdict(self.sums) if mid else None,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "shuffle": self.epoch_shuffle if mid else self.shuffle.get_state(),
                    "augment": self.augment.get_state()},
            "best": {"epoch": self.best.epoch, "key": list(self.best.key) if self.best.key else None,
                     "val_accuracy": self.best.val_accuracy, "val_loss": self.best.val_loss},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's progress keys; sets the global torch (and CUDA) generators too.

        Call `problem` first: this trusts what it is given."""
        self.epoch, self.step, self.batch = int(state["epoch"]), int(state["step"]), int(state.get("batch") or 0)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.shuffle.set_state(rng["shuffle"])
        self.augment.set_state(rng["augment"])
        self.epoch_shuffle = self.shuffle.get_state()
        best = state.get("best") or {}
        key = best.get("key")
        self.best = Best(int(best.get("epoch") or 0), (float(key[0]), float(key[1])) if key else None,
                         best.get("val_accuracy"), best.get("val_loss"))
        partial = state.get("partial")
        if partial:
            self.sums = EpochSums(**{f.name: partial.get(f.name, f.default) for f in dataclasses.fields(EpochSums)})


def problem(state: dict[str, Any]) -> str | None:
    """What keeps a checkpoint's progress keys from resuming a run (None when they can).

    A checkpoint is an untrusted file: a forged generator state would otherwise fail deep inside
    torch, with the run marked failed, instead of naming the field before anything is touched."""

    def is_state(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1

    rng = state.get("rng")
    if not isinstance(rng, dict):
        return "rng: expected the random generators' states (this checkpoint cannot resume a run)"
    for name in ("torch", "shuffle", "augment"):
        if not is_state(rng.get(name)):
            return f"rng.{name}: expected a generator state (a tensor of bytes)"
    cuda = rng.get("cuda") or []
    if not isinstance(cuda, (list, tuple)) or not all(is_state(t) for t in cuda):
        return "rng.cuda: expected a list of generator states"
    best = state.get("best") or {}
    key = best.get("key")
    if key is not None and (not isinstance(key, (list, tuple)) or len(key) != 2
                            or not all(_number(v) for v in key)):
        return "best.key: expected two numbers"
    for name in ("val_accuracy", "val_loss"):
        if best.get(name) is not None and not _number(best[name]):
            return f"best.{name}: expected a number"
    if best.get("epoch") is not None and not _whole(best["epoch"]):
        return "best.epoch: expected a whole number ≥ 0"
    partial = state.get("partial")
    if partial is not None:
        if not isinstance(partial, dict):
            return "partial: expected an object"
        for name, value in partial.items():
            if name not in EpochSums.__dataclass_fields__ or not _number(value) or value < 0:
                return f"partial.{name}: expected a known sum ≥ 0"
    return None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
