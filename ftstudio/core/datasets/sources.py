"""Raw sources: the bundled digits (clean and shifted) and torchvision's datasets, as arrays.

Each returns a RawData of uint8 ``[N, C, H, W]`` images at their native size; `load_data`
then selects classes, resizes, splits and normalises them the same way for every source.
"""

from __future__ import annotations

import pickle
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ftstudio.core import messages, paths
from ftstudio.core.datasets.catalog import CatalogEntry, default_root, is_available
from ftstudio.core.errors import InputError


@dataclass
class RawData:
    """Images and labels as loaded, before class selection, resizing and splitting."""

    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    classes: tuple[str, ...]
    source: str
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    augment_default: bool = True


def load_digits() -> RawData:
    """The bundled 8×8 UCI digits, scaled from 16 gray levels to 0..255."""
    path = paths.resources_dir() / "datasets" / "digits.npz"
    with np.load(path, allow_pickle=False) as z:
        images = z["images"].astype(np.uint16)
        top = int(z["max_value"])
        labels = z["labels"].astype(np.int64)
        classes = tuple(str(c) for c in z["classes"].tolist())
    images = ((images * 255 + top // 2) // top).astype(np.uint8)[:, None]
    return RawData(images, labels, classes, f"bundled: {path.name} (UCI handwritten digits)",
                   augment_default=False)


def load_mnist5k() -> RawData:
    """The bundled 5,000 28×28 MNIST digits (see resources/datasets/MNIST_ATTRIBUTION.md)."""
    path = paths.resources_dir() / "datasets" / "mnist5k.npz"
    with np.load(path, allow_pickle=False) as z:
        images = z["images"].astype(np.uint8)[:, None]
        labels = z["labels"].astype(np.int64)
        classes = tuple(str(c) for c in z["classes"].tolist())
    return RawData(images, labels, classes, f"bundled: {path.name} (5,000 MNIST digits, CC BY-SA 3.0)",
                   augment_default=False)


def load_digits_shifted(seed: int = 1234) -> RawData:
    """The digits in a shifted domain: rotated 20–40°, blurred and noisy (fixed seed)."""
    import torch
    import torch.nn.functional as F

    raw = load_digits()
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(raw.images).float() / 255.0
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 20 + 20) * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    rad = angle * torch.pi / 180
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(rad), -torch.sin(rad)
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(rad), torch.cos(rad)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    kernel = torch.tensor([0.25, 0.5, 0.25])
    kernel = (kernel[:, None] * kernel[None, :])[None, None]
    x = F.conv2d(x, kernel, padding=1)
    x = x + torch.randn(x.shape, generator=gen) * 0.12
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return RawData(images, raw.labels, raw.classes,
                   "bundled: UCI digits rotated 20–40°, blurred, with noise (seed 1234)",
                   augment_default=False)


def load_torchvision(entry: CatalogEntry, root: str | None, download: bool) -> RawData:
    """A torchvision dataset from ``root`` (downloading only if asked and online)."""
    base = Path(root).expanduser() if root else default_root()
    files = ", ".join(f"{base}/{f}" for f in entry.files)
    if not is_available(entry, base):
        if not download:
            raise InputError(messages.DATASET_NOT_LOCAL.format(name=entry.name, root=base, size=entry.size,
                                                               files=files))
        if not _online(entry):
            raise InputError(messages.DATASET_OFFLINE.format(name=entry.name, root=base, files=files))
        base.mkdir(parents=True, exist_ok=True)
    try:
        if entry.name in ("cifar10", "cifar100"):
            if download and not is_available(entry, base):
                _tv_class(entry)(str(base), train=True, download=True)
            return _load_cifar(entry, base)
        return _load_tv(entry, base, download)
    except InputError:
        raise
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise InputError(f"{entry.name}: cannot read the files in {base} ({exc}); "
                         f"expected: {files}") from None


def _tv_class(entry: CatalogEntry):
    import torchvision.datasets as tvd

    return {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST,
            "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "svhn": tvd.SVHN}[entry.name]


def _load_tv(entry: CatalogEntry, base: Path, download: bool) -> RawData:
    cls = _tv_class(entry)
    if entry.name == "svhn":
        try:
            import scipy.io  # noqa: F401  (torchvision's SVHN reader needs it)
        except ImportError:
            raise InputError("svhn: reading SVHN's .mat files needs scipy; run `pip install scipy`") from None
        train, test = cls(str(base), split="train", download=download), cls(str(base), split="test", download=download)
        to_arr = lambda ds: np.asarray(ds.data, dtype=np.uint8)  # noqa: E731  already [N, 3, H, W]
        classes = tuple(str(i) for i in range(10))
        labels = lambda ds: np.asarray(ds.labels, dtype=np.int64) % 10  # noqa: E731
    else:
        train, test = cls(str(base), train=True, download=download), cls(str(base), train=False, download=download)
        to_arr = lambda ds: ds.data.numpy()[:, None]  # noqa: E731
        classes = tuple(c.split(" - ")[-1] if entry.name == "mnist" else c for c in train.classes)
        labels = lambda ds: ds.targets.numpy().astype(np.int64)  # noqa: E731
    return RawData(to_arr(train), labels(train), classes, f"torchvision {entry.title} in {base}",
                   to_arr(test), labels(test), augment_default=entry.name not in ("mnist", "kmnist"))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's batches (dicts of numpy arrays and lists) and nothing that runs code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def _read_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            data = _ArraysOnly(f, encoding="latin1").load()
        except pickle.UnpicklingError as exc:
            raise InputError(f"{path}: not a CIFAR batch file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a CIFAR batch file")
    return data


def _load_cifar(entry: CatalogEntry, base: Path) -> RawData:
    folder = base / entry.folder
    if entry.name == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)]
        label_key, meta, meta_key = "labels", "batches.meta", "label_names"
    else:
        names, label_key, meta, meta_key = ["train"], "fine_labels", "meta", "fine_label_names"

    def read(parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [_read_batch(folder / p) for p in parts]
        x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        return x, y

    x, y = read(names)
    tx, ty = read(["test_batch" if entry.name == "cifar10" else "test"])
    classes = tuple(str(c) for c in _read_batch(folder / meta)[meta_key])
    return RawData(x, y, classes, f"torchvision {entry.title} in {base}", tx, ty)


def _online(entry: CatalogEntry, timeout: float = 3.0) -> bool:
    """A fast check that the dataset's server is reachable (so offline fails in seconds)."""
    try:
        cls = _tv_class(entry)
    except ImportError:
        return False
    url = getattr(cls, "mirrors", [None])[0] or getattr(cls, "url", None) or getattr(cls, "base_url", None)
    if entry.name == "svhn":
        url = cls.split_list["train"][0]
    host = urlparse(url).hostname if url else None
    if not host:
        return False
    try:
        with socket.create_connection((host, 443 if url.startswith("https") else 80), timeout=timeout):
            return True
    except OSError:
        return False
