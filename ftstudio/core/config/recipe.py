"""A Recipe is everything needed to reproduce a run, as plain versioned JSON.

It holds the data (DatasetSpec), the architecture (a preset name or architecture JSON), the
training settings (TrainConfig) and, for fine-tuning, a FinetunePlan. The GUI edits one, the CLI
builds one from flags, `ftstudio run recipe.json` replays one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ftstudio.core.errors import InputError
from ftstudio.core.config.schema import from_dict, spec, to_dict
from ftstudio.core.fileio import MAX_JSON_BYTES, ReadRefused, read_bounded

T = TypeVar("T")
RECIPE_VERSION = 1
SEED_MAX = 2**32 - 1  # numpy's limit; torch's is 2**64 - 1
IMAGE_SIDE_MAX = 4096  # as an architecture's input_shape

Optimizer = Literal["sgd", "adam", "adamw"]
Scheduler = Literal["none", "step", "cosine", "onecycle"]
Strategy = Literal["head", "full", "lora", "none"]
Distributed = Literal["ddp", "fsdp"]


@dataclass(frozen=True)
class AugmentSpec:
    """Label-preserving augmentation applied to training batches only, on the device."""

    crop: int = spec(0, min=0, max=64, help="Random shift by up to this many pixels (0 = off)")
    flip: bool = spec(False, help="Random horizontal flip (not for digits or text)")
    rotation: float = spec(0.0, min=0, max=180, help="Random rotation up to ± this many degrees")
    scale: tuple[float, float] = spec((1.0, 1.0), min=0.05, max=1.0, help="Random resized crop: keep this "
                                      "fraction [min, max] of the image's area, stretched back to full size "
                                      "(1, 1 = off)")
    color: float = spec(0.0, min=0.0, max=1.0, help="Random brightness, contrast and saturation, each "
                                                   "scaled by up to ± this fraction (0 = off)")
    blur: float = spec(0.0, min=0.0, max=10.0, help="Gaussian blur with a random sigma up to this many "
                                                   "pixels (0 = off)")
    noise: float = spec(0.0, min=0.0, max=1.0, help="Gaussian pixel noise of this standard deviation, "
                                                   "pixels in 0–1 (0 = off)")
    erase: float = spec(0.0, min=0.0, max=1.0, help="Probability of erasing a random rectangle "
                                                   "(2–33% of the image) per image (0 = off)")

    def __post_init__(self) -> None:
        if self.scale[0] > self.scale[1]:
            raise InputError(f"data.augment.scale: the smallest fraction comes first (got {list(self.scale)})")

    @property
    def geometric(self) -> bool:
        return bool(self.crop or self.flip or self.rotation or tuple(self.scale) != (1.0, 1.0))

    @property
    def enabled(self) -> bool:
        return self.geometric or bool(self.color or self.blur or self.noise or self.erase)


@dataclass(frozen=True)
class DatasetSpec:
    """Which data, and how to split and shape it."""

    name: str = spec("digits", help="A catalog name (see `ftstudio datasets`) or an image folder")
    root: str | None = spec(None, help="Folder that holds (or will hold) a torchvision dataset")
    download: bool = spec(False, help="Download a torchvision dataset if it is not in root")
    val_split: float = spec(0.2, min=0.0, max=0.9, help="Fraction of each class held out for validation")
    split_seed: int = spec(0, min=0, max=SEED_MAX, help="Seed of the stratified validation split")
    classes: tuple[str, ...] | None = spec(None, help="Use only these classes (by name)")
    per_class: int | None = spec(None, min=1, max=10_000_000,
                                 help="Keep at most this many training images per class (few-shot)")
    image_size: tuple[int, int] | None = spec(None, min=1, max=IMAGE_SIDE_MAX,
                                              help="Resize images to [height, width] (default: detected)")
    channels: int | None = spec(None, choices=(1, 3), help="1 = grayscale, 3 = colour (default: detected)")
    augment: AugmentSpec = spec(factory=AugmentSpec, help="Training-time augmentation")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, schedule, device, stopping."""

    epochs: int = spec(10, min=1, max=100_000, help="Passes over the training data")
    batch_size: int = spec(64, min=1, max=1_000_000, help="Images per optimizer step")
    lr: float = spec(1e-3, min=0.0, min_exclusive=True, max=10.0, help="Learning rate")
    optimizer: Optimizer = spec("adam", help="sgd (with momentum), adam or adamw")
    momentum: float = spec(0.9, min=0.0, max=1.0, help="SGD momentum")
    weight_decay: float = spec(0.0, min=0.0, max=1.0, help="L2 penalty (decoupled for adamw)")
    scheduler: Scheduler = spec("none", help="Learning-rate schedule: none, step, cosine or onecycle")
    warmup_epochs: float = spec(0.0, min=0.0, max=100_000, help="Linear warm-up length (step and cosine)")
    step_size: int = spec(10, min=1, max=100_000, help="Epochs between decays (step schedule)")
    gamma: float = spec(0.1, min=0.0, min_exclusive=True, max=1.0, help="Decay factor (step schedule)")
    grad_clip: float | None = spec(None, min=0.0, min_exclusive=True, help="Clip the gradient norm to this value")
    amp: bool = spec(False, help="Mixed precision (CUDA only; ignored on the CPU)")
    device: str = spec("auto", help="auto, cpu, cuda, cuda:N or mps")
    seed: int = spec(0, min=0, max=SEED_MAX, help="Seed for weights, shuffling and augmentation")
    early_stopping: int | None = spec(None, min=1, max=100_000,
                                      help="Stop after this many epochs without a better validation loss")
    label_smoothing: float = spec(0.0, min=0.0, max=0.5, help="Cross-entropy label smoothing")
    distributed: Distributed = spec("ddp", help="Under torchrun: ddp (a copy of the model on every process) or fsdp "
                                               "(parameters, gradients and optimizer state sharded across the "
                                               "processes, for a model too large for one device; checkpoints are "
                                               "sharded too and resume at any number of processes)")
    grad_checkpoint: bool = spec(False, help="Gradient checkpointing: keep only each stage's input during the "
                                             "forward pass and recompute the rest in the backward pass (far "
                                             "less activation memory, one more forward pass)")


@dataclass(frozen=True)
class LayerOverride:
    """Per-layer fine-tuning control: freeze it, or scale its learning rate."""

    layer: str = spec(help="Layer index or name, as shown by the composer")
    freeze: bool | None = spec(None, help="true = frozen, false = trainable")
    lr_mult: float | None = spec(None, min=0.0, help="Learning-rate multiplier")


@dataclass(frozen=True)
class FinetunePlan:
    """Start from trained weights and adapt them to new data."""

    source: str = spec(help="A run folder, a checkpoint file, or torchvision:NAME for pretrained weights")
    checkpoint: Literal["best", "last"] = spec("best", help="Which checkpoint of a run folder")
    weights: str | None = spec(None, help="torchvision sources: a local .pth/.safetensors file with the "
                                          "pretrained weights (default: torch's cache), or none for random init")
    strategy: Strategy = spec("full", help="head (train only a new head), full (everything, the backbone at a "
                                           "lower rate), lora (low-rank adapters) or none (train as is)")
    backbone_lr_mult: float = spec(0.1, min=0.0, max=10.0, help="Backbone learning rate relative to --lr "
                                                                "(full, and after unfreezing)")
    chance_backbone_lr_mult: float = spec(1.0, min=0.0, max=10.0, help="Backbone learning rate relative to --lr "
                                          "when the source scores about chance on the new images (its features do "
                                          "not transfer, so there is nothing to protect); used where higher than "
                                          "backbone_lr_mult; 0 = off")
    head_lr_mult: float = spec(1.0, min=0.0, max=100.0, help="Head learning rate relative to --lr")
    lora_rank: int = spec(4, min=1, max=512, help="Rank of the LoRA adapters")
    lora_alpha: float = spec(8.0, min=0.0, min_exclusive=True, help="LoRA scale (alpha / rank)")
    chance_lora_alpha: float = spec(32.0, min=0.0, max=1024.0, help="LoRA alpha used when the source scores about "
                                    "chance on the new images (its features need a larger change); used where "
                                    "higher than lora_alpha, and then recorded as the run's lora_alpha; 0 = off")
    unfreeze_after: int | None = spec(None, min=0, max=100_000,
                                      help="Train only the head for this many epochs, then the "
                                           "backbone too (gradual unfreezing)")
    keep_known_classes: bool = spec(True, help="Keep head rows of classes the source already knows")
    layers: tuple[LayerOverride, ...] = spec((), help="Per-layer freeze / learning-rate overrides")
    bn: Literal["auto", "adapt", "keep", "train"] = spec(
        "auto", help="Frozen BatchNorm layers: adapt (re-estimate their statistics on the new data, AdaBN), keep "
                     "(the source's), train (batch statistics while training); auto = adapt where any is frozen")
    polarity: Literal["auto", "keep", "invert"] = spec(
        "auto", help="Input polarity: invert (every pixel v → 1 − v before the network: the new images are the "
                     "negative of the source's, light and dark swapped), keep, or auto = invert only where the "
                     "source scores clearly better on the inverted training images")
    new_rows: Literal["imprint", "mean", "random"] = spec(
        "imprint", help="Head rows of classes the source does not know: imprint (each class's mean feature), mean "
                        "(of the known rows) or random")
    min_steps: int = spec(100, min=0, max=1_000_000, help="Train at least this many optimizer steps: on tiny "
                                                          "data the epochs are raised until they add up (0 = off)")


@dataclass(frozen=True)
class Recipe:
    """Everything needed to reproduce a run."""

    version: int = spec(RECIPE_VERSION, min=1, max=RECIPE_VERSION, help="Recipe format version")
    name: str = spec("", help="A label for the run")
    data: DatasetSpec = spec(factory=DatasetSpec)
    model: Any = spec("mlp", help="A preset name, a path to architecture JSON, or the architecture itself")
    train: TrainConfig = spec(factory=TrainConfig)
    finetune: FinetunePlan | None = spec(None)

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        recipe = from_dict(cls, data, "")
        if not isinstance(recipe.model, (str, dict)):
            raise InputError("model: expected a preset name, a file path or an architecture object")
        return recipe


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file safely: a regular file, size-capped, with messages that name the file."""
    path = Path(path)
    try:
        raw = read_bounded(path, MAX_JSON_BYTES, what)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except ReadRefused as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    return parse_json(raw, f"{path}", what)


def parse_json(raw: bytes, where: str, what: str = "file") -> Any:
    """JSON from bytes; every failure (bad UTF-8, syntax, depth, a 5000-digit number) is an InputError."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{where}: not a text file; expected a JSON {what}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit conversion limit
        raise InputError(f"{where}: unreadable JSON value ({str(exc)[:120]})") from None


def load_validated(path: str | Path, what: str, parse: Callable[[Any], T]) -> T:
    """Read a JSON file and validate it with ``parse``; errors name the file, then the field."""
    data = read_json(path, what)
    try:
        return parse(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file."""
    return load_validated(path, "recipe", Recipe.from_dict)


def save_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves half a file."""
    from ftstudio.core.fileio import write_json_file

    write_json_file(path, data)
