"""Datasets: the bundled digits, image folders of every kind, splits, caps, statistics, errors."""

import os
import pickle
from pathlib import Path
import time

import numpy as np
import pytest
from PIL import Image

from ftstudio.core import messages
from ftstudio.core.datasets import cap_per_class, load_data, stratified_split
from ftstudio.core.datasets.catalog import find
from ftstudio.core.datasets.sources import load_torchvision
from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import DatasetSpec
from tests.helpers import make_color_folder, make_digit_folder


def test_bundled_digits_are_real_and_complete():
    b = load_data(DatasetSpec(name="digits", val_split=0.2))
    assert b.classes == tuple(str(i) for i in range(10))
    assert len(b.train) + len(b.val) == 1797
    assert b.input_shape == (1, 8, 8)
    assert b.train.x.dtype.is_floating_point is False and int(b.train.x.max()) == 255
    counts = b.class_counts("val")
    assert all(34 <= c <= 38 for c in counts)  # stratified: 20 % of every class
    assert 0.25 < b.mean[0] < 0.35 and 0.3 < b.std[0] < 0.45


def test_split_is_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), 25)
    a_tr, a_va = stratified_split(labels, 0.2, seed=3)
    b_tr, b_va = stratified_split(labels, 0.2, seed=3)
    c_tr, c_va = stratified_split(labels, 0.2, seed=4)
    assert np.array_equal(a_va, b_va) and not np.array_equal(a_va, c_va)
    assert set(a_tr).isdisjoint(a_va) and len(a_tr) + len(a_va) == 100
    assert np.bincount(labels[a_va]).tolist() == [5, 5, 5, 5]


def test_class_subset_cap_and_resize():
    b = load_data(DatasetSpec(name="digits", classes=("3", "7"), per_class=5), image_size=(28, 28))
    assert b.classes == ("3", "7")
    assert b.class_counts("train") == [5, 5]
    assert b.input_shape == (1, 28, 28) and tuple(b.train.x.shape[1:]) == (1, 28, 28)
    assert set(b.val.y.tolist()) == {0, 1}


def test_cap_per_class_keeps_at_most_n():
    labels = np.array([0] * 10 + [1] * 3)
    keep = cap_per_class(labels, 4, seed=0)
    assert np.bincount(labels[keep]).tolist() == [4, 3]


def test_unknown_class_names_are_listed():
    with pytest.raises(InputError, match="unknown class.*banana.*this dataset has: 0, 1"):
        load_data(DatasetSpec(name="digits", classes=("1", "banana")))


def test_shifted_digits_differ_from_clean_but_keep_labels():
    clean = load_data(DatasetSpec(name="digits", val_split=0.0))
    shifted = load_data(DatasetSpec(name="digits-shifted", val_split=0.0))
    assert clean.train.y.tolist() == shifted.train.y.tolist()
    diff = (clean.train.x.float() - shifted.train.x.float()).abs().mean()
    assert diff > 20  # a real domain shift, not a copy


def test_png_folder_grayscale_detected(tmp_path):
    make_digit_folder(tmp_path / "d", n_per_class=6, size=28, classes=range(3))
    b = load_data(DatasetSpec(name=str(tmp_path / "d"), val_split=0.25))
    assert b.classes == ("digit_0", "digit_1", "digit_2")
    assert b.input_shape == (1, 28, 28)
    assert len(b.train) + len(b.val) == 18 and not b.skipped


def test_color_jpegs_of_mixed_sizes(tmp_path):
    make_color_folder(tmp_path / "c", n_per_class=8, classes=3)
    b = load_data(DatasetSpec(name=str(tmp_path / "c")))
    c, h, w = b.input_shape
    assert c == 3 and h == w and 16 <= h <= 128
    assert len(b.mean) == 3
    red = b.train.x[b.train.y == 0].float().mean(dim=(0, 2, 3))  # class_0 is red: channels kept in RGB order
    assert red[0] > 2 * red[2]
    b2 = load_data(DatasetSpec(name=str(tmp_path / "c"), image_size=(20, 30), channels=1))
    assert b2.input_shape == (1, 20, 30)


def test_every_image_mode_decodes(tmp_path):
    root = tmp_path / "modes"
    rgb = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    images = {
        "L": Image.fromarray(rgb[..., 0]), "RGB": Image.fromarray(rgb), "RGBA": Image.fromarray(rgb).convert("RGBA"),
        "P": Image.fromarray(rgb).convert("P"), "CMYK": Image.fromarray(rgb).convert("CMYK"),
        "I16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
    }
    for i, (mode, img) in enumerate(images.items()):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        suffix = "jpg" if mode == "CMYK" else "png"
        img.save(folder / f"{mode}.{suffix}")
    # an EXIF-rotated JPEG: stored 16 wide × 8 high, orientation 6 (rotate 90°) → 8 wide × 16 high
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb[:8]).save(root / "a" / "exif.jpg", exif=exif)
    Image.fromarray(rgb[:8]).save(root / "b" / "exif2.jpg", exif=exif)
    b = load_data(DatasetSpec(name=str(root), val_split=0.0, image_size=(16, 16)))
    assert len(b.train) == 8 and not b.skipped
    assert b.input_shape == (3, 16, 16)


def test_bad_files_are_skipped_and_named(tmp_path):
    root = make_digit_folder(tmp_path / "d", n_per_class=4, classes=range(2))
    (root / "digit_0" / "empty.png").write_bytes(b"")
    (root / "digit_0" / "junk.png").write_bytes(os.urandom(300))
    (root / "digit_1" / "notes.txt").write_text("hello")
    (root / "digit_1" / ".DS_Store").write_bytes(b"x")
    good = (root / "digit_1").glob("*.png").__next__().read_bytes()
    (root / "digit_1" / "cut.png").write_bytes(good[: len(good) // 2])
    b = load_data(DatasetSpec(name=str(root), val_split=0.0))
    reasons = dict(b.skipped)
    assert set(reasons) == {os.path.join("digit_0", "empty.png"), os.path.join("digit_0", "junk.png"),
                            os.path.join("digit_1", "notes.txt"), os.path.join("digit_1", "cut.png")}
    assert "empty" in reasons[os.path.join("digit_0", "empty.png")]
    assert len(b.train) == 8
    assert any("4 path(s) skipped" in w for w in b.warnings)


def test_decompression_bomb_is_refused(tmp_path):
    root = make_digit_folder(tmp_path / "d", n_per_class=3, classes=range(2))
    Image.new("L", (9000, 8000)).save(root / "digit_0" / "bomb.png")  # 72 MP > the 64 MP limit
    b = load_data(DatasetSpec(name=str(root), val_split=0.0))
    assert "decompression bomb" in dict(b.skipped)[os.path.join("digit_0", "bomb.png")]


@pytest.mark.parametrize("layout, words", [
    ("missing", "folder not found"),
    ("empty", "no images found"),
    ("loose", "one subfolder per class"),
    ("one-class", "only one class"),
    ("file", "is a file, not a folder"),
])
def test_folder_errors(tmp_path, layout, words):
    root = tmp_path / "data"
    if layout == "empty":
        (root / "a").mkdir(parents=True)
    elif layout == "loose":
        root.mkdir()
        Image.new("L", (8, 8)).save(root / "x.png")
    elif layout == "one-class":
        make_digit_folder(root, n_per_class=3, classes=range(1))
    elif layout == "file":
        root.write_text("x")
    with pytest.raises(InputError, match=words):
        load_data(DatasetSpec(name=str(root)))


def test_unknown_name_is_a_clear_error():
    with pytest.raises(InputError, match="neither a dataset in the catalog"):
        load_data(DatasetSpec(name="imagenette"))


def test_decoded_folder_is_cached(tmp_path, _isolated_home):
    root = make_digit_folder(tmp_path / "d", n_per_class=5, classes=range(2))
    a = load_data(DatasetSpec(name=str(root)))
    cached = list((_isolated_home / "cache" / "decoded").glob("*.npz"))
    assert len(cached) == 1
    b = load_data(DatasetSpec(name=str(root)))
    assert np.array_equal(a.train.x.numpy(), b.train.x.numpy())
    Image.new("L", (28, 28), 255).save(root / "digit_1" / "new.png")  # content changed → new key
    c = load_data(DatasetSpec(name=str(root), val_split=0.0))
    assert len(c.train) == 11
    # the folder's previous state is replaced, not kept beside it: each edit in Build data used to leave
    # a full decoded copy behind, never removed
    [newer] = list((_isolated_home / "cache" / "decoded").glob("*.npz"))
    assert newer != cached[0]
    load_data(DatasetSpec(name=str(root), image_size=(16, 16)))  # another size: another entry
    assert len(list((_isolated_home / "cache" / "decoded").glob("*.npz"))) == 2


def test_the_decoded_cache_keeps_to_its_budget_least_recently_used_first(tmp_path, _isolated_home, monkeypatch):
    import time

    from ftstudio.core.datasets import folder

    cache = _isolated_home / "cache" / "decoded"
    roots = [make_digit_folder(tmp_path / name, n_per_class=5, classes=range(2)) for name in "abc"]
    for root in roots:
        load_data(DatasetSpec(name=str(root)))
    entries = sorted(cache.glob("*.npz"))
    assert len(entries) == 3
    one = entries[0].stat().st_size
    past = time.time() - 100
    for i, entry in enumerate(sorted(entries, key=lambda p: p.stat().st_mtime)):
        os.utime(entry, (past + i, past + i))  # a, b, c: oldest first
    load_data(DatasetSpec(name=str(roots[0])))  # a read: a becomes the most recently used
    stale = cache / ".abandoned.npz.1234.tmp"  # a writer killed long ago
    stale.write_bytes(b"x")
    os.utime(stale, (past - 7200, past - 7200))
    monkeypatch.setattr(folder, "CACHE_BUDGET", int(one * 1.5))  # room for one beside the newest
    load_data(DatasetSpec(name=str(make_digit_folder(tmp_path / "d", n_per_class=5, classes=range(2)))))
    left = {p.name for p in cache.glob("*.npz")}
    assert len(left) == 2 and not stale.exists()
    kept_a = load_data(DatasetSpec(name=str(roots[0])))  # served from the cache: nothing new written
    assert len(kept_a.train) + len(kept_a.val) == 10 and {p.name for p in cache.glob("*.npz")} == left


def test_symlink_loop_and_unicode_path(tmp_path):
    root = tmp_path / "mes données été"
    make_digit_folder(root, n_per_class=3, classes=range(2))
    os.symlink(root / "digit_0", root / "digit_0" / "loop")
    b = load_data(DatasetSpec(name=str(root), val_split=0.0))
    assert len(b.train) == 6


def test_links_into_the_dataset_are_not_followed_but_links_elsewhere_are(tmp_path):
    """A link inside one class to the dataset's root or to another class would have learnt the other
    classes' images under this class's name; a link to a folder outside the dataset is how people
    assemble one, and is followed."""
    root = tmp_path / "ds"
    make_digit_folder(root, n_per_class=3, classes=range(3))
    make_digit_folder(tmp_path / "elsewhere", n_per_class=2, classes=range(1))
    os.symlink(root, root / "digit_0" / "up")
    os.symlink(root / "digit_2", root / "digit_1" / "sideways")
    os.symlink(tmp_path / "elsewhere" / "digit_0", root / "digit_0" / "more")
    b = load_data(DatasetSpec(name=str(root), val_split=0.0))
    assert np.bincount(b.train.y.numpy()).tolist() == [5, 3, 3]
    assert {(Path(p).as_posix(), why) for p, why in b.skipped} == {
        ("digit_0/up", messages.LINK_INTO_DATASET), ("digit_1/sideways", messages.LINK_INTO_DATASET)}
    assert any("digit_0/up" in w for w in b.warnings)


def test_torchvision_offline_is_fast_and_names_files(tmp_path):
    entry = find("mnist")
    start = time.perf_counter()
    with pytest.raises(InputError) as err:
        load_torchvision(entry, str(tmp_path), download=False)
    assert time.perf_counter() - start < 5
    assert "train-images-idx3-ubyte" in str(err.value) and str(tmp_path) in str(err.value)
    assert "--download" in str(err.value)


def test_torchvision_mnist_from_local_files(tmp_path):
    """MNIST's idx files placed by hand in root/MNIST/raw load without any download."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def idx(path, arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        path.write_bytes(header + arr.astype(np.uint8).tobytes())

    for split, n in (("train", 40), ("t10k", 20)):
        idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    b = load_data(DatasetSpec(name="mnist", root=str(tmp_path), val_split=0.25))
    assert b.input_shape == (1, 28, 28) and b.classes[0] == "zero"
    assert len(b.test) == 20 and len(b.train) + len(b.val) == 40


def test_cifar_batches_refuse_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps({"data": Payload(), "labels": [0]}))
    with pytest.raises(InputError, match="not a CIFAR batch file"):
        load_data(DatasetSpec(name="cifar10", root=str(tmp_path)))
    assert not marker.exists()


def test_folders_too_large_for_memory_stream_from_disk(tmp_path, monkeypatch):
    """Over the in-memory limit, images stay on disk and are decoded batch by batch (same labels,
    same statistics within sampling, and training works)."""
    from ftstudio.core.datasets import StreamSplit
    from ftstudio.core.engine import train
    from ftstudio.core.config.recipe import Recipe

    root = make_digit_folder(tmp_path / "d", n_per_class=10, classes=range(3))
    memory = load_data(DatasetSpec(name=str(root)))
    streamed = load_data(DatasetSpec(name=str(root)), in_memory_limit=0)
    assert isinstance(streamed.train, StreamSplit) and "streamed" in streamed.source
    assert streamed.train.y.tolist() == memory.train.y.tolist()
    assert np.array_equal(streamed.train.images([0, 1]), memory.train.images([0, 1]))
    assert abs(streamed.mean[0] - memory.mean[0]) < 0.02

    import ftstudio.core.datasets as datasets

    monkeypatch.setattr(datasets, "IN_MEMORY_LIMIT", 0)
    result = train(Recipe.from_dict({"data": {"name": str(root)}, "train": {"epochs": 2, "batch_size": 8}}),
                   tmp_path / "run")
    assert result.summary["status"] == "completed" and result.summary["epochs"] == 2
    assert "streamed" in (tmp_path / "run" / "summary.json").read_text()


def test_unreadable_entries_are_skipped_and_named(tmp_path):
    root = make_digit_folder(tmp_path / "d", n_per_class=3, classes=range(2))
    os.symlink(tmp_path / "nowhere.png", root / "digit_0" / "gone.png")  # a dangling link: cannot be read
    (root / "digit_1" / "folder.png").mkdir()  # a folder that looks like an image
    b = load_data(DatasetSpec(name=str(root), val_split=0.0))
    reasons = dict(b.skipped)
    assert "No such file" in reasons[os.path.join("digit_0", "gone.png")]
    assert len(b.train) == 6
