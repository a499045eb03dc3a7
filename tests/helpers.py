"""Small builders shared by tests: image folders on disk, tiny recipes, CLI calls in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ftstudio.core.training.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]


def digit_images(n_per_class: int = 20, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real UCI digits upscaled to ``size`` (uint8 [N, size, size]) and their labels."""
    from ftstudio.core.datasets.sources import load_digits

    raw = load_digits()
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(raw.labels == c))[:n_per_class] for c in range(10)])
    imgs = [np.asarray(Image.fromarray(raw.images[i, 0]).resize((size, size), Image.Resampling.BILINEAR))
            for i in keep]
    return np.stack(imgs), raw.labels[keep]


def make_digit_folder(root: Path, n_per_class: int = 20, size: int = 28, classes: range = range(10),
                      fmt: str = "png") -> Path:
    """A folder of real digits as image files, one subfolder per class."""
    images, labels = digit_images(n_per_class, size)
    for i, (img, label) in enumerate(zip(images, labels)):
        if label not in classes:
            continue
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.{fmt}")
    return root


def make_color_folder(root: Path, n_per_class: int = 12, classes: int = 3, seed: int = 0) -> Path:
    """Colour JPEGs of mixed sizes: each class has its own dominant colour and stripe direction."""
    rng = np.random.default_rng(seed)
    colours = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (200, 200, 40)]
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            h, w = int(rng.integers(24, 80)), int(rng.integers(24, 80))
            base = np.array(colours[c % len(colours)], dtype=np.float32)
            img = base + rng.normal(0, 25, (h, w, 3))
            if c % 2:
                img[::4] *= 0.5
            else:
                img[:, ::4] *= 0.5
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def cli(*args: str, env: dict | None = None, timeout: float = 300,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ftstudio ARGS` as a user would; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ftstudio", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or ROOT)


def photo(seed: int, size: tuple[int, int] = (96, 96)) -> Image.Image:
    """A photo-like RGB image: smooth random colour blobs (distinct per seed, structured like a picture)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


def make_photo_folder(root: Path, n_per_class: int = 12, classes: tuple[str, ...] = ("cat", "dog", "fox"),
                      seed: int = 0) -> Path:
    """A class-folder dataset of distinct photo-like PNGs."""
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            photo(seed * 100_000 + c * 1000 + i).save(folder / f"{name}_{i:03d}.png")
    return root


class StopAt(Callback):
    """Sets the trainer's stop event once the given global step has been reported."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.at = step

    def on_batch_finished(self, event) -> None:
        if event.step >= self.at:
            self.trainer.stop_event.set()


def refuse_writes(monkeypatch, suffix: str, code: int | None = None, strerror: str = "No space left on device") -> None:
    """From now on, ftstudio's atomic writes of files whose name ends in ``suffix`` fail with OSError ``code``
    (default ENOSPC: a full disk) naming the file; ``monkeypatch`` undoes it."""
    import errno

    from ftstudio.core import fileio
    from ftstudio.core.training import checkpoint

    real = fileio.atomic_write
    code = errno.ENOSPC if code is None else code

    def refused(path, write):
        if str(path).endswith(suffix):
            raise OSError(code, strerror, str(path))
        return real(path, write)

    monkeypatch.setattr(fileio, "atomic_write", refused)
    monkeypatch.setattr(checkpoint, "atomic_write", refused)


class FillDisk(Callback):
    """From the end of epoch ``epoch`` on, every checkpoint write fails as on a full disk (ENOSPC); runs after
    the epoch's row is logged and before its checkpoint is written. ``monkeypatch`` undoes it."""

    order = 60

    def __init__(self, monkeypatch, epoch: int = 1) -> None:
        super().__init__()
        self.monkeypatch, self.epoch = monkeypatch, epoch

    def on_epoch_finished(self, event) -> None:
        if event.epoch == self.epoch:
            refuse_writes(self.monkeypatch, ".pt")
