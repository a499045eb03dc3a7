"""Camera capture on the Build data page: hidden without Qt Multimedia or a camera; a frame from the
preview's video sink becomes an image in the selected class, undoable.

Qt Multimedia comes with PySide6-Addons (``ftstudio[camera]``, part of ``[test]``): these tests use
the real module — only its absence and a present camera are simulated."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from ftstudio.gui.pages.dataset import DatasetPage
from ftstudio.gui.widgets import camera
from ftstudio.gui.workers import Tasks


@pytest.fixture
def make_page(qtbot):
    made = []

    def make() -> DatasetPage:
        tasks = Tasks()
        page = DatasetPage(tasks)
        qtbot.addWidget(page)
        made.append(tasks)
        assert page.create_dataset("cam", ("apples", "limes"))
        page.select_class("limes")
        page.show()
        return page

    yield make
    for tasks in made:
        tasks.shutdown()


def test_the_camera_button_is_hidden_when_qt_multimedia_cannot_be_imported(make_page, monkeypatch):
    monkeypatch.setitem(sys.modules, "PySide6.QtMultimedia", None)  # as if PySide6-Addons were not installed
    assert camera.multimedia() is None and camera.video_inputs() == []
    page = make_page()
    assert page.camera_button.isHidden()


def test_the_camera_button_shows_only_with_a_camera(make_page, monkeypatch):
    mm = camera.multimedia()
    assert mm is not None, "Qt Multimedia (PySide6-Addons, ftstudio[camera]) should import here"
    page = make_page()
    assert page.camera_button.isHidden() == (not mm.QMediaDevices.videoInputs())  # none on a test machine
    monkeypatch.setattr(camera, "video_inputs", lambda: [mm.QCameraDevice()])  # one plugged in
    page.probe_cameras()
    assert not page.camera_button.isHidden() and page.camera_button.isEnabled()
    monkeypatch.setattr(camera, "video_inputs", lambda: [])  # and taken away again
    page.probe_cameras()
    assert page.camera_button.isHidden()


@pytest.mark.qt_log_ignore("No RHI backend")  # offscreen: frames are converted on the CPU
def test_a_preview_frame_is_captured_into_the_selected_class(qtbot, make_page):
    mm = camera.multimedia()
    page = make_page()
    dialog = page.make_camera_dialog(None, "limes")  # no device: frames come from the sink, as a camera's would
    dialog.show()
    assert not dialog.capture_button.isEnabled()  # nothing to capture before the first frame
    picture = QImage(64, 48, QImage.Format.Format_RGB32)
    picture.fill(QColor(200, 40, 30))
    with qtbot.waitSignal(dialog.sink.videoFrameChanged):
        dialog.sink.setVideoFrame(mm.QVideoFrame(picture))
    assert dialog.capture_button.isEnabled() and not dialog.preview.pixmap().isNull()
    qtbot.mouseClick(dialog.capture_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.capture_button, Qt.MouseButton.LeftButton)
    assert page.dataset.images("limes") == ["limes/camera-2.png", "limes/camera.png"]
    pixels = np.asarray(Image.open(page.dataset.path("limes/camera.png")))
    assert pixels.shape == (48, 64, 3) and np.abs(pixels.astype(int) - (200, 40, 30)).max() <= 2
    assert page.thumbs.count() == 2
    page.undo_stack.undo()
    assert page.dataset.images("limes") == ["limes/camera.png"]
    dialog.close()


def test_a_camera_gone_since_the_probe_says_so_and_captures_nothing(qtbot, make_page, monkeypatch):
    mm = camera.multimedia()
    monkeypatch.setattr(camera, "video_inputs", lambda: [mm.QCameraDevice()])  # seen, then unplugged
    page = make_page()
    qtbot.mouseClick(page.camera_button, Qt.MouseButton.LeftButton)
    dialog = page.camera_dialog
    assert dialog.isVisible() and dialog.camera is not None
    assert dialog.preview.text().startswith("The camera failed: ") and not dialog.capture_button.isEnabled()
    dialog.close()
    assert page.dataset.images("limes") == []


def test_an_empty_frame_captures_nothing(qtbot, make_page):
    page = make_page()
    dialog = page.make_camera_dialog(None, "limes")
    assert camera.frame_image(None).isNull()
    dialog.capture()
    assert page.dataset.images("limes") == []
    dialog.close()


def test_the_camera_extra_pins_addons_to_the_installed_essentials():
    """PySide6-Addons must be exactly Essentials' version: a bump of one without the other breaks the import."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras["camera"] == [f"PySide6-Addons=={version('PySide6-Essentials')}"]
    assert version("PySide6-Addons") == version("PySide6-Essentials") and "ftstudio[camera]" in extras["test"]
