"""The Try page: a dropped image gets its top-k bars; a class-sorted folder can be filtered and sorted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from ftstudio.core.inference.predict import predict
from ftstudio.gui.pages.try_page import TryPage
from ftstudio.gui.workers import Tasks
from tests.gui.drop_helpers import drop_files
from tests.ft_helpers import SOURCE_CLASSES, source_run  # noqa: F401  (fixture)
from tests.helpers import digit_images


@pytest.fixture
def page(qtbot):
    tasks = Tasks()
    page = TryPage(tasks)
    qtbot.addWidget(page)
    page.resize(1000, 640)
    page.show()
    yield page
    tasks.shutdown()


def _drop(page: TryPage, paths) -> None:
    drop_files(page, paths)


def _folder(root, n=4):
    images, labels = digit_images(n, 28, seed=5)
    for i, (img, label) in enumerate(zip(images, labels)):
        if str(label) in SOURCE_CLASSES:
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / str(label) / f"{i}.png")
    return root


def test_dropping_an_image_shows_its_top_classes_as_bars(qtbot, page, source_run, tmp_path):  # noqa: F811
    image = min(_folder(tmp_path / "digits").rglob("*.png"))
    page.set_source(source_run)
    qtbot.waitUntil(lambda: page.predictor is not None, timeout=120_000)
    _drop(page, [image])
    qtbot.waitUntil(lambda: bool(page.bars), timeout=120_000)
    expected = predict(source_run, [image], top_k=5).predictions[0]
    values = page.bar_values()
    assert [name for name, _ in values] == [name for name, _ in expected.top]
    assert [v for _, v in values] == pytest.approx([p for _, p in expected.top], abs=1e-3)
    assert expected.label in page.answer.text()
    page.explain.setChecked(True)  # the overlay is computed in the background
    qtbot.waitUntil(lambda: page.method.text().startswith("Heat map: Grad-CAM"), timeout=120_000)
    assert not page.picture.pixmap().isNull()


def test_a_class_folder_filters_wrong_and_uncertain_and_sorts_by_confidence(qtbot, page, source_run, tmp_path):  # noqa: F811
    folder = _folder(tmp_path / "digits")
    (folder / "0" / "broken.png").write_bytes(b"nope")
    wrong_index = page.filter.findData("wrong")
    assert not page.filter.model().item(wrong_index).isEnabled()  # nothing with known answers yet
    page.set_source(source_run)
    page.open_paths([folder])  # before the model has loaded: predicted once it has
    qtbot.waitUntil(lambda: len(page.results) == 20, timeout=120_000)
    assert "1 file(s) skipped" in page.banner.label.text() and "broken.png" in page.banner.label.text()
    assert page.has_truth and page.filter.model().item(wrong_index).isEnabled()
    page.sort.setCurrentIndex(page.sort.findData("low"))
    shown = [page.grid.item(i).data(Qt.ItemDataRole.UserRole).prediction.probability for i in range(page.grid.count())]
    assert shown == sorted(shown) and len(shown) == 20
    page.filter.setCurrentIndex(wrong_index)
    wrong = [r for r in page.results if r.truth != r.prediction.label]
    assert page.grid.count() == len(wrong) > 0  # a two-epoch model gets some wrong
    page.filter.setCurrentIndex(page.filter.findData("uncertain"))
    assert page.grid.count() == sum(r.prediction.probability < 0.6 for r in page.results)


def test_an_in_memory_image_and_a_bad_model_folder(qtbot, page, source_run, tmp_path):  # noqa: F811
    page.set_source(tmp_path)  # an empty folder: not a model
    qtbot.waitUntil(lambda: page.banner.isVisible(), timeout=120_000)
    assert "not a run folder" in page.banner.label.text()
    page.set_source(source_run)
    qtbot.waitUntil(lambda: page.predictor is not None, timeout=120_000)
    page.open_image(np.full((1, 8, 8), 128, np.uint8), "gallery image", truth="3")
    qtbot.waitUntil(lambda: bool(page.bars), timeout=120_000)
    assert page.results[0].truth == "3" and page.explain.isChecked()


def test_mistakes_gallery_lists_per_class_metrics_and_opens_a_mistake_in_try(qtbot, page, source_run):  # noqa: F811
    from ftstudio.gui.widgets.mistakes import MistakesPanel

    panel = MistakesPanel(page.tasks)
    qtbot.addWidget(panel)
    panel.set_run(source_run, measure=True)
    qtbot.waitUntil(lambda: panel.assessment is not None, timeout=120_000)
    report = panel.assessment.report
    assert panel.table.rowCount() == len(SOURCE_CLASSES) + 2
    assert panel.table.item(len(SOURCE_CLASSES), 0).text() == "macro average"
    assert panel.table.item(0, 1).text() == f"{report['per_class']['0']['precision']:.3f}"
    mistakes = panel.mistakes()
    assert mistakes and all(m.true != m.predicted for m in mistakes)
    with qtbot.waitSignal(panel.open_in_try) as opened:
        panel.gallery.itemActivated.emit(panel.gallery.item(0))
    run, mistake = opened.args
    page.open_mistake(run, mistake)
    qtbot.waitUntil(lambda: bool(page.bars), timeout=120_000)
    assert page.results[0].truth == mistake.true and page.results[0].prediction.label == mistake.predicted
    assert page.results[0].prediction.probability == pytest.approx(mistake.confidence, abs=1e-4)
    qtbot.waitUntil(lambda: page.method.text().startswith("Heat map"), timeout=120_000)


def test_a_large_photo_is_shown_from_the_background(qtbot, page, source_run, tmp_path):  # noqa: F811
    """A 12-megapixel JPEG takes ~80 ms to decode even scaled: at every arrow key on the GUI thread."""
    from ftstudio.gui.pages.try_page import BIG_PICTURE

    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((2000, 1500)).save(photo)
    assert 2000 * 1500 > BIG_PICTURE
    page.set_source(source_run)
    qtbot.waitUntil(lambda: page.predictor is not None, timeout=120_000)
    _drop(page, [photo])
    qtbot.waitUntil(lambda: page.picture.pixmap().width() == 768, timeout=60_000)  # the photo, scaled to fit
    page._pictures.clear()  # as when it is first selected
    page._show_selected()
    assert page.picture.pixmap().width() < 768  # its thumbnail meanwhile, not a wait
    qtbot.waitUntil(lambda: page.picture.pixmap().width() == 768, timeout=60_000)
    page._show_selected()
    assert page.picture.pixmap().width() == 768  # kept for going back to it


def test_a_big_folder_is_walked_off_the_gui_thread_and_its_limit_is_said(qtbot, page, source_run, tmp_path, monkeypatch):  # noqa: F811,E501
    """A dropped tree was walked on the GUI thread (a /usr took 2.5 s here, the window frozen), and a walk over
    the image limit raised there, unseen: nothing happened on screen."""
    import threading

    from ftstudio.core.inference import predict as predict_module

    folder = _folder(tmp_path / "digits")
    walked_on = []
    real = predict_module.image_paths

    def image_paths(paths, cancel=None):
        walked_on.append(threading.current_thread() is threading.main_thread())
        return real(paths, cancel) if cancel is not None else real(paths)

    monkeypatch.setattr(predict_module, "image_paths", image_paths)
    page.set_source(source_run)
    qtbot.waitUntil(lambda: page.predictor is not None, timeout=120_000)
    monkeypatch.setattr(predict_module, "MAX_FILES", 5)
    page.open_paths([folder])
    assert page.count.text() == "Looking for images…"
    qtbot.waitUntil(lambda: page.banner.isVisible(), timeout=60_000)
    assert "over 5 images; predict on a smaller folder" in page.banner.label.text()
    assert walked_on == [False] and page.count.text() == ""
    monkeypatch.setattr(predict_module, "MAX_FILES", 1_000_000)
    page.open_paths([folder])
    qtbot.waitUntil(lambda: len(page.results) == 20, timeout=120_000)
    assert walked_on == [False, False]
