"""A run's held-out report plus the images it gets wrong — what the Runs page and wizard galleries show.

The numbers are `pipeline.evaluate_run`'s (the function behind `ftstudio evaluate`); the mistakes
are the same split's misclassified images, most confident first (a confident mistake is the one
worth a look: a wrong label, or a shortcut the model learned). Each carries its pixels at the
model's input size, and its file path when the data streams from disk, so the Try page can open it
and a dataset editor can relabel it (`Mistake.path`, `Mistake.true`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_MISTAKES = 60


@dataclass(frozen=True)
class Mistake:
    index: int  # position in the held-out split
    true: str
    predicted: str
    confidence: float  # the model's probability for ``predicted``
    image: np.ndarray  # uint8 [C, H, W] at the model's input size
    path: str | None = None  # the file, when the split keeps paths (folders too large for memory)


@dataclass(frozen=True)
class Assessment:
    run: Path
    report: dict[str, Any]  # evaluate_run's dict: accuracy, per_class, macro, weighted, confusion…
    mistakes: tuple[Mistake, ...]
    total_mistakes: int


def assess(run_dir: str | Path, which: str = "best", split: str = "auto", limit: int = MAX_MISTAKES,
           cancel=None) -> Assessment:
    """Evaluate ``run_dir`` and collect up to ``limit`` misclassified images, most confident first."""
    import torch

    from ftstudio.core.engine import evaluate_run, held_out
    from ftstudio.core.inference.predict import softmax
    from ftstudio.core.training.loader import normalize

    loaded = held_out(run_dir, which=which, split=split)
    report = evaluate_run(run_dir, which=which, split=split, loaded=loaded)
    model, ckpt, _spec, _bundle, part = loaded
    model.cpu()
    classes = tuple(str(c) for c in ckpt["classes"])
    pre = ckpt["preprocess"]
    mean = torch.tensor(pre["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float32).view(1, -1, 1, 1)
    y = part.y.numpy()
    wrong: list[tuple[float, int, int]] = []
    for start in range(0, len(part), 256):
        if cancel is not None and cancel.is_set():
            break
        idx = list(range(start, min(start + 256, len(part))))
        x = torch.from_numpy(np.ascontiguousarray(part.images(idx)))
        with torch.no_grad():
            probs = softmax(model(normalize(x, mean, std)).numpy())
        pred = probs.argmax(1)
        for j in np.flatnonzero(pred != y[idx]):
            wrong.append((float(probs[j, pred[j]]), idx[j], int(pred[j])))
    wrong.sort(key=lambda t: -t[0])
    keep = wrong[:limit]
    images = part.images([i for _, i, _ in keep]) if keep else []
    paths = getattr(part, "paths", None)
    mistakes = tuple(Mistake(i, classes[int(y[i])], classes[p], conf, np.ascontiguousarray(img),
                             paths[i] if paths is not None else None)
                     for (conf, i, p), img in zip(keep, images))
    return Assessment(Path(run_dir), report, mistakes, len(wrong))
