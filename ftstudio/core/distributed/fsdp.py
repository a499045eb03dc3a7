"""FSDP2 under torchrun: parameters, gradients and optimizer state sharded across the processes.

`shard` applies `torch.distributed.fsdp.fully_shard` to every stage of the network (the stages
gradient checkpointing uses: a backbone's blocks, an ftstudio network's layers), then to the root,
which keeps whatever lies outside them. Each stage's parameters are gathered just before it runs
and freed after, so a process holds its shard of everything plus one stage whole at a time.

Every rank takes part in each checkpoint (each writes its shards, see
`training.sharded_checkpoint`); rank 0 alone writes the run folder's other files, as under DDP.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ftstudio.core.training.callbacks import Checkpoint
from ftstudio.core.training.events import EpochFinished
from ftstudio.core.training.stages import network_stages


def shard(model: torch.nn.Module, device_type: str, world: int) -> dict[int, int]:
    """Shard ``model`` in place over ``world`` processes. Its parameters become new objects (DTensors):
    returns ``id(old) → id(new)``, for what was keyed by parameter (per-layer learning rates)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    before = dict(model.named_parameters())  # (held: no id is reused while the map is made)
    mesh = init_device_mesh(device_type, (world,))
    for stage in network_stages(model):
        if stage is not model:
            fully_shard(stage, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return {id(before[name]): id(p) for name, p in model.named_parameters() if name in before}


class PeerCheckpoint(Checkpoint):
    """On ranks other than 0: take part in each checkpoint rank 0 writes (this rank's shards), write nothing else.

    Rank 0 names the folder (the others may not know the run folder's name) and copies best.pt."""

    def __init__(self) -> None:
        super().__init__(Path("."))

    def on_epoch_finished(self, event: EpochFinished) -> None:
        assert self.trainer is not None
        self.trainer.save_checkpoint(self.last)
