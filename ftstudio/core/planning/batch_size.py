"""Find the largest batch size that fits in the device's memory, by trying one training step.

Offered when training runs out of GPU memory: start from a size, halve on out-of-memory until one
forward + backward pass fits (then try doubling back up to the requested size is not needed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ftstudio.core.errors import InputError


def fits(model: torch.nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int,
         device: torch.device) -> bool:
    """True if one forward + backward pass at ``batch_size`` runs without running out of memory."""
    x = y = out = loss = None
    try:
        x = torch.randn((batch_size, *input_shape), device=device)
        y = torch.randint(0, num_classes, (batch_size,), device=device)
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        del x, y, out, loss
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def find_batch_size(model: torch.nn.Module, input_shape: tuple[int, ...], num_classes: int, start: int,
                    device: torch.device) -> int:
    """The largest of start, start/2, start/4, … that fits; InputError if not even 1 does."""
    model.to(device).train()
    size = max(1, start)
    while size >= 1:
        if fits(model, input_shape, num_classes, size, device):
            return size
        size //= 2
    raise InputError(f"the model does not fit in {device}'s memory even at batch size 1; "
                     "choose a smaller model or another device")


def largest_fitting_batch(recipe, start: int) -> tuple[int, str]:
    """(batch size, how it was found) for a recipe: a real trial on a GPU, an estimate on the CPU."""
    from ftstudio.core.architecture import analyze
    from ftstudio.core.devices import resolve_device
    from ftstudio.core.engine import prepare

    prepared = prepare(recipe)
    device = resolve_device(recipe.train.device)
    shape, classes = tuple(prepared.data.input_shape), prepared.data.num_classes
    if device.type != "cpu":
        size = find_batch_size(prepared.model, shape, classes, start, device)
        return size, f"the largest of {start}, {start // 2}, … that trained one step on {device}"
    per_batch = analyze(prepared.architecture, shape, classes)
    budget = _available_memory() // 2
    size = max(1, start)
    while size > 1 and per_batch.memory_estimate(size) > budget:
        size //= 2
    return size, f"the largest of {start}, {start // 2}, … whose estimated memory fits in half the free RAM"


def _available_memory() -> int:
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 31
