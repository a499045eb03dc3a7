"""The group-aware split: near-duplicates never straddle train and validation; training names
skipped files and under-represented classes on the terminal."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from ftstudio.core.datasets import grouped_split, load_data, stratified_split
from ftstudio.core.config.recipe import DatasetSpec
from tests.helpers import cli, make_photo_folder


def test_grouped_split_keeps_groups_whole_and_is_the_plain_split_without_them():
    labels = np.repeat(np.arange(3), 20)
    singletons = np.arange(60)
    tr, va, facts = grouped_split(labels, singletons, 0.25, seed=3)
    plain = stratified_split(labels, 0.25, 3)
    assert np.array_equal(tr, plain[0]) and np.array_equal(va, plain[1]) and facts["moved"] == 0
    groups = singletons.copy()
    groups[[0, 7, 13]] = 0  # a triple in class 0
    groups[[21, 45]] = 21  # a pair spanning classes 1 and 2 (a label conflict)
    for seed in range(20):
        tr, va, facts = grouped_split(labels, groups, 0.25, seed)
        val = set(va.tolist())
        assert len({i in val for i in (0, 7, 13)}) == 1 and len({i in val for i in (21, 45)}) == 1
        assert sorted(tr.tolist() + va.tolist()) == list(range(60))
        assert facts["duplicate_groups"] == 2 and facts["images_in_groups"] == 5


def test_planted_pair_in_a_folder_stays_on_one_side(tmp_path):
    root = make_photo_folder(tmp_path / "pets", n_per_class=10, classes=("cat", "dog"))
    shutil.copy(root / "cat/cat_004.png", root / "cat/again.png")
    Image.open(root / "dog/dog_002.png").resize((70, 70)).save(root / "dog/smaller.jpg", quality=70)
    moved = 0
    for seed in range(3):
        data = load_data(DatasetSpec(name=str(root), val_split=0.5, split_seed=seed))
        facts = data.summary()["split"]
        assert facts["grouped"] and facts["duplicate_groups"] == 2 and facts["images_in_groups"] == 4
        moved += facts["moved"]
        train = {img.tobytes() for img in data.train.x.numpy()}
        assert not any(img.tobytes() in train for img in data.val.x.numpy())  # the exact copy
    assert moved > 0  # the plain split would have cut a pair
    assert any("near-duplicate" in w for w in data.warnings)


@pytest.mark.slow
def test_training_prints_skipped_files_and_small_classes(tmp_path):
    root = make_photo_folder(tmp_path / "pets", n_per_class=12, classes=("cat", "dog"))
    (root / "cat/broken.png").write_bytes(b"not a png at all")
    for extra in sorted((root / "dog").iterdir())[5:]:
        extra.unlink()  # dog keeps 5 images
    proc = cli("train", "--data", str(root), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "cat/broken.png" in proc.stderr
    assert "under-represented" in proc.stderr and "dog (" in proc.stderr


def test_folder_images_keep_their_files_for_relabelling(tmp_path):
    root = make_photo_folder(tmp_path / "pets", n_per_class=6, classes=("cat", "dog"))
    (root / "dog/broken.png").write_bytes(b"no")
    data = load_data(DatasetSpec(name=str(root), val_split=0.5))
    for part in (data.train, data.val):
        assert len(part.paths) == len(part)
        for path, label in zip(part.paths, part.y.tolist()):
            assert path.startswith(str(root / data.classes[label])) and "broken" not in path
    sub = data.val.subset([1, 0])
    assert sub.paths == [data.val.paths[1], data.val.paths[0]]
