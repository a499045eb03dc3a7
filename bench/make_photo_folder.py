"""Write a folder of colour JPEG photos of mixed sizes, one subfolder per class, for measurements.

Each class is crops (random position and size, 40–200 px, random aspect) of one real photo from
scikit-image's sample data (astronaut, cat, coffee, rocket, motorcycle), re-encoded as JPEG:

    pip download --no-deps scikit-image -d /tmp/pk && unzip -o /tmp/pk/scikit_image-*.whl 'skimage/data/*' -d /tmp/pk
    python bench/make_photo_folder.py /tmp/pk/skimage/data OUT_DIR [--per-class 60]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SOURCES = {"astronaut": "astronaut.png", "cat": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg",
           "motorcycle": "motorcycle_left.png"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-class", type=int, default=60)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for label, name in SOURCES.items():
        photo = Image.open(args.data / name).convert("RGB")
        w, h = photo.size
        folder = args.out / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.per_class):
            cw, ch = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
            x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
            size = (int(rng.integers(40, 200)), int(rng.integers(40, 200)))
            photo.crop((x, y, x + cw, y + ch)).resize(size).save(folder / f"{i:03d}.jpg", quality=85)
    print(f"wrote {len(SOURCES) * args.per_class} JPEGs to {args.out}")


if __name__ == "__main__":
    main()
