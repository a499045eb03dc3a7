"""End to end, process start → trained model, on a folder of small PNGs: `ftstudio train` vs the
seed's loop written with ImageFolder + DataLoader (bench/seed_imagefolder.py), 3 epochs of the
seed's MLP each, run alternately as fresh processes.

    python bench/make_mnist_folder.py mnist_5k.csv.gz /tmp/mnist20k --copies 4   # 20,000 PNGs
    python bench/end_to_end.py /tmp/mnist20k [--rounds 2]

"cold" empties ftstudio's decoded-data cache first (decode on every core, then cache);
"warm" reuses it (the second time a folder is trained on). Target: ≥ 2.5× the reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE.parent)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ftstudio-bench-"))
    env = {**os.environ, "FTSTUDIO_HOME": str(home)}
    n = sum(1 for _ in Path(args.folder).rglob("*.png"))
    ours = [sys.executable, "-m", "ftstudio", "train", "--data", args.folder, "--model", "mlp",
            "--epochs", str(args.epochs), "--batch-size", "64"]
    ref = [sys.executable, str(HERE / "seed_imagefolder.py"), args.folder, "--epochs", str(args.epochs)]
    results: dict[str, list[float]] = {"reference (workers=0)": [], "reference (workers=2)": [],
                                       "ftstudio cold cache": [], "ftstudio warm cache": []}
    for _ in range(args.rounds):
        results["reference (workers=0)"].append(timed(ref, env))
        shutil.rmtree(home / "cache", ignore_errors=True)
        results["ftstudio cold cache"].append(timed(ours, env))
        results["reference (workers=2)"].append(timed(ref + ["--workers", "2"], env))
        results["ftstudio warm cache"].append(timed(ours, env))
    shutil.rmtree(home, ignore_errors=True)
    base = statistics.median(results["reference (workers=0)"])
    print(f"{n} PNGs in {args.folder}, seed MLP, {args.epochs} epochs, batch 64, Adam; median of {args.rounds}")
    for name, times in results.items():
        t = statistics.median(times)
        print(f"{name:<24} {t:6.1f} s   speed-up vs reference (workers=0): {base / t:4.2f}×")


if __name__ == "__main__":
    main()
