"""Shared test set-up: offscreen Qt, and every data folder pointed at a temporary directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# two threads per process, or one under pytest-xdist's workers (`-n 2`), so that two tests at once do not
# oversubscribe two cores (subprocesses inherit it)
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Tests never touch the user's files: FTSTUDIO_HOME and torch's cache live in a temp dir."""
    home = tmp_path_factory.mktemp("ftstudio-home")
    monkeypatch.setenv("FTSTUDIO_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HOME", str(home / "huggingface"))  # timm's weights cache
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("FTSTUDIO_WEIGHTS_MIRROR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    yield home
    # the settings module's notices are per process, not per file: those no window took (the settings
    # fuzzer's junk INI files) must not reach the next test in the worker. Its other state is keyed by
    # the file's path, and each test's home is new
    settings = sys.modules.get("ftstudio.gui.settings")
    if settings is not None:
        settings.take_notices()


@pytest.fixture
def python() -> str:
    return sys.executable
