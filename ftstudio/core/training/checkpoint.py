"""Checkpoints: one versioned plain dict, written atomically, read with ``weights_only=True``.

Nothing in a checkpoint file can run code when loaded: torch's weights-only unpickler refuses
anything but tensors and plain containers, and we translate its refusal into a clear message.
"""

from __future__ import annotations

import io
import pickle
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


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (temp file + rename)."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with clear errors for missing, empty, corrupt or unsafe files."""
    import torch

    path = Path(path)
    if not path.exists():
        raise InputError(messages.CHECKPOINT_MISSING.format(path=path))
    if path.is_dir():
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail="a folder, not a file"))
    if path.stat().st_size == 0:
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail="the file is empty"))
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
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError,
            AttributeError, IndexError, KeyError, TypeError) as exc:
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
    return data
