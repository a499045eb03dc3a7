"""Training flags shared by `train`, `finetune` and friends, turned into a validated Recipe."""

from __future__ import annotations

import argparse
from typing import Any

from ftstudio.core.errors import InputError

# recipe field path → the flag that sets it (messages name the flag the user typed)
FLAGS = {
    "data.name": "--data", "data.val_split": "--val-split", "data.classes": "--classes",
    "data.per_class": "--per-class", "data.root": "--root", "data.image_size": "--image-size",
    "data.channels": "--channels", "data.augment.crop": "--augment-crop", "data.augment.rotation": "--augment-rotation",
    "data.augment.scale": "--augment-scale", "data.augment.color": "--augment-color",
    "data.augment.blur": "--augment-blur", "data.augment.noise": "--augment-noise",
    "data.augment.erase": "--augment-erase",
    "train.epochs": "--epochs", "train.batch_size": "--batch-size", "train.lr": "--lr",
    "train.optimizer": "--optimizer", "train.scheduler": "--scheduler", "train.device": "--device",
    "train.seed": "--seed", "train.weight_decay": "--weight-decay", "train.early_stopping": "--early-stopping",
    "train.grad_clip": "--grad-clip", "train.warmup_epochs": "--warmup-epochs", "train.momentum": "--momentum",
    "train.label_smoothing": "--label-smoothing", "train.distributed": "--distributed",
    "train.grad_checkpoint": "--grad-checkpoint",
}


def add_data_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", required=required, default=None if required else "digits",
                   help="a catalog name (see `ftstudio datasets`) or a folder with one subfolder per class")
    g.add_argument("--root", help="folder holding torchvision datasets")
    g.add_argument("--download", action="store_true", help="download a torchvision dataset if missing")
    g.add_argument("--val-split", type=float, default=None, help="fraction held out for validation (default 0.2)")
    g.add_argument("--classes", help="comma-separated class names to use (default: all)")
    g.add_argument("--per-class", type=int, help="at most N training images per class (few-shot)")
    g.add_argument("--image-size", help="resize to HxW, e.g. 28x28 (default: detected)")
    g.add_argument("--channels", type=int, choices=(1, 3), help="1 = grayscale, 3 = colour (default: detected)")
    g.add_argument("--augment", action="store_true", help="light augmentation: shift 2px, rotate ±10°")
    g.add_argument("--augment-crop", type=int, metavar="PX", help="random shift by up to PX pixels")
    g.add_argument("--augment-rotation", type=float, metavar="DEG", help="random rotation up to ±DEG degrees")
    g.add_argument("--flip", action="store_true", help="random horizontal flips")
    g.add_argument("--augment-scale", type=_pair, metavar="MIN,MAX",
                   help="random resized crop keeping MIN–MAX of the area, e.g. 0.6,1")
    g.add_argument("--augment-color", type=float, metavar="S", help="random brightness, contrast, saturation ±S")
    g.add_argument("--augment-blur", type=float, metavar="SIGMA", help="Gaussian blur, random sigma up to SIGMA px")
    g.add_argument("--augment-noise", type=float, metavar="STD", help="Gaussian pixel noise (pixels in 0–1)")
    g.add_argument("--augment-erase", type=float, metavar="P", help="erase a random rectangle with probability P")


def add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="passes over the data (default 10)")
    g.add_argument("--batch-size", type=_batch_size, help="images per step (default 64), or auto: the largest "
                   "that fits the device's memory (from 1024 down)")
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    g.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="default adam")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--weight-decay", type=float, help="default 0")
    g.add_argument("--scheduler", choices=("none", "step", "cosine", "onecycle"), help="default none")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up (default 0)")
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm")
    g.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing (default 0)")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after N epochs without improvement")
    g.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    g.add_argument("--grad-checkpoint", action="store_true",
                   help="gradient checkpointing: recompute each stage's activations in the backward pass "
                        "(far less activation memory for large models, for one more forward pass)")
    g.add_argument("--distributed", choices=("ddp", "fsdp"),
                   help="under torchrun: ddp (default; the model copied on every process) or fsdp (parameters, "
                        "gradients and optimizer state sharded across processes, sharded checkpoints that resume "
                        "at any number of processes)")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    g.add_argument("--seed", type=int, help="default 0")
    g.add_argument("--name", help="a label for the run")
    g.add_argument("--out", help="run folder (default: a new folder under the ftstudio runs folder)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")


AUTO_BATCH_START = 1024


def _batch_size(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def _pair(text: str) -> list[float]:
    parts = text.replace(" ", "").split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX like 0.6,1, got {text!r}") from None
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers MIN,MAX like 0.6,1, got {text!r}")
    return values


def _size(text: str | None) -> list[int] | None:
    if not text:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(v) for v in parts]
    except ValueError:
        raise InputError(f"--image-size: expected HxW like 28x28 or one number, got {text!r}") from None
    nums = nums * 2 if len(nums) == 1 else nums
    if len(nums) != 2 or not all(1 <= n <= 4096 for n in nums):
        raise InputError(f"--image-size: expected HxW with sides from 1 to 4096, got {text!r}")
    return nums


def recipe_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Recipe:  # noqa: F821
    """A validated Recipe from flags (only the flags given override ``base``)."""
    from ftstudio.core.config.recipe import Recipe

    from ftstudio.core.architecture.presets import preset_train_defaults

    data = dict((base or {}).get("data") or {})
    model = getattr(args, "model", None) or (base or {}).get("model")
    train = {**preset_train_defaults(model), **((base or {}).get("train") or {})}
    put = lambda d, k, v: d.__setitem__(k, v) if v is not None else None  # noqa: E731
    put(data, "name", getattr(args, "data", None))
    put(data, "root", getattr(args, "root", None))
    if getattr(args, "download", False):
        data["download"] = True
    put(data, "val_split", getattr(args, "val_split", None))
    if getattr(args, "classes", None):
        data["classes"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    put(data, "per_class", getattr(args, "per_class", None))
    put(data, "image_size", _size(getattr(args, "image_size", None)))
    put(data, "channels", getattr(args, "channels", None))
    augment = dict(data.get("augment") or {})
    if getattr(args, "augment", False):
        augment.update(crop=2, rotation=10.0)
    put(augment, "crop", getattr(args, "augment_crop", None))
    put(augment, "rotation", getattr(args, "augment_rotation", None))
    for key in ("scale", "color", "blur", "noise", "erase"):
        put(augment, key, getattr(args, f"augment_{key}", None))
    if getattr(args, "flip", False):
        augment["flip"] = True
    if augment:
        data["augment"] = augment
    for key in ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "scheduler", "warmup_epochs",
                "grad_clip", "label_smoothing", "early_stopping", "device", "seed", "distributed"):
        put(train, key, getattr(args, key, None))
    if getattr(args, "amp", False):
        train["amp"] = True
    if getattr(args, "grad_checkpoint", False):
        train["grad_checkpoint"] = True
    auto_batch = train.get("batch_size") == "auto"
    if auto_batch:
        train["batch_size"] = AUTO_BATCH_START
    doc = {**(base or {}), "data": data, "train": train}
    if getattr(args, "model", None) is not None:
        doc["model"] = args.model
    if getattr(args, "name", None):
        doc["name"] = args.name
    try:
        recipe = Recipe.from_dict(doc)
    except InputError as exc:
        raise InputError(_flag_message(str(exc))) from None
    if auto_batch:
        recipe = _auto_batch(recipe)
    return recipe


def _auto_batch(recipe):
    import dataclasses
    import sys

    from ftstudio.core.planning.batch_size import largest_fitting_batch

    size, how = largest_fitting_batch(recipe, AUTO_BATCH_START)
    print(f"batch size {size}: {how}", file=sys.stderr)
    return recipe.replace(train=dataclasses.replace(recipe.train, batch_size=size))


def _flag_message(message: str) -> str:
    field, _, rest = message.partition(": ")
    base = field.split("[")[0]
    return f"{FLAGS[base]}: {rest}" if base in FLAGS else message
