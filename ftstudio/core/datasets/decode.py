"""Decode one image file into a fixed-size uint8 array, whatever its mode or orientation.

Imports only numpy, Pillow and `ftstudio.core.fileio` (the standard library): decoding runs in a
thread pool (Pillow releases the GIL while it decodes and resizes) and in DataLoader workers for
data too large to keep in memory.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from ftstudio.core.fileio import ReadRefused, open_regular

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
MAX_PIXELS = 64_000_000  # refuse decompression bombs well before they eat the memory

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class DecodeError(Exception):
    """One file could not be decoded; the message says why (for the skipped-files list)."""


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0  # 16-bit scans → 8 bits
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if channels == 1:
        return img.convert("L")
    return img.convert("RGB")


def _opened(path: str | Path | IO[bytes]) -> contextlib.AbstractContextManager[IO[bytes]]:
    """The image file opened if it is a regular file (`fileio.open_regular`): reading a named pipe
    blocks until something writes to it (a folder holding one hung prediction), and a device never
    ends. A stream (a pasted picture's bytes) passes as it is."""
    if not isinstance(path, (str, os.PathLike)):
        return contextlib.nullcontext(path)
    try:
        return open_regular(path, "image")
    except OSError as exc:
        raise DecodeError(_reason(exc)) from None


def probe(path: str | Path | IO[bytes]) -> tuple[int, int, int]:
    """(height, width, channels) of an image without decoding its pixels."""
    try:
        with warnings.catch_warnings(), _opened(path) as f:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                width, height = img.size
                orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
                gray = img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
                if img.mode == "P":
                    palette = img.getpalette() or []
                    rgb = np.asarray(palette[: 3 * 256]).reshape(-1, 3)
                    gray = bool(len(rgb)) and bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())
                return height, width, 1 if gray else 3
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(_reason(exc)) from None


def decode(path: str | Path | IO[bytes], size: tuple[int, int], channels: int) -> np.ndarray:
    """The image at ``path`` as a ``[channels, H, W]`` uint8 array of ``size`` (H, W)."""
    try:
        with warnings.catch_warnings(), _opened(path) as f:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                img.draft("RGB" if channels == 3 else "L", (size[1], size[0]))  # fast JPEG downscale
                img = ImageOps.exif_transpose(img)
                img = _to_mode(img, channels)
                if img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
                arr = np.array(img, dtype=np.uint8)  # a writable copy (torch refuses read-only arrays)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(_reason(exc)) from None
    if arr.ndim == 2:
        return arr[None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"too many pixels (over {MAX_PIXELS:,}); refused as a possible decompression bomb"
    if isinstance(exc, ReadRefused):  # a pipe, a device, a folder: said without the path
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "file vanished"
    if isinstance(exc, PermissionError):
        return "permission denied"
    text = str(exc) or type(exc).__name__
    if "cannot identify image file" in text:
        return "not an image Pillow can read"
    if "truncated" in text.lower():
        return "truncated image"
    return text.split(":")[0] if len(text) > 120 else text


def decode_many(paths: list[str], size: tuple[int, int], channels: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode a chunk of files: ``[n, C, H, W]`` uint8 (zeros where a file failed) and the failures
    as (index in the chunk, reason). Runs in worker processes for large folders."""
    out = np.zeros((len(paths), channels, size[0], size[1]), dtype=np.uint8)
    failed = []
    for i, path in enumerate(paths):
        try:
            out[i] = decode(path, size, channels)
        except DecodeError as exc:
            failed.append((i, str(exc)))
    return out, failed
