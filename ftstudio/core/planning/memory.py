"""Does a network fit the chosen device for training at a batch size — and if not, what would make it fit.

An estimate, made before anything is allocated: parameters (float32), their gradients and the optimizer's
state (Adam/AdamW keep two tensors per trainable parameter, SGD with momentum one), and the activations
autograd keeps for the backward pass. Activations come from the shape analysis (every layer's output);
a pretrained backbone is one card there, so its own layers are measured with one forward pass on the meta
device (no memory). Mixed precision halves the activations (and adds a 16-bit copy of the weights).

Compared with what the device has now (CUDA: ``torch.cuda.mem_get_info`` of that GPU; the CPU: available
RAM), with a margin for the allocator. When it does not fit, the suggestions come in a fixed order —
gradient checkpointing (activations), ``--distributed fsdp`` on N GPUs (each GPU keeps 1/N of the
parameters, gradients, optimizer state and, with the global batch split, activations), a smaller batch,
bf16 — each with the memory it would need, so the user sees which one is enough.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

# fits when the estimate is at most this share of the free memory: it counts what is stored, and real peaks of
# CPU training steps (resnet18, resnet50, vit_small_patch16_224 at batch 16) ran 4–19 % above it (allocator
# slack, workspaces, transient buffers)
HEADROOM = 0.8
FLOAT = 4
STATE_PER_PARAM = {"adam": 2, "adamw": 2, "sgd": 1}  # optimizer tensors per trainable parameter (sgd: momentum)
MAX_GPUS = 1024


@dataclass(frozen=True)
class Activations:
    """Per-sample float32 bytes autograd keeps for backward: all of them, and with gradient checkpointing
    (``--grad-checkpoint``: per backbone stage, per block of a chain; ``None``: not known)."""

    kept: int
    checkpointed: int | None = None
    largest: int = 0  # the largest single output (its gradient exists alongside during backward)


@dataclass(frozen=True)
class DeviceBudget:
    """What the chosen device has free now."""

    device: str  # cuda:0 / cpu / mps
    label: str  # for people: "GPU 0 (NVIDIA H200)", "this computer's RAM"
    free: int
    total: int
    gpus: int = 0  # CUDA GPUs on this machine (what fsdp could shard over)

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class MemoryNeed:
    """The estimate, by part, in bytes."""

    params: int
    grads: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer + self.activations


@dataclass(frozen=True)
class Suggestion:
    key: str  # checkpointing / fsdp / batch / bf16 / combined
    text: str  # what to do, as a command-line user or in the app
    need: int  # bytes it would need (per GPU for fsdp)
    fits: bool


@dataclass(frozen=True)
class MemoryFit:
    need: MemoryNeed
    budget: DeviceBudget
    batch_size: int
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def fits(self) -> bool:
        return self.need.total <= self.budget.free * HEADROOM

    def line(self) -> str:
        """One sentence for the Model page."""
        need, b = size_text(self.need.total), self.budget
        head = f"about {need} to train at batch size {self.batch_size}"
        if self.fits:
            return f"Memory: {head} — fits {b.label} ({size_text(b.free)} free)"
        if self.need.total > b.free:
            text = f"Memory: {head} — more than the {size_text(b.free)} free on {b.label}"
        else:
            text = (f"Memory: {head} — too close to the {size_text(b.free)} free on {b.label}; training needs "
                    f"{1 - HEADROOM:.0%} spare")
        enough = [s for s in self.suggestions if s.fits]
        if enough:
            return f"{text}. Try {enough[0].text}: about {size_text(enough[0].need)}"
        return f"{text}; not even the suggestions together are enough: choose a smaller network"

    def details(self) -> str:
        """The breakdown and every suggestion with its numbers (a tooltip)."""
        n, b = self.need, self.budget
        rows = [f"Parameters: {size_text(n.params)}", f"Gradients: {size_text(n.grads)} (trainable parameters)",
                f"Optimizer state: {size_text(n.optimizer)}",
                f"Activations: {size_text(n.activations)} (batch size {self.batch_size})",
                f"Total: about {size_text(n.total)}; {b.label}: {size_text(b.free)} free of {size_text(b.total)}",
                f"Fits when at most {HEADROOM:.0%} of the free memory (allocator slack, workspaces)"]
        rows += [f"{'✓' if s.fits else '✗'} {s.text}: about {size_text(s.need)}" for s in self.suggestions]
        return "\n".join(rows)


def size_text(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def estimate(params: int, trainable: int, activations: Activations, batch_size: int, optimizer: str = "adam",
             momentum: float = 0.9, amp: bool = False, checkpointing: bool = False, shards: int = 1) -> MemoryNeed:
    """Training memory per device: ``shards`` > 1 is FSDP over that many GPUs with the global batch split."""
    states = STATE_PER_PARAM.get(optimizer, 2)
    if optimizer == "sgd" and not momentum:
        states = 0
    per_sample = activations.checkpointed if checkpointing and activations.checkpointed is not None \
        else activations.kept
    act = (per_sample + 2 * activations.largest) * math.ceil(batch_size / shards)
    weights = params * FLOAT + (params * 2 if amp else 0)  # autocast keeps a 16-bit copy of the weights
    if amp:
        act //= 2
    return MemoryNeed(math.ceil(weights / shards), math.ceil(trainable * FLOAT / shards),
                      math.ceil(trainable * FLOAT * states / shards), act)


def plan(params: int, trainable: int, activations: Activations, batch_size: int, budget: DeviceBudget,
         optimizer: str = "adam", momentum: float = 0.9, amp: bool = False, checkpointing: bool = False,
         shards: int = 1) -> MemoryFit:
    """The estimate against ``budget``, with suggestions in order when it does not fit; what is already on
    (``checkpointing``, fsdp over ``shards`` GPUs, ``amp``) is part of the estimate and not suggested again."""
    def need(**changes) -> MemoryNeed:
        args = {"batch_size": batch_size, "amp": amp, "checkpointing": checkpointing, "shards": shards} | changes
        return estimate(params, trainable, activations, optimizer=optimizer, momentum=momentum, **args)

    base = need()
    room = budget.free * HEADROOM
    if base.total <= room:
        return MemoryFit(base, budget, batch_size)
    out: list[Suggestion] = []
    combined: dict = {}
    if not checkpointing and activations.checkpointed is not None and activations.checkpointed < activations.kept:
        n = need(checkpointing=True).total
        out.append(Suggestion("checkpointing", "gradient checkpointing (--grad-checkpoint)", n, n <= room))
        combined["checkpointing"] = True
    if budget.is_gpu:
        fitting = [g for g in range(shards + 1, MAX_GPUS + 1) if need(shards=g).total <= room]
        gpus = next((g for g in fitting if batch_size % g == 0), fitting[0] if fitting else 0)  # 4 for 64, not 3
        if gpus:
            notes = [f"this machine has {budget.gpus}"] if budget.gpus < gpus else []
            if batch_size % gpus:
                notes.append(f"a batch size that is a multiple of {gpus}")
            more = f" ({'; '.join(notes)})" if notes else ""
            out.append(Suggestion("fsdp", f"--distributed fsdp on {gpus} GPUs{more}", need(shards=gpus).total, True))
    smaller = batch_size // 2
    while smaller >= shards and need(batch_size=smaller).total > room:
        smaller //= 2
    if smaller >= shards:
        out.append(Suggestion("batch", f"batch size {smaller}", need(batch_size=smaller).total, True))
    if budget.is_gpu and not amp:
        n = need(amp=True).total
        out.append(Suggestion("bf16", "bf16 mixed precision (--amp)", n, n <= room))
        combined["amp"] = True
    if not any(s.fits for s in out) and combined:
        n = need(**combined).total
        names = " and ".join(s.text for s in out if s.key in ("checkpointing", "bf16"))
        out.append(Suggestion("combined", names, n, n <= room))
    return MemoryFit(base, budget, batch_size, tuple(out))


# ------------------------------------------------------------------------------- the network's side
NORMS = ("BatchNorm1d", "BatchNorm2d", "LayerNorm")


def activation_profile(analysis) -> Activations:
    """Per-sample activation bytes of an analysed network (``architecture.Analysis``).

    Layers before the first trainable one keep nothing for backward (no gradient flows through them); a
    backbone is measured inside (`backbone_activations`). Checkpointed as ``--grad-checkpoint`` does it
    (`training.stages`): a chain in blocks — a layer with parameters, the norms and parameter-free layers
    after it — and a backbone in its stages; only each region's input is kept, plus the largest region's
    insides while it is recomputed."""
    top = [i for i in analysis.layers if "." not in i.path]
    first_trainable = next((k for k, i in enumerate(top) if i.trainable > 0), len(top))
    kept = checkpointed = math.prod(analysis.input_shape) * FLOAT  # the batch itself
    largest = recomputed = block = 0  # block: the insides of the chain block being gathered
    for k, info in enumerate(top):
        if info.error or not info.out_shape or k < first_trainable:
            continue
        out = math.prod(info.out_shape) * FLOAT
        if info.type in ("Backbone", "TimmBackbone") and info.in_shape:
            name = info.resolved.get("name", "")
            name = name if info.type == "Backbone" else f"timm:{name.removeprefix('timm:')}"
            try:
                full, boundaries, inner, big = backbone_activations(name, tuple(info.in_shape))
            except Exception:  # noqa: BLE001 — a model that will not run on the meta device: its output only
                full = boundaries = inner = big = out
            recomputed, block = max(recomputed, inner, block), 0
        else:
            nested = [i for i in analysis.layers if i.path.startswith(f"{info.path}.") and i.out_shape]
            full = sum(math.prod(i.out_shape) for i in nested) * FLOAT + out
            starts = info.params > 0 and info.type not in NORMS
            if starts:
                recomputed, block = max(recomputed, block), 0
            block += full
            # a block keeps its input (the batch, already counted, for the first)
            boundaries = math.prod(info.in_shape) * FLOAT if starts and k > first_trainable and info.in_shape else 0
            big = out
        kept += full
        checkpointed += boundaries
        largest = max(largest, big)
    checkpointed += max(recomputed, block)
    return Activations(kept, checkpointed, largest)


@functools.lru_cache(maxsize=32)  # the composer re-analyses after every edit; a backbone's build takes seconds
def backbone_activations(name: str, in_shape: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(all, kept when checkpointed, the largest stage's insides, the largest output) per-sample bytes of a
    backbone's layers, measured on the meta device.

    Every leaf layer's new output is kept for backward (an Identity's or in-place ReLU's is its input,
    counted once). Checkpointed per stage (`training.stages.network_stages`: ResNet's layer1…4, a ViT's
    blocks), a stage keeps only its output for the next; layers outside the stages (a ReLU, a pooling) keep
    theirs. What is stored, not the allocator's peak: see `HEADROOM`."""
    import torch
    from torch import nn

    from ftstudio.core.architecture.backbones import build_on_meta
    from ftstudio.core.training.stages import network_stages

    if name.startswith("timm:"):
        from ftstudio.core.architecture.timm_backbones import import_timm

        with torch.device("meta"):
            net = import_timm().create_model(name.removeprefix("timm:"), pretrained=False, num_classes=0)
        if in_shape[0] != 3:
            from ftstudio.core.architecture.backbones import _adapt_first_conv

            _adapt_first_conv(net, in_shape[0])
    else:
        net = build_on_meta(name, in_shape[0]).net
    stages = network_stages(net)
    owner = {id(m): s for s, stage in enumerate(stages) for m in stage.modules()}
    inside = [0] * (len(stages) + 1)  # the last: layers outside every stage
    outputs = [0] * len(stages)
    biggest = [0]

    def count(module, args, out) -> None:
        if not isinstance(out, torch.Tensor):
            return
        where = owner.get(id(module), len(stages))
        if isinstance(module, nn.Dropout) and module.p > 0:  # in training: a new tensor and its mask
            inside[where] += out.numel() * (FLOAT + 1)
        elif isinstance(module, nn.MaxPool2d):  # and the int64 indices of the maxima
            inside[where] += out.numel() * (FLOAT + 8)
        elif not (args and out is args[0]):  # an Identity, an in-place ReLU: no new tensor
            inside[where] += out.numel() * FLOAT
        biggest[0] = max(biggest[0], out.numel() * FLOAT)

    def stage_out(s: int):
        def hook(module, args, out) -> None:
            if isinstance(out, torch.Tensor):
                outputs[s] = out.numel() * FLOAT
        return hook

    hooks = [m.register_forward_hook(count) for m in net.modules() if not any(True for _ in m.children())]
    hooks += [stage.register_forward_hook(stage_out(s)) for s, stage in enumerate(stages)]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros((1, *in_shape), device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(inside), inside[-1] + sum(outputs), max(inside[:-1], default=0), biggest[0]


# --------------------------------------------------------------------------------- the device's side
def device_budget(device: str = "auto") -> DeviceBudget:
    """Free memory of ``device`` (auto, cpu, cuda[:N], mps) now; the CPU and MPS share the RAM."""
    import torch

    from ftstudio.core.devices import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        name = torch.cuda.get_device_properties(index).name
        return DeviceBudget(f"cuda:{index}", f"GPU {index} ({name})", int(free), int(total),
                            torch.cuda.device_count())
    free, total = available_ram()
    label = "this computer's RAM" if resolved.type == "cpu" else "the Apple GPU (shared RAM)"
    return DeviceBudget(resolved.type, label, free, total)


def available_ram() -> tuple[int, int]:
    """(available, total) bytes of RAM: Linux's MemAvailable (free plus reclaimable cache), else free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f.read(8192).splitlines()
                                                              if ":" in line)}
        return info["MemAvailable"], info["MemTotal"]
    except (OSError, KeyError, ValueError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_AVPHYS_PAGES"), page * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 31, 1 << 32
