"""Each page built from real core objects: change the model (the session), assert on the view."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage, QPalette
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QListWidget,
                               QTableWidget, QToolButton)

from ftstudio.core.config.recipe import DatasetSpec, Recipe, TrainConfig
from ftstudio.core.config.schema import field_help
from tests.gui.conftest import set_train
from tests.helpers import make_digit_folder

PAGES = ("data", "model", "train", "runs", "export")


def _colours(image: QImage, step: int = 7) -> int:
    return len({image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)})


def _train_tiny_runs(n: int) -> list:
    """Real past runs in the (temporary) runs folder."""
    from ftstudio.core.engine import train

    recipe = Recipe(name="past", data=DatasetSpec(per_class=20), train=TrainConfig(epochs=2, batch_size=32))
    return [train(recipe.replace(name=f"past-{i}")).run for i in range(n)]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_builds_and_renders_something(window, page):
    window.show_page(page)
    assert window.stack.currentWidget() is window.pages[page]
    image = window.pages[page].grab().toImage()
    assert image.width() > 500 and image.height() > 400
    assert _colours(image) > 8, f"the {page} page rendered (nearly) blank"


def test_data_page_shows_samples_counts_and_tracks_the_spec(qtbot, window):
    data = window.data_page
    bundle = window.session.bundle
    assert bundle is not None and bundle.name == "digits"
    assert data.counts.values == bundle.class_counts("train") and data.counts.labels == list(bundle.classes)
    assert {item.caption for item in data.samples.items} == set(bundle.classes)
    assert "1×8×8" in data.header.text()

    data.split_form.widgets["val_split"].setValue(0.5)
    data.split_form.widgets["per_class"].setValue(30)
    assert window.session.data_spec.val_split == 0.5 and window.session.data_spec.per_class == 30
    qtbot.waitUntil(lambda: window.session.bundle is not bundle and max(data.counts.values) == 30, timeout=30_000)

    for i in range(2, data.classes.count()):  # keep classes 0 and 1 only
        data.classes.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert window.session.data_spec.classes == ("0", "1")
    qtbot.waitUntil(lambda: data.counts.labels == ["0", "1"], timeout=30_000)
    data.classes.item(1).setCheckState(Qt.CheckState.Unchecked)  # one class is not a classifier
    assert "at least two" in data.banner.text() and window.session.data_spec.classes == ("0", "1")
    data.all_classes.click()
    qtbot.waitUntil(lambda: len(data.counts.labels) == 10, timeout=30_000)


def test_augmentation_preview_shows_what_training_sees(window):
    data = window.data_page
    assert not data.preview.items and "off" in data.preview.placeholder
    data.augment_form.widgets["rotation"].setValue(40.0)
    assert window.session.data_spec.augment.rotation == 40.0
    items = data.preview.items
    assert len(items) == 24 and items[0].caption == "original" and items[1].caption == "random"
    assert not np.array_equal(items[0].image, items[1].image)
    assert items[1].image.shape == items[0].image.shape and items[1].image.dtype == np.uint8


def test_a_dropped_folder_becomes_the_dataset_with_warnings_in_place(qtbot, window, tmp_path):
    folder = make_digit_folder(tmp_path / "drop", n_per_class=20, classes=range(3))
    for extra in list((folder / "digit_2").iterdir())[4:]:
        extra.unlink()  # digit_2 keeps 4 images: imbalanced
    (folder / "digit_0" / "broken.png").write_bytes(b"not a png")
    window.show_page("runs")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert window.current_page() == "data" and window.session.data_spec.name == str(folder)
    data = window.data_page
    qtbot.waitUntil(lambda: data.counts.labels == ["digit_0", "digit_1", "digit_2"], timeout=30_000)
    warning = data.banner.text()
    assert "imbalanced" in warning and "broken.png" in warning
    assert data.dataset.currentData() == str(folder)


def test_open_folder_shortcut_uses_the_chosen_folder(qtbot, window, answers, tmp_path):
    answers.folder = str(make_digit_folder(tmp_path / "chosen", n_per_class=6, classes=range(2)))
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert window.session.data_spec.name == answers.folder
    qtbot.waitUntil(lambda: window.data_page.counts.labels == ["digit_0", "digit_1"], timeout=30_000)


def test_model_page_summarises_presets_and_reports_bad_files(qtbot, window, answers, tmp_path):
    model = window.model_page
    assert model.analysis is not None and model.analysis.output_shape == (10,)
    assert set(model.canvas.layer_cards()) == {i.path for i in model.analysis.layers}
    assert f"{model.analysis.params:,}" in model.header.text()
    cnn = next(i for i in range(model.presets.count()) if model.presets.item(i).data(Qt.ItemDataRole.UserRole) == "cnn")
    model.presets.setCurrentRow(cnn)
    assert window.session.model == "cnn"
    qtbot.waitUntil(lambda: model.is_analysed() and any(i.type == "Conv2d" for i in model.analysis.layers),
                    timeout=30_000)
    assert model.canvas.cards["input"].shape.text() == "1×8×8" and model.canvas.output_card.shape.text() == "10"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": [{"type": "Linear", "params": {"out_features": -3}}]}))
    answers.file = str(bad)
    model.actions_["open"].trigger()
    assert "out_features" in model.banner.text()
    assert window.session.model == "cnn"  # the bad file changed nothing

    spec = model.model_spec()
    model.set_model(spec)  # a ModelSpec in, the same spec out (the composer's contract)
    assert model.model_spec() == spec and model.model_value() == spec.to_dict()


def test_train_form_defaults_tooltips_and_dependent_fields(window):
    form = window.train_page.form
    defaults = TrainConfig()
    values = form.values()
    for name, value in values.items():
        assert value == getattr(defaults, name), name
        assert field_help(TrainConfig, name) in form.widgets[name].toolTip()
    assert not form.widgets["momentum"].isEnabled()
    form.widgets["optimizer"].setCurrentIndex(form.widgets["optimizer"].findData("sgd"))
    assert form.widgets["momentum"].isEnabled() and window.session.train.optimizer == "sgd"
    form.widgets["early_stopping"].setValue(3)
    form.widgets["grad_clip"].setValue(1.5)
    form.widgets["lr"].stepBy(1)
    t = window.session.train
    assert t.early_stopping == 3 and t.grad_clip == 1.5 and t.lr == pytest.approx(0.002)
    form.widgets["early_stopping"].setValue(form.widgets["early_stopping"].minimum())
    assert window.session.train.early_stopping is None and form.widgets["early_stopping"].text() == "Off"
    window.train_page.reset.click()
    assert window.session.train == TrainConfig()


def test_runs_page_lists_overlays_deletes_with_confirmation_and_reveals(qtbot, make_window, answers):
    runs_made = _train_tiny_runs(2)
    window = make_window()
    window.show_page("runs")
    page = window.runs_page
    assert set(page.run_paths()) == {r.path for r in runs_made}
    first, second = runs_made
    assert page.row_texts(first.path)["Status"] == "completed"
    page.table.selectAll()
    assert len(page.plots.names) == 2 and "2 runs selected" in page.details.toPlainText()
    page.select(first.path)
    assert "past-0" in page.details.toPlainText() and "Checkpoints" in page.details.toPlainText()
    page.buttons["reveal"].click()
    assert answers.opened == [str(first.path)]

    answers.yes = False
    page.buttons["delete"].click()
    assert answers.asked and first.path.exists()
    answers.yes = True
    page.buttons["delete"].click()
    assert not first.path.exists() and page.run_paths() == [second.path]


def test_use_settings_puts_a_past_run_into_the_editors(make_window):
    run = _train_tiny_runs(1)[0]
    window = make_window()
    window.show_page("runs")
    window.runs_page.select(run.path)
    window.runs_page.buttons["reuse"].click()
    assert window.current_page() == "train"
    assert window.session.train.epochs == 2 and window.session.train.batch_size == 32
    assert window.session.data_spec.per_class == 20 and window.session.model == "mlp"
    assert window.train_page.form.widgets["batch_size"].value() == 32


def test_every_control_has_a_tooltip(window):
    missing = []
    for kind in (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QListWidget, QTableWidget):
        for w in window.findChildren(kind):
            if w.objectName().startswith("qt_") or w.parent() is not None and w.parent().objectName().startswith("qt_"):
                continue  # Qt's own internals (scroll-area buttons, spin-box line edits)
            tip = w.toolTip() or (w.defaultAction().toolTip() if isinstance(w, QToolButton) and w.defaultAction()
                                  else "")
            if isinstance(w, QLineEdit) and isinstance(w.parent(), (QAbstractSpinBox, QComboBox)):
                continue
            if not tip and w.isVisibleTo(window):
                missing.append(f"{type(w).__name__} {w.objectName() or getattr(w, 'text', lambda: '')()}")
    assert not missing, missing


def test_plots_follow_a_dark_palette(window):
    app = QApplication.instance()
    old = app.palette()
    dark = QPalette(old)
    for role, colour in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.Base, "#17181a"),
                         (QPalette.ColorRole.Text, "#e8eaed"), (QPalette.ColorRole.WindowText, "#e8eaed")):
        dark.setColor(role, QColor(colour))
    try:
        app.setPalette(dark)
        QApplication.processEvents()
        brush = window.train_page.plots.loss_plot.backgroundBrush().color()
        assert brush.name() == "#17181a"
        assert window.runs_page.plots.acc_plot.backgroundBrush().color().name() == "#17181a"
    finally:
        app.setPalette(old)
        QApplication.processEvents()
    assert window.train_page.plots.loss_plot.backgroundBrush().color() == old.color(QPalette.ColorRole.Base)


def test_export_page_says_when_the_exporter_is_missing(make_window, monkeypatch):
    from ftstudio.gui.pages import export

    monkeypatch.setattr(export, "export_available", lambda: False)
    _train_tiny_runs(1)
    window = make_window()
    window.show_page("export")
    page = window.export_page
    assert page.selected_run() is not None
    assert "not part of this build" in page.banner.text() and not page.export_button.isEnabled()


def test_training_settings_reach_the_model_memory_fit(window):
    set_train(window, batch_size=512)
    assert "to train at batch size 512 — fits" in window.model_page.memory.text()
    set_train(window, optimizer="sgd", momentum=0.0)  # no optimizer state at all
    assert "Optimizer state: 0 MB" in window.model_page.memory.toolTip()
    box = window.train_page.form.widgets["grad_checkpoint"]  # the Train page's switch reaches the estimate
    box.click()
    assert window.session.train.grad_checkpoint and window.model_page.train_settings[-1] is True


def test_export_failure_is_a_message_not_a_crash(qtbot, make_window, answers, tmp_path):
    from ftstudio.gui.pages.export import export_available

    assert export_available(), "ftstudio.core.export could not be found"
    _train_tiny_runs(1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    window = make_window()
    window.show_page("export")
    page = window.export_page
    qtbot.waitUntil(lambda: bool(page.formats), timeout=60_000)
    answers.folder = str(blocker / "export")  # cannot be created: its parent is a file
    page.choose.click()
    assert page.folder.text() == answers.folder
    page.set_selected_formats(["safetensors"])
    page.export_button.click()
    qtbot.waitUntil(lambda: not page.exporting, timeout=60_000)
    assert "Export failed" in page.banner.text() and "a-file" in page.banner.text()
    assert page.report is None and page.export_button.isEnabled() and window.isVisible()


def _click_sidebar(qtbot, window, key: str) -> None:
    from ftstudio.gui.navigation import PAGES as ORDER

    sidebar = window.sidebar
    rect = sidebar.visualItemRect(sidebar.item(ORDER.index(key)))
    qtbot.mouseClick(sidebar.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_pages_not_needed_at_start_are_made_when_first_shown_wired_and_with_their_settings(qtbot, make_window):
    from ftstudio.gui.navigation import PAGES as ORDER
    from ftstudio.gui.settings import settings, write_json

    runs_made = _train_tiny_runs(2)
    write_json(settings(), "export/formats", ["safetensors"])  # kept by an earlier session
    window = make_window(settle=False)
    lazy = ("dataset", "runs", "export", "try")
    assert not any(window.pages.made(key) for key in lazy), "made before the first paint"
    assert window.stack.count() == len(ORDER)

    _click_sidebar(qtbot, window, "runs")  # before the engine has loaded
    assert window.pages.made("runs") and not window.pages.made("export") and not window.pages.made("try")
    runs = window.runs_page
    assert window.stack.currentWidget() is runs and window.stack.indexOf(runs) == ORDER.index("runs")
    assert window.stack.count() == len(ORDER) and window.current_page() == "runs"
    assert set(runs.run_paths()) == {r.path for r in runs_made} and "2 run(s)" in runs.header.text()
    assert runs.mistakes.relabeler is window.relabeler and not window.pages.made("dataset")  # wired, page not made

    qtbot.waitUntil(window.settled, timeout=60_000)
    _click_sidebar(qtbot, window, "export")  # after it: the formats the engine offers still load
    export = window.export_page
    assert window.stack.currentWidget() is export and window.stack.indexOf(export) == ORDER.index("export")
    qtbot.waitUntil(lambda: bool(export.formats), timeout=60_000)
    assert export.selected_formats() == ["safetensors"]
    assert {export.run.itemData(i) for i in range(export.run.count())} == {str(r.path) for r in runs_made}
    _click_sidebar(qtbot, window, "data")  # a page made at start comes back as it was
    assert window.stack.currentWidget() is window.data_page and not window.pages.made("try")


def test_a_relabel_from_a_gallery_before_the_build_page_exists_makes_it_and_joins_its_undo(qtbot, make_window):
    """The galleries hold a stand-in for the Build data page (made on first need): moving an image
    through it makes the page, which selects that dataset; the gallery's Undo reaches the edit."""
    import io

    from PIL import Image

    from ftstudio.core.datasets.builder import BuilderDataset

    ds = BuilderDataset.create("shapes", ("circle", "square"))
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, "PNG")
    rel = ds.add_bytes("circle", "a.png", png.getvalue())
    window = make_window(settle=False)
    edits = []
    window.relabeler.edited.connect(lambda: edits.append(1))
    assert not window.pages.made("dataset")
    assert window.relabeler.relabel_classes(str(ds.path(rel))) == ["circle", "square"]
    assert not window.pages.made("dataset")  # asking which classes makes nothing

    moved = window.relabeler.relabel_image(str(ds.path(rel)), "square")
    page = window.dataset_page
    assert window.pages.made("dataset") and page.dataset.root == ds.root
    assert page.undo_stack is window.relabeler.undo_stack
    assert ds.counts() == {"circle": 0, "square": 1} and moved == str(ds.path(ds.images("square")[0]))
    assert edits and page.undo_button.isEnabled()
    window.relabeler.undo_stack.undo()  # what a gallery's Undo button does
    assert ds.counts() == {"circle": 1, "square": 0} and len(edits) >= 2


def test_runs_page_details_show_the_baseline_before_fine_tuning(tmp_path):
    from ftstudio.gui.pages.runs import _details_html

    summary = {"name": "ft", "lineage": {"run_id": "src", "strategy": "head"},
               "baseline": {"val_accuracy": 0.1, "val_loss": 9.7, "count": 50, "after_bn": {"val_accuracy": 0.588}},
               "bn": {"applied": "adapt", "shift": 1.7}}
    text = _details_html(tmp_path, summary)
    assert "Before training" in text and "10.0% val acc, loss 9.700; 58.8% with BatchNorm adapted" in text
    assert "BatchNorm: adapt (shift 1.70 nats)" in text
    assert "Before training" not in _details_html(tmp_path, {"name": "plain"})


def test_runs_page_without_runs_shows_a_hint_not_empty_axes(qtbot, window):
    """Empty axes told a newcomer nothing and built pyqtgraph before the first paint: the Runs page was
    the slowest to be ready (#19). The plots appear once there are curves to draw."""
    window.show_page("runs")
    plots = window.runs_page.plots
    qtbot.waitUntil(plots.placeholder.isVisible)
    assert not plots._built
    plots.set_runs([("a", [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.5}])])
    assert plots._built and not plots.placeholder.isVisible()
    assert plots.names == ["a"]
    qtbot.waitUntil(lambda: plots.acc_plot.isVisible() and plots.loss_plot.isVisible())
