"""Peak memory (RSS) of `ftstudio train` on the seed MLP with 60,000 28×28 images.

    python bench/make_mnist_folder.py mnist_5k.csv.gz /tmp/mnist60k --copies 12   # 60,000 PNGs
    python bench/memory.py /tmp/mnist60k

Runs the CLI as a fresh process (cold cache, then warm) and reads the child's peak RSS from
getrusage. Target ≤ 1.5 GB.
"""

from __future__ import annotations

import os

import subprocess
import sys
import tempfile
from pathlib import Path


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> float:
    """Peak RSS of the process ``cmd`` (wrapped so the measurement covers only it)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *cmd], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024  # Linux reports KiB


def main() -> None:
    folder = sys.argv[1]
    home = tempfile.mkdtemp(prefix="ftstudio-mem-")
    env = {**os.environ, "FTSTUDIO_HOME": home}
    n = sum(1 for _ in Path(folder).rglob("*.png"))
    cmd = [sys.executable, "-m", "ftstudio", "train", "--data", folder, "--model", "mlp", "--epochs", "2"]
    cold = peak_rss_mb(cmd, env)
    warm = peak_rss_mb(cmd, env)
    baseline = peak_rss_mb([sys.executable, "-c", "import torch, torchvision"], env)
    print(f"{n} images, seed MLP, 2 epochs; peak RSS: cold cache {cold:,.0f} MB, warm cache {warm:,.0f} MB "
          f"(importing torch + torchvision alone: {baseline:,.0f} MB); target ≤ 1,536 MB")


if __name__ == "__main__":
    main()
