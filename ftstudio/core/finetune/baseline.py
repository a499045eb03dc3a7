"""The baseline of a fine-tune: the source model, as it is, on the new validation images — before any training.

It answers "what did fine-tuning buy?": the run's accuracy minus this. Only images of classes the
source already knows (matched by name) can be scored, with the source's own head over all of its
classes; where there are none (new classes only, a headless torchvision backbone, no validation
split) the numbers are ``None``. ``after_bn`` is the same measurement once frozen BatchNorm layers
were re-estimated on the new data (finetune.normalisation), so the effect of AdaBN alone is visible too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ftstudio.core.datasets import DataBundle
    from ftstudio.core.finetune.sources import Source

MAX_IMAGES = 5_000  # the baseline is a measurement, not a second validation run: a capped sample


def empty() -> dict[str, Any]:
    return {"val_accuracy": None, "val_loss": None, "count": 0}


@torch.no_grad()
def per_image(model: nn.Sequential, source: Source, data: DataBundle, device: str | torch.device = "cpu",
              batch_size: int = 256, split: str = "val") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Loss, hit (bool) and label (the source's class index) of the source's head on top of ``model``'s body
    for each image of ``split`` whose class the source knows, in a fixed order (at most ``MAX_IMAGES``);
    None where there are none. ``split="train"``: what a decision before training may look at (finetune.polarity)."""
    from ftstudio.core.training.loader import DeviceBatches

    weight = None if source.state is None else source.state.get(f"{source.head}.weight")
    part = getattr(data, split)
    if weight is None or not source.classes or not len(part):
        return None
    bias = source.state.get(f"{source.head}.bias")
    known = {c: i for i, c in enumerate(source.classes)}
    table = torch.tensor([known.get(c, -1) for c in data.classes], dtype=torch.int64)
    y = table[part.y]
    keep = torch.nonzero(y >= 0).flatten()[:MAX_IMAGES].numpy()
    if not len(keep) or not hasattr(part, "subset"):
        return None
    known_split = part.subset(keep).relabel(y[keep])
    dev = torch.device(device)
    body = model[:source.head].to(dev)
    was_training = body.training
    body.eval()
    w, b = weight.to(dev, torch.float32), None if bias is None else bias.to(dev, torch.float32)
    losses, hits, labels = [], [], []
    try:
        for xb, yb in DeviceBatches(known_split, data.mean, data.std, dev, batch_size).epoch():
            logits = F.linear(body(xb).flatten(1).float(), w, b)
            losses.append(F.cross_entropy(logits, yb, reduction="none").cpu())
            hits.append((logits.argmax(1) == yb).cpu())
            labels.append(yb.cpu())
    finally:
        body.train(was_training)
        model.to("cpu")
    return (torch.cat(losses), torch.cat(hits), torch.cat(labels)) if losses else None


def measure(model: nn.Sequential, source: Source, data: DataBundle, device: str | torch.device = "cpu",
            batch_size: int = 256, split: str = "val") -> dict[str, Any]:
    """``{"val_accuracy", "val_loss", "count"}`` of the source's head on top of ``model``'s body (`per_image`)."""
    scored = per_image(model, source, data, device, batch_size, split)
    if scored is None:
        return empty()
    losses, hits, _ = scored
    loss = float(losses.double().mean())
    return {"val_accuracy": float(hits.double().mean()), "val_loss": loss if math.isfinite(loss) else None,
            "count": len(hits)}


def note(baseline: dict[str, Any], total: int) -> str:
    """One line for the console and the run's notes."""
    if baseline.get("val_accuracy") is None:
        return "baseline: nothing to measure before training (the source knows none of the validation classes)"
    text = (f"baseline before training: the source scores {baseline['val_accuracy']:.3f} accuracy "
            f"(loss {baseline['val_loss']:.3f}) on {baseline['count']} of {total} validation images "
            "(those of classes it knows)")
    after = baseline.get("after_bn") or {}
    if after.get("val_accuracy") is not None:
        text += f"; {after['val_accuracy']:.3f} once BatchNorm statistics are adapted"
    return text


NEAR_CHANCE = 1.5  # best baseline below this many times chance: the source's features do not transfer


def near_chance(baseline: dict[str, Any], classes: int) -> bool:
    """Whether the source scores about chance on the new images even with BatchNorm adapted (its own
    head over its ``classes`` classes). bench/transfer.py, 10 digit classes: inverted contrast left
    inverted (``--polarity keep``) 0.12 after AdaBN (chance 0.10) — there head-only ends at 0.30 while
    full reaches 0.79 and LoRA 0.73 at 5 shots —; every other shift 0.68 or more."""
    scores = [b.get("val_accuracy") for b in (baseline, baseline.get("after_bn") or {})]
    scores = [s for s in scores if isinstance(s, (int, float))]
    return bool(scores) and classes > 1 and max(scores) < NEAR_CHANCE / classes


def transfer_warning(baseline: dict[str, Any], classes: int, backbone_trains: bool) -> str | None:
    """The note for a source that scores about chance (`near_chance`), or None."""
    if not near_chance(baseline, classes):
        return None
    best = max(s for s in (baseline.get("val_accuracy"), (baseline.get("after_bn") or {}).get("val_accuracy"))
               if isinstance(s, (int, float)))
    text = (f"warning: the source scores {best:.3f} on these images before training, about chance "
            f"({1 / classes:.3f}): its features barely tell these classes apart, so little of its "
            "pretraining transfers. ")
    if not backbone_trains:
        return text + ("A frozen backbone with a new head learns little from such features (measured on inverted "
                       "digits left inverted, 5 per class: head 0.30, full 0.79, lora 0.73). Try --strategy full or "
                       "lora, and compare with a model trained from scratch.")
    return text + ("The backbone has far to move: compare with a model trained from scratch (measured on inverted "
                   "digits left inverted, 20 per class: scratch 0.86, every fine-tune 0.79–0.84).")


def describe(summary: dict[str, Any]) -> str:
    """The baseline and the BatchNorm choice of a run's summary.json, for the Runs page and the wizard ("" if none)."""
    base = summary.get("baseline")
    if not isinstance(base, dict):
        return ""
    acc, loss = base.get("val_accuracy"), base.get("val_loss")
    if not isinstance(acc, (int, float)):
        text = "not measurable (the source knows none of these classes)"
    else:
        text = f"{acc:.1%} val acc" + (f", loss {loss:.3f}" if isinstance(loss, (int, float)) else "")
        after = (base.get("after_bn") or {}).get("val_accuracy")
        if isinstance(after, (int, float)):
            text += f"; {after:.1%} with BatchNorm adapted"
        if base.get("near_chance") is True:
            text += " (about chance: little of the source transfers"
            raised, alpha = summary.get("backbone_lr_mult"), summary.get("lora_alpha")
            if isinstance(raised, (int, float)):
                text += f"; the backbone trained at {raised:g}×"
            if isinstance(alpha, (int, float)):
                text += f"; LoRA alpha raised to {alpha:g}"
            text += ")"
    polarity = summary.get("polarity")
    if isinstance(polarity, dict) and polarity.get("applied") == "invert":
        text += " — inputs inverted (the negative of the source's images)"
    bn = summary.get("bn")
    if isinstance(bn, dict) and bn.get("applied") not in (None, "none"):
        shift = bn.get("shift")
        text += f" — BatchNorm: {bn['applied']}" + (f" (shift {shift:.2f} nats)" if isinstance(shift, (int, float))
                                                    else "")
    return text
