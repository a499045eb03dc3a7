"""Running a recipe under torchrun (PyTorch DDP or FSDP2): gloo on the CPU, NCCL on GPUs.

`torchrun --nproc_per_node N -m ftstudio train …` starts N copies of the CLI; each one calls
`train_maybe_distributed`, which joins the process group, shards every global batch across the
ranks (the recipe's batch size stays the *global* batch, so results and checkpoints do not depend
on the world size), averages metrics across ranks, and lets rank 0 alone write the run folder.
The recipe's ``train.distributed`` picks how the model is spread: ``ddp`` copies it on every rank,
``fsdp`` shards it (`distributed.fsdp`), and then every rank writes its shards of each checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ftstudio.core.errors import InputError

if TYPE_CHECKING:
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.engine import RunControls, RunResult


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_rank: int
    backend: str
    mode: str = "ddp"  # the recipe's train.distributed: ddp or fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def for_recipe(self, recipe) -> DistContext:
        """This context in the mode ``recipe`` asks for (known only once a resumed run's recipe is read)."""
        return dataclasses.replace(self, mode=recipe.train.distributed)

    def summary(self) -> dict:
        """What summary.json records of how the run was spread."""
        return {"world_size": self.world, "distributed": self.mode}

    def shard(self, model) -> dict[int, int]:
        """FSDP: shard ``model`` in place, before the optimizer is made (it must see the sharded parameters);
        returns ``id(old parameter) → id(new)`` ({} under DDP, where parameters stay)."""
        if self.mode != "fsdp":
            return {}
        from ftstudio.core.distributed.fsdp import shard

        return shard(model, "cuda" if self.backend == "nccl" else "cpu", self.world)

    def follower_callbacks(self) -> list:
        """The callbacks of ranks other than 0: none under DDP; under FSDP, their part in each checkpoint."""
        if self.mode != "fsdp":
            return []
        from ftstudio.core.distributed.fsdp import PeerCheckpoint

        return [PeerCheckpoint()]

    def all_reduce(self, tensor, op: str = "sum"):
        """Reduce ``tensor`` in place across ranks (sum or max) and return it."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return tensor

    def wrap(self, model):
        """The model in DistributedDataParallel (parameters broadcast from rank 0); under FSDP the
        model itself (`shard` already made it a distributed module)."""
        from torch.nn.parallel import DistributedDataParallel

        trainable = any(p.requires_grad for p in model.parameters())
        if not trainable or self.mode == "fsdp":
            return model
        device_ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def init_from_env() -> DistContext | None:
    """Join the process group torchrun describes (None when not launched by torchrun)."""
    if world_size() <= 1:
        return None
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world, local, backend)


def train_maybe_distributed(recipe: Recipe | None, out: str | Path | None, controls: RunControls, *,
                            resume: bool = False, epochs: int | None = None) -> RunResult | None:
    """`engine.train` (or, with ``resume``, `engine.resume` of ``out``) in this process, or as one
    rank of a torchrun job.

    Returns the RunResult on rank 0 (and in a plain run), None on the other ranks."""
    from ftstudio.core import engine

    def start(dist: DistContext | None, recipe: Recipe | None) -> RunResult:
        if resume:
            assert out is not None
            return engine.resume(out, controls, epochs=epochs, dist=dist)
        assert recipe is not None
        return engine.train(recipe, out, controls, dist=dist)

    ctx = init_from_env()
    if ctx is None:
        return start(None, recipe)
    import torch.distributed as dist

    if recipe is not None and recipe.train.batch_size % ctx.world:
        raise InputError(f"--batch-size {recipe.train.batch_size}: the global batch must divide evenly "
                         f"across {ctx.world} processes")
    if ctx.backend == "nccl" and recipe is not None and recipe.train.device in ("auto", "cuda"):
        recipe = recipe.replace(train=_with(recipe.train, device=f"cuda:{ctx.local_rank}"))
    try:
        result = start(ctx, recipe)  # (the engine gives only rank 0 the front door's callbacks)
        dist.barrier()  # every rank is done with the group before anyone tears it down
        return result if ctx.is_main else None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def leave_worker(code: int) -> NoReturn:
    """End a torchrun worker process without interpreter finalization (stdio flushed first).

    Why: after a completed run, gloo's worker thread can still be destroying a finished collective
    (``ProcessGroupGloo::runLoop`` → ``~AsyncBarrierWork`` → ``~AsyncAllgatherCoalescedWork``), whose
    tensors have Python objects; once the main thread is finalizing the interpreter, that decref's
    GIL acquire ends the thread (``PyThread_exit_thread``), the forced unwind meets a noexcept
    destructor and the process aborts — "terminate called without an active exception", SIGABRT,
    torchrun reports the job FAILED. Seen in 1 of 16–32 two-process runs on 2 busy cores, with
    ``destroy_process_group`` already called (a core dump of rank 1 gave that stack). By now every
    file is written and closed and the group is destroyed; skipping finalization leaves that thread
    nothing to race against."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _with(obj, **changes):
    return dataclasses.replace(obj, **changes)
