"""BatchNorm under a domain shift: measure how far new data is from frozen layers' running statistics, and adapt.

A frozen BatchNorm layer normalises with the *source's* running mean and variance. When the new
images differ (noise, blur, another scanner), those statistics no longer fit: a first layer whose
running variance is 0.01 amplifies the new noise tenfold and the features collapse — a head on
top then learns nothing (chance accuracy). Three answers, the plan's ``bn`` field:

- ``adapt`` — AdaBN (Li et al. 2016): re-estimate the frozen layers' running statistics on the
  new training images (train-mode forward passes without gradients, cumulative average —
  ``momentum=None``), then keep them fixed. Weights are untouched.
- ``keep`` — the source's statistics as they are (what every frozen fine-tune did before).
- ``train`` — frozen layers normalise with each batch's statistics while training and update
  their running statistics as they go (affine weights stay frozen).
- ``auto`` (default) — ``adapt`` whenever a frozen BatchNorm layer exists; measured across
  shifts in bench/transfer.py: re-estimating never cost more than noise on unshifted data and
  rescued every shifted set, so there is no threshold below which ``keep`` wins reliably.

The shift is measured per layer as the mean over channels of KL(new ‖ running) between the two
Gaussians the statistics describe (0 = identical; ≈ 0.5·z² for a mean off by z running stds).
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ftstudio.core.training.trainer import BATCH_STATS

if TYPE_CHECKING:
    from ftstudio.core.datasets import DataBundle

BN_MODES = ("auto", "adapt", "keep", "train")
MAX_IMAGES = 10_000  # statistics from at most this many training images (they converge long before)
_EPS = 1e-5


@dataclass(frozen=True)
class LayerShift:
    """One frozen BatchNorm layer: how far the new data's statistics are from its running ones."""

    layer: str  # module path in the model, e.g. "1" or "0.backbone.bn1"
    channels: int
    shift: float  # mean over channels of KL(new ‖ running)
    var_ratio: float  # median over channels of new variance / running variance

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "channels": self.channels, "shift": round(self.shift, 4),
                "var_ratio": round(self.var_ratio, 4)}


@dataclass(frozen=True)
class NormReport:
    """What happened to normalisation: the requested and applied mode, the measured shift, a note."""

    requested: str
    applied: str  # "adapt", "keep", "train" or "none" (no frozen BatchNorm layer)
    layers: tuple[LayerShift, ...]
    images: int  # training images the statistics came from

    @property
    def shift(self) -> float | None:
        return max((s.shift for s in self.layers), default=None)

    def note(self) -> str:
        if self.applied == "none":
            return "normalisation: no frozen BatchNorm layer (nothing to adapt)"
        worst = max(self.layers, key=lambda s: s.shift)
        measured = (f"{len(self.layers)} frozen BatchNorm layer(s); the new data is {self.shift:.2f} nats from the "
                    f"source's running statistics at worst (layer {worst.layer}, variance ×{worst.var_ratio:.2f})")
        what = {"adapt": f"re-estimated their running statistics on {self.images} new training images (AdaBN)",
                "keep": "kept the source's running statistics (--bn keep)",
                "train": "they normalise with each batch's statistics while training (--bn train)"}[self.applied]
        return f"normalisation: {measured}; {what}"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.requested, "applied": self.applied, "shift": None if self.shift is None else
                round(self.shift, 4), "images": self.images, "layers": [s.to_dict() for s in self.layers]}


def batch_norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """The BatchNorm layers that keep running statistics, with their names."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def frozen_norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """BatchNorm layers none of whose parameters train (the trainer holds these in eval mode)."""
    return [(name, m) for name, m in batch_norms(model) if not any(p.requires_grad for p in m.parameters())]


def _batches(data: DataBundle, device: torch.device, batch_size: int):
    from ftstudio.core.training.loader import DeviceBatches

    split = data.train
    if len(split) > MAX_IMAGES and hasattr(split, "subset"):
        split = split.subset(torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:MAX_IMAGES]
                             .numpy())
    return DeviceBatches(split, data.mean, data.std, device, batch_size), min(len(split), MAX_IMAGES)


@torch.no_grad()
def measure_shift(model: nn.Module, norms, batches) -> tuple[LayerShift, ...]:
    """Per-channel mean/variance of each layer's input on ``batches`` (eval mode) against its running stats."""
    sums: dict[str, list[torch.Tensor]] = {}

    def hook(name):
        def record(module, inputs):
            x = inputs[0].detach().float()
            dims = [d for d in range(x.dim()) if d != 1]
            acc = sums.setdefault(name, [torch.zeros(x.shape[1], dtype=torch.float64, device=x.device),
                                         torch.zeros(x.shape[1], dtype=torch.float64, device=x.device), 0])
            acc[0] += x.sum(dims).double()
            acc[1] += (x * x).sum(dims).double()
            acc[2] += x.numel() // x.shape[1]
        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in norms]
    was_training = model.training
    model.eval()
    try:
        for xb, _ in batches.epoch():
            model(xb)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = []
    for name, m in norms:
        if name not in sums:
            continue
        s, sq, n = sums[name]
        mean = s / n
        var = (sq / n - mean * mean).clamp_min(0)
        run_mean, run_var = m.running_mean.double(), m.running_var.double()
        ratio = (var + _EPS) / (run_var + _EPS)
        kl = 0.5 * ((mean - run_mean) ** 2 / (run_var + _EPS) + ratio - 1 - torch.log(ratio))
        out.append(LayerShift(name or "model", int(m.num_features), float(kl.mean()), float(ratio.median())))
    return tuple(out)


@torch.no_grad()
def reestimate(model: nn.Module, norms, batches) -> None:
    """AdaBN: reset the layers' running statistics and accumulate them over ``batches`` (cumulative average)."""
    was_training = model.training
    model.eval()
    saved = []
    for _, m in norms:
        saved.append(m.momentum)
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
        m.train()
    try:
        for xb, _ in batches.epoch():
            model(xb)
    finally:
        for (_, m), momentum in zip(norms, saved):
            m.momentum = momentum
            m.eval()
        model.train(was_training)


def apply_bn_mode(model: nn.Module, data: DataBundle, mode: str, *, device: str | torch.device = "cpu",
                  batch_size: int = 256) -> NormReport:
    """Measure the shift of every frozen BatchNorm layer on the new training data and apply ``mode``."""
    norms = frozen_norms(model)
    if not norms or not len(data.train):
        return NormReport(mode, "none", (), 0)
    dev = torch.device(device)
    model.to(dev)
    try:
        batches, images = _batches(data, dev, batch_size)
        layers = measure_shift(model, norms, batches)
        applied = "adapt" if mode == "auto" else mode
        if applied == "adapt":
            reestimate(model, norms, batches)
        elif applied == "train":
            for _, m in norms:
                setattr(m, BATCH_STATS, True)
    finally:
        model.to("cpu")
    return NormReport(mode, applied, layers, images)


@contextlib.contextmanager
def adapted_for_measuring(model: nn.Module, data: DataBundle, *, device: str | torch.device = "cpu",
                          batch_size: int = 256):
    """Every BatchNorm layer's statistics re-estimated on the new training images for the ``with`` block,
    then put back: what the source's features give once normalisation fits, where no layer is frozen
    (``full``: the layers will train on batch statistics anyway, so the source's eval-mode score says
    little — noisy digits: 0.12 as is, 0.68 adapted). Yields False (and changes nothing) without any."""
    norms = batch_norms(model)
    if not norms or not len(data.train):
        yield False
        return
    saved = [{k: v.clone() for k, v in m.state_dict().items() if k.startswith(("running_", "num_batches"))}
             for _, m in norms]
    dev = torch.device(device)
    model.to(dev)
    try:
        batches, _ = _batches(data, dev, batch_size)
        reestimate(model, norms, batches)
        yield True
    finally:
        for (_, m), buffers in zip(norms, saved):
            m.load_state_dict(buffers, strict=False)
        model.to("cpu")


def uses_batch_stats(module: nn.Module) -> bool:
    """Whether a frozen BatchNorm layer was told to keep normalising with batch statistics (bn ``train``)."""
    return bool(getattr(module, BATCH_STATS, False))
