"""The ``onnx-int8`` export: static int8 quantization with onnxruntime.quantization, calibrated on
training images, and the checks that go with it — accuracy before/after on held-out images and
single-image latency for every format.

An int8 model never reproduces float logits to 1e-4, so it is verified differently: it must load in
onnxruntime, keep a dynamic batch, and lose at most ``MAX_ACCURACY_DROP`` of held-out accuracy
against the float model (both measured on the same images, the number goes into the report).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CALIBRATION_IMAGES = 256
EVAL_IMAGES = 2000
MAX_ACCURACY_DROP = 0.02  # absolute (two points)
LATENCY_RUNS = 20


@dataclass(frozen=True)
class QuantData:  # built by `engine.quant_data` (the engine knows how to load a run's data)
    """Normalised float32 images: ``calibration`` from the training split, ``x``/``y`` held out."""

    calibration: np.ndarray
    x: np.ndarray
    y: np.ndarray


def write_onnx_int8(model, sample, path: Path, data: QuantData) -> None:
    """float ONNX → pre-processed → QDQ int8 (per-channel weights), calibrated on ``data.calibration``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ftstudio.core.export.formats import INPUT_NAME, quiet, write_onnx

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: data.calibration[i:i + 32]} for i in range(0, len(data.calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".int8-") as tmp:
        fp32, prepped, out = Path(tmp) / "fp32.onnx", Path(tmp) / "prepped.onnx", Path(tmp) / "int8.onnx"
        write_onnx(model, sample, fp32)
        with quiet():
            try:
                quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
                source = prepped
            except Exception:  # noqa: BLE001 — pre-processing is an optimisation; quantize the plain graph
                source = fp32
            quantize_static(str(source), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        os.replace(out, path)


def accuracy(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((run(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return hits / len(x) if len(x) else float("nan")


def latency_ms(run: Callable, sample) -> float:
    """Median wall time of one single-image forward pass (after warm-up), in milliseconds."""
    for _ in range(3):
        run(sample)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        run(sample)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
