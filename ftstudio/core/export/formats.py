"""One writer and one loader per export format, and the search for the layer that blocks a format.

Each writer produces the file's bytes atomically (temp file + rename); each loader reloads the
file with the runtime its users will use — onnxruntime, ``torch.export.load``, safetensors,
``torch.load(weights_only=True)`` — and returns a function from an input batch to logits, so the
caller can compare it with the PyTorch model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ftstudio.core.fileio import atomic_write_bytes, umask
from ftstudio.core.training.checkpoint import check_model_file

INPUT_NAME, OUTPUT_NAME = "input", "logits"
MAX_BATCH = 65_536
Runner = Callable[[torch.Tensor], np.ndarray]


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    runtime: str  # what verifies it, in words
    write: Callable[[nn.Module, torch.Tensor, Path], None]
    load: Callable[[Path, Callable[[dict], nn.Module]], Runner]


class Blocked(Exception):
    """The format cannot represent the model; ``str()`` says why (naming the layer when found)."""


@contextlib.contextmanager
def quiet():
    """Keep the exporters' narration, graph dumps and log warnings away from the user's console."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in ("torch", "onnxscript", "onnx_ir")]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _dynamic_batch() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


# ------------------------------------------------------------------------------------- writers
def _torch_export(model: nn.Module, sample: torch.Tensor) -> torch.export.ExportedProgram:
    with quiet():
        return torch.export.export(model, (sample,), dynamic_shapes=_dynamic_batch())


def write_pt2(model: nn.Module, sample: torch.Tensor, path: Path) -> None:
    program = _torch_export(model, sample)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    atomic_write_bytes(path, buf.getvalue())


def _onnx_program(model: nn.Module, sample: torch.Tensor, path: Path | None):
    with quiet():  # the exporter narrates its passes on stdout
        return torch.onnx.export(model, (sample,), str(path) if path else None, dynamo=True, external_data=False,
                                 input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                 dynamic_shapes=_dynamic_batch(), verbose=False)


def write_onnx(model: nn.Module, sample: torch.Tensor, path: Path) -> None:
    import onnx

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _onnx_program(model, sample, Path(tmp))
        onnx.checker.check_model(tmp, full_check=True)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp made it 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def write_safetensors(model: nn.Module, sample: torch.Tensor, path: Path) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save(_plain_state(model), metadata={"format": "pt", "producer": "ftstudio"}))


def write_state_dict(model: nn.Module, sample: torch.Tensor, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(_plain_state(model), buf)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------- loaders
# Each loader first checks the file (a regular file within the model-file size limit): the runtimes
# would read a device or a FIFO forever.
def load_onnx(path: Path, rebuild) -> Runner:
    import onnxruntime as ort

    check_model_file(path, "ONNX model")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {INPUT_NAME: x.numpy()})[0]


def load_pt2(path: Path, rebuild) -> Runner:
    check_model_file(path, "torch.export program")
    module = torch.export.load(str(path)).module()
    return _torch_runner(module)


def load_safetensors(path: Path, rebuild) -> Runner:
    from safetensors.torch import load_file

    check_model_file(path, "safetensors file")
    return _torch_runner(rebuild(load_file(str(path))))


def load_state_dict(path: Path, rebuild) -> Runner:
    check_model_file(path, "state dict")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return _torch_runner(rebuild(state))


def _torch_runner(module: nn.Module) -> Runner:
    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(x).numpy()

    return run


FORMAT_TABLE: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "model.onnx", "onnxruntime", write_onnx, load_onnx),
    Format("pt2", "model.pt2", "torch.export.load", write_pt2, load_pt2),
    Format("safetensors", "model.safetensors", "safetensors + PyTorch", write_safetensors, load_safetensors),
    Format("state-dict", "model.pt", "torch.load(weights_only=True) + PyTorch", write_state_dict, load_state_dict),
    # written by export.quantize (it needs calibration images); loads like any ONNX file
    Format("onnx-int8", "model.int8.onnx", "onnxruntime (int8)", write_onnx, load_onnx),
)}


# ------------------------------------------------------------------------------- blocking layer
def _probe(fmt: str) -> Callable[[nn.Module, torch.Tensor], Any]:
    if fmt == "onnx":
        return lambda m, x: _onnx_program(m, x, None)
    return _torch_export


def blocking_layer(model: nn.Module, sample: torch.Tensor, fmt: str) -> tuple[str, str, str] | None:
    """(path, type, reason) of the first layer ``fmt`` cannot represent on its own, or None."""
    inputs: dict[int, torch.Tensor] = {}
    hooks = [child.register_forward_pre_hook(lambda m, args, i=i: inputs.setdefault(i, args[0]))
             for i, child in enumerate(model.children())]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    probe = _probe(fmt)
    for i, child in enumerate(model.children()):
        if i not in inputs:
            continue
        try:
            probe(child, inputs[i])
        except Exception as exc:  # noqa: BLE001 — exporters raise many types; we only report them
            inner = getattr(child, "body", None)
            if isinstance(inner, nn.Sequential):  # look inside a residual block
                found = blocking_layer(inner, inputs[i], fmt)
                if found:
                    return f"{i}.{found[0]}", found[1], found[2]
            return str(i), type(child).__name__, first_line(exc)
    return None


def first_line(exc: BaseException) -> str:
    """The first line of the root cause (exporters wrap the real reason), without terminal colours."""
    for _ in range(10):
        if exc.__cause__ is None:
            break
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
