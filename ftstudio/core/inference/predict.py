"""Run a trained model on new, unlabelled images: the engine behind `ftstudio predict` and the Try page.

A *source* is a run folder, a checkpoint file, or an export folder. An export folder is predicted
through exactly what a user deploys — ``signature.json`` plus ``model.onnx`` (onnxruntime) or
``model.pt2`` (``torch.export.load``) — with no ftstudio model code, so a wrong export shows here
first. Images are decoded like training data (the signature's preprocessing: mode, bilinear resize,
``(x / 255 - mean) / std``) and streamed in batches; unreadable files are skipped and named.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftstudio.core import messages
from ftstudio.core.datasets.decode import IMAGE_SUFFIXES, DecodeError, decode
from ftstudio.core.errors import InputError

MAX_FILES = 1_000_000  # a folder walk stops here rather than eat the memory on a mistaken `/`
EXPORT_ORDER = ("onnx", "pt2", "onnx-int8")  # formats `predict` runs without ftstudio's model code, preferred first
Runner = Callable[[np.ndarray], np.ndarray]  # float32 [N, C, H, W] → logits [N, classes]


@dataclass
class Predictor:
    """A loaded model with what is needed to feed it: classes, input shape and normalisation."""

    source: Path
    kind: str  # "run", "checkpoint", or the export format that runs ("onnx", "onnx-int8", "pt2")
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]  # C, H, W
    mean: tuple[float, ...]
    std: tuple[float, ...]
    run: Runner
    module: Any = None  # the torch module when the source is a run or checkpoint (explanations use it)
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``[N, C, H, W]`` → normalised float32, as the training loader does it."""
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return (images.astype(np.float32) / np.float32(255.0) - mean) / std

    def decode(self, path: str | Path) -> np.ndarray:
        """One file as uint8 ``[C, H, W]`` at the model's input size (DecodeError if unreadable)."""
        c, h, w = self.input_shape
        return decode(path, (h, w), c)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``[N, classes]`` for uint8 ``[N, C, H, W]`` images; InputError when the
        model's scores do not match the classes its folder names (an edited signature.json)."""
        logits = np.asarray(self.run(self.preprocess(images)))
        if logits.ndim != 2 or logits.shape[1] != len(self.classes):
            scores = logits.shape[1] if logits.ndim == 2 else "×".join(map(str, logits.shape[1:])) or "?"
            raise InputError(messages.PREDICT_CLASSES_MISMATCH.format(path=self.source, scores=scores,
                                                                      classes=len(self.classes)))
        return softmax(logits)


@dataclass(frozen=True)
class Prediction:
    path: str
    label: str
    probability: float
    top: tuple[tuple[str, float], ...]  # (label, probability), best first; top[0] is the label
    index: int  # the predicted class's index in the model's classes

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "probability": self.probability,
                "top": [{"label": name, "probability": p} for name, p in self.top]}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------------- sources
def load_predictor(source: str | Path, checkpoint: str = "best") -> Predictor:
    """A Predictor for a run folder, checkpoint file or export folder (InputError naming the path)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(messages.PREDICT_SOURCE_MISSING.format(path=path))
    chosen = path.name if path.is_file() and path.suffix in (".onnx", ".pt2") else None  # this file, not the default
    if path.is_file() and (path.name == "signature.json" or chosen):
        path = path.parent
    if path.is_dir() and (path / "signature.json").is_file():
        return _from_export(path, chosen)
    return _from_checkpoint(path, checkpoint)


def _from_checkpoint(path: Path, which: str) -> Predictor:
    import torch

    from ftstudio.core.runs.folders import load_run_model

    model, ckpt = load_run_model(path, which)
    pre = ckpt["preprocess"]

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return Predictor(path, "run" if path.is_dir() else "checkpoint", tuple(str(c) for c in ckpt["classes"]),
                     tuple(int(v) for v in pre["input_shape"]), tuple(float(v) for v in pre["mean"]),
                     tuple(float(v) for v in pre["std"]), run, model, ckpt)


def read_signature(folder: Path) -> dict[str, Any]:
    """signature.json, every field the predictor uses checked (InputError names the field)."""
    from ftstudio.core.config.recipe import read_json

    where = folder / "signature.json"
    sig = read_json(where, "signature")

    def bad(name: str, why: str) -> InputError:
        return InputError(f"{where}: field {name!r} {why}; re-export the run with `ftstudio export`")

    if not isinstance(sig, dict):
        raise bad("(top level)", "must be a JSON object")
    classes = sig.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise bad("classes", "must be a list of at least two class names")
    shape = sig.get("input_shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(v, int) and 0 < v <= 4096 for v in shape)
            or shape[0] not in (1, 3)):
        raise bad("input_shape", "must be [channels (1 or 3), height, width]")
    pre = sig.get("preprocessing")
    if not isinstance(pre, dict):
        raise bad("preprocessing", "is missing")
    for key in ("mean", "std"):
        values = pre.get(key)
        if (not isinstance(values, list) or len(values) != shape[0]
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
                or (key == "std" and not all(v != 0 for v in values))):  # < 0: inverted images (polarity)
            raise bad(f"preprocessing.{key}",
                      f"must be {shape[0]} finite number(s)" + (", none 0" if key == "std" else ""))
    files = sig.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise bad("files", "must map format names to file names")
    return sig


def _from_export(folder: Path, chosen: str | None = None) -> Predictor:
    sig = read_signature(folder)
    files = sig["files"]
    order = [f for f in EXPORT_ORDER if files.get(f) == chosen] if chosen else EXPORT_ORDER
    if chosen and not order:
        raise InputError(f"{folder / chosen}: not listed in signature.json's files; re-export the run")
    for fmt in order:
        name = files.get(fmt)
        if name and Path(name).name == name and (folder / name).is_file():
            run = _export_runner(fmt, folder / name, tuple(sig["input_shape"]), len(sig["classes"]))
            pre = sig["preprocessing"]
            return Predictor(folder, fmt, tuple(sig["classes"]), tuple(sig["input_shape"]),
                             tuple(float(v) for v in pre["mean"]), tuple(float(v) for v in pre["std"]), run)
    raise InputError(f"{folder}: signature.json lists no model.onnx or model.pt2 that exists here; export with "
                     "`ftstudio export RUN --format onnx` (or pt2)")


def _export_runner(fmt: str, path: Path, input_shape: tuple[int, ...], classes: int) -> Runner:
    """The file's runtime as a function of a batch. Its fixed sizes are checked against the signature
    now, and anything else it refuses later is an InputError naming the file, not a crash."""
    from ftstudio.core.export.formats import first_line
    from ftstudio.core.training.checkpoint import check_model_file

    check_model_file(path, f"{fmt} model")  # a device or FIFO would be read forever
    try:
        if fmt in ("onnx", "onnx-int8"):
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            _check_sizes(path, session.get_inputs()[0].shape, session.get_outputs()[0].shape, input_shape, classes)

            def raw(x: np.ndarray) -> np.ndarray:
                return session.run(None, {name: x})[0]
        else:
            import torch

            module = torch.export.load(str(path)).module()

            def raw(x: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return module(torch.from_numpy(x)).numpy()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 — a runtime that cannot load the file: say which file
        raise InputError(f"{path}: cannot load this {fmt} model ({first_line(exc)})") from None

    def run(x: np.ndarray) -> np.ndarray:
        try:
            return raw(x)
        except Exception as exc:  # noqa: BLE001 — onnxruntime's InvalidArgument, torch's shape errors…
            raise InputError(messages.EXPORT_REFUSES_INPUT.format(path=path, shape="×".join(map(str, x.shape[1:])),
                                                                  detail=first_line(exc))) from None

    return run


def _check_sizes(path: Path, inputs: list, outputs: list, input_shape: tuple[int, ...], classes: int) -> None:
    """An ONNX model's fixed input and output sizes against signature.json (named dimensions pass)."""
    fixed_in = [(want, got) for want, got in zip(input_shape, inputs[1:]) if isinstance(got, int)]
    if any(want != got for want, got in fixed_in) or (outputs and isinstance(outputs[-1], int)
                                                       and outputs[-1] != classes):
        raise InputError(messages.EXPORT_SIGNATURE_MISMATCH.format(
            path=path, model_in="×".join(map(str, inputs[1:])), model_out=outputs[-1] if outputs else "?",
            sig_in="×".join(map(str, input_shape)), classes=classes))


# ------------------------------------------------------------------------------------ images
def image_paths(paths: Iterable[str | Path], cancel: Callable[[], bool] | None = None
                ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named or found (recursively, sorted) under ``paths``; missing paths as (path, reason).
    ``cancel``: asked at each folder (a walk of a mistaken ``/`` takes minutes); the walk stops with what it found."""
    found: list[Path] = []
    missing: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                if cancel is not None and cancel():
                    return found, missing
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / n for n in sorted(names)
                             if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith("."))
                if len(found) > MAX_FILES:
                    raise InputError(f"{path}: over {MAX_FILES:,} images; predict on a smaller folder")
        elif path.exists():  # a file, or a pipe or device that decoding then refuses by name
            found.append(path)
        else:
            missing.append((str(path), "not found"))
    return found, missing


@dataclass
class PredictResult:
    """Everything one call predicted, plus the files it skipped (path, reason)."""

    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def predict_batches(predictor: Predictor, files: list[Path], top_k: int = 3, batch_size: int = 64,
                    skipped: list[tuple[str, str]] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    cancel: Callable[[], bool] | None = None) -> Iterator[list[Prediction]]:
    """Predictions batch by batch (memory stays flat on big folders); unreadable files go to ``skipped``."""
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    k = max(1, min(int(top_k), len(predictor.classes)))
    done = 0
    for start in range(0, len(files), batch_size):
        if cancel is not None and cancel():
            return
        chunk, arrays = [], []
        for path in files[start:start + batch_size]:
            try:
                arrays.append(predictor.decode(path))
                chunk.append(path)
            except DecodeError as exc:
                if skipped is not None:
                    skipped.append((str(path), str(exc)))
        if arrays:
            probs = predictor.probabilities(np.stack(arrays))
            yield [top_prediction(str(p), row, predictor.classes, k) for p, row in zip(chunk, probs)]
        done = min(start + batch_size, len(files))
        if progress is not None:
            progress(done, len(files))


def top_prediction(path: str, probs: np.ndarray, classes: tuple[str, ...], k: int) -> Prediction:
    """The ``k`` most probable classes of one probability row, best first."""
    order = np.argsort(-probs, kind="stable")[:k]
    top = tuple((classes[i], float(probs[i])) for i in order)
    return Prediction(path, top[0][0], top[0][1], top, int(order[0]))


def predict(source: str | Path | Predictor, paths: Iterable[str | Path], top_k: int = 3, batch_size: int = 64,
            checkpoint: str = "best") -> PredictResult:
    """All predictions at once (for tests and small folders; the CLI streams with `predict_batches`)."""
    predictor = source if isinstance(source, Predictor) else load_predictor(source, checkpoint)
    files, missing = image_paths(paths)
    result = PredictResult(skipped=list(missing))
    for batch in predict_batches(predictor, files, top_k, batch_size, result.skipped):
        result.predictions.extend(batch)
    return result


def folder_truth(prediction_path: str | Path, classes: tuple[str, ...]) -> str | None:
    """The class an image's parent folder names, when that name is one of the model's classes."""
    parent = Path(prediction_path).parent.name
    return parent if parent in classes else None
