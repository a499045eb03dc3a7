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
        text = str(exc)
        if "global" in text.lower():  # it names a Python callable: loading would run code
            detail = next((line.strip() for line in text.splitlines() if "Unsupported" in line or "GLOBAL" in line),
                          "it contains pickled Python objects")
            raise InputError(messages.CHECKPOINT_UNSAFE.format(path=path, detail=detail[:200])) from None
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail="corrupt data")) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError,
            AttributeError, IndexError, KeyError, TypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        detail = "truncated or corrupt" if ("failed finding central directory" in first or isinstance(exc, EOFError)
                                            or "invalid load key" in first) else first[:160]
        raise InputError(messages.CHECKPOINT_INVALID.format(path=path, detail=detail)) from None


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
