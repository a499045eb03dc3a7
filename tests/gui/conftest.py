"""GUI test set-up: a real main window on the offscreen platform, dialogs answered, nothing launched.

Settings live under FTSTUDIO_HOME (a temp dir per test, see tests/conftest.py), so every test
starts from defaults and never touches the user's QSettings.
"""

from __future__ import annotations

import dataclasses

import pytest
import pytestqt  # noqa: F401  (a test dependency: missing, the GUI tests fail instead of skipping)


class Answers:
    """Records the questions the app asked and answers them (``yes`` by default)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.yes = True
        self.folder: str | None = None
        self.file: str | None = None
        self.save_file: str | None = None
        self.opened: list[str] = []


@pytest.fixture(autouse=True)
def answers(monkeypatch) -> Answers:
    from ftstudio.gui import dialogs

    a = Answers()

    def confirm(parent, title, text, yes="OK"):
        a.asked.append(text)
        return a.yes

    monkeypatch.setattr(dialogs, "confirm", confirm)
    monkeypatch.setattr(dialogs, "choose_folder", lambda *args, **kw: a.folder)
    monkeypatch.setattr(dialogs, "choose_file", lambda *args, **kw: a.file)
    monkeypatch.setattr(dialogs, "choose_save_file", lambda *args, **kw: a.save_file)
    monkeypatch.setattr(dialogs, "reveal", lambda path: a.opened.append(str(path)) or True)
    return a


@pytest.fixture
def make_window(qtbot):
    """Build real main windows (closed, with their threads joined, at teardown)."""
    from ftstudio.gui.app import configure
    from ftstudio.gui.main_window import MainWindow

    made = []

    def make(settle: bool = True, resize: bool = True) -> MainWindow:
        from PySide6.QtWidgets import QApplication

        configure(QApplication.instance())
        w = MainWindow()
        qtbot.addWidget(w)
        if resize:
            w.resize(1280, 800)
        w.show()
        made.append(w)
        if settle:
            qtbot.waitUntil(w.settled, timeout=60_000)
        return w

    yield make
    for w in made:
        if w.isVisible():
            w.close()
        assert not w.controller.running, "a run was left running"
        assert not w.tasks.busy(), "a background task was left running"


@pytest.fixture
def window(make_window):
    return make_window()


def set_train(window, **changes) -> None:
    """Change hyper-parameters through the session, as the form does."""
    window.session.set_train(dataclasses.replace(window.session.train, **changes))


class Outcomes(list):
    """Every finished/failed outcome of a window's runs, in order."""

    def __init__(self, window) -> None:
        super().__init__()
        window.controller.finished.connect(self.append)
        window.controller.failed.connect(self.append)


@pytest.fixture
def outcomes(window) -> Outcomes:
    return Outcomes(window)
