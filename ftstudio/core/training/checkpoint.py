"""Checkpoints: one versioned plain dict, written atomically, read with ``weights_only=True``.

Nothing in a checkpoint file can run code when loaded: torch's weights-only unpickler refuses
anything but tensors and plain containers, and we translate its refusal into a clear message.
`check_model_file` guards every load of a model file a user names (checkpoints, pretrained
weights, exported models): torch, safetensors and onnxruntime would read a device or a FIFO
forever, and a file is only loaded when its size is within what a model file can sanely hold.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import stat
import warnings
import zipfile
from pathlib import Path
from typing import Any

from ftstudio.core import messages
from ftstudio.core.errors import InputError
from ftstudio.core.fileio import atomic_write

FORMAT = "ftstudio.checkpoint"
VERSION = 1
REQUIRED = ("model", "epoch", "step", "architecture", "classes", "preprocess")
LIMIT_ENV = "FTSTUDIO_MAX_MODEL_FILE_GB"
DEFAULT_LIMIT_GB = 4.0  # ~1 billion float32 weights; a checkpoint holds them and Adam's two moments


def size_limit() -> int:
    """The largest model file loaded, in bytes: ``FTSTUDIO_MAX_MODEL_FILE_GB`` or 4 GB."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return int(DEFAULT_LIMIT_GB * 1e9)
    try:
        gb = float(raw)
    except ValueError:
        gb = math.nan
    if not math.isfinite(gb) or gb <= 0:
        raise InputError(messages.MODEL_FILE_LIMIT_BAD.format(env=LIMIT_ENV, value=raw[:40]))
    return int(gb * 1e9)


def check_model_file(path: str | Path, what: str = "checkpoint", limit: int | None = None) -> Path:
    """``path`` if it is a regular file of at most ``limit`` bytes (default `size_limit`), else InputError.

    ``st_size`` is 0 for /dev/zero and FIFOs, and ``os.stat`` never opens the file (opening a FIFO
    without a writer blocks), so this refuses them before any loader touches them."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(messages.MODEL_FILE_MISSING.format(path=path, what=what)) from None
    except OSError as exc:
        raise InputError(messages.MODEL_FILE_BAD.format(path=path, what=what, detail=exc.strerror or exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(messages.MODEL_FILE_BAD.format(path=path, what=what, detail="a folder, not a file"))
    if not stat.S_ISREG(st.st_mode):  # /dev/zero or a FIFO would be read forever
        raise InputError(messages.MODEL_FILE_BAD.format(path=path, what=what,
                                                        detail="not a regular file: a device, pipe or socket"))
    limit = size_limit() if limit is None else limit
    if st.st_size > limit:
        raise InputError(messages.MODEL_FILE_TOO_BIG.format(path=path, what=what, size=_gb(st.st_size),
                                                            limit=_gb(limit), env=LIMIT_ENV))
    if st.st_size == 0:
        raise InputError(messages.MODEL_FILE_BAD.format(path=path, what=what, detail="the file is empty"))
    return path


def _gb(n: int) -> str:
    if n >= 10**8:
        return f"{round(n / 1e9, 1):g} GB"
    return f"{round(n / 1e6, 1):g} MB" if n >= 10**5 else f"{n} bytes"
# an fsdp run's checkpoint names the folder beside it that holds model and optimizer shards (sharded_checkpoint)
SHARDED_NAME = re.compile(r"^sharded-[0-9]{9}-[0-9a-f]{8}$")


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (temp file + rename)."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def safe_torch_load(path: str | Path, what: str = "checkpoint", limit: int | None = None) -> Any:
    """``torch.load(weights_only=True)`` with clear errors for missing, empty, corrupt, unsafe,
    oversized or not-regular files (``what`` names the file in them)."""
    import torch

    path = check_model_file(path, what, limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's notes on foreign pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        calls = _pickled_callables(path)
        if calls or "global" in str(exc).lower():
            detail = f"it calls {', '.join(calls[:3])}" if calls else "it contains pickled Python objects"
            raise InputError(messages.CHECKPOINT_UNSAFE.format(path=path, detail=detail)) from None
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail="corrupt data")) from None
    except Exception as exc:  # noqa: BLE001 — RuntimeError, EOFError, BadZipFile, struct.error…: a damaged file
        if isinstance(exc, MemoryError):
            raise
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        detail = "truncated or corrupt" if ("failed finding central directory" in first or isinstance(exc, EOFError)
                                            or "invalid load key" in first) else first[:160]
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail=detail)) from None


def _pickled_callables(path: Path) -> list[str]:
    """Names of the Python callables a pickle (plain or inside torch's zip) would import — read
    with pickletools, which parses opcodes and never executes anything."""
    import pickletools

    raw = path.read_bytes()
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                raw = next(z.read(n) for n in z.namelist() if n.endswith("data.pkl"))
        except (StopIteration, zipfile.BadZipFile, OSError):
            return []
    names, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(raw):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # malformed opcodes: report what was found so far
        pass
    safe = ("torch.", "collections.OrderedDict", "_codecs.encode")
    return [n for n in dict.fromkeys(names) if not n.startswith(safe)]


def load(path: str | Path) -> dict[str, Any]:
    """Load and validate an ftstudio checkpoint."""
    data = safe_torch_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(messages.CHECKPOINT_INVALID.format(
            path=path, detail="a torch file, but not one ftstudio wrote; to use plain weights, "
                              "pass them as a backbone's weights_file"))
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise InputError(messages.CHECKPOINT_INVALID.format(
            path=path, detail=f"version {data.get('version')!r} is newer than this ftstudio reads ({VERSION})"))
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail=f"missing {', '.join(missing)}"))
    problem = field_problem(data)
    if problem:
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail=problem))
    if data.get("sharded"):  # where resuming finds the optimizer: beside this file, wherever the run moved
        data["sharded_path"] = str(Path(path).parent / data["sharded"])
    return data


MAX_CLASSES = 100_000
MAX_SIDE = 4096  # as a recipe's image_size and an architecture's input_shape


def field_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's fields, checked like user input (None when all is well).

    A checkpoint is an untrusted file: a forged ``preprocess.input_shape`` of [1, 30000, 30000]
    would otherwise allocate gigabytes in evaluate/export before anything else failed."""
    import torch

    def whole(v: Any, lo: int, hi: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    def numbers(v: Any, n: int) -> bool:
        return (isinstance(v, (list, tuple)) and len(v) == n
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))

    model = data["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                              for k, t in model.items()):
        return "model: expected a state dict (names → tensors)"
    for key in ("epoch", "step"):
        if not whole(data[key], 0, 10**12):
            return f"{key}: expected a whole number ≥ 0 (got {str(data[key])[:40]!r})"
    if data.get("batch") is not None and not whole(data["batch"], 0, 10**12):
        return "batch: expected a whole number ≥ 0"
    if not isinstance(data["architecture"], (dict, str)):
        return "architecture: expected an architecture object"
    classes = data["classes"]
    if (not isinstance(classes, (list, tuple)) or not 1 <= len(classes) <= MAX_CLASSES
            or not all(isinstance(c, str) and len(c) <= 1000 for c in classes)):
        return f"classes: expected 1 to {MAX_CLASSES:,} class names"
    pre = data["preprocess"]
    if not isinstance(pre, dict):
        return "preprocess: expected an object"
    shape = pre.get("input_shape")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3 or not whole(shape[0], 1, 3)
            or not all(whole(v, 1, MAX_SIDE) for v in shape[1:])):
        return (f"preprocess.input_shape: expected [channels 1–3, height, width 1–{MAX_SIDE}] "
                f"(got {str(shape)[:60]})")
    for key in ("mean", "std"):
        if not numbers(pre.get(key), shape[0]):
            return f"preprocess.{key}: expected {shape[0]} finite numbers"
    if any(v == 0 for v in pre["std"]):  # negative: the model takes inverted images (finetune.polarity)
        return "preprocess.std: must not be 0"
    scale = pre.get("scale", 255.0)
    if not numbers([scale], 1) or scale <= 0:
        return "preprocess.scale: expected a number > 0"
    sharded = data.get("sharded")
    if sharded is not None and not (isinstance(sharded, str) and SHARDED_NAME.match(sharded)):
        return "sharded: expected the name of a sharded-… folder beside the checkpoint"
    for key in ("recipe", "best", "lora", "lineage"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key}: expected an object"
    return None
