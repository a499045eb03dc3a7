"""Fine-tuning: a FinetunePlan turned into a model ready to train — new head, frozen parts, per-group rates.

The plan is executed here, once, before training: the source's weights are loaded, its head is
resized to the new classes (rows of classes it already knows are kept, by class name), the
strategy decides what trains and at which rate (``head``, ``full``, ``lora``, ``none``), per-layer
overrides come last, and ``unfreeze_after`` defers the backbone to a callback. The trainer only
sees parameters with ``requires_grad`` and a ``{id(param): lr multiplier}`` dict.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ftstudio.core import messages
from ftstudio.core.architecture import CLASSES, ModelSpec, iter_layers, layer_multipliers, module_at, strip_pretrained
from ftstudio.core.errors import InputError
from ftstudio.core.training.callbacks import Callback
from ftstudio.core.training.events import EpochFinished
from ftstudio.core.training.prepared import Prepared, seed_everything

if TYPE_CHECKING:
    from ftstudio.core.datasets import DataBundle
    from ftstudio.core.finetune.sources import Source
    from ftstudio.core.config.recipe import FinetunePlan, Recipe

MAX_EPOCHS = 100_000


def prepare_finetune(recipe: Recipe, *, progress=None, cancel=None) -> Prepared:
    """Load the source and the new data, build the model with its new head, apply the plan."""
    from ftstudio.core.datasets import load_data
    from ftstudio.core.finetune.sources import load_source

    plan = recipe.finetune
    assert plan is not None
    source = load_source(plan)
    size, channels = (source.input_shape[1:], source.input_shape[0]) if source.input_shape else (None, None)
    data = load_data(recipe.data, image_size=size, channels=channels, progress=progress, cancel=cancel)
    own_mean = data.mean
    data, notes = _normalisation(data, source)
    if source.lineage.get("kind") in ("torchvision", "timm") and source.input_shape:
        notes.insert(0, _input_note(recipe, source, data, own_mean))
    seed_everything(recipe.train.seed)
    try:
        model, arch, kept, fresh = build_with_new_head(source, data.input_shape, data.classes, plan.keep_known_classes)
    except InputError as exc:
        if source.input_shape is None or tuple(data.input_shape) == tuple(source.input_shape):
            raise
        # --channels / --image-size asked for images the source cannot take: say that, not which layer broke
        raise InputError(messages.FINETUNE_INPUT_MISMATCH.format(
            source=_shape_text(source.input_shape), data=_shape_text(data.input_shape),
            detail=str(exc).split("; ")[0])) from None
    notes.append(_head_note(source, arch, data.classes, kept, fresh))
    data, polarity = _polarity(model, source, data, recipe)
    said = polarity.note()
    if said:
        notes.append(said)
    result = apply_strategy(model, arch, plan, source.head)
    notes.append(result.note)
    extra = _adapt_and_measure(model, source, data, recipe, notes, kept, fresh)
    extra["polarity"] = polarity.to_dict()
    if extra["baseline"].get("near_chance"):
        raised = _raise_backbone_rate(result, plan)
        if raised:
            notes.append(raised)
            extra["backbone_lr_mult"] = plan.chance_backbone_lr_mult
        raised = _raise_lora_alpha(model, result, plan)
        if raised:  # recorded in the recipe: a resumed run rebuilds its adapters at this scale
            notes.append(raised)
            extra["lora_alpha"] = plan.chance_lora_alpha
            recipe = recipe.replace(finetune=dataclasses.replace(plan, lora_alpha=plan.chance_lora_alpha))
    recipe, note = _enough_steps(recipe, len(data.train))
    if note:
        notes.append(note)
    name = recipe.name or f"{plan.strategy}-finetune-{Path(recipe.data.name).name or recipe.data.name}"
    recipe = recipe.replace(name=name, model=arch.to_dict())
    lineage = {**source.lineage, "strategy": plan.strategy, "head_layer": str(source.head),
               "kept_classes": kept, "new_classes": fresh}
    unfreeze = plan.unfreeze_after and result.deferred
    callbacks: list[Callback] = [GradualUnfreeze(result.deferred, plan.unfreeze_after)] if unfreeze else []
    return Prepared(recipe, data, model, arch, result.multipliers, lineage, tuple(notes), lora=result.lora,
                    deferred=result.deferred, callbacks=callbacks, summary=extra)


def _polarity(model: nn.Module, source: Source, data: DataBundle, recipe: Recipe):
    """The new images as they are or inverted, by the plan's ``polarity`` (finetune.polarity)."""
    from ftstudio.core.devices import resolve_device
    from ftstudio.core.finetune import polarity

    source_stats = source.mean is not None and tuple(source.mean) == tuple(data.mean)
    return polarity.choose(model, source, data, recipe.finetune.polarity, source_stats=source_stats,
                           device=resolve_device(recipe.train.device))


def _adapt_and_measure(model: nn.Module, source: Source, data: DataBundle, recipe: Recipe,
                       notes: list[str], kept: list[str], fresh: list[str]) -> dict[str, Any]:
    """The source's baseline on the new validation images, the plan's BatchNorm mode (finetune.normalisation),
    then the new classes' head rows (finetune.new_rows) on the features the head will see."""
    from ftstudio.core.devices import resolve_device
    from ftstudio.core.finetune import baseline
    from ftstudio.core.finetune.new_rows import init_new_rows
    from ftstudio.core.finetune.normalisation import adapted_for_measuring, apply_bn_mode

    device = resolve_device(recipe.train.device)
    before = baseline.measure(model, source, data, device)  # parameters' requires_grad does not matter here
    report = apply_bn_mode(model, data, recipe.finetune.bn, device=device)

    def after_bn() -> dict[str, Any]:
        return {k: v for k, v in baseline.measure(model, source, data, device).items() if k != "count"}
    if report.applied == "adapt" and before["val_accuracy"] is not None:
        before["after_bn"] = after_bn()
    elif report.applied == "none" and before["val_accuracy"] is not None:  # nothing frozen: measured, then undone
        with adapted_for_measuring(model, data, device=device) as adapted:
            if adapted:
                before["after_bn"] = after_bn()
    notes.extend([report.note(), baseline.note(before, len(data.val))])
    warning = baseline.transfer_warning(before, len(source.classes or ()), recipe.finetune.strategy != "head")
    if warning:
        notes.append(warning)
    before["near_chance"] = warning is not None
    if source.state is not None and kept:  # growing a known class set (a wholly new head stays as it is)
        rows = init_new_rows(model, source.head, data, kept, fresh, recipe.finetune.new_rows, device)
        if rows:
            notes.append(rows)
    return {"baseline": before, "bn": report.to_dict()}


def _raise_backbone_rate(result: StrategyResult, plan: FinetunePlan) -> str | None:
    """A source at chance on the new images has no features worth protecting: its backbone trains at
    ``chance_backbone_lr_mult`` instead of ``backbone_lr_mult`` (where that is higher). Measured
    (bench/transfer.py, inverted digits, 3 seeds, 1 / 5 / 20 shots): full at 0.1× 0.361 / 0.677 / 0.747,
    at 1× 0.461 / 0.791 / 0.789; scratch 0.374 / 0.725 / 0.856. The other shifts there never score at chance,
    so they keep 0.1×. Per-layer rate overrides are kept."""
    old, new = plan.backbone_lr_mult, plan.chance_backbone_lr_mult
    if not result.backbone_rated or old <= 0 or new <= old:
        return None
    for pid in result.backbone_rated:
        result.multipliers[pid] *= new / old
    return (f"the backbone trains at {new:g}× the learning rate instead of {old:g}×, as the source scores about "
            f"chance on these images (--chance-backbone-lr-mult; 0 keeps {old:g}×)")


def _raise_lora_alpha(model: nn.Module, result: StrategyResult, plan: FinetunePlan) -> str | None:
    """A source at chance needs a larger change than a rank-r adapter at the default scale makes in a
    short run: the adapters are scaled by ``chance_lora_alpha / rank`` instead (where that is higher).
    Measured (bench/transfer.py, inverted digits, 3 seeds, 1 / 5 / 20 shots): alpha 8 0.395 / 0.681 /
    0.705, 16 0.405 / 0.703 / 0.760, 32 0.418 / 0.711 / 0.786; full 0.461 / 0.791 / 0.789. B starts at
    zero, so the raise changes no output before training; the checkpoint's ``lora`` entry and the
    recipe record the alpha used, so merging, exporting and resuming use the same scale."""
    from ftstudio.core.architecture.lora import set_alpha

    old, new = plan.lora_alpha, plan.chance_lora_alpha
    if result.lora is None or new <= old:
        return None
    set_alpha(model, new)
    result.lora["alpha"] = new
    return (f"the LoRA adapters are scaled by alpha {new:g} instead of {old:g}, as the source scores about chance "
            f"on these images (--chance-lora-alpha; 0 keeps {old:g})")


class GradualUnfreeze(Callback):
    """After ``after`` epochs, the deferred parameters start training (the optimizer is rebuilt)."""

    order = 5  # before the checkpoint callback, so the checkpoint holds the rebuilt optimizer

    def __init__(self, params: list[nn.Parameter], after: int) -> None:
        super().__init__()
        self.params, self.after, self.unfrozen = params, after, False
        self.names: list[str] = []

    def setup(self, trainer) -> None:
        super().setup(trainer)
        names = {id(p): n for n, p in trainer.module.named_parameters()}
        self.names = [names[id(p)] for p in self.params if id(p) in names]

    def _apply(self) -> None:
        # by name once training: fsdp replaces the module's parameters with sharded ones after this was made
        live = dict(self.trainer.module.named_parameters()) if self.trainer is not None and self.names else {}
        for p in [live[n] for n in self.names] if live else self.params:
            p.requires_grad_(True)
        self.unfrozen = True

    def on_epoch_finished(self, event: EpochFinished) -> None:
        if not self.unfrozen and event.epoch >= self.after:
            self._apply()
            assert self.trainer is not None
            self.trainer.rebuild_optimizer()

    def state_dict(self) -> dict[str, Any]:
        return {"unfrozen": self.unfrozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # runs before the optimizer is built
        if state.get("unfrozen"):
            self._apply()


# --------------------------------------------------------------------------------------------- head
def _shape_text(shape) -> str:
    c, h, w = shape
    return f"{c}-channel {h}×{w}"


def build_with_new_head(source: Source, input_shape: tuple[int, ...], classes: tuple[str, ...],
                        keep_known: bool = True) -> tuple[nn.Module, ModelSpec, list[str], list[str]]:
    """The source network with a head for ``classes``: (model, concrete spec, kept classes, fresh classes)."""
    from ftstudio.core.architecture import build_model

    layers = list(source.architecture.layers)
    layers[source.head] = layers[source.head].with_params(out_features=CLASSES)
    spec = source.architecture.replace(layers=tuple(layers))
    if source.state is not None:  # weights come from the checkpoint, not from a backbone's file
        spec = strip_pretrained(spec)
    model, concrete = build_model(spec, input_shape, len(classes))
    known = {c: i for i, c in enumerate(source.classes)} if keep_known else {}
    kept = [c for c in classes if c in known]
    if source.state is None:
        return model, concrete, [], list(classes)
    prefix = f"{source.head}."
    body = {k: v for k, v in source.state.items() if not k.startswith(prefix)}
    try:
        missing, unexpected = model.load_state_dict(body, strict=False)
    except RuntimeError as exc:
        raise InputError(f"{source.lineage.get('checkpoint')}: weights do not match the architecture "
                         f"({str(exc).splitlines()[0]})") from None
    bad = [k for k in missing if not k.startswith(prefix)] + list(unexpected)
    if bad:
        raise InputError(f"{source.lineage.get('checkpoint')}: weights do not match the architecture "
                         f"(missing or unexpected: {', '.join(bad[:5])})")
    head = model[source.head]
    with torch.no_grad():
        for i, name in enumerate(classes):
            if name in kept:
                head.weight[i] = source.state[f"{prefix}weight"][known[name]]
                if head.bias is not None and f"{prefix}bias" in source.state:
                    head.bias[i] = source.state[f"{prefix}bias"][known[name]]
    return model, concrete, kept, [c for c in classes if c not in kept]


def _head_note(source: Source, arch: ModelSpec, classes: tuple[str, ...], kept: list[str], fresh: list[str]) -> str:
    features = arch.layers[source.head].params["in_features"]
    where = f"head (layer {source.head}, {features} features → {len(classes)} classes)"
    if not kept:
        return f"{where}: new, trained from scratch"
    if not fresh:
        return f"{where}: kept — the source already knows all {len(kept)} classes"
    return (f"{where}: kept the rows of {len(kept)} known class(es); {len(fresh)} new class(es) start fresh: "
            f"{', '.join(fresh[:8])}{' …' if len(fresh) > 8 else ''}")


def _normalisation(data: DataBundle, source: Source) -> tuple[DataBundle, list[str]]:
    """Feed the network inputs scaled the way it learned them: the source's mean/std when they fit."""
    if source.mean is None or len(source.mean) != data.input_shape[0]:
        return data, [f"normalising with the new data's statistics (mean {_fmt(data.mean)}, std {_fmt(data.std)})"]
    data = dataclasses.replace(data, mean=tuple(source.mean), std=tuple(source.std))
    return data, [f"normalising with the source's statistics (mean {_fmt(data.mean)}, std {_fmt(data.std)})"]


def _input_note(recipe: Recipe, source: Source, data: DataBundle, own_mean: tuple[float, ...]) -> str:
    """What was done to the images for a pretrained backbone (the summary keeps it)."""
    c, h, w = data.input_shape
    native = f"{source.input_shape[1]}×{source.input_shape[2]}"
    if recipe.data.image_size:
        text = f"input {c}×{h}×{w} from --image-size (the backbone's native size is {native})"
    else:
        text = f"input resized to the backbone's native size {c}×{h}×{w}"
    if c == 3 and len(set(own_mean)) == 1:  # three identical channels: grayscale data, repeated
        text += "; grayscale images repeated to 3 channels"
    return text


def _fmt(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def _enough_steps(recipe: Recipe, train_size: int) -> tuple[Recipe, str]:
    """Raise the epochs so that at least ``min_steps`` optimizer steps happen (tiny data: 1 step/epoch)."""
    plan, cfg = recipe.finetune, recipe.train
    per_epoch = max(1, math.ceil(train_size / cfg.batch_size))
    if not plan.min_steps or cfg.epochs * per_epoch >= plan.min_steps:
        return recipe, ""
    epochs = min(MAX_EPOCHS, math.ceil(plan.min_steps / per_epoch))
    note = (f"{train_size} training images make {per_epoch} optimizer step(s) per epoch: epochs raised from "
            f"{cfg.epochs} to {epochs} so that at least {plan.min_steps} steps happen (min_steps 0 keeps them)")
    return recipe.replace(train=dataclasses.replace(cfg, epochs=epochs)), note


# ----------------------------------------------------------------------------------------- strategy
@dataclasses.dataclass
class StrategyResult:
    multipliers: dict[int, float]
    deferred: list[nn.Parameter]
    lora: dict[str, Any] | None
    note: str
    backbone_rated: set[int] = dataclasses.field(default_factory=set)  # ids whose rate is backbone_lr_mult's


def apply_strategy(model: nn.Module, spec: ModelSpec, plan: FinetunePlan, head_index: int) -> StrategyResult:
    """Set ``requires_grad`` and learning-rate multipliers for ``plan.strategy``, then per-layer overrides."""
    from ftstudio.core.architecture.lora import add_lora, adapter_parameters

    head = model[head_index]
    lora = None
    if plan.strategy == "lora":
        adapted = add_lora(model, plan.lora_rank, plan.lora_alpha, skip=(head,))
        if not adapted:
            raise InputError(messages.NO_LORA_TARGET)
        lora = {"rank": plan.lora_rank, "alpha": plan.lora_alpha, "layers": adapted}
    head_ids = {id(p) for p in head.parameters()}
    adapter_ids = {id(p) for p in adapter_parameters(model)}
    if plan.strategy == "lora":  # BatchNorm layers train alongside the adapters (see lora_norm_parameters)
        adapter_ids |= {id(p) for p in lora_norm_parameters(model)}
    spec_mults = layer_multipliers(model, spec)
    multipliers: dict[int, float] = {}
    backbone: dict[int, nn.Parameter] = {}  # what trains besides the head (deferred by unfreeze_after)
    rated: set[int] = set()
    for p in model.parameters():
        pid = id(p)
        mult = spec_mults.get(pid, 1.0)
        if pid in head_ids:
            p.requires_grad_(True)
            multipliers[pid] = mult * (plan.head_lr_mult if plan.strategy != "none" else 1.0)
            continue
        if plan.strategy == "lora":
            p.requires_grad_(pid in adapter_ids)
        elif plan.strategy in ("head", "full"):
            p.requires_grad_(plan.strategy == "full")
            mult *= plan.backbone_lr_mult
            if plan.strategy == "full":
                rated.add(pid)
        multipliers[pid] = mult
        if p.requires_grad or plan.strategy == "head":
            backbone[pid] = p
    _apply_overrides(model, spec, plan, multipliers, backbone, rated)
    deferred = list(backbone.values()) if plan.unfreeze_after else []
    for p in deferred:
        p.requires_grad_(False)
    return StrategyResult(multipliers, deferred, lora, _strategy_note(model, plan, lora, deferred), rated)


def lora_norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The scale and shift of every BatchNorm layer: with LoRA they train too (a few hundred numbers).

    Measured (bench/transfer.py, 3 seeds, 100 steps): with the layers frozen and their statistics
    re-estimated (AdaBN), LoRA on inverted-contrast digits reached 0.30 / 0.53 / 0.44 at 1 / 5 / 20
    shots against 0.36 / 0.68 / 0.75 for ``full``; training them as well — their statistics then
    follow the new batches, and a scale can change sign, which inverted contrast needs and a rank-4
    adapter on a one-channel convolution cannot express — 0.40 / 0.68 / 0.71; on the other four
    shifts better or level, except 0.01–0.03 lower at 20 shots on noise and blur. A per-layer
    ``freeze`` override still freezes one (overrides come after the strategy)."""
    return [p for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()]


def _apply_overrides(model, spec, plan, multipliers, backbone, rated) -> None:
    paths = {path: path for path, _ in iter_layers(spec.layers)}
    paths.update({layer.name: path for path, layer in iter_layers(spec.layers) if layer.name})
    paths.update({layer.id: path for path, layer in iter_layers(spec.layers) if layer.id})  # graph node ids
    for override in plan.layers:
        path = paths.get(override.layer.strip())
        if path is None:
            known = ", ".join(f"{p} {layer.type}" + (f" ({layer.name})" if layer.name else "")
                              for p, layer in iter_layers(spec.layers))
            raise InputError(messages.UNKNOWN_LAYER.format(layer=override.layer, known=known))
        for p in module_at(model, path).parameters():
            if override.freeze is not None:
                p.requires_grad_(not override.freeze)
                backbone.pop(id(p), None)  # an explicit choice is not deferred
            if override.lr_mult is not None:
                multipliers[id(p)] = override.lr_mult
                rated.discard(id(p))


def _strategy_note(model: nn.Module, plan: FinetunePlan, lora: dict | None, deferred: list) -> str:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    what = {"head": "only the new head trains",
            "full": f"everything trains, the backbone at {plan.backbone_lr_mult:g}× and the head at "
                    f"{plan.head_lr_mult:g}× the learning rate",
            "lora": f"LoRA adapters (rank {plan.lora_rank}, alpha {plan.lora_alpha:g}) on "
                    f"{len(lora['layers']) if lora else 0} layer(s), the BatchNorm layers and the head train; "
                    f"base weights frozen",
            "none": "the model trains as it is"}[plan.strategy]
    text = (f"strategy {plan.strategy}: {what} — {trainable:,} of {total:,} parameters trainable "
            f"({100 * trainable / max(total, 1):.1f}%)")
    if deferred:
        text += (f"; {sum(p.numel() for p in deferred):,} more join after epoch {plan.unfreeze_after} "
                 f"(gradual unfreezing)")
    return text
