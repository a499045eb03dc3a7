"""Growing the class set (the seed's 10 → 100, here 5 → 10): how should the new head rows start?

The seed network (784-256-10, SGD lr 0.01) is pretrained on MNIST digits 0–4 (`mnist5k`), frozen,
and its head grown to all ten digits, head-only, the seed's optimiser. Known rows are copied by
name; the five new rows start `random`, as the `mean` of the known rows, or `imprint`ed with each
new class's mean feature. Scored on the held-out images: all, known (0–4) and new (5–9) classes,
before training and after it, for several shot counts and seeds.

    python bench/class_growth.py                      # the table in bench/README.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SGD = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "device": "cpu"}


def pretrain(out: Path, epochs: int) -> Path:
    from ftstudio.core.engine import train
    from ftstudio.core.config.recipe import Recipe

    if not (out / "checkpoints" / "last.pt").exists():
        train(Recipe.from_dict({"model": "seed", "data": {"name": "mnist5k", "classes": list("01234")},
                                "train": {**SGD, "epochs": epochs}}), out)
    return out


def scores(prepared, split) -> tuple[float, float, float]:
    """(all, known 0–4, new 5–9) accuracy of the prepared model on ``split``."""
    import torch

    from ftstudio.core.training.loader import DeviceBatches

    model = prepared.model.cpu().eval()
    hits, labels = [], []
    with torch.no_grad():
        for xb, yb in DeviceBatches(split, prepared.data.mean, prepared.data.std, torch.device("cpu"), 512).epoch():
            hits.append(model(xb).argmax(1) == yb)
            labels.append(yb)
    hit, y = torch.cat(hits), torch.cat(labels)
    known = torch.tensor([prepared.data.classes[i] in "01234" for i in y.tolist()])
    return float(hit.float().mean()), float(hit[known].float().mean()), float(hit[~known].float().mean())


def run(source: Path, method: str, shots: int | None, seed: int, steps: int) -> dict:
    from ftstudio.core.engine import prepare, train
    from ftstudio.core.config.recipe import Recipe

    data = {"name": "mnist5k", "val_split": 0.2, "split_seed": 0, **({"per_class": shots} if shots else {})}
    recipe = Recipe.from_dict({"data": data, "train": {**SGD, "epochs": 1, "batch_size": 64, "seed": seed},
                               "finetune": {"source": str(source), "checkpoint": "last", "strategy": "head",
                                            "new_rows": method, "min_steps": steps}})
    prepared = prepare(recipe)
    val = prepared.data.val
    before = scores(prepared, val)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = val.subset(np.arange(10))
        import dataclasses

        run_prepared = dataclasses.replace(prepared, data=dataclasses.replace(prepared.data, val=tiny))
        train(run_prepared, Path(tmp) / "run")
    after = scores(prepared, val)
    return {"method": method, "shots": shots or "all", "seed": seed, "before": before, "after": after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ftstudio-class-growth"))
    ap.add_argument("--shots", default="1,5,20,all")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    source = pretrain(args.out / "pretrain", args.pretrain_epochs)
    rows = []
    for shots in args.shots.split(","):
        for method in ("random", "mean", "imprint"):
            for seed in [int(s) for s in args.seeds.split(",")]:
                row = run(source, method, None if shots == "all" else int(shots), seed, args.steps)
                rows.append(row)
                print(row, flush=True)
    print("\n| shots | new rows | before: all / known / new | after " f"{args.steps} steps: all / known / new |")
    print("|---|---|---|---|")
    for shots in args.shots.split(","):
        for method in ("random", "mean", "imprint"):
            rs = [r for r in rows if str(r["shots"]) == shots and r["method"] == method]

            def cell(key, rs=rs):
                parts = []
                for i in range(3):
                    vals = [r[key][i] for r in rs]
                    parts.append(f"{statistics.mean(vals):.3f}±{(max(vals) - min(vals)) / 2:.3f}")
                return " / ".join(parts)

            print(f"| {shots} | {method} | {cell('before')} | {cell('after')} |")


if __name__ == "__main__":
    main()
