"""Where ftstudio keeps files: the one user of platformdirs.

Every location is computed by a function (never at import time) so that tests and users can
point the whole app elsewhere with ``FTSTUDIO_HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "ftstudio"


def _home_override() -> Path | None:
    home = os.environ.get("FTSTUDIO_HOME")
    return Path(home) if home else None


def data_dir() -> Path:
    """The user's data folder (runs live below it)."""
    home = _home_override()
    if home:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def runs_dir() -> Path:
    """Default parent folder of run folders."""
    return data_dir() / "runs"


def cache_dir() -> Path:
    """Decoded-dataset cache and other things that may be deleted at any time."""
    home = _home_override()
    if home:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def datasets_dir() -> Path:
    """Default root for torchvision datasets (downloaded or placed by hand)."""
    return data_dir() / "datasets"


def log_dir() -> Path:
    """Where crash logs with tracebacks are written."""
    home = _home_override()
    if home:
        return home / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def torch_hub_dir() -> Path:
    """torch's own cache of pretrained weights (``TORCH_HOME``), where torchvision looks first."""
    import torch.hub

    return Path(torch.hub.get_dir())


def resources_dir() -> Path:
    """The bundled resources: a source checkout's ``resources/`` or the installed package data."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "resources"  # a wheel: package data under ftstudio/resources
    if installed.is_dir():
        return installed
    return package.parent / "resources"  # a source checkout


def hf_hub_cache_dir() -> Path:
    """The Hugging Face Hub cache timm downloads into (``HF_HUB_CACHE``, else ``HF_HOME/hub``), read at
    call time: huggingface_hub reads it once at import."""

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"
