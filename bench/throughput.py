"""Steady-state training throughput: ftstudio's Trainer vs hand-written PyTorch loops, run side by
side and interleaved so machine noise hits all of them.

    python bench/throughput.py [--samples 60000] [--batch-size 64] [--epochs 3] [--rounds 5]
                               [--optimizer sgd] [--device cpu]
    python bench/throughput.py --ceiling --batch-size 256 [--rounds 9]   # what a shuffling loop can reach
    python bench/throughput.py --model cnn [--size 64] [--samples 2000] [--optimizer adam]   # a convnet
    python bench/throughput.py --device cuda --amp [--model cnn]   # on a GPU: autocast, channels-last convnets

Three loops train the seed's MLP (784-256-10) on the same normalised data already on the device,
with the seed's optimizer (plain SGD, lr 0.01, momentum 0) by default:

- **plain loop** — what a notebook writes: shuffle every epoch (``randperm``), index the rows of
  each batch (``x[idx]``), forward, loss, ``zero_grad``, ``backward``, ``step``. The reference.
- **pre-batched** — the same without shuffling, over a list of batches built beforehand: the
  cheapest loop PyTorch code can be (but it trains worse: the order never changes).
- **ftstudio** — ``Trainer.fit``: shuffles every epoch, tracks train accuracy, guards against
  NaN, emits events a few times a second.

``--model cnn`` trains the "cnn" preset (conv-BatchNorm-ReLU stages, a residual block) on 3-channel
``--size``² images instead — the network a CPU user is likelier to train, where the step's large
blocks meet the C library's allocator (core/allocator.py); its loops have no GEMM-bound limit.

Each round runs every loop for ``--epochs`` epochs and keeps the median epoch (steady state); the
figures are medians over rounds. Besides wall-clock samples/s it prints the ratio of process CPU
time, which a busy shared machine disturbs less. Finally the **GEMM-bound limit**: the samples/s
the loop would reach if only its five matrix products (two forward, three backward) ran, timed
alone on the same shapes — the ceiling no loop around these layers can pass on this device. It is
timed in every round, between the loops, and each loop's share of it is the median of the
per-round shares: this VM's speed drifts by up to 30 % between minutes, so one timing of the
limit at the end made the share swing by ±0.1. Where torch has oneDNN (float32 on an x86 CPU),
ftstudio's step runs the two large products through it, 5-15 % faster than torch.mm here; the
limit is then printed twice, with torch.mm (the reference, as before) and with those products, so
the share of the second is the share of what the step itself could reach.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.common import machine, seed_mlp  # noqa: E402
from ftstudio.core.datasets.bundle import DataBundle, Split  # noqa: E402
from ftstudio.core.config.recipe import TrainConfig  # noqa: E402
from ftstudio.core.training.callbacks import Callback  # noqa: E402
from ftstudio.core.training.mlp_step import onednn_products  # noqa: E402
from ftstudio.core.training.trainer import Trainer  # noqa: E402

MEAN, STD = 0.5, 0.25


def make_data(n: int, shape: tuple[int, int, int] = (1, 28, 28)) -> DataBundle:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=gen)
    empty = Split(x[:0], y[:0])
    c = shape[0]
    return DataBundle("bench", Split(x, y), empty, tuple(map(str, range(10))), shape, (MEAN,) * c, (STD,) * c)


def make_model(name: str, shape: tuple[int, int, int]) -> torch.nn.Module:
    """The seed's MLP, or a preset built for ``shape`` (the same weights for every loop: seeded)."""
    if name == "mlp":
        return seed_mlp()
    from ftstudio.core.architecture.build import build_model
    from ftstudio.core.architecture.presets import resolve_model

    return build_model(resolve_model(name), shape, 10)[0]


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimizer a notebook writes: torch's defaults, nothing tuned."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


class _Clock:
    """Wall and process-CPU seconds of one stretch of work."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def amp_dtype(amp: bool, device: str) -> torch.dtype | None:
    """The autocast dtype the Trainer picks with ``amp`` (bf16 where the GPU has it, else fp16; none on the CPU)."""
    if not amp or not device.startswith("cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def hand_loop(data: DataBundle, bs: int, epochs: int, device: str, opt_name: str, lr: float,
              shuffle: bool, model_name: str = "mlp", amp: bool = False) -> list[tuple[float, float]]:
    """The seed's loop on device tensors; returns (wall, cpu) seconds per epoch. With ``amp`` on a GPU it
    does what a careful notebook does, as the Trainer: autocast (and a GradScaler for fp16) and, for a
    convnet, channels-last weights and images."""
    torch.manual_seed(0)
    model = make_model(model_name, data.input_shape).to(device)
    dtype = amp_dtype(amp, device)
    channels_last = device.startswith("cuda") and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    opt = make_optimizer(opt_name, model.parameters(), lr)
    crit = torch.nn.CrossEntropyLoss()
    x = ((data.train.x.float() / 255 - MEAN) / STD).to(device).contiguous(memory_format=layout)
    y = data.train.y.to(device)
    n = len(y)
    batches = None if shuffle else [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]
    times = []
    for _ in range(epochs):
        _sync(device)
        with _Clock() as clock:
            if shuffle:
                perm = torch.randperm(n, device=device)
                steps = ((x[perm[i:i + bs]], y[perm[i:i + bs]]) for i in range(0, n, bs))
            else:
                steps = iter(batches)
            for inputs, labels in steps:
                with torch.autocast("cuda" if dtype is not None else "cpu", dtype=dtype, enabled=dtype is not None):
                    outputs = model(inputs)
                    loss = crit(outputs, labels)
                opt.zero_grad()
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
            _sync(device)
        times.append((clock.wall, clock.cpu))
    return times


class _EpochClock(Callback):
    """(wall, cpu) seconds of each training epoch, as the Trainer ran it."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device, self.times = device, []

    def on_epoch_started(self, event) -> None:
        _sync(self.device)
        self._clock = _Clock().__enter__()

    def on_epoch_finished(self, event) -> None:
        _sync(self.device)
        self._clock.__exit__()
        self.times.append((self._clock.wall, self._clock.cpu))


def ftstudio_loop(data: DataBundle, bs: int, epochs: int, device: str, opt_name: str,
                  lr: float, model_name: str = "mlp", amp: bool = False) -> list[tuple[float, float]]:
    """Trainer.fit with the same model, data and optimizer (validation off: no split)."""
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=epochs, batch_size=bs, lr=lr, optimizer=opt_name, momentum=0.0, device=device, amp=amp)
    clock = _EpochClock(device)
    Trainer(make_model(model_name, data.input_shape), data, cfg, [clock]).fit()
    return clock.times


def gemm_limit(bs: int, device: str, repeats: int = 300, dtype: torch.dtype | None = None,
               onednn: bool = False) -> float:
    """Samples/s if only the MLP's matrix products ran (forward x·W1ᵀ, h·W2ᵀ; backward dW2, dh, dW1),
    in ``dtype`` (the autocast dtype under ``--amp``; float32 otherwise). ``onednn``: the two large
    products (x·W1ᵀ and dW1) through oneDNN, the faster kind on a CPU that has it, each in the layout
    ftstudio's MLP step gives it (core/training/mlp_step.py; below batch 256 the step adds dW1 into W1
    with addmm_ instead, which spares a pass over W1); torch.mm is the reference."""
    gen = torch.Generator().manual_seed(0)

    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device, dtype or torch.float32)

    x, w1, w2, b1, b2, g = t(bs, 784), t(256, 784), t(10, 256), t(256), t(10), t(bs, 10)
    h = torch.addmm(b1, x, w1.t())
    mm_t = onednn_products(w1) if onednn else None  # a·bᵀ through oneDNN: what the step calls
    h_t, g_t = h.t().contiguous(), g.t().contiguous()

    def products() -> None:
        torch.addmm(b1, x, w1.t())
        torch.addmm(b2, h, w2.t())
        g.t().mm(h)          # dW2
        dh = g.mm(w2)        # dh
        dh.t().mm(x)         # dW1

    def with_onednn() -> None:  # features × batch, as the step keeps its activations
        mm_t(w1, x)
        torch.addmm(b2[:, None], w2, h_t)
        g_t.mm(h)              # dW2
        dh_t = w2.t().mm(g_t)  # dh
        mm_t(dh_t, x.t())      # dW1

    run = with_onednn if onednn else products
    for _ in range(20):
        run()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    return bs * repeats / (time.perf_counter() - start)


def ceiling(bs: int, device: str, n: int, repeats: int = 200) -> dict[str, float]:
    """Samples/s of the five products alone under three conditions, timed back to back: on one cached
    input (the GEMM-bound limit, as `gemm_limit`), on 8 rotating batches with W₁ and W₂ updated in
    place (as a training step's weight-gradient products are), and on batches gathered each step from
    the shuffled ``n`` × 784 data first (as any loop that shuffles must). The last is the ceiling of a
    loop that shuffles, before it runs a single ReLU, softmax or bias sum."""
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(n, 784, generator=gen).to(device)
    w1, w2 = torch.randn(256, 784, generator=gen).to(device), torch.randn(10, 256, generator=gen).to(device)
    b1, b2 = torch.randn(256, generator=gen).to(device), torch.randn(10, generator=gen).to(device)
    g = torch.randn(bs, 10, generator=gen).to(device)
    rotating = [data[i * bs:(i + 1) * bs].clone() for i in range(8)]
    order = torch.randperm(n, generator=gen).to(device)

    def step(x: torch.Tensor, in_place: bool) -> None:
        h = torch.addmm(b1, x, w1.t())
        torch.addmm(b2, h, w2.t())
        if in_place:
            w2.addmm_(g.t(), h, alpha=-1e-9)
            dh = g.mm(w2)
            w1.addmm_(dh.t(), x, alpha=-1e-9)
        else:
            g.t().mm(h)
            dh = g.mm(w2)
            dh.t().mm(x)

    def timed(body: Callable[[int], None]) -> float:
        for i in range(10):
            body(i)
        _sync(device)
        start = time.perf_counter()
        for i in range(repeats):
            body(i)
        _sync(device)
        return bs * repeats / (time.perf_counter() - start)

    steps = n // bs
    return {
        "products, one cached input (the limit)": timed(lambda i: step(rotating[0], False)),
        "8 rotating batches, W updated in place": timed(lambda i: step(rotating[i % 8], True)),
        "+ each batch gathered from shuffled data": timed(
            lambda i: step(data.index_select(0, order[(i % steps) * bs:(i % steps + 1) * bs]), True)),
    }


def print_ceiling(bs: int, device: str, n: int, rounds: int) -> None:
    """The shares of the limit that the products alone reach in a loop (`ceiling`), median of ``rounds``."""
    runs = [ceiling(bs, device, n) for _ in range(rounds)]
    print(f"machine: {machine()}")
    print(f"the five products of the seed MLP alone, batch {bs}, {n} samples, {rounds} rounds on {device}; medians")
    for name in runs[0]:
        share = statistics.median(r[name] / r["products, one cached input (the limit)"] for r in runs)
        rate = statistics.median(r[name] for r in runs)
        print(f"  {name:<42} {rate:>10,.0f} samples/s   {share:.3f} of the limit "
              f"(per round: {', '.join(f'{r[name] / r[next(iter(r))]:.3f}' for r in runs)})")


def _in_fresh_process(loop: str) -> tuple[float, float]:
    """(wall, cpu) of the median epoch of ``loop`` run by this script in a new process, with this
    invocation's arguments."""
    argv = [a for a in sys.argv[1:] if a not in ("--isolate", "--no-isolate")]
    out = subprocess.run([sys.executable, __file__, *argv, "--child", loop], capture_output=True, text=True,
                         check=True)
    wall, cpu = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, cpu


def _median_epoch(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=60_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--lr", type=float, default=None, help="default: 0.01 for sgd (the seed's), 1e-3 for adam")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="mixed precision on a GPU in every loop, as the Trainer's "
                                                       "--amp (bf16 or fp16; convnets channels-last); ignored on "
                                                       "the CPU, as the Trainer ignores it")
    ap.add_argument("--model", default="mlp", help="mlp (the seed's, default) or a preset name such as cnn")
    ap.add_argument("--size", type=int, default=64, help="image side for a preset (3 channels)")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                    help="run each loop of each round in a fresh process (default: for a preset). A fit "
                         "changes the C library's heap settings for the rest of its process "
                         "(core/allocator.py), so a plain loop after it in the same process would not "
                         "be the loop a fresh notebook runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ceiling", action="store_true", help="only time the products alone in a loop's conditions "
                                                           "(cached, rotating and updated, gathered): the ceiling "
                                                           "of any loop that shuffles, as a share of the limit")
    args = ap.parse_args()
    if args.ceiling:
        print_ceiling(args.batch_size, args.device, args.samples, args.rounds)
        return
    lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 1e-3)
    mlp = args.model == "mlp"
    data = make_data(args.samples, (1, 28, 28) if mlp else (3, args.size, args.size))
    n, bs, dev, m = args.samples, args.batch_size, args.device, args.model
    loops: dict[str, Callable[[int], list[tuple[float, float]]]] = {
        "plain loop (shuffles, x[idx])": lambda e: hand_loop(data, bs, e, dev, args.optimizer, lr, True, m, args.amp),
        "pre-batched, no shuffle": lambda e: hand_loop(data, bs, e, dev, args.optimizer, lr, False, m, args.amp),
        "ftstudio Trainer": lambda e: ftstudio_loop(data, bs, e, dev, args.optimizer, lr, m, args.amp),
    }
    if args.child:  # one loop in this fresh process: warm up, then the timed epochs
        run = loops[args.child]
        run(1)
        print(json.dumps(_median_epoch(run(args.epochs))))
        return
    isolate = not mlp if args.isolate is None else args.isolate
    if not isolate:
        for run in loops.values():  # warm-up every path
            run(1)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
    limits: list[float] = []
    # the limit with oneDNN's large products too, where the step uses them (float32 on the CPU)
    onednn = mlp and onednn_products(torch.zeros(1, device=dev)) is not None
    onednn_limits: list[float] = []
    dtype = amp_dtype(args.amp, dev)
    for _ in range(args.rounds):
        for name, run in loops.items():
            results[name].append(_in_fresh_process(name) if isolate else _median_epoch(run(args.epochs)))
        limits.append(gemm_limit(bs, dev, dtype=dtype) if mlp else math.nan)
        if onednn:
            onednn_limits.append(gemm_limit(bs, dev, onednn=True))
    limit = statistics.median(limits)
    print(f"machine: {machine()}")
    what = f"seed MLP, {n} samples 28×28" if mlp else f"{m} preset, {n} samples 3×{args.size}×{args.size}"
    print(f"{what}, batch {bs}, {args.optimizer} lr {lr}, {args.epochs} epochs × "
          f"{args.rounds} rounds on {dev}; medians")
    if args.amp:
        print(f"mixed precision: {dtype} autocast in every loop" if dtype is not None else
              "--amp ignored on the CPU (as the Trainer ignores it)")
    if isolate:
        print("each loop in a fresh process per round (--isolate)")
    reference = list(results)[0]
    for name, rounds in results.items():
        wall = statistics.median(n / w for w, _ in rounds)
        wall_ratio = statistics.median(r[0] / o[0] for r, o in zip(results[reference], rounds))
        cpu_ratio = statistics.median(r[1] / o[1] for r, o in zip(results[reference], rounds))
        share = statistics.median(n / w / lim for (w, _), lim in zip(rounds, limits))
        share_onednn = statistics.median(n / w / lim for (w, _), lim in zip(rounds, onednn_limits)) \
            if onednn else math.nan
        print(f"  {name:<32} {wall:>10,.0f} samples/s   ×{wall_ratio:.3f} wall   ×{cpu_ratio:.3f} CPU time"
              + (f"   {share:.2f} of the GEMM-bound limit" if mlp else "")
              + (f" ({share_onednn:.2f} of it with oneDNN's products)" if onednn else ""))
    ours = [o[0] for o in results["ftstudio Trainer"]]
    plain = [r[0] for r in results[reference]]
    ratios = [p / o for p, o in zip(plain, ours)]
    if mlp:
        print(f"GEMM-bound limit: {limit:,.0f} samples/s (per round: {', '.join(f'{v:,.0f}' for v in limits)})")
    if onednn:
        print(f"with oneDNN's two large products (faster here; the step uses them): "
              f"{statistics.median(onednn_limits):,.0f} samples/s "
              f"(per round: {', '.join(f'{v:,.0f}' for v in onednn_limits)})")
    print(f"ratio ftstudio / plain loop: {statistics.median(ratios):.3f} (per round: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; target ≥ 1.0)")


if __name__ == "__main__":
    main()
