"""The Try page's engine, Qt-free: images from files, a folder, the clipboard or a mistakes gallery,
predicted in the background and returned as plain arrays the page turns into pictures.

An input is a file path or encoded image bytes (a pasted picture, a gallery thumbnail); both are
decoded by the same code as training data. Explanations are computed on demand, one image at a
time, because occlusion through an exported model costs ~100 forward passes per image.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ftstudio.core.inference.predict import Prediction, Predictor, folder_truth, top_prediction

THUMB_SIDE = 96
MAX_SHOWN = 2000  # a folder bigger than this is predicted in full, but only this many thumbnails are kept
UNCERTAIN_BELOW = 0.6  # "uncertain": the top class has less than this probability


@dataclass(frozen=True)
class TryInput:
    name: str  # what the grid shows
    path: str | None = None
    data: bytes | None = None  # an encoded image (PNG…) when there is no file
    truth: str | None = None  # the right answer when known (a class subfolder, a gallery's true label)

    def open(self):
        """Something `PIL.Image.open` reads: the path, or a fresh stream over the bytes."""
        return self.path if self.path is not None else io.BytesIO(self.data or b"")


@dataclass(frozen=True)
class Tried:
    input: TryInput
    prediction: Prediction
    thumbnail: np.ndarray  # uint8 [h, w, 3], longest side THUMB_SIDE

    @property
    def truth(self) -> str | None:
        return self.input.truth

    @property
    def wrong(self) -> bool:
        return self.truth is not None and self.truth != self.prediction.label

    @property
    def uncertain(self) -> bool:
        return self.prediction.probability < UNCERTAIN_BELOW


@dataclass(frozen=True)
class TryBatch:
    results: tuple[Tried, ...]
    skipped: tuple[tuple[str, str], ...]
    total: int  # images predicted (results may hold fewer: MAX_SHOWN)
    has_truth: bool  # subfolder names are the model's classes: the "wrong" filter applies


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 ``[C, H, W]`` or ``[H, W, (C)]`` → PNG bytes (for gallery images and pasted pictures)."""
    from PIL import Image

    arr = np.asarray(image, np.uint8)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def inputs_from_paths(paths: list[str | Path], classes: tuple[str, ...],
                      cancel: threading.Event | None = None) -> tuple[list[TryInput], list[tuple[str, str]]]:
    """Files and folders (recursive) as inputs; a file's truth is its parent folder when that names a class."""
    from ftstudio.core.inference.predict import image_paths

    files, missing = image_paths(paths, cancel.is_set if cancel is not None else None)
    return [TryInput(p.name, str(p), truth=folder_truth(p, classes)) for p in files], missing


def thumbnail(source, side: int = THUMB_SIDE) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(source) as img:
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
        img.thumbnail((side, side), Image.Resampling.BILINEAR)
        if max(img.size) < side:  # tiny inputs (8×8 digits) are upscaled to be seen
            scale = side / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.NEAREST)
        return np.array(img, dtype=np.uint8)


def try_inputs(predictor: Predictor, inputs: list[TryInput], top_k: int = 5, batch_size: int = 64,
               cancel: threading.Event | None = None, report: Callable[[str], None] | None = None) -> TryBatch:
    """Predict every input (unreadable ones are skipped with their reason)."""
    from ftstudio.core.datasets.decode import DecodeError, decode

    c, h, w = predictor.input_shape
    k = max(1, min(top_k, len(predictor.classes)))
    results: list[Tried] = []
    skipped: list[tuple[str, str]] = []
    total = 0
    for start in range(0, len(inputs), batch_size):
        if cancel is not None and cancel.is_set():
            break
        chunk, arrays = [], []
        for item in inputs[start:start + batch_size]:
            try:
                arrays.append(decode(item.open(), (h, w), c))
                chunk.append(item)
            except DecodeError as exc:
                skipped.append((item.path or item.name, str(exc)))
        if arrays:
            probs = predictor.probabilities(np.stack(arrays))
            for item, row in zip(chunk, probs):
                total += 1
                if item.truth is None and item.path is not None:  # opened before the model had loaded
                    item = replace(item, truth=folder_truth(item.path, predictor.classes))
                if len(results) < MAX_SHOWN:
                    thumb = thumbnail(item.open())
                    top = top_prediction(item.path or item.name, row, predictor.classes, k)
                    results.append(Tried(item, top, thumb))
        if report is not None:
            report(f"predicted {min(start + batch_size, len(inputs))} of {len(inputs)} image(s)")
    return TryBatch(tuple(results), tuple(skipped), total, any(r.truth is not None for r in results))


def explain_one(predictor: Predictor, item: Tried) -> tuple[np.ndarray, str]:
    """(overlay picture uint8 [H, W, 3], method) for one tried image's predicted class."""
    from ftstudio.core.datasets.decode import decode
    from ftstudio.core.inference.explain import explain, overlay

    c, h, w = predictor.input_shape
    image = decode(item.input.open(), (h, w), c)
    heat, method = explain(predictor, image[None], [item.prediction.index])
    return overlay(item.input.open(), heat[0]), method


def picture(item: Tried) -> np.ndarray:
    """The image itself at the overlay's size (so toggling the explanation does not move it)."""
    from ftstudio.core.inference.explain import overlay

    return overlay(item.input.open(), np.zeros((2, 2), np.float32))
