"""Evaluation: loss, accuracy, per-class accuracy and the confusion matrix, computed on the device
and read back once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ftstudio.core.training.loader import DeviceBatches


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    confusion: np.ndarray  # [true, predicted]
    predictions: np.ndarray  # predicted class per sample, in split order
    count: int

    def per_class(self, classes: tuple[str, ...]) -> dict[str, dict[str, float]]:
        return class_metrics(self.confusion, classes)


def class_metrics(confusion: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Precision, recall (= per-class accuracy), F1 and support per class, from a [true, predicted]
    confusion matrix; 0 where undefined (no image predicted or present), as scikit-learn reports it."""
    out = {}
    for i, name in enumerate(classes):
        total = int(confusion[i].sum())
        predicted = int(confusion[:, i].sum())
        hit = int(confusion[i, i])
        precision = hit / predicted if predicted else 0.0
        recall = hit / total if total else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"support": total, "accuracy": recall, "precision": precision, "recall": recall, "f1": f1}
    return out


def averages(per_class: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Macro (every class counts once) and weighted (by support) precision, recall and F1."""
    rows = list(per_class.values())
    total = sum(r["support"] for r in rows)
    out = {}
    for kind in ("macro", "weighted"):
        weights = [1.0 / len(rows) if kind == "macro" else (r["support"] / total if total else 0.0) for r in rows]
        out[kind] = {k: float(sum(w * r[k] for w, r in zip(weights, rows))) for k in ("precision", "recall", "f1")}
        out[kind]["support"] = total
    return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: DeviceBatches, num_classes: int, amp_dtype: torch.dtype | None = None,
             dist=None) -> Evaluation:
    """Evaluate ``model`` over every batch (eval mode restored to the previous mode afterwards).

    Under DDP (``dist``) each rank evaluates its shard and the sums are reduced across ranks."""
    was_training = model.training
    model.eval()
    device = batches.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    preds = []
    for xb, yb in batches.epoch():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(xb)
        loss_sum += torch.nn.functional.cross_entropy(out.float(), yb, reduction="sum").double()
        pred = out.argmax(1)
        confusion += torch.bincount(yb * num_classes + pred, minlength=num_classes * num_classes)
        preds.append(pred)
    model.train(was_training)
    if dist is not None:
        dist.all_reduce(loss_sum)
        dist.all_reduce(confusion)
    conf = confusion.view(num_classes, num_classes).cpu().numpy()
    count = int(conf.sum())
    predictions = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, dtype=np.int64)
    loss = float(loss_sum) / count if count else float("nan")
    accuracy = float(np.trace(conf)) / count if count else float("nan")
    return Evaluation(loss, accuracy, conf, predictions, count)
