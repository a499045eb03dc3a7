"""Transfer benchmark: shifted domains × shots × fine-tune strategies × BatchNorm modes vs. training from scratch.

The source: the `cnn` preset pretrained on the clean bundled MNIST sample (`mnist5k`, its
training split). The targets: that sample's *held-out* images (never seen in pretraining),
shifted — Gaussian noise, blur, rotation ±30°, inverted contrast, scale ×0.6, and all of
noise + blur + rotation together ("mixed", the issue's second scanner) — written as image
folders. Each cell fine-tunes on 1, 5 or 20 images per class with `ftstudio`'s own preparation
(`pipeline.prepare`: new head, strategy, BatchNorm mode, baseline) and trainer, for the same
number of optimizer steps as the from-scratch baseline, then scores the shifted held-out images.

    python bench/transfer.py --out /tmp/transfer-bench            # the table in bench/README.md
    python bench/transfer.py --shifts mixed --shots 5 --strategies head --bn keep,adapt --seeds 0

Cheap by design (2 busy cores): 16×16 images by default (`--size 28` for the native size),
a pretrain of a few epochs, validation during fine-tuning on a handful of images only (the
score comes from one evaluation of every held-out image at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIFTS = ("none", "noise", "blur", "rotation", "invert", "scale", "mixed")
STRATEGIES = ("head", "lora", "gradual", "full", "scratch")


def shift_images(images: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """uint8 [N, 1, H, W] → the same digits in another domain (fixed seed)."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images).float() / 255.0
    n = x.shape[0]

    def rotate(x, degrees, scale=1.0):
        angle = (torch.rand(n, generator=gen) * 2 - 1) * degrees * torch.pi / 180
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def blur(x):
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        k = (k[:, None] * k[None, :])[None, None] / 256
        return F.conv2d(x, k, padding=2)

    def noise(x, sigma=0.3):
        return x + torch.randn(x.shape, generator=gen) * sigma

    if kind == "noise":
        x = noise(x)
    elif kind == "blur":
        x = blur(x)
    elif kind == "rotation":
        x = rotate(x, 30)
    elif kind == "invert":
        x = 1 - x
    elif kind == "scale":
        x = rotate(x, 0, 0.6)
    elif kind == "mixed":
        x = noise(blur(rotate(x, 30)), 0.2)
    elif kind != "none":
        raise SystemExit(f"unknown shift {kind!r}; choose from {', '.join(SHIFTS)}")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def write_folder(images: np.ndarray, labels: np.ndarray, out: Path) -> Path:
    from PIL import Image

    if (out / ".done").exists():
        return out
    for i, (img, label) in enumerate(zip(images, labels)):
        (out / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(out / str(label) / f"{i:05d}.png")
    (out / ".done").write_text("")
    return out


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The mnist5k images outside the pretraining's training split (val_split 0.2, split_seed 0)."""
    from ftstudio.core.datasets import stratified_split
    from ftstudio.core.datasets.sources import load_mnist5k

    raw = load_mnist5k()
    _, held = stratified_split(raw.labels, 0.2, 0)
    return raw.images[held], raw.labels[held]


def pretrain(out: Path, size: int, epochs: int) -> Path:
    from ftstudio.core.engine import train
    from ftstudio.core.config.recipe import Recipe

    if (out / "checkpoints" / "last.pt").exists():
        return out
    recipe = Recipe.from_dict({"name": "bench-transfer-pretrain", "model": "cnn",
                               "data": {"name": "mnist5k", "val_split": 0.2, "split_seed": 0,
                                        "image_size": [size, size]},
                               "train": {"epochs": epochs, "device": "cpu", "seed": 0}})
    result = train(recipe, out)
    print(f"pretrained cnn on clean mnist5k ({size}×{size}): val accuracy {result.summary['val_accuracy']:.3f}",
          flush=True)
    return out


def run_cell(source: Path, folder: Path, shots: int, strategy: str, bn: str, seed: int, steps: int,
             size: int) -> dict:
    """One fine-tune (or scratch) run; its score on every held-out shifted image."""
    import torch

    from ftstudio.core import engine
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.training.loader import DeviceBatches
    from ftstudio.core.training.metrics import evaluate

    data = {"name": str(folder), "val_split": 0.5, "split_seed": 0, "per_class": shots,
            "image_size": [size, size], "channels": 1}
    train = {"epochs": 10, "batch_size": 64, "device": "cpu", "seed": seed}
    doc = {"name": f"bench-{strategy}", "data": data, "train": train, "model": "cnn"}
    if strategy != "scratch":
        plan = {"source": str(source), "checkpoint": "last", "min_steps": steps, "bn": bn,
                "strategy": "full" if strategy == "gradual" else strategy}
        if strategy == "gradual":
            plan["unfreeze_after"] = max(1, steps // 2 // max(1, -(-shots * 10 // 64)))
        doc["finetune"] = plan
    else:
        per_epoch = -(-shots * 10 // 64)
        train["epochs"] = max(10, -(-steps // per_epoch))
    recipe = Recipe.from_dict(doc)
    prepared = engine.prepare(recipe)
    held_out = prepared.data.val
    tiny = held_out.subset(np.arange(min(10, len(held_out))))  # validation while training: a token few images
    prepared = dataclasses.replace(prepared, data=dataclasses.replace(prepared.data, val=tiny))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        engine.train(prepared, Path(tmp) / "run")
        seconds = time.perf_counter() - start
    model = prepared.model.cpu().eval()
    batches = DeviceBatches(held_out, prepared.data.mean, prepared.data.std, torch.device("cpu"), 512)
    ev = evaluate(model, batches, prepared.data.num_classes)
    base = prepared.summary.get("baseline") or {}
    norm = prepared.summary.get("bn") or {}
    return {"shots": shots, "strategy": strategy, "bn": bn if strategy != "scratch" else "-", "seed": seed,
            "accuracy": ev.accuracy, "loss": ev.loss, "count": ev.count, "seconds": round(seconds, 2),
            "baseline": base.get("val_accuracy"), "baseline_after_bn": (base.get("after_bn") or {}).get("val_accuracy"),
            "shift": norm.get("shift"), "bn_applied": norm.get("applied")}


def summarise(rows: list[dict]) -> str:
    """Markdown: one line per (shift, shots, strategy, bn) with mean ± half-range over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["shift_name"], r["shots"], r["strategy"], r["bn"]), []).append(r)
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| shift | shots | strategy | bn | accuracy (mean ± half-range) | seeds | baseline (as is → BN adapted) "
             "| BN shift (nats) |", "|---|---|---|---|---|---|---|---|"]
    for (shift, shots, strategy, bn), rs in groups.items():
        acc = [r["accuracy"] for r in rs]
        first = rs[0]
        lines.append(f"| {shift} | {shots} | {strategy} | {bn} | {statistics.mean(acc):.3f} ± "
                     f"{(max(acc) - min(acc)) / 2:.3f} | {len(rs)} | {fmt(first['baseline'])} → "
                     f"{fmt(first['baseline_after_bn'])} | {fmt(first['shift'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ftstudio-transfer-bench"))
    ap.add_argument("--shifts", default=",".join(SHIFTS))
    ap.add_argument("--shots", default="1,5,20")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--bn", default="auto", help="comma-separated BatchNorm modes to compare (auto,adapt,keep,train)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps of every run")
    ap.add_argument("--size", type=int, default=16, help="image side (28 = native; 16 is ~3× cheaper)")
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    source = pretrain(args.out / f"pretrain-{args.size}", args.size, args.pretrain_epochs)
    images, labels = held_out_digits()
    rows = []
    log = args.out / "results.jsonl"
    for shift in args.shifts.split(","):
        folder = write_folder(shift_images(images, shift), labels, args.out / f"shift-{shift}")
        for shots in [int(s) for s in args.shots.split(",")]:
            for strategy in args.strategies.split(","):
                for bn in (args.bn.split(",") if strategy != "scratch" else ["-"]):
                    for seed in [int(s) for s in args.seeds.split(",")]:
                        row = {"shift_name": shift, **run_cell(source, folder, shots, strategy, bn, seed,
                                                                args.steps, args.size)}
                        rows.append(row)
                        with log.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(f"{shift:<9} {shots:>2} shots {strategy:<8} bn {row['bn']:<6} seed {seed}: "
                              f"accuracy {row['accuracy']:.3f} (baseline {row['baseline']}, "
                              f"after BN {row['baseline_after_bn']}, shift {row['shift']}) {row['seconds']}s",
                              flush=True)
    print()
    print(summarise(rows))


if __name__ == "__main__":
    main()
