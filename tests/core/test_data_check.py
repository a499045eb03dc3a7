"""`data check`: planted exact, near and cross-class duplicates, leakage, corrupt files, tiny classes
and outliers are all reported; distinct images are not."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftstudio.core.config.recipe import DatasetSpec
from ftstudio.core.datasets import load_data
from ftstudio.core.datasets.hashing import near_groups, popcount
from ftstudio.core.datasets.health import check_folder, read_facts, read_many
from ftstudio.core.errors import InputError
from ftstudio.core.fileio import NOT_REGULAR
from tests.helpers import cli, make_photo_folder, photo


@pytest.fixture
def planted(tmp_path):
    root = make_photo_folder(tmp_path / "pets")
    shutil.copy(root / "cat/cat_001.png", root / "cat/copy_of_1.png")  # exact, same class
    Image.open(root / "cat/cat_002.png").resize((61, 57)).save(root / "cat/small_2.jpg", quality=60)  # near
    Image.open(root / "dog/dog_003.png").resize((140, 140)).save(root / "fox/mislabelled.jpg", quality=75)
    (root / "fox/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # corrupt
    (root / "bird").mkdir()
    for i in range(3):  # a tiny class
        photo(900 + i).save(root / f"bird/b{i}.png")
    photo(950).convert("L").save(root / "dog/gray.png")  # a rare mode
    photo(951, (900, 20)).save(root / "dog/strip.png")  # a size outlier
    (root / "dog/notes.txt").write_text("not an image")
    return root


def test_planted_problems_are_reported(planted):
    report = check_folder(planted)
    groups = {tuple(d["files"]): d for d in report["duplicates"]}
    assert set(groups) == {("cat/cat_001.png", "cat/copy_of_1.png"), ("cat/cat_002.png", "cat/small_2.jpg"),
                           ("dog/dog_003.png", "fox/mislabelled.jpg")}
    assert groups[("cat/cat_001.png", "cat/copy_of_1.png")]["kind"] == "exact"
    assert groups[("cat/cat_002.png", "cat/small_2.jpg")]["kind"] == "near"
    conflict = groups[("dog/dog_003.png", "fox/mislabelled.jpg")]
    assert conflict["conflict"] and conflict["classes"] == ["dog", "fox"]
    assert report["conflicts"] == 1 and report["leakage"] == 0
    assert [c["path"] for c in report["corrupt"]] == ["fox/broken.png"]
    assert report["skipped"] == [{"path": "dog/notes.txt", "reason": "not an image file type"}]
    assert report["imbalance"]["tiny"] == ["bird"] and report["imbalance"]["imbalanced"]
    assert [o["path"] for o in report["outliers"]["mode"]] == ["dog/gray.png"]
    assert [o["path"] for o in report["outliers"]["size"]] == ["dog/strip.png"]
    text = "\n".join(report["problems"])
    for words in ("label conflict", "dog, fox", "fox/broken.png", "dog/notes.txt (not an image file type)",
                  "'bird' has only 3", "dog/gray.png", "dog/strip.png"):
        assert words in text


def test_leakage_across_split_folders(tmp_path):
    root = tmp_path / "split"
    make_photo_folder(root / "train", n_per_class=4, classes=("a", "b"))
    make_photo_folder(root / "val", n_per_class=2, classes=("a", "b"), seed=7)
    Image.open(root / "train/a/a_000.png").resize((80, 80)).save(root / "val/a/leaked.jpg", quality=70)
    report = check_folder(root)
    assert report["layout"] == "splits" and report["splits"] == {"train": 8, "val": 5}
    (leak,) = report["duplicates"]
    assert leak["leakage"] and not leak["conflict"] and leak["splits"] == ["train", "val"]
    assert leak["files"] == ["train/a/a_000.png", "val/a/leaked.jpg"]
    assert "leakage" in "\n".join(report["problems"])


def test_distinct_images_are_not_grouped_and_a_clean_folder_is_healthy(tmp_path):
    report = check_folder(make_photo_folder(tmp_path / "ok", n_per_class=15, classes=("a", "b")))
    assert report["duplicates"] == [] and report["problems"] == []


def test_phash_is_robust_to_resizing_and_recompression(tmp_path):
    for k in range(40):
        photo(k).save(tmp_path / f"{k}.png")
        photo(k).resize((50 + k, 64), Image.Resampling.BILINEAR).save(tmp_path / f"{k}.jpg", quality=50)
    originals = [f.phash for f in read_many([str(tmp_path / f"{k}.png") for k in range(40)])]
    variants = [f.phash for f in read_many([str(tmp_path / f"{k}.jpg") for k in range(40)])]
    a, b = np.array(originals, np.uint64), np.array(variants, np.uint64)
    assert popcount(a ^ b).max() <= 8
    others = popcount(a[:, None] ^ a[None, :])[~np.eye(40, dtype=bool)]
    assert others.min() > 8


def test_flat_images_of_other_colours_are_not_duplicates_and_blanks_are_cheap():
    colour = np.zeros((5002, 3, 8, 8), np.uint8)
    colour[0, 0] = 200  # red
    colour[1, 2] = 200  # blue
    groups = near_groups(np.zeros(5002, np.uint64), colour)
    assert groups[0] != groups[1] and groups[0] != groups[2]
    assert len(set(groups[2:].tolist())) == 1


def test_bad_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        check_folder(tmp_path / "missing")


def test_cli_json_document(planted):
    proc = cli("data", "check", str(planted), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"duplicates", "corrupt", "imbalance", "outliers"} <= set(doc)
    assert all(set(d) >= {"kind", "conflict", "files"} for d in doc["duplicates"])
    proc = cli("data", "check", str(planted))
    assert proc.returncode == 0 and "label conflict" in proc.stdout


def test_different_handwritten_digits_are_not_chained_into_one_group():
    """Flat backgrounds make different digits agree on most thumbnail cells: with the mean gap alone
    424 of the bundled 5,000 MNIST digits formed one "near-duplicate" group, which the group-aware
    split then kept on one side (and the Health panel called a label conflict). Resized, recompressed
    copies of the same digits must still be found."""
    import io

    from ftstudio.core.config.recipe import DatasetSpec
    from ftstudio.core.datasets import load_data
    from ftstudio.core.datasets.hashing import near_duplicate_groups

    bundle = load_data(DatasetSpec(name="mnist5k"))
    x = np.concatenate([bundle.train.x.numpy(), bundle.val.x.numpy()])
    _, sizes = np.unique(near_duplicate_groups(x), return_counts=True)
    assert sizes.max() <= 10, f"a group of {sizes.max()} different digits"
    copies = []
    for digit in x[:50, 0]:
        buf = io.BytesIO()
        Image.fromarray(digit).resize((20, 20)).resize((28, 28)).save(buf, "JPEG", quality=70)
        copies.append(np.array(Image.open(buf))[None])
    groups = near_duplicate_groups(np.concatenate([x[:50], np.stack(copies)]))
    assert (groups[:50] == groups[50:]).all()


@pytest.mark.timeout(120)
def test_a_pipe_or_device_in_a_class_folder_is_named_not_read(tmp_path):
    """Both were skipped as "empty file (0 bytes)" (their size): true of neither, and a reader that
    trusted the size would block on the pipe."""
    root = make_photo_folder(tmp_path / "ds", n_per_class=6, classes=("a", "b"))
    os.mkfifo(root / "a" / "pipe.png")
    (root / "b" / "zero.png").symlink_to("/dev/zero")
    expected = {"a/pipe.png", "b/zero.png"}
    skipped = check_folder(root)["skipped"]
    assert {s["path"] for s in skipped if s["reason"] == NOT_REGULAR} == expected
    assert read_facts(str(root / "a" / "pipe.png")).error == NOT_REGULAR
    bundle = load_data(DatasetSpec(name=str(root), image_size=(16, 16)))
    assert {Path(p).as_posix() for p, why in bundle.skipped if NOT_REGULAR in why} == expected
