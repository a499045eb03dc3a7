"""Steady-state training throughput: ftstudio's Trainer vs a plain PyTorch loop over pre-batched
tensors already in memory (same model, batch size, optimizer, data), run side by side and
interleaved so machine noise hits both.

    python bench/throughput.py [--samples 60000] [--batch-size 64] [--epochs 3] [--rounds 3] [--device cpu]

Prints samples/s of each (the median epoch of each round: steady state) and the ratio
ftstudio / plain (target ≥ 0.95). ftstudio's loop also shuffles every epoch, tracks train accuracy
and checks the loss for NaN; the plain loop does none of that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import machine, seed_mlp  # noqa: E402
from ftstudio.core.datasets.bundle import DataBundle, Split  # noqa: E402
from ftstudio.core.recipe import TrainConfig  # noqa: E402
from ftstudio.core.training.callbacks import History  # noqa: E402
from ftstudio.core.training.trainer import Trainer  # noqa: E402


def make_data(n: int, device: str) -> DataBundle:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=gen)
    empty = Split(x[:0], y[:0])
    return DataBundle("bench", Split(x, y), empty, tuple(map(str, range(10))), (1, 28, 28), (0.5,), (0.25,))


def plain_loop(data: DataBundle, bs: int, epochs: int, device: str) -> float:
    """The seed's loop over pre-batched, pre-normalised tensors on the device; returns samples/s."""
    torch.manual_seed(0)
    model = seed_mlp().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    x = ((data.train.x.float() / 255 - 0.5) / 0.25).to(device)
    y = data.train.y.to(device)
    batches = [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]
    seconds = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        for inputs, labels in batches:
            outputs = model(inputs)
            loss = crit(outputs, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return len(y) / statistics.median(seconds)  # steady state: the median epoch


def ftstudio_loop(data: DataBundle, bs: int, epochs: int, device: str) -> float:
    """Samples/s of the median training epoch (the one-off move of the data onto the device is
    set-up, as building ``batches`` is for the plain loop; validation is off: no split)."""
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=epochs, batch_size=bs, lr=1e-3, optimizer="adam", device=device)
    history = History()
    Trainer(seed_mlp(), data, cfg, [history]).fit()
    return len(data.train) / statistics.median(e.seconds for e in history.epochs)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=60_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    data = make_data(args.samples, args.device)
    plain_loop(data, args.batch_size, 1, args.device)  # warm-up both paths
    ftstudio_loop(data, args.batch_size, 1, args.device)
    plain, ours = [], []
    for _ in range(args.rounds):
        plain.append(plain_loop(data, args.batch_size, args.epochs, args.device))
        ours.append(ftstudio_loop(data, args.batch_size, args.epochs, args.device))
    ratios = [o / p for o, p in zip(ours, plain)]
    print(f"machine: {machine()}")
    print(f"seed MLP, {args.samples} samples 28×28, batch {args.batch_size}, Adam, {args.epochs} epochs × "
          f"{args.rounds} rounds on {args.device}")
    print(f"plain loop (pre-batched tensors): {statistics.median(plain):,.0f} samples/s")
    print(f"ftstudio Trainer:                 {statistics.median(ours):,.0f} samples/s")
    print(f"ratio ftstudio / plain: {statistics.median(ratios):.3f} (per round: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; target ≥ 0.95)")


if __name__ == "__main__":
    main()
