"""Checkpoints of FSDP runs: model and optimizer state in a torch.distributed.checkpoint (DCP) folder.

Under ``distributed: fsdp`` no process holds the whole optimizer state, so each one writes its own
shards into a DCP folder next to ``last.pt`` (``checkpoints/sharded-…/``). ``last.pt`` stays the
ordinary checkpoint every other part of ftstudio reads (evaluate, export, try, fine-tune): rank 0
writes it with the *whole* model (gathered to its CPU one tensor at a time) and, instead of the
optimizer, the name of the DCP folder that holds it. Resuming loads model and optimizer from that
folder, which DCP re-shards for any number of processes: 2 → 1, 1 → 2, or a run on one process.

A new folder is written for every checkpoint, ``last.pt`` is then replaced atomically, and only
then are older folders removed: a crash at any moment leaves a ``last.pt`` whose folder is whole.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

PREFIX = "sharded-"  # then the step and a token: checkpoint.SHARDED_NAME


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _main() -> bool:
    return not _distributed() or dist.get_rank() == 0


def _agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not _distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def _quiet():
    """DCP warns that it assumes one process when no process group exists: that is the point here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*", category=UserWarning)
        yield


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on rank 0's CPU ({} on the other ranks); a collective under FSDP."""
    if not _distributed():
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in state.items()} if _main() else {}


def save(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
         write_main) -> None:
    """Every rank: write this rank's shards of model and optimizer into a new DCP folder beside ``path``;
    then rank 0 calls ``write_main(weights)`` with the checkpoint's ``model`` and ``sharded`` fields
    (it writes ``path``) and removes the folders ``path`` no longer names."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    path = Path(path)
    name = _agree(f"{PREFIX}{step:09d}-{uuid.uuid4().hex[:8]}")  # one folder, chosen by rank 0
    folder = _agree(str(path.parent))  # the other ranks may not know the run folder's name
    target = Path(folder) / name
    model_state, optim_state = get_state_dict(model, optimizer)
    with _quiet():
        dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(target),
                 no_dist=not _distributed())
    weights = full_model_state(model)
    if _main():
        write_main({"model": weights, "optimizer": None, "sharded": name})
        for old in Path(folder).glob(f"{PREFIX}*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    if _distributed():
        dist.barrier()  # nobody writes the next checkpoint while rank 0 still tidies this one


def folder_of(checkpoint_path: str | Path, name: str) -> Path:
    """The DCP folder a checkpoint names (a name, never a path: the file is untrusted)."""
    return Path(checkpoint_path).parent / name


def check_complete(folder: str | Path) -> None:
    """Refuse to resume from a DCP folder that is gone or was never finished (DCP writes .metadata last)."""
    from ftstudio.core.errors import InputError

    if not (Path(folder) / ".metadata").is_file():
        raise InputError(f"{folder}: the sharded model and optimizer state of this checkpoint is missing or "
                         "incomplete; the run cannot resume (its last.pt still evaluates, exports and fine-tunes)")


def load(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank: load model and optimizer state from a DCP folder, re-sharded to this job's processes."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from ftstudio.core.errors import InputError

    folder = Path(folder)
    check_complete(folder)
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    try:
        with _quiet():
            dcp.load(state, checkpoint_id=str(folder), no_dist=not _distributed())
    except Exception as exc:  # noqa: BLE001 — DCP raises CheckpointException, RuntimeError, KeyError…
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{folder}: cannot read the sharded checkpoint ({first})") from None
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
