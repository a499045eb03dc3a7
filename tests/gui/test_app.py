"""Starting the app: before torch, screenshots, no display, settings that survive a restart, shortcuts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from ftstudio.gui.settings import settings
from tests.gui.conftest import Outcomes, set_train
from tests.helpers import ROOT, cli


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    return env


def test_the_window_appears_before_torch_is_imported(tmp_path):
    code = textwrap.dedent("""
        import sys, time
        from ftstudio.gui.app import make_app
        from ftstudio.gui.main_window import MainWindow
        app = make_app()
        window = MainWindow()
        window.show()
        shown_without_torch = "torch" not in sys.modules
        deadline = time.monotonic() + 120
        while not window.settled() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        print(shown_without_torch, "torch" in sys.modules, window.device.count() >= 2,
              window.session.bundle is not None)
        window.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         env=_env(QT_QPA_PLATFORM="offscreen", FTSTUDIO_HOME=str(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "True"], out.stdout + out.stderr


@pytest.mark.parametrize("page", ["train", "wizard"])
def test_screenshot_renders_a_page_at_1280x800_and_exits_0(tmp_path, page):
    png = tmp_path / f"{page}.png"
    out = cli("--screenshot", str(png), "--page", page,
              env={"QT_QPA_PLATFORM": "offscreen", "FTSTUDIO_HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
                   "PYTHONPROFILEIMPORTTIME": "1"})
    assert out.returncode == 0, out.stderr
    # no training warm-up for a window that closes at once: importing torch._dynamo kept it 1 s longer
    assert "| torch._dynamo\n" not in out.stderr and "| torch\n" in out.stderr
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1280, 800)
    assert len({image.pixel(x, y) for x in range(0, 1280, 16) for y in range(0, 800, 16)}) > 20
    if page == "wizard":  # the wizard itself, not the main window: its first page's header is white
        assert "not part of this build" not in out.stderr
        assert image.pixelColor(640, 10).lightness() > 240 and image.pixelColor(640, 790).lightness() < 250


def test_screenshot_rejects_an_unknown_page(tmp_path):
    out = cli("--screenshot", str(tmp_path / "x.png"), "--page", "nope",
              env={"QT_QPA_PLATFORM": "offscreen", "FTSTUDIO_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "--page nope" in out.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="displays are a Linux question")
def test_without_a_display_it_explains_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(FTSTUDIO_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "ftstudio"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1
    assert "no display found" in out.stderr and "ftstudio --help" in out.stderr
    assert "Traceback" not in out.stderr and "Aborted" not in out.stderr


def test_settings_persist_across_a_new_window(qtbot, make_window, tmp_path):
    first = make_window()
    assert settings().fileName().startswith(os.environ["FTSTUDIO_HOME"])  # never the user's real settings
    set_train(first, epochs=7, lr=0.005, optimizer="sgd")
    first.data_page.split_form.widgets["val_split"].setValue(0.3)
    first.train_page.name.setText("my run")
    first.train_page.name.textEdited.emit("my run")
    lenet = next(i for i in range(first.model_page.presets.count())
                 if first.model_page.presets.item(i).data(Qt.ItemDataRole.UserRole) == "lenet")
    first.model_page.presets.setCurrentRow(lenet)
    first.train_page.log_scale.setChecked(True)
    first.resize(1000, 650)
    first.show_page("runs")
    first.close()

    second = make_window(resize=False)
    t = second.session.train
    assert (t.epochs, t.lr, t.optimizer) == (7, 0.005, "sgd")
    assert second.train_page.form.widgets["epochs"].value() == 7
    assert second.session.data_spec.val_split == 0.3
    assert second.data_page.split_form.widgets["val_split"].value() == pytest.approx(0.3)
    assert second.session.model == "lenet" and second.model_page.model_value() == "lenet"
    assert second.train_page.name.text() == "my run"
    assert second.train_page.log_scale.isChecked()
    assert second.current_page() == "runs"
    # geometry: the offscreen screen is 800 px wide, so Qt fits the width to it; the height is ours
    assert second.height() == 650 and second.width() < 1280


def test_unreadable_settings_fall_back_to_defaults(make_window):
    store = settings()
    store.setValue("session/recipe", "{not json")
    store.setValue("window/page", "nowhere")
    store.sync()
    window = make_window()
    assert window.session.train.epochs == 10 and window.current_page() == "data"


def test_keyboard_shortcuts(qtbot, window):
    window.activateWindow()
    from ftstudio.gui.main_window import PAGES

    assert PAGES[:2] == ("data", "dataset") and PAGES[-1] == "try"
    for i, page in enumerate(PAGES, start=1):
        qtbot.keyClick(window, getattr(Qt.Key, f"Key_{i}"), Qt.KeyboardModifier.ControlModifier)
        assert window.current_page() == page
    outcomes = Outcomes(window)
    set_train(window, epochs=1)
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert window.controller.running and window.current_page() == "train"
    qtbot.waitUntil(lambda: len(outcomes) == 1, timeout=60_000)
    assert outcomes[0].status == "completed"
    stop_keys = [s.toString() for s in window.actions_["stop"].shortcuts()]
    assert stop_keys == ["Esc", "Ctrl+."]
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not window.isVisible()
