"""Regenerate resources/datasets/digits.npz from scikit-learn's copy of the UCI digits.

Run once by a maintainer (scikit-learn is not a runtime dependency):
    pip install scikit-learn && python scripts/make_digits.py
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.uint8)  # 0..16 gray levels
    out = Path(__file__).resolve().parents[1] / "resources" / "datasets" / "digits.npz"
    np.savez_compressed(
        out,
        images=images,
        labels=np.asarray(digits.target, dtype=np.uint8),
        classes=np.array([str(c) for c in digits.target_names]),
        max_value=np.array(16, dtype=np.uint8),
    )
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(images)} images)")


if __name__ == "__main__":
    main()
