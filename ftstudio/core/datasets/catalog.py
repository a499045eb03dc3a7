"""The dataset catalog: what each built-in dataset is, where it lives, whether it is here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftstudio.core import paths


@dataclass(frozen=True)
class CatalogEntry:
    """One dataset the catalog offers."""

    name: str
    title: str
    description: str
    kind: str  # "bundled" or "torchvision"
    shape: tuple[int, int, int]
    num_classes: int
    size: str  # download size, or "bundled"
    files: tuple[str, ...] = ()  # for torchvision: files to place under the root (relative)
    folder: str = ""  # torchvision: the subfolder under the root


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("digits", "Handwritten digits (8×8)",
                 "1,797 real handwritten digits from UCI, bundled: works offline, trains in seconds",
                 "bundled", (1, 8, 8), 10, "bundled"),
    CatalogEntry("digits-shifted", "Shifted handwritten digits (8×8)",
                 "the same digits rotated, blurred and noisy: a second domain for fine-tuning",
                 "bundled", (1, 8, 8), 10, "bundled"),
    CatalogEntry("mnist5k", "MNIST sample (28×28)",
                 "5,000 real MNIST digits (500 per class), bundled: works offline; the seed's 784-256-10 network",
                 "bundled", (1, 28, 28), 10, "bundled", ("mnist5k.npz",)),
    CatalogEntry("mnist", "MNIST", "70,000 handwritten digits (28×28)", "torchvision",
                 (1, 28, 28), 10, "12 MB", tuple(f"MNIST/raw/{f}" for f in _MNIST_FILES), "MNIST"),
    CatalogEntry("fashion-mnist", "Fashion-MNIST", "70,000 clothing images (28×28, 10 kinds)",
                 "torchvision", (1, 28, 28), 10, "30 MB",
                 tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_FILES), "FashionMNIST"),
    CatalogEntry("kmnist", "Kuzushiji-MNIST", "70,000 cursive Japanese characters (28×28)",
                 "torchvision", (1, 28, 28), 10, "20 MB",
                 tuple(f"KMNIST/raw/{f}" for f in _MNIST_FILES), "KMNIST"),
    CatalogEntry("cifar10", "CIFAR-10", "60,000 colour photos (32×32) of 10 object classes",
                 "torchvision", (3, 32, 32), 10, "163 MB",
                 ("cifar-10-batches-py/data_batch_1 … data_batch_5", "cifar-10-batches-py/test_batch",
                  "cifar-10-batches-py/batches.meta"), "cifar-10-batches-py"),
    CatalogEntry("cifar100", "CIFAR-100", "60,000 colour photos (32×32) of 100 classes",
                 "torchvision", (3, 32, 32), 100, "161 MB",
                 ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
                 "cifar-100-python"),
    CatalogEntry("svhn", "SVHN", "house numbers from Street View (32×32 colour digits; needs scipy)",
                 "torchvision", (3, 32, 32), 10, "182 MB", ("train_32x32.mat", "test_32x32.mat"), ""),
)

DEFAULT_DATASET = "digits"


def find(name: str) -> CatalogEntry | None:
    key = name.strip().lower().replace("_", "-")
    aliases = {"mnist-5k": "mnist5k", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}
    key = aliases.get(key, key)
    return next((e for e in CATALOG if e.name == key), None)


def default_root() -> Path:
    return paths.datasets_dir()


def is_available(entry: CatalogEntry, root: str | Path | None = None) -> bool:
    """Whether the dataset can be loaded without a download."""
    if entry.kind == "bundled":
        return True
    base = Path(root) if root else default_root()
    for rel in entry.files:
        rel = rel.split(" … ")[0]
        if not (base / rel).exists():
            return False
    return True


def location(entry: CatalogEntry, root: str | Path | None = None) -> str:
    if entry.kind == "bundled":
        return str(paths.resources_dir() / "datasets" / (entry.files[0] if entry.files else "digits.npz"))
    return str(Path(root) if root else default_root())
