"""Builder datasets: copies in (files, folders, zip, CSV), hostile archives refused, edits undo exactly."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from ftstudio.core.datasets.builder import (
    AddImages,
    BuilderDataset,
    DeleteImages,
    MoveImages,
    RenameClass,
    builder_root,
    relabel_file,
    relabel_target,
    list_datasets,
    move_image,
)
from ftstudio.core.errors import InputError
from tests.helpers import make_photo_folder, photo


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path):
    return make_photo_folder(tmp_path / "mine", n_per_class=3, classes=("cat", "dog"))


def test_files_and_folders_are_copied_and_the_originals_left_alone(source):
    before = digest(source)
    ds = BuilderDataset.create("pets", ("cat",))
    assert ds.root.parent == builder_root() and list_datasets() == [ds.root]
    report = ds.add_files("cat", sorted((source / "cat").iterdir()) + [source / "missing.png"])
    assert len(report.added) == 3 and report.refused[0][0].endswith("missing.png")
    again = ds.import_folder(source)
    assert len(again.added) == 6 and ds.counts() == {"cat": 6, "dog": 3}
    assert len(set(ds.images("cat"))) == 6  # same names got unique ones
    assert digest(source) == before
    with pytest.raises(InputError, match="already exists"):
        BuilderDataset.create("pets")
    with pytest.raises(InputError, match="name"):
        BuilderDataset.create("../escape")


def test_zip_import_refuses_traversal_bombs_and_non_images(tmp_path, source):
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(source / "cat/cat_000.png", "pets/cat/a.png")
        z.write(source / "dog/dog_000.png", "pets/dog/b.png")
        z.writestr("pets/../../evil.png", b"x")
        z.writestr("/etc/abs.png", b"x")
        z.writestr("pets/dog/notes.png", b"not an image")
    ds = BuilderDataset.create("zipped")
    report = ds.import_zip(archive)
    assert sorted(report.added) == ["cat/a.png", "dog/b.png"]
    reasons = dict(report.refused)
    assert "unsafe" in reasons["pets/../../evil.png"] and "unsafe" in reasons["/etc/abs.png"]
    assert "pets/dog/notes.png" in reasons
    assert not (tmp_path / "evil.png").exists() and not list(builder_root().parent.glob("evil*"))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/big.png", b"\0" * 30_000_000)
    with pytest.raises(InputError, match="zip bomb"):
        ds.import_zip(bomb)
    (tmp_path / "fake.zip").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a readable zip"):
        ds.import_zip(tmp_path / "fake.zip")


def test_csv_import_names_bad_rows(tmp_path, source):
    table = tmp_path / "labels.csv"
    table.write_text("path,label\nmine/cat/cat_000.png,cat\nmine/dog/dog_001.png,dog\nmissing.png,dog\n"
                     "mine/cat/cat_001.png,../up\nonly-one-column\n", encoding="utf-8")
    ds = BuilderDataset.create("from-csv")
    report = ds.import_csv(table)
    assert sorted(report.added) == ["cat/cat_000.png", "dog/dog_001.png"]
    assert [r[0] for r in report.refused] == ["labels.csv line 4: missing.png",
                                               "labels.csv line 5: mine/cat/cat_001.png", "labels.csv line 6"]


def test_a_csv_takes_as_many_rows_as_a_drop_of_files(tmp_path, source, monkeypatch):
    """A downloaded CSV naming one large image a million times would fill the disk with copies."""
    from ftstudio.core.datasets import builder

    monkeypatch.setattr(builder, "MAX_IMPORT_FILES", 3)
    table = tmp_path / "labels.csv"
    table.write_text("path,label\n" + "mine/cat/cat_000.png,cat\n" * 7 + "\n", encoding="utf-8")
    report = BuilderDataset.create("capped").import_csv(table)
    assert len(report.added) == 3
    assert report.refused == [("labels.csv lines 5–9", "4 more rows: over 3 at once")]


def test_edits_apply_and_revert_exactly(source):
    ds = BuilderDataset.create("edits")
    add = AddImages(ds, "cat", sorted(str(p) for p in (source / "cat").iterdir()))
    add.apply()
    ds.add_class("dog")
    original = digest(ds.root)
    move = MoveImages(ds, ["cat/cat_001.png"], "dog")
    move.apply()
    assert "dog/cat_001.png" in ds.images("dog") and ds.counts() == {"cat": 2, "dog": 1}
    move.revert()
    assert digest(ds.root) == original
    delete = DeleteImages(ds, ["cat/cat_000.png", "cat/cat_002.png"])
    delete.apply()
    assert ds.counts() == {"cat": 1, "dog": 0}
    delete.revert()
    assert digest(ds.root) == original
    rename = RenameClass(ds, "cat", "kitten")
    rename.apply()
    assert ds.classes() == ["dog", "kitten"]
    rename.revert()
    add.revert()
    assert ds.counts() == {"cat": 0, "dog": 0}


def test_move_image_is_the_one_call_for_a_mistakes_gallery(tmp_path):
    ds = BuilderDataset.create("fix")
    buf = io.BytesIO()
    photo(1).save(buf, "PNG")
    rel = ds.add_bytes("cat", "x.png", buf.getvalue())
    new = move_image(ds.root, rel, "dog")
    assert new == "dog/x.png" and ds.counts() == {"cat": 0, "dog": 1}
    with pytest.raises(InputError, match="not an image of dataset"):
        move_image(ds.root, "../../etc/passwd", "cat")


def test_relabel_file_moves_only_builder_images(tmp_path, source):
    ds = BuilderDataset.create("gallery")
    (rel,) = ds.add_files("cat", [source / "cat/cat_000.png"]).added
    new = relabel_file(ds.path(rel), "dog")
    assert new == ds.root / "dog/cat_000.png" and new.exists() and ds.counts() == {"cat": 0, "dog": 1}
    with pytest.raises(InputError, match="your own folders"):
        relabel_file(source / "cat/cat_001.png", "dog")
    assert (source / "cat/cat_001.png").exists()
    with pytest.raises(InputError, match="not a file"):
        relabel_target(None)  # a mistake of a built-in dataset has no path
    with pytest.raises(InputError, match="no longer in dataset"):
        relabel_target(ds.root / "cat/cat_000.png")  # already moved


def _labels_by_file(bundle) -> dict[str, str]:
    out = {}
    for part in (bundle.train, bundle.val):
        for path, y in zip(part.paths, part.y.tolist()):
            out[Path(path).name] = bundle.classes[y]
    return out


def test_a_relabel_never_reads_a_stale_decode_cache_or_health_report(source):
    """Loading a builder dataset caches its decoded arrays; after a move (and after its undo) the next
    load and the next health check see the folder as it is, not as it was cached."""
    from ftstudio.core import paths
    from ftstudio.core.config.recipe import DatasetSpec
    from ftstudio.core.datasets import load_data
    from ftstudio.core.datasets.health import check_folder

    ds = BuilderDataset.create("cached")
    ds.import_folder(source)
    spec = DatasetSpec(name=str(ds.root), val_split=0.34)
    before = _labels_by_file(load_data(spec))
    assert before["cat_000.png"] == "cat" and any((paths.cache_dir() / "decoded").glob("*.npz"))
    move = MoveImages(ds, ["cat/cat_000.png"], "dog")
    move.apply()
    after = _labels_by_file(load_data(spec))
    assert after == {**before, "cat_000.png": "dog"}
    assert check_folder(ds.root, workers=1)["classes"] == {"cat": 2, "dog": 4}
    move.revert()
    assert _labels_by_file(load_data(spec)) == before
    assert check_folder(ds.root, workers=1)["classes"] == {"cat": 3, "dog": 3}


@pytest.mark.parametrize("how", ["files", "folder", "zip", "csv"])
def test_a_full_disk_stops_an_import_keeps_what_landed_and_leaves_no_part_file(tmp_path, source, monkeypatch, how):
    """The third copy hits a full disk: the import used to end in a bare OSError, a .part file left in the
    class folder and the copies made so far outside any undoable edit. Now it stops there, says why and
    where, and the two copies that landed are the edit's (undo removes them)."""
    import errno

    real = Path.write_bytes
    writes = []

    def full(self, data):
        writes.append(self)
        if len(writes) >= 3:
            real(self, data[: len(data) // 2])  # half an image on the disk, then the refusal
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    ds = BuilderDataset.create("full", ("cat", "dog"))
    files = sorted(source.rglob("*.png"))
    monkeypatch.setattr(Path, "write_bytes", full)
    if how == "files":
        command = AddImages(ds, "cat", [str(f) for f in files])
        command.apply()
        report = command.report
    elif how == "folder":
        report = ds.import_folder(source)
    elif how == "zip":
        archive = tmp_path / "pets.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for f in files:
                z.write(f, f"{f.parent.name}/{f.name}")
        report = ds.import_zip(archive)
    else:
        table = tmp_path / "labels.csv"
        table.write_text("".join(f"{f},{f.parent.name}\n" for f in files), encoding="utf-8")
        report = ds.import_csv(table)
    monkeypatch.undo()
    assert len(writes) == 3  # nothing tried after the refusal
    assert len(report.added) == 2 and report.stopped
    [(what, why)] = report.refused
    assert "cannot copy the image there (the disk is full: free some space" in why and str(ds.root) in why
    assert not [p for p in ds.root.rglob("*") if p.name.endswith(".part")]
    assert sorted(str(p.relative_to(ds.root).as_posix()) for p in ds.root.rglob("*.png")) == sorted(report.added)
    if how == "files":
        command.revert()
        assert not list(ds.root.rglob("*.png"))
