"""The Dataset page: a newcomer builds a 3-class dataset by dropping files, trains on it, relabels
one image and undoes it — all in the real window."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ftstudio.gui import dialogs
from tests.gui.conftest import set_train
from tests.helpers import make_color_folder


def drop(widget, paths, at: QPoint | None = None) -> None:
    at = at or QPoint(20, 20)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    target = widget.viewport()
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert target.acceptDrops() and enter.isAccepted()
    event = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)


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
    set_train(window, epochs=1, batch_size=8)
    qtbot.mouseClick(window.train_page.buttons["start"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(outcomes) >= 1, timeout=120_000)
    assert outcomes[0].status == "completed", outcomes[0].message
    assert outcomes[0].summary["classes"] == ["apples", "limes", "plums"]

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
