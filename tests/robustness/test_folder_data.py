"""Image folders as users have them: names that are not UTF-8, a decode cache that got damaged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ftstudio.core.config.recipe import DatasetSpec, Recipe
from ftstudio.core.datasets import load_data
from ftstudio.core.engine import resume, train
from tests.helpers import make_digit_folder


def test_names_that_are_not_utf8_train_and_are_shown_readably(tmp_path):
    root = make_digit_folder(tmp_path / "d", n_per_class=6, classes=range(2), size=8)
    first = next((root / "digit_0").glob("*.png"))
    os.rename(first, os.path.join(os.fsencode(root / "digit_0"), b"caf\xe9.png"))  # Latin-1 bytes
    os.rename(os.fsencode(root / "digit_1"), os.fsencode(root) + b"/cl\xe9ss")
    weird_root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9sultats"))
    root.rename(weird_root)
    out = tmp_path / "run"
    result = train(Recipe.from_dict({"data": {"name": str(weird_root), "val_split": 0.5},
                                     "train": {"epochs": 1, "device": "cpu"}}), out)
    assert result.summary["status"] == "completed"
    assert result.summary["classes"] == ["cl\ufffdss", "digit_0"] and result.summary["train_size"] == 6
    assert resume(out, epochs=2).summary["epochs"] == 2  # recipe.json reads back


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-arrays", "fifo"])
def test_a_damaged_decode_cache_is_discarded_and_rebuilt(tmp_path, _isolated_home, damage):
    import numpy as np

    root = make_digit_folder(tmp_path / "d", n_per_class=4, classes=range(2), size=8)
    spec = DatasetSpec(name=str(root), val_split=0.5)
    first = load_data(spec)
    caches = list(Path(_isolated_home).rglob("*.npz"))
    assert len(caches) == 1
    cache = caches[0]
    if damage == "truncate":
        cache.write_bytes(cache.read_bytes()[:100])
    elif damage == "garbage":
        cache.write_bytes(b"PK\x03\x04" + os.urandom(200))
    elif damage == "wrong-arrays":
        np.savez(cache.with_suffix(""), images=np.zeros((3, 1, 2, 2), np.uint8), labels=np.array([5, 0, 0]),
                 skipped=np.array([], dtype=str))
    else:
        cache.unlink()
        os.mkfifo(cache)
    again = load_data(spec)  # once: BadZipFile on every later run, until the user deleted the cache
    assert len(again.train) == len(first.train) and again.classes == first.classes
    assert cache.is_file() and len(cache.read_bytes()) > 1000  # rebuilt
