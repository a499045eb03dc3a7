"""What each augmentation costs, in samples/s: the augmentation alone, and a training step of a
small CNN with it, against the same step without (the ratio is the figure to read).

    python bench/augment.py [--device cpu|cuda] [--batch 256] [--size 32] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OPTIONS = {
    "none": {},
    "shift+flip+rotate (before)": {"crop": 2, "flip": True, "rotation": 10.0},
    "scale 0.5,1": {"scale": (0.5, 1.0)},
    "color 0.3": {"color": 0.3},
    "blur 1.5": {"blur": 1.5},
    "noise 0.05": {"noise": 0.05},
    "erase 0.5": {"erase": 0.5},
    "all": {"crop": 2, "flip": True, "rotation": 10.0, "scale": (0.5, 1.0), "color": 0.3, "blur": 1.5,
            "noise": 0.05, "erase": 0.5},
}


def main() -> None:
    import torch
    from torch import nn

    from ftstudio.core.config.recipe import AugmentSpec
    from ftstudio.core.training.augment import augment_batch

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    mean = torch.full((1, 3, 1, 1), 0.5, device=dev)
    std = torch.full((1, 3, 1, 1), 0.25, device=dev)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step(spec: AugmentSpec | None, train: bool) -> None:
        xb = augment_batch(x, spec, gen, mean, std) if spec else x
        if train:
            loss = nn.functional.cross_entropy(model(xb), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            xb.sum()

    def measure(spec: AugmentSpec | None, train: bool) -> float:
        for _ in range(3):  # warm-up
            step(spec, train)
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step(spec, train)
        sync()
        return args.batch * args.steps / (time.perf_counter() - start)

    print(f"{dev} · batch {args.batch} · 3×{args.size}×{args.size} · {args.steps} steps · torch {torch.__version__} · "
          f"median of {args.rounds} interleaved rounds")
    specs = {name: AugmentSpec(**values) if values else None for name, values in OPTIONS.items()}
    alone: dict[str, list[float]] = {name: [] for name in OPTIONS}
    trained: dict[str, list[float]] = {name: [] for name in OPTIONS}
    for _ in range(args.rounds):  # interleaved: a busy machine slows every option alike
        for name, spec in specs.items():
            alone[name].append(measure(spec, False) if spec else 0.0)
            trained[name].append(measure(spec, True))
    print(f"{'augmentation':<28} {'augment only':>14} {'train step':>12} {'ratio to none':>14}")
    base = statistics.median(trained["none"])
    for name in OPTIONS:
        a, t = statistics.median(alone[name]), statistics.median(trained[name])
        print(f"{name:<28} {a:>12,.0f}/s {t:>10,.0f}/s {t / base:>13.2f}×")

if __name__ == "__main__":
    main()
