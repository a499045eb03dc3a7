"""The Dataset page: a newcomer builds a 3-class dataset by dropping files, trains on it, relabels
one image and undoes it — all in the real window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QListWidgetItem, QMenu

from ftstudio.gui import dialogs
from tests.gui.conftest import set_train
from tests.gui.drop_helpers import drop_files
from tests.helpers import make_color_folder


def drop(view, paths, at: QPoint | None = None) -> None:
    drop_files(view.viewport(), paths, at)


def loaded_counts(window) -> dict[str, int] | None:
    """Images per class of the Data page's loaded dataset (training and validation together)."""
    bundle = window.session.bundle
    if bundle is None:
        return None
    both = np.add(bundle.class_counts("train"), bundle.class_counts("val"))
    return dict(zip(bundle.classes, both.tolist()))


def test_build_train_relabel_undo(qtbot, window, outcomes, monkeypatch, tmp_path):
    photos = make_color_folder(tmp_path / "mine", n_per_class=8, classes=3)
    answers = iter(["fruit", "apples", "limes", "plums"])
    monkeypatch.setattr(dialogs, "ask_text", lambda *a, **k: next(answers))
    window.show_page("dataset")
    page = window.dataset_page
    assert "Make a dataset" in page.header.text()
    qtbot.mouseClick(page.new_button, Qt.MouseButton.LeftButton)  # name, then the first class
    qtbot.mouseClick(page.add_class_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page.add_class_button, Qt.MouseButton.LeftButton)
    assert page.dataset.classes() == ["apples", "limes", "plums"]
    for row in range(2):
        page.classes.setCurrentRow(row)
        drop(page.thumbs, sorted((photos / f"class_{row}").iterdir()))
        assert page.thumbs.count() == 8
    plums = page.classes.visualItemRect(page.classes.item(2)).center()
    drop(page.classes, sorted((photos / "class_2").iterdir()), at=plums)  # dropped on the class itself
    assert page.dataset.counts() == {"apples": 8, "limes": 8, "plums": 8}
    assert sorted(p.name for p in (photos / "class_0").iterdir()) == [f"{i}.jpg" for i in sorted(range(8), key=str)]
    qtbot.waitUntil(lambda: page.health is not None, timeout=30_000)
    assert page.health["images"] == 24

    qtbot.mouseClick(page.train_button, Qt.MouseButton.LeftButton)
    assert window.current_page() == "data" and window.session.data_spec.name == str(page.dataset.root)
    set_train(window, epochs=1, batch_size=8, lr=1e-7)  # barely trained: it gets held-out images wrong
    qtbot.mouseClick(window.train_page.buttons["start"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(outcomes) >= 1, timeout=120_000)
    assert outcomes[0].status == "completed", outcomes[0].message
    assert outcomes[0].summary["classes"] == ["apples", "limes", "plums"]

    # the run's mistakes gallery moves a wrongly answered image to another class, and Undo brings it back
    window.show_page("runs")
    window.runs_page.select(outcomes[0].run_path)
    gallery = window.runs_page.mistakes
    window.runs_page.side.setCurrentWidget(gallery)
    qtbot.mouseClick(gallery.measure, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gallery.assessment is not None, timeout=120_000)
    assert gallery.gallery.count() > 0
    item = gallery.gallery.item(0)
    mistake = item.data(Qt.ItemDataRole.UserRole)
    source = Path(mistake.path)
    assert source.parent.parent == page.dataset.root and source.parent.name == mistake.true
    target = next(c for c in page.dataset.classes() if c != mistake.true)
    before, there = page.dataset.counts(), set((page.dataset.root / target).iterdir())
    content = source.read_bytes()
    moves = gallery.context_menu(item).findChildren(QMenu)[0]
    (action,) = [a for a in moves.actions() if a.text().split()[0] == target]
    action.trigger()
    (moved,) = set((page.dataset.root / target).iterdir()) - there  # (renamed when the name is taken)
    assert not source.exists() and moved.read_bytes() == content and moved.stem.startswith(source.stem)
    after = {**before, mistake.true: before[mistake.true] - 1, target: before[target] + 1}
    assert page.dataset.counts() == after
    qtbot.waitUntil(lambda: page.health["classes"] == after, timeout=30_000)  # re-checked, not a stale report
    qtbot.waitUntil(lambda: loaded_counts(window) == after, timeout=30_000)  # and the Data page reloaded it
    assert item.text().startswith("✓") and "Undo" in gallery.note.text()
    assert "no longer" not in gallery.note.text()
    menu_texts = [a.text() for a in gallery.context_menu(item).actions()]
    assert any(t.startswith("Undo: Move 1 image(s) to " + target) for t in menu_texts)  # and not a second move
    assert not any(isinstance(a.menu(), QMenu) for a in gallery.context_menu(item).actions())
    assert gallery.undo.isVisibleTo(window) and gallery.undo.isEnabled()
    qtbot.mouseClick(gallery.undo, Qt.MouseButton.LeftButton)
    assert source.read_bytes() == content and not moved.exists() and page.dataset.counts() == before
    assert not item.text().startswith("✓")
    qtbot.waitUntil(lambda: page.health["classes"] == before, timeout=30_000)
    qtbot.waitUntil(lambda: loaded_counts(window) == before, timeout=30_000)

    # the Try page, on the dataset's folder: a wrong answer moves to the model's answer, and undoes
    tried = window.try_page
    tried.set_source(outcomes[0].run_path)
    qtbot.waitUntil(lambda: tried.predictor is not None, timeout=60_000)
    tried.open_paths([page.dataset.root])
    qtbot.waitUntil(lambda: len(tried.results) == 24, timeout=60_000)
    item = next(tried.grid.item(i) for i in range(tried.grid.count())
                if tried.grid.item(i).data(Qt.ItemDataRole.UserRole).wrong)
    r = item.data(Qt.ItemDataRole.UserRole)
    source = Path(r.input.path)
    first = tried.context_menu(item).findChildren(QMenu)[0].actions()[0]
    assert first.text() == f"{r.prediction.label}  (the model's answer)"
    first.trigger()
    assert not source.exists() and page.dataset.counts()[r.prediction.label] == before[r.prediction.label] + 1
    assert item.text().startswith("✓ ✗")
    (undo,) = [a for a in tried.context_menu(item).actions() if a.text().startswith("Undo:")]
    undo.trigger()
    assert source.is_file() and page.dataset.counts() == before and item.text().startswith("✗")

    window.show_page("dataset")
    page.classes.setCurrentRow(0)
    page.thumbs.item(0).setSelected(True)
    page.move_target.setCurrentText("plums")
    qtbot.mouseClick(page.move_button, Qt.MouseButton.LeftButton)
    assert page.dataset.counts() == {"apples": 7, "limes": 8, "plums": 9}
    assert page.undo_button.isEnabled()
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    assert page.dataset.counts() == {"apples": 8, "limes": 8, "plums": 8}
    assert "apples/0.jpg" in page.dataset.images("apples")
    qtbot.mouseClick(page.redo_button, Qt.MouseButton.LeftButton)
    assert page.dataset.counts()["plums"] == 9
    qtbot.waitUntil(lambda: not window.tasks.busy(), timeout=30_000)


def test_a_mistake_outside_a_built_dataset_offers_nothing_destructive(qtbot, window, tmp_path):
    """The user's own folders are never changed: their mistakes say why, and move nothing."""
    from ftstudio.core.inference.mistakes import Mistake

    photos = make_color_folder(tmp_path / "mine", n_per_class=2, classes=2)
    gallery = window.runs_page.mistakes
    for path in (str(photos / "class_0" / "0.jpg"), None):
        m = Mistake(0, "class_0", "class_1", 0.9, np.zeros((3, 8, 8), np.uint8), path)
        item = QListWidgetItem("x")
        item.setData(Qt.ItemDataRole.UserRole, m)
        menu = gallery.context_menu(item)
        assert not menu.findChildren(QMenu)  # no "Move to class"
        (why,) = [a for a in menu.actions() if a.text().startswith("Relabel")]
        assert not why.isEnabled() and ("your own folders" in why.toolTip() or "not a file" in why.toolTip())
    assert sorted(p.name for p in (photos / "class_0").iterdir()) == ["0.jpg", "1.jpg"]


def test_refusals_are_shown_and_delete_undoes(qtbot, window, tmp_path):
    page = window.dataset_page
    assert page.create_dataset("d") and not page.create_dataset("d")
    assert "already exists" in page.banner.text()
    page.add_files([str(tmp_path / "none.png")])
    assert "Add a class first" in page.banner.text()
    page.add_class("a")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    good = make_color_folder(tmp_path / "g", n_per_class=2, classes=1) / "class_0"
    page.add_files([str(bad), str(good)])
    assert page.dataset.counts() == {"a": 2} and "refused 1" in page.banner.text() and "bad.png" in page.banner.text()
    page.thumbs.selectAll()
    page.delete_selected()
    assert page.dataset.counts() == {"a": 0}
    page.undo_stack.undo()
    assert page.dataset.counts() == {"a": 2}
    page.rename_class("a", "b/c")
    assert "name" in page.banner.text() and page.dataset.classes() == ["a"]
    qtbot.waitUntil(lambda: not window.tasks.busy(), timeout=30_000)


def test_deleted_images_are_freed_once_no_undo_can_bring_them_back(qtbot, window, tmp_path):
    """A Delete moved images into the dataset's .trash for undo, and nothing ever emptied it: deleting
    10,000 photos freed no space, in this session or any later one."""
    import os
    import time

    from ftstudio.core.datasets.builder import TRASH

    page = window.dataset_page
    good = make_color_folder(tmp_path / "g", n_per_class=4, classes=1) / "class_0"
    assert page.create_dataset("first")
    page.add_class("a")
    page.add_files([str(good)])
    first = page.dataset.root
    page.thumbs.selectAll()
    page.delete_selected()
    page.undo_stack.undo()
    page.undo_stack.redo()  # deleted again: undo could still bring them back
    assert page.dataset.counts() == {"a": 0} and len(list((first / TRASH).rglob("*.jpg"))) == 4
    assert page.create_dataset("second")  # the first one's history is forgotten: so is its trash
    assert not (first / TRASH).exists() and not page.undo_stack.canUndo()
    page.add_class("b")
    page.add_files([str(good)])
    page.thumbs.selectAll()
    page.delete_selected()
    second = page.dataset.root
    [stash] = list((second / TRASH).iterdir())
    window.shutdown()  # the window closes: nothing can undo any more
    assert not (second / TRASH).exists()
    # a trash left by a window that crashed: freed when the dataset is next opened, once a day old
    leftover = second / TRASH / "stash" / "b"
    leftover.mkdir(parents=True)
    (leftover / "x.jpg").write_bytes(b"x")
    page.reload_datasets(select=second)
    assert (leftover / "x.jpg").exists()  # recent: another window may still undo it
    past = time.time() - 2 * 24 * 3600
    os.utime(second / TRASH / "stash", (past, past))
    page.reload_datasets(select=second)
    assert not (second / TRASH).exists()


def new_dataset_for_a_big_drop(qtbot, window, monkeypatch, tmp_path, name: str):
    """(the Build data page with a new dataset ``name`` and its class "dots" shown, more photos than a drop
    copies on the GUI thread)."""
    from ftstudio.gui.pages import dataset as dataset_page

    photos = make_color_folder(tmp_path / "mine", n_per_class=dataset_page.BACKGROUND_ADD + 6, classes=1)
    answers = iter([name, "dots"])
    monkeypatch.setattr(dialogs, "ask_text", lambda *a, **k: next(answers))
    window.show_page("dataset")
    page = window.dataset_page
    qtbot.mouseClick(page.new_button, Qt.MouseButton.LeftButton)
    return page, sorted((photos / "class_0").iterdir())


def test_big_drops_and_thumbnails_stay_off_the_gui_thread(qtbot, window, monkeypatch, tmp_path):
    """A drop of many files is copied in the background and thumbnails are decoded there: 600
    phone photos at ~55 ms each froze the window for half a minute at every edit."""
    page, files = new_dataset_for_a_big_drop(qtbot, window, monkeypatch, tmp_path, "many")
    drop(page.thumbs, files)
    assert page.thumbs.count() == 0 and "Adding 70 images to dots" in page.header.text()  # not copied here
    qtbot.waitUntil(lambda: page.thumbs.count() == len(files), timeout=30_000)
    assert page.dataset.counts() == {"dots": len(files)}

    def pictures() -> int:
        return sum(not page.thumbs.item(r).icon().isNull() for r in range(page.thumbs.count()))

    qtbot.waitUntil(lambda: pictures() == len(files), timeout=30_000)  # in batches of THUMB_CHUNK
    page.refresh()
    assert pictures() == len(files)  # the redraw reuses what was decoded: nothing left to wait for
    page._thumb_cache.clear()  # as on first sight of these files
    page.refresh()
    assert page.thumbs.count() == len(files) and pictures() == 0  # listed at once, drawn later
    qtbot.waitUntil(lambda: pictures() == len(files), timeout=30_000)
    page.undo_stack.undo()  # the background add is one undoable edit
    assert page.thumbs.count() == 0 and page.dataset.counts() == {"dots": 0}


def test_a_drop_onto_a_full_disk_stops_says_why_and_undoes(qtbot, window, monkeypatch, tmp_path):
    """The disk fills up during a background drop: the copies that landed are one undoable edit and the
    banner says where and why it stopped (it said "unexpected failure", and the copies could not be undone)."""
    import errno

    page, files = new_dataset_for_a_big_drop(qtbot, window, monkeypatch, tmp_path, "full")
    real, written = Path.write_bytes, []

    def full(self, data):
        if self.name.endswith(".part"):
            written.append(self)
            if len(written) > 30:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    drop(page.thumbs, files)
    qtbot.waitUntil(lambda: "stopped" in page.banner.text(), timeout=30_000)
    monkeypatch.undo()
    text = page.banner.text()
    assert "Added 30 image(s), then stopped:" in text and "the disk is full" in text
    assert "40 file(s), from" in text and "unexpected" not in text
    assert page.dataset.counts() == {"dots": 30} and page.thumbs.count() == 30
    assert page.undo_stack.canUndo()
    page.undo_stack.undo()
    assert page.dataset.counts() == {"dots": 0}


def test_the_health_panel_leads_to_each_file_and_removes_extra_copies(qtbot, window, monkeypatch, tmp_path):
    """Healing without leaving the page: a label conflict's file is one double-click from Move to, and
    identical copies within a class go with one undoable click."""
    from ftstudio.core.datasets.builder import BuilderDataset, builder_root

    photos = make_color_folder(tmp_path / "mine", n_per_class=12, classes=2)
    ds = BuilderDataset.create("healing", ("reds", "blues"))
    ds.add_files("reds", sorted((photos / "class_0").iterdir()))
    ds.add_files("blues", sorted((photos / "class_1").iterdir()))
    ds.add_files("reds", sorted((photos / "class_0").iterdir())[:2])  # two identical copies within reds
    conflict = ds.add_files("blues", sorted((photos / "class_0").iterdir())[5:6]).added[0]  # a red among blues
    window.show_page("dataset")
    page = window.dataset_page
    page.reload_datasets(select=builder_root() / "healing")
    qtbot.waitUntil(lambda: page.health is not None and page.health["images"] == 27, timeout=30_000)
    rows = {page.health_list.topLevelItem(i).text(0): page.health_list.topLevelItem(i)
            for i in range(page.health_list.topLevelItemCount())}
    assert "Label conflict: blues, reds (2)" in rows and page.dedupe_button.text() == "Remove 2 extra copies"

    row = rows["Label conflict: blues, reds (2)"]
    files = [row.child(i) for i in range(row.childCount())]
    target = next(f for f in files if f.data(0, Qt.ItemDataRole.UserRole) == conflict)
    page.health_list.itemActivated.emit(target, 0)  # what a double-click or Enter sends
    assert page.current_class() == "blues"
    assert [i.data(Qt.ItemDataRole.UserRole) for i in page.thumbs.selectedItems()] == [conflict]
    page.move_target.setCurrentText("reds")
    qtbot.mouseClick(page.move_button, Qt.MouseButton.LeftButton)
    assert ds.counts() == {"blues": 12, "reds": 15}

    qtbot.waitUntil(lambda: page.health is not None and page.health["conflicts"] == 0, timeout=30_000)
    assert page.dedupe_button.text() == "Remove 3 extra copies"  # the moved red is now a copy in reds too
    qtbot.mouseClick(page.dedupe_button, Qt.MouseButton.LeftButton)
    assert ds.counts() == {"blues": 12, "reds": 12}
    qtbot.waitUntil(lambda: page.health["duplicates"] == [], timeout=30_000)
    assert not page.dedupe_button.isVisible()
    page.undo_stack.undo()  # the copies come back
    assert ds.counts() == {"blues": 12, "reds": 15}
