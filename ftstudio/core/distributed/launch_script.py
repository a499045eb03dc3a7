"""A launch script for a cluster: the recipe plus the `torchrun` command that trains it under DDP or FSDP
(the recipe's ``train.distributed``).

The script is plain bash that any scheduler can wrap (Slurm, PBS, a shell on each node): it sets
the node count, processes per node and rendezvous from environment variables with defaults, and
runs `python -m ftstudio run recipe.json` on every process. One node uses `--standalone`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ftstudio.core.errors import InputError
from ftstudio.core.fileio import atomic_write_text
from ftstudio.core.config.recipe import Recipe

TEMPLATE = """#!/usr/bin/env bash
# Train {name} with PyTorch {mode} (torchrun) — written by ftstudio.
# One node:   bash {script}
# Several:    on every node run  NNODES=N NODE_RANK=i MASTER_ADDR=host-of-node-0 bash {script}
# The recipe's batch size ({batch}) is the global batch: it is split across all processes, so the
# result does not depend on how many there are (it must divide evenly by NNODES × NPROC_PER_NODE).
set -euo pipefail
cd "$(dirname "$0")"
NNODES=${{NNODES:-{nnodes}}}
NPROC_PER_NODE=${{NPROC_PER_NODE:-{nproc}}}
NODE_RANK=${{NODE_RANK:-0}}
MASTER_ADDR=${{MASTER_ADDR:-localhost}}
MASTER_PORT=${{MASTER_PORT:-29500}}
PYTHON=${{PYTHON:-{python}}}
OUT=${{OUT:-{out}}}
if [ "$NNODES" = 1 ]; then
  RDZV=(--standalone)
else
  RDZV=(--nnodes "$NNODES" --node_rank "$NODE_RANK" --rdzv_backend c10d --rdzv_id ftstudio-{rdzv_id}
        --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT")
fi
exec "$PYTHON" -m torch.distributed.run "${{RDZV[@]}}" --nproc_per_node "$NPROC_PER_NODE" \\
  -m ftstudio run recipe.json --out "$OUT"
"""

MODES = {"ddp": "DDP", "fsdp": "FSDP"}


def write_launch_script(recipe: Recipe, folder: str | Path, *, nproc_per_node: int = 2, nnodes: int = 1,
                        python: str = "python3", out: str = "run") -> Path:
    """Write ``folder/recipe.json`` and ``folder/launch.sh``; returns the script's path."""
    if nproc_per_node < 1 or nnodes < 1:
        raise InputError("processes per node and nodes must be at least 1")
    world = nproc_per_node * nnodes
    if recipe.train.batch_size % world:
        raise InputError(f"batch size {recipe.train.batch_size} does not divide evenly across {world} processes; "
                         f"choose a multiple of {world}")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "recipe.json", json.dumps(recipe.to_dict(), indent=2) + "\n")
        script = folder / "launch.sh"
        name = recipe.name or "the recipe"
        atomic_write_text(script, TEMPLATE.format(
            name=name.replace("\n", " "), mode=MODES[recipe.train.distributed], script=script.name,
            batch=recipe.train.batch_size, nnodes=nnodes, nproc=nproc_per_node, python=shlex.quote(python),
            out=shlex.quote(out),
            rdzv_id="".join(c for c in name if c.isalnum())[:20] or "job"))
        script.chmod(0o755)
    except OSError as exc:
        raise InputError(f"cannot write the launch script to {folder}: {exc.strerror or exc}") from None
    return script
