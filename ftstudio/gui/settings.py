"""Persistent window state and last choices (QSettings), kept out of the user's files in tests.

With ``FTSTUDIO_HOME`` set (tests, portable installs) settings live in an INI file beside the
runs; otherwise in the platform's usual place for "ftstudio".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

ORGANIZATION = "ftstudio"
APPLICATION = "ftstudio"


def settings() -> QSettings:
    """The app's settings store (a fresh handle; cheap)."""
    home = os.environ.get("FTSTUDIO_HOME")
    if home:
        return QSettings(str(Path(home) / "config" / "ftstudio.ini"), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


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
