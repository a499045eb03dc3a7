"""Where a fine-tune starts: a run folder, a checkpoint file, or ``torchvision:NAME`` pretrained weights.

`load_source` turns a FinetunePlan's ``source`` into a `Source`: the architecture (with the
source's head), its weights, the classes it knows, the preprocessing it was trained with, and the
lineage the new run records. Checkpoints load with ``weights_only=True`` only; ImageNet weights
come from torch's cache or a file the user picked — nothing is downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftstudio.core import messages
from ftstudio.core.architecture import LAYERS, ModelSpec, parse_model
from ftstudio.core.errors import InputError
from ftstudio.core.fileio import file_sha256
from ftstudio.core.config.recipe import FinetunePlan
from ftstudio.core.training.checkpoint import check_model_file

TORCHVISION = "torchvision:"
TIMM = "timm:"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# layer types without parameters may follow the head (a final Dropout, Flatten…)
WEIGHTED = {"Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Backbone", "TimmBackbone", "Residual"}


@dataclass
class Source:
    """A model to start from, before it gets its new head."""

    architecture: ModelSpec  # resolved (concrete) for checkpoints; with "auto"/"classes" for torchvision
    head: int  # index of the top-level Linear layer that maps features to classes
    state: dict[str, Any] | None  # weights (None: the torchvision backbone loads its own)
    classes: tuple[str, ...]  # what the source head predicts (empty for a headless backbone)
    input_shape: tuple[int, int, int] | None  # [C, H, W] it was trained on (None: any)
    mean: tuple[float, ...] | None  # the normalisation it was trained with
    std: tuple[float, ...] | None
    lineage: dict[str, Any] = field(default_factory=dict)


def load_source(plan: FinetunePlan) -> Source:
    """Resolve ``plan.source`` (see module docstring); bad sources raise InputError naming them."""
    if plan.source.startswith(TORCHVISION):
        return _torchvision(plan.source[len(TORCHVISION):].strip(), plan.weights)
    if plan.source.startswith(TIMM):
        return _timm(plan.source[len(TIMM):].strip(), plan.weights)
    return _checkpoint(plan.source, plan.checkpoint)


def _checkpoint(source: str, which: str) -> Source:
    from ftstudio.core.architecture.lora import merge_state_dict
    from ftstudio.core.runs.folders import Run, resolve_checkpoint
    from ftstudio.core.training import checkpoint

    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(messages.SOURCE_MISSING.format(path=path))
    ckpt_path = resolve_checkpoint(path, which)
    ckpt = checkpoint.load(ckpt_path)
    where = str(ckpt_path)
    try:
        arch = parse_model(ckpt["architecture"], f"{where}: architecture")
        classes = tuple(str(c) for c in ckpt["classes"])
        pre = ckpt["preprocess"]
        shape = tuple(int(v) for v in pre["input_shape"])
        mean, std = tuple(float(v) for v in pre["mean"]), tuple(float(v) for v in pre["std"])
        state = merge_state_dict(ckpt["model"], ckpt["lora"]) if ckpt.get("lora") else ckpt["model"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(messages.CHECKPOINT_INVALID.format(path=where, detail=f"malformed entry {exc}")) from None
    if len(shape) != 3 or len(mean) != shape[0] or len(std) != shape[0]:
        raise InputError(messages.CHECKPOINT_INVALID.format(path=where, detail="malformed preprocess entry"))
    recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
    best = ckpt.get("best") if isinstance(ckpt.get("best"), dict) else {}
    lineage = {
        "kind": "run" if path.is_dir() else "checkpoint",
        "source": str(path.resolve()),
        "run_id": path.name if path.is_dir() and Run(path).exists() else None,
        "checkpoint": str(ckpt_path.resolve()),
        "checkpoint_sha256": file_sha256(ckpt_path),
        "epoch": ckpt.get("epoch"),
        "data": (recipe.get("data") or {}).get("name"),
        "classes": list(classes),
        "val_accuracy": best.get("val_accuracy"),
        "parent": ckpt.get("lineage"),
    }
    return Source(arch, find_head(arch, where), state, classes, shape, mean, std, lineage)


def _torchvision(name: str, weights: str | None) -> Source:
    choices = LAYERS["Backbone"].params["name"].choices
    if name not in choices:
        raise InputError(f"--from torchvision:{name}: unknown backbone; choose one of {', '.join(choices)}")
    random_init = (weights or "").lower() == "none"
    weights_file = "" if random_init or not weights else str(Path(weights).expanduser())
    used = "random initialisation"
    if not random_init:
        from ftstudio.core.architecture.backbones import cached_weights_path, weights_url

        if weights_file:
            used = str(check_model_file(weights_file, "--weights file"))
        else:
            cached = cached_weights_path(name)
            if not cached.is_file():
                raise InputError(messages.PRETRAINED_MISSING.format(name=name, url=weights_url(name), path=cached))
            used = str(cached)
    arch = parse_model({"name": f"{name} (torchvision) + new head", "layers": [
        {"type": "Backbone", "params": {"name": name, "weights": "none" if random_init else "imagenet",
                                        "weights_file": weights_file}},
        {"type": "Linear", "params": {"out_features": "classes"}}]})
    lineage = {"kind": "torchvision", "source": f"{TORCHVISION}{name}",
               "weights": "imagenet" if not random_init else "none", "weights_file": None if random_init else used,
               "weights_sha256": None if random_init else file_sha256(used), "classes": [], "parent": None}
    from ftstudio.core.architecture.catalogue import native_input

    shape, mean, std = native_input(f"{TORCHVISION}{name}")
    return Source(arch, 1, None, (), shape, mean, std, lineage)


def _timm(name: str, weights: str | None) -> Source:
    """A timm backbone + new head; weights from --weights (file or Hugging Face folder) or the HF cache."""
    from ftstudio.core.architecture.timm_backbones import cached_timm_weights, check_name
    from ftstudio.core.architecture.catalogue import native_input

    name = check_name(name)
    random_init = (weights or "").lower() == "none"
    used = ""
    if not random_init:
        used = str(Path(weights).expanduser()) if weights else cached_timm_weights(name)
        if weights and not Path(used).exists():
            raise InputError(f"{used}: weights file or folder not found (--weights)")
        if weights and not Path(used).is_dir():
            check_model_file(used, "--weights file")  # it is hashed: /dev/zero never ends
        if not used:
            from ftstudio.core.architecture.weights import locate

            raise InputError(messages.PRETRAINED_MISSING_TIMM.format(name=name, url=locate(f"{TIMM}{name}").url))
    arch = parse_model({"name": f"{name} (timm) + new head", "layers": [
        {"type": "TimmBackbone", "params": {"name": name, "weights": "none" if random_init else "pretrained",
                                            "weights_file": used}},
        {"type": "Linear", "params": {"out_features": "classes"}}]})
    digest = None if random_init or Path(used).is_dir() else file_sha256(used)
    lineage = {"kind": "timm", "source": f"{TIMM}{name}", "weights": "none" if random_init else "pretrained",
               "weights_file": used or None, "weights_sha256": digest, "classes": [], "parent": None}
    shape, mean, std = native_input(f"{TIMM}{name}")
    return Source(arch, 1, None, (), shape, mean, std, lineage)


def find_head(spec: ModelSpec, where: str = "source") -> int:
    """Index of the last top-level Linear layer, which must come after every other weighted layer."""
    for i in range(len(spec.layers) - 1, -1, -1):
        kind = spec.layers[i].type
        if kind == "Linear":
            return i
        if kind in WEIGHTED:
            break
    raise InputError(f"{where}: the model does not end with a Linear layer (its classifier head), so there is "
                     "no head to replace; fine-tune a model whose last weighted layer is Linear")
