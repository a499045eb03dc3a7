"""Persistent window state and last choices (QSettings), kept out of the user's files in tests.

With ``FTSTUDIO_HOME`` set (tests, portable installs) settings live in an INI file beside the
runs; otherwise in the platform's usual place for "ftstudio" (an INI file on Linux, the registry
on Windows, a plist on macOS).

The INI file is checked before Qt reads it: Qt would read /dev/zero until the memory ran out,
block forever opening a FIFO, and parse random bytes into junk keys (then rewrite the file with
them). A file that is not a small text file of INI lines is set aside — renamed to
``NAME.unreadable-TIME`` — and the app starts with its defaults; `take_notices` tells the window
what happened, for its status bar.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths

from ftstudio.core.fileio import read_bounded

ORGANIZATION = "ftstudio"
APPLICATION = "ftstudio"
MAX_BYTES = 4_000_000  # window state and last choices: a few kB; read_json allows 2 MB values
# what Qt writes: [section], key=value, blank lines; comments are tolerated
_INI_LINE = re.compile(r"\s*(\[[^\]]*\]|[^=\[;#][^=]*=.*|[;#].*)?\s*")

_checked: dict[Path, tuple[int, int]] = {}  # file → (mtime_ns, size) when found good
_replaced: dict[Path, Path] = {}  # a file that could not be moved aside → this session's stand-in
_notices: list[str] = []


def settings() -> QSettings:
    """The app's settings store (a fresh handle; cheap)."""
    path = settings_file()
    if path is None:
        return QSettings(ORGANIZATION, APPLICATION)
    path = _usable(path)
    store = QSettings(str(path), QSettings.Format.IniFormat)
    if store.status() != QSettings.Status.NoError:  # unreadable (permissions) or unparsable after all
        _checked.pop(path, None)
        path = _set_aside(path, "Qt could not read it")
        store = QSettings(str(path), QSettings.Format.IniFormat)
    return store


def settings_file() -> Path | None:
    """The INI file the settings live in; None where they live in the registry or a plist."""
    home = os.environ.get("FTSTUDIO_HOME")
    if home:
        return Path(home) / "config" / "ftstudio.ini"
    if sys.platform in ("win32", "darwin"):
        return None
    config = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return Path(config) / ORGANIZATION / f"{APPLICATION}.conf"  # where QSettings' native format puts it


def take_notices() -> list[str]:
    """What was set aside since the last call, in words for the status bar."""
    notices = _notices[:]
    _notices.clear()
    return notices


def _usable(path: Path) -> Path:
    """``path`` if it is absent or a good settings file, else where this session's settings go."""
    if path in _replaced:
        return _replaced[path]
    problem = _problem(path)
    return _set_aside(path, problem) if problem else path


def _problem(path: Path) -> str | None:
    """Why ``path`` is not a settings file (None: absent, or a small text file of INI lines)."""
    try:
        st = os.stat(path)  # never opens it: opening a FIFO blocks
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot look at it: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return "a device, pipe or socket"
    if st.st_size > MAX_BYTES:
        return f"{st.st_size / 1e6:.0f} MB, far too large"
    if _checked.get(path) == (st.st_mtime_ns, st.st_size):
        return None
    try:
        text = read_bounded(path, MAX_BYTES, "settings file").decode("utf-8")
    except UnicodeDecodeError:
        return "binary bytes, not text"
    except OSError as exc:
        return str(exc) if exc.strerror is None else f"cannot read it: {exc.strerror}"
    if "\x00" in text or not all(_INI_LINE.fullmatch(line) for line in text.splitlines()):
        return "not in INI format"
    _checked[path] = (st.st_mtime_ns, st.st_size)
    return None


def _set_aside(path: Path, why: str) -> Path:
    """Rename ``path`` out of the way (kept for the user to look at) and say so; the path to use now."""
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        stand_in = Path(tempfile.mkdtemp(prefix="ftstudio-settings-")) / path.name
        _replaced[path] = stand_in
        _notice(f"Settings unreadable ({why}) and not movable ({exc.strerror or exc}): defaults in use, "
                f"this session's settings will not be kept", f"{path}")
        return stand_in
    _notice(f"Settings unreadable ({why}): set aside as {aside.name}, defaults in use", f"{path} → {aside}")
    return path


def _notice(short: str, where: str) -> None:
    """Short for the status bar; in full, with the paths, for a terminal."""
    _notices.append(short)
    print(f"ftstudio: {short} ({where})", file=sys.stderr)


def read_json(store: QSettings, key: str, default: Any = None) -> Any:
    """A JSON value saved with `write_json`; ``default`` when missing or unreadable."""
    raw = store.value(key)
    if not isinstance(raw, str):
        return default
    if len(raw) > 2_000_000:  # settings are small; anything bigger is not ours
        return default
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, a 5000-digit number, nesting too deep
        return default


def write_json(store: QSettings, key: str, value: Any) -> None:
    store.setValue(key, json.dumps(value))
