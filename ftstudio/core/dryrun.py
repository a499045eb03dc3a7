"""A one-batch dry run: forward and backward on one real batch of the data, timed, with its peak
memory — or the error and the layer that raised it — before a long run finds out.

The composer's "Check" button calls `check_one_batch` in the background. Memory is the CUDA
allocator's peak on a GPU; elsewhere it is the bytes of the tensors the step holds at once
(weights, the batch, activations kept for backward, gradients), counted exactly through autograd's
saved-tensor hooks — the process's RSS is too coarse to see a small network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftstudio.core.architecture import ModelSpec, iter_layers
from ftstudio.core.errors import InputError

if TYPE_CHECKING:
    import torch

    from ftstudio.core.datasets import DataBundle


@dataclass(frozen=True)
class CheckReport:
    """What one training step of a network on one batch did."""

    ok: bool
    message: str = ""  # the error, naming its layer; "" when ok
    layer: str = ""  # path of the layer that failed ("" when none or unknown)
    seconds: float = 0.0  # forward + backward
    peak_bytes: int = 0
    memory_kind: str = ""  # what peak_bytes measures
    device: str = ""
    batch_size: int = 0
    loss: float | None = None

    def summary(self) -> str:
        if not self.ok:
            return f"Check failed: {self.message}"
        return (f"One batch of {self.batch_size} on {self.device}: forward + backward in "
                f"{self.seconds * 1000:,.1f} ms, peak memory {self.peak_bytes / 2**20:,.1f} MB "
                f"({self.memory_kind}), loss {self.loss:.3f}")


def _batch(data: DataBundle, batch_size: int, input_shape: tuple[int, int, int]):
    """The first ``batch_size`` training images as the network sees them: resized like `load_data`, normalised."""
    import numpy as np
    import torch

    from ftstudio.core.datasets import _resize

    n = max(1, min(batch_size, len(data.train)))
    images = np.asarray(data.train.images(list(range(n))))
    c, h, w = input_shape
    if tuple(images.shape[1:]) != (c, h, w):
        images = _resize(images, (h, w), c)
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    if len(data.mean) == c:
        mean, std = torch.tensor(data.mean), torch.tensor(data.std)
    else:  # the network takes other channels than the data has: the batch's own statistics
        mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    x = (x - mean.view(1, -1, 1, 1)) / std.clamp_min(1e-6).view(1, -1, 1, 1)
    return x, data.train.y[:n].clone()


class _Tracer:
    """Which layer is running (pre/post forward hooks), and the bytes autograd keeps for backward."""

    def __init__(self, model: torch.nn.Module, spec: ModelSpec) -> None:
        from ftstudio.core.architecture import module_at

        self.stack: list[str] = []
        self.saved: dict[int, int] = {}
        self.handles = []
        for path, _ in iter_layers(spec.layers):
            module = module_at(model, path)
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave))
        self.counted_elsewhere: set[int] = set()  # weights and the batch

    def _enter(self, path: str):
        def hook(module, args) -> None:
            self.stack.append(path)
        return hook

    def _leave(self, module, args, output) -> None:
        self.stack.pop()

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.counted_elsewhere:
            self.saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _failure(message: str, layer: str, spec: ModelSpec, device: str, batch_size: int) -> CheckReport:
    kind = ""
    if layer:
        from ftstudio.core.architecture.composer import get_layer

        kind = get_layer(spec, layer).type
    where = f"layer {layer} ({kind}): " if layer and not message.startswith("layer ") else ""
    return CheckReport(False, where + message, layer, device=device, batch_size=batch_size)


def check_one_batch(spec: ModelSpec, data: DataBundle, batch_size: int, device: str = "auto",
                    input_shape: tuple[int, int, int] | None = None) -> CheckReport:
    """Build ``spec`` for ``data``, run one training step on its first batch, and report.

    ``input_shape`` is what the network takes when the architecture fixes it (the batch is resized
    as training would); by default the data's own. Never raises for a bad network: the report says."""
    import torch
    import torch.nn.functional as F

    from ftstudio.core.architecture import analyze, build_model
    from ftstudio.core.devices import resolve_device

    shape = tuple(input_shape or data.input_shape)
    target = resolve_device(device)
    name = str(target)
    analysis = analyze(spec, shape, data.num_classes)
    if analysis.error:
        bad = next((i.path for i in analysis.layers if i.error), "")
        return _failure(analysis.error, bad, spec, name, batch_size)
    try:
        model, _ = build_model(spec, shape, data.num_classes)
    except InputError as exc:
        return _failure(str(exc), "", spec, name, batch_size)
    x, y = _batch(data, batch_size, shape)
    cuda = target.type == "cuda"
    if cuda:
        torch.cuda.synchronize(target)
        torch.cuda.reset_peak_memory_stats(target)
    tracer = _Tracer(model, spec)
    try:
        model.to(target).train()
        x, y = x.to(target), y.to(target)
        tracer.counted_elsewhere = {t.untyped_storage().data_ptr() for t in (x, *model.parameters())}
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(tracer.pack, lambda t: t):
            out = model(x)
            loss = F.cross_entropy(out, y)
        tracer.stack.clear()
        loss.backward()
        if cuda:
            torch.cuda.synchronize(target)
        seconds = time.perf_counter() - start
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
        layer = tracer.stack[-1] if tracer.stack else ""
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not layer:
            text = f"during backward: {text}"
        return _failure(text, layer, spec, name, batch_size)
    finally:
        tracer.close()
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated(target), "GPU allocator peak"
    else:
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
        batch = x.numel() * x.element_size() + out.numel() * out.element_size()
        peak, kind = weights + grads + batch + sum(tracer.saved.values()), "weights, batch, activations and gradients"
    return CheckReport(True, seconds=seconds, peak_bytes=int(peak), memory_kind=kind, device=name,
                       batch_size=int(x.shape[0]), loss=float(loss.detach()))
