"""What an in-memory split costs before and during training: normalised to float32 once, or kept uint8
and normalised per batch (what ftstudio does above ``loader.FLOAT_COPY_LIMIT``), side by side.

    python bench/loader_memory.py [--images 80000] [--size 64] [--batches 50] [--rounds 2]

Each mode runs in a fresh process on the same random 3×size×size uint8 images: peak RSS (getrusage),
the seconds from the split to the first batch, and the seconds of ``--batches`` shuffled training steps
of ftstudio's "cnn" preset at batch 64 (Adam; the heap kept as in a fit, after 3 steps to warm up) — so
the per-batch normalisation is timed where it runs, inside real steps. The modes alternate for
``--rounds``; prints each mode's medians and the ratios per batch / once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
import torch
from ftstudio.core.architecture.build import build_model
from ftstudio.core.architecture.presets import resolve_model
from ftstudio.core.datasets.bundle import Split
from ftstudio.core.training import loader
from ftstudio.core.allocator import keep_freed_memory

n, size, batches, mode = {n}, {size}, {batches}, {mode!r}
gen = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
y = torch.randint(0, 10, (n,), generator=gen)
model, _ = build_model(resolve_model("cnn"), (3, size, size), 10)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loader.FLOAT_COPY_LIMIT = 0 if mode == "per batch" else float("inf")
start = time.perf_counter()
it = loader.DeviceBatches(Split(x, y), (0.5,) * 3, (0.25,) * 3, torch.device("cpu"), 64, shuffle=True).epoch()
xb, yb = next(it)
first = time.perf_counter() - start
with keep_freed_memory():  # as Trainer.fit steps
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        opt.step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(batches):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        opt.step()
        xb, yb = next(it)
    steps = time.perf_counter() - start
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / batches
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"data_gb": x.numel() / 1e9, "before_gb": before / 2**20, "peak_gb": peak / 2**20,
                  "first_s": first, "steps_s": steps, "faults": faults}}))
"""


def run(mode: str, args: argparse.Namespace) -> dict:
    code = CHILD.format(root=str(ROOT), n=args.images, size=args.size, batches=args.batches, mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=80_000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"once": [], "per batch": []}
    for _ in range(args.rounds):
        for mode, got in runs.items():
            got.append(run(mode, args))
    res = {mode: {k: statistics.median(r[k] for r in got) for k in got[0]} for mode, got in runs.items()}
    for mode, r in res.items():
        print(f"{mode:>9}: {r['data_gb']:.2f} GB of uint8 images; peak RSS {r['peak_gb']:.2f} GB "
              f"({r['before_gb']:.2f} before the loader); first batch after {r['first_s']:.2f} s; "
              f"{args.batches} steps {r['steps_s']:.2f} s ({r['faults']:,.0f} page faults a step)")
    once, per = res["once"], res["per batch"]
    print(f"per batch / once: peak RSS {per['peak_gb'] / once['peak_gb']:.2f}, first batch "
          f"{per['first_s'] / once['first_s']:.3f}, steps {per['steps_s'] / once['steps_s']:.3f}")


if __name__ == "__main__":
    main()
