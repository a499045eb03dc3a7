"""What --grad-checkpoint saves: bytes held for the backward pass in one training step, and the step's time.

    python bench/grad_checkpoint.py            # torchvision resnet50 and timm vit_small_patch16_224, batch 8, 224 px

"Held for backward" counts the tensors autograd saves during the forward pass (parameters excluded), read
with `torch.autograd.graph.saved_tensors_hooks`: a count of bytes, not a timing, so it does not depend on how
busy the machine is. With checkpointing, the backward pass re-creates one stage's activations at a time on top
of it. The step times are the best of 3 and, on a shared machine, only their ratio means anything.
"""

from __future__ import annotations

import copy
import time

import torch


def held_for_backward(model: torch.nn.Module, x: torch.Tensor) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    out.sum().backward()
    return sum(n for ptr, n in storages.items() if ptr not in params)


def step_seconds(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model(x).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import timm
    import torchvision

    from ftstudio.core.architecture.modules import Backbone
    from ftstudio.core.training.stages import checkpoint_stages

    x = torch.randn(8, 3, 224, 224)
    for name, net in (("torchvision resnet50", torchvision.models.resnet50()),
                      ("timm vit_small_patch16_224", timm.create_model("vit_small_patch16_224"))):
        plain = torch.nn.Sequential(Backbone(name, net)).train()
        checked = copy.deepcopy(plain)
        stages = checkpoint_stages(checked)
        a, b = held_for_backward(plain, x), held_for_backward(checked, x)
        ta, tb = step_seconds(plain, x), step_seconds(checked, x)
        print(f"{name}: {stages} stages; held for backward {a / 2**20:.0f} MiB → {b / 2**20:.0f} MiB "
              f"({b / a:.2f}×); step {ta:.2f} s → {tb:.2f} s ({tb / ta:.2f}×)")


if __name__ == "__main__":
    main()
