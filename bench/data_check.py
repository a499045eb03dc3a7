"""`ftstudio data check` on a big folder: seconds for N images, against a plain one-process loop.

The reference is what a hand-written script does: for every file, read it, sha256 it, open it
with Pillow and make a 9×8 grey thumbnail (no grouping, no report). Without FOLDER, writes N
photo-like 64×64 PNGs in 10 classes (with planted duplicates) to a temporary folder first:

    python bench/data_check.py --images 60000 [FOLDER] [--reference-sample 5000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_folder(root: Path, n: int, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((64, 64), Image.Resampling.BICUBIC)
        img.save(root / f"class_{i % classes}" / f"{i:06d}.png", compress_level=1)
    for k in range(0, min(n, 500), 50):  # planted: resized copies under another class
        src = root / f"class_{k % classes}" / f"{k:06d}.png"
        Image.open(src).resize((48, 48)).save(root / f"class_{(k + 1) % classes}" / f"dup_{k}.jpg", quality=70)


def reference(paths: list[str]) -> float:
    start = time.perf_counter()
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        hashlib.sha256(data).hexdigest()
        with Image.open(p) as img:
            np.asarray(img.convert("L").resize((9, 8)))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--images", type=int, default=60000)
    ap.add_argument("--reference-sample", type=int, default=5000, help="files the reference loop reads (scaled up)")
    args = ap.parse_args()
    tmp = None
    folder = args.folder
    if folder is None:
        tmp = Path(tempfile.mkdtemp(prefix="ftstudio-check-"))
        folder = tmp / "data"
        t = time.perf_counter()
        write_folder(folder, args.images)
        print(f"wrote {args.images} PNGs in {time.perf_counter() - t:.1f} s")
    try:
        from ftstudio.core.datasets.health import check_folder, list_folder

        paths = [str(folder / e.path) for e in list_folder(folder).entries]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        report = check_folder(folder)
        ours = time.perf_counter() - start
        step = max(1, len(paths) // args.reference_sample)
        sample = paths[::step]
        ref = reference(sample) * len(paths) / len(sample)
        print(f"{len(paths)} images, {os.cpu_count()} cores, load average before {load:.2f}")
        print(f"data check: {ours:.1f} s ({len(paths) / ours:,.0f} images/s); "
              f"{len(report['duplicates'])} duplicate groups, {report['conflicts']} conflicts, "
              f"{len(report['corrupt'])} corrupt")
        print(f"plain one-process read+sha256+thumbnail loop (from {len(sample)} files): {ref:.1f} s")
        print(f"ratio plain / ours: {ref / ours:.2f}×")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
