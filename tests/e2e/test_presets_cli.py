"""Every shipped architecture preset trains from the command line (one short epoch each)."""

from __future__ import annotations

import json

import pytest

from ftstudio.core.architecture.presets import preset_names
from tests.helpers import cli


@pytest.mark.slow
@pytest.mark.parametrize("name", preset_names())
def test_each_preset_trains_from_the_command_line(tmp_path, name):
    out = cli("train", "--data", "digits", "--per-class", "8", "--model", name, "--epochs", "1", "--batch-size", "32",
              "--device", "cpu", "--out", str(tmp_path / "run"), env={"FTSTUDIO_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["model"] == name
