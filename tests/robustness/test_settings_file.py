"""The app's settings file as a device, FIFO, folder, huge file or junk: the app starts with its
defaults, the file is set aside (renamed, kept for the user) and the status bar says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.gui.conftest import make_window  # noqa: F401  (fixture)
from tests.helpers import ROOT


def _ini():
    from ftstudio.gui.settings import settings_file

    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _asides(ini):
    return sorted(ini.parent.glob(f"{ini.name}.unreadable-*"))


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_the_app_starts_when_its_settings_file_would_block_or_never_end(tmp_path, kind):
    ini = _ini()
    if kind == "fifo":
        os.mkfifo(ini)
    else:
        ini.symlink_to(kind)
    shot = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, "-m", "ftstudio", "--screenshot", str(shot), "--page", "data"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # a hang fails here, not forever
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert shot.stat().st_size > 0
    [aside] = _asides(ini)
    assert aside.is_fifo() if kind == "fifo" else os.readlink(aside) == kind  # moved, not deleted


def _sparse(path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)  # no disk used


JUNK = {
    "folder": lambda p: (p.mkdir(), (p / "mine.txt").write_text("kept")),
    "huge": lambda p: _sparse(p, 10**10),
    "random bytes": lambda p: p.write_bytes(bytes(range(256)) * 20),
    "not INI text": lambda p: p.write_text("{\"this is\": \"json\"}\n<html>\n"),
}


@pytest.mark.parametrize("kind", JUNK)
def test_junk_settings_are_set_aside_and_the_status_bar_says_so(make_window, kind):  # noqa: F811
    ini = _ini()
    JUNK[kind](ini)
    before = os.stat(ini)
    window = make_window()
    assert window.isVisible() and window.session.model == "mlp"  # the defaults
    message = window.statusBar().currentMessage()
    assert message.startswith("Settings unreadable (") and "defaults in use" in message, message
    [aside] = _asides(ini)
    assert aside.name in message
    assert os.stat(aside).st_ino == before.st_ino  # the same file, renamed: nothing of the user's is lost
    window.save_settings()  # and a fresh settings file is written where the junk was
    assert ini.is_file() and "window" in ini.read_text()


def test_a_good_settings_file_is_kept(make_window):  # noqa: F811
    window = make_window()
    window.show_page("model")
    window.save_settings()
    ini = _ini()
    again = make_window()
    assert again.current_page() == "model" and not _asides(ini)
    assert again.statusBar().currentMessage() == ""


def test_a_file_that_cannot_be_moved_aside_is_left_alone(monkeypatch):
    from ftstudio.gui import settings as module

    ini = _ini()
    ini.write_bytes(b"\xff\xfe junk")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(module.os, "replace", refuse)
    store = module.settings()
    assert store.fileName() != str(ini) and store.value("anything") is None
    store.setValue("k", 1)
    store.sync()
    assert ini.read_bytes() == b"\xff\xfe junk"  # untouched
    [notice] = module.take_notices()
    assert "not movable (Permission denied)" in notice and "will not be kept" in notice
    assert module.settings().fileName() == store.fileName()  # the same stand-in for the whole session


def test_the_native_settings_file_is_where_qt_puts_it(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from ftstudio.gui import settings as module

    monkeypatch.delenv("FTSTUDIO_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert module.settings_file() == tmp_path / "ftstudio" / "ftstudio.conf"
    assert QSettings(module.ORGANIZATION, module.APPLICATION).fileName() == str(module.settings_file())
