"""Input polarity: whether the new images are the negative of the ones the source learned from.

Light strokes on a dark background (MNIST) against dark ink on white paper (a phone photo of
handwritten digits), an X-ray film against its print: the same shapes with every pixel v → 1 − v.
A network's first layer is not symmetric under that map — its responses change sign — so a frozen
backbone's features no longer tell the classes apart, and no normalisation fixes it (AdaBN
re-centres, it cannot flip a sign). Measured (bench/transfer.py, inverted digits, 5 shots, before
this check): the source 0.10 as is and 0.12 with AdaBN, head-only 0.31, LoRA 0.71, full 0.79.

The inversion is one fixed affine map of the input, so it folds into the normalisation the model
already carries: ``(1 − v − m) / s = (v − (1 − m)) / (−s)`` — mean ``1 − m`` and a *negative* std.
Every consumer of the checkpoint (training, predict, Try, the export's signature.json and any
runtime that follows the model card's ``(x − mean) / std``) then applies it with no new field.

Decided by measurement, not assumed (the plan's ``polarity`` field): ``auto`` scores the source,
its own head over the classes it knows, on the new *training* images as they are and inverted —
each with its BatchNorm statistics re-estimated on that candidate, so that only the sign differs —
and inverts only where the inverted images give clearly lower losses (a sign test on the same
images, `clearly_lower`), a higher accuracy, and an accuracy clearly above guessing
(`above_chance`). Where the source knows none of the new classes, the nearest class mean on its
features scores them instead (`nearest_mean_scores`). ``keep`` never inverts, ``invert`` always
does. Where nothing can be scored (a pretrained backbone without a head of its own, fewer than
``MIN_IMAGES`` images, no class with two) ``auto`` keeps the images as they are.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ftstudio.core.datasets import DataBundle
    from ftstudio.core.finetune.sources import Source

P_VALUE = 0.01  # the inverted images must score better beyond this chance of a fluke (`clearly_lower`)
MIN_IMAGES = 10  # fewer known-class training images than this: too few to judge
PROBE_IMAGES = 2_000  # the most training images the check looks at (`_probe`)
COSINE_SCALE = 10.0  # nearest-class-mean logits: cosine similarity × this (`nearest_mean_scores`)


@dataclass(frozen=True)
class PolarityReport:
    """What the check measured and did: accuracies of the source on the training images both ways."""

    requested: str
    applied: str  # "keep" or "invert"
    as_is: float | None  # the source's accuracy on the known-class training images as they are
    inverted: float | None  # ... and inverted
    images: int  # how many images were scored (0: not measured)
    measure: str = "head"  # "head": the source's own head; "features": nearest class mean on its features

    def note(self) -> str | None:
        """One line for the console and the run's notes; None where nothing was measured or changed."""
        who = "the source" if self.measure == "head" else "the nearest class mean on the source's features"
        scores = "" if self.as_is is None or self.inverted is None else (
            f"{who} scores {self.inverted:.3f} on {self.images} training images inverted against "
            f"{self.as_is:.3f} as they are")
        what = ("every image is inverted before the network, in training, prediction and export (folded into "
                "the normalisation as a negative std")
        if self.applied == "invert" and self.requested == "auto":
            return (f"input polarity: the new images are the negative of the source's (light and dark swapped): "
                    f"{scores}, so {what}; --polarity keep leaves them)")
        if self.applied == "invert":
            return f"input polarity: inverted as asked (--polarity invert): {what})" + (f"; {scores}" if scores else "")
        if scores:
            return f"input polarity: kept ({scores})"
        return None

    def to_dict(self) -> dict[str, Any]:
        def r(v):
            return None if v is None else round(v, 4)
        return {"mode": self.requested, "applied": self.applied, "as_is": r(self.as_is),
                "inverted": r(self.inverted), "images": self.images,
                "measure": self.measure if self.images else None}


def inverted(data: DataBundle, source_stats: bool) -> DataBundle:
    """``data`` whose normalisation first inverts every pixel (v → 1 − v).

    With the source's statistics (what the source was trained on) the inverted image is normalised by
    them: mean 1 − m, std −s. With the new data's own statistics the inverted images' mean is 1 − m
    itself, so the normalised image is just negated: mean m, std −s."""
    mean = tuple(data.mean) if not source_stats else tuple(1.0 - m for m in data.mean)
    return dataclasses.replace(data, mean=mean, std=tuple(-s for s in data.std))


def choose(model: nn.Sequential, source: Source, data: DataBundle, mode: str, *, source_stats: bool,
           device: str | torch.device = "cpu") -> tuple[DataBundle, PolarityReport]:
    """The data the fine-tune trains on (inverted or not, by ``mode``) and what was measured."""
    if mode == "keep":
        return data, PolarityReport(mode, "keep", None, None, 0)
    candidate = inverted(data, source_stats)
    probe = _probe(data)
    as_is = _scored(model, source, probe, device)
    flipped = _scored(model, source, inverted(probe, source_stats), device) if as_is is not None else None
    if as_is is None or flipped is None:  # nothing to score: "invert" as asked, "auto" keeps
        applied = "invert" if mode == "invert" else "keep"
        return (candidate if applied == "invert" else data), PolarityReport(mode, applied, None, None, 0)
    a, b = float(as_is[1].double().mean()), float(flipped[1].double().mean())
    count, measure = len(as_is[1]), as_is[3]
    if mode == "invert":
        return candidate, PolarityReport(mode, "invert", a, b, count, measure)
    clear = b > a and above_chance(flipped[1], flipped[2]) and clearly_lower(flipped[0], as_is[0])
    return (candidate if clear else data), PolarityReport(mode, "invert" if clear else "keep", a, b, count, measure)


def above_chance(hits: torch.Tensor, labels: torch.Tensor) -> bool:
    """Whether this many hits are beyond what guessing gives: a one-sided binomial test against the best
    constant answer (the most frequent class's share). An untrained network's lucky 0.16 on 50 images of
    10 classes is not (p = 0.12); 0.36 is (p < 10⁻⁶)."""
    n = len(hits)
    if n < MIN_IMAGES:
        return False
    share = float(torch.bincount(labels).max()) / n
    return _tail(n, int(hits.sum()), share) < P_VALUE


def clearly_lower(losses: torch.Tensor, other: torch.Tensor) -> bool:
    """Whether ``losses`` are lower than ``other`` on the same images beyond chance: a one-sided sign test.

    Each image votes for the polarity under which the source gives its true class the lower loss;
    were polarity irrelevant, each vote would go either way with even odds, so P(at least this many
    votes) is a binomial tail. Below ``P_VALUE`` (with at least ``MIN_IMAGES`` images) the preference
    is real: 10 images at one shot per class decide only when all 10 agree (p = 0.001; 9 of 10:
    0.011), 50 when 35 do (0.003). Losses, not hits: every image votes, not only those the two
    disagree on (bench/transfer.py's inverted, rotated, blurred, noisy digits at 5 shots: 0.48 against
    0.12 accuracy and 41 of 50 votes, inverted; 0.36 against 0.18 and 33 of 50, p = 0.016, kept).
    A network that has learned nothing can still prefer one polarity's losses systematically (an
    untrained cnn: 0.16 against 0.04), hence also `above_chance`."""
    n = len(losses)
    if n < MIN_IMAGES:
        return False
    wins = int((losses < other).sum())
    return wins * 2 > n and _tail(n, wins, 0.5) < P_VALUE


def _tail(n: int, k: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed in log space (n up to thousands)."""
    if k <= 0:
        return 1.0
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
            + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def _probe(data: DataBundle) -> DataBundle:
    """At most ``PROBE_IMAGES`` training images (a fixed random draw): two re-estimations of BatchNorm and two
    scorings cost four passes over them before training starts, and the test decides long before that."""
    if len(data.train) <= PROBE_IMAGES or not hasattr(data.train, "subset"):
        return data
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:PROBE_IMAGES]
    return dataclasses.replace(data, train=data.train.subset(pick.sort().values.numpy()))


def _scored(model: nn.Sequential, source: Source, data: DataBundle, device):
    """``(losses, hits, labels, measure)`` per training image, BatchNorm statistics re-estimated on them first
    (so that the two polarities differ only in sign): by the source's own head on the classes it knows, or —
    where it knows none of them, as when a trained source is given a wholly new class set — by the nearest
    class mean on its features (`nearest_mean_scores`). A pretrained backbone without a head of its own is
    not checked (its features over a few hundred images at 224 px would cost minutes before training)."""
    from ftstudio.core.finetune import baseline
    from ftstudio.core.finetune.normalisation import adapted_for_measuring

    with adapted_for_measuring(model, data, device=device):
        scored = baseline.per_image(model, source, data, device, split="train")
        if scored is not None:
            return (*scored, "head")
        if source.state is None:
            return None
        scored = nearest_mean_scores(model[:source.head], data, device)
        return None if scored is None else (*scored, "features")


@torch.no_grad()
def nearest_mean_scores(body: nn.Module, data: DataBundle, device,
                        batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Loss, hit and label of each training image by its nearest class mean on ``body``'s features: the logit
    of a class is the mean cosine similarity to that class's images (its own class without the image
    itself: leave-one-out) × ``COSINE_SCALE`` — the prototype classifier an imprinted head is
    (finetune.new_rows). Images of classes with one image have nothing to compare with and are left
    out; None when fewer than two classes have two images."""
    from ftstudio.core.training.loader import DeviceBatches

    dev = torch.device(device)
    body.to(dev)
    was_training = body.training
    body.eval()
    feats, labels = [], []
    try:
        for xb, yb in DeviceBatches(data.train, data.mean, data.std, dev, batch_size).epoch():
            feats.append(torch.nn.functional.normalize(body(xb).flatten(1).float(), dim=1).cpu())
            labels.append(yb.cpu())
    finally:
        body.train(was_training)
        body.to("cpu")
    if not feats:
        return None
    f, y = torch.cat(feats), torch.cat(labels)
    counts = torch.bincount(y, minlength=int(y.max()) + 1).to(f.dtype)
    if int((counts >= 2).sum()) < 2:
        return None
    sums = torch.zeros(len(counts), f.shape[1], dtype=f.dtype).index_add_(0, y, f)
    sims = f @ sums.t()  # [image, class]: similarity to each class's sum of features
    own = sims.gather(1, y[:, None]).squeeze(1)
    sims /= counts.clamp_min(1)
    # leave-one-out: the image's own class without the image itself (its self-similarity, 1 unless its
    # features are all zero)
    sims.scatter_(1, y[:, None], ((own - (f * f).sum(1)) / (counts[y] - 1).clamp_min(1))[:, None])
    keep = counts[y] >= 2
    sims[:, counts < 2] = -1.0  # a one-image class is no candidate either: its mean would be that image
    logits, y = sims[keep] * COSINE_SCALE, y[keep]
    losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    return losses, logits.argmax(1) == y, y
