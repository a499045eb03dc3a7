"""An export replaces its folder whole: killed mid-way, the previous export is intact."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time

import pytest
import torch

from ftstudio.core.errors import InputError
from ftstudio.core.export import export_run
from ftstudio.core.training import checkpoint
from tests.ft_helpers import source_run  # noqa: F401  (fixture)
from tests.helpers import ROOT


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_sigkill_mid_export_leaves_the_previous_export_whole(source_run, tmp_path):
    out = tmp_path / "export"
    assert export_run(source_run, ["state-dict"], out_dir=out).ok
    before = _digest(out)
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio", "export", str(source_run), "--out", str(out),
                             "--format", "onnx,safetensors"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not any(p.is_file() for p in tmp_path.glob(".export.new-*/*")
                                             if p.name != ".lock"):
        time.sleep(0.01)
    assert proc.poll() is None, "the export ended before it was seen writing a file: nothing was tested"
    proc.send_signal(signal.SIGKILL)  # while it writes its first file
    proc.wait(timeout=30)
    assert _digest(out) == before  # the old model file, card and signature, nothing new, no .tmp
    report = export_run(source_run, ["safetensors"], out_dir=out)  # the next export cleans up
    assert report.ok and sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert "model.pt" not in _digest(out) and "model.safetensors" in _digest(out)


def test_a_half_done_swap_is_undone(source_run, tmp_path):
    out = tmp_path / "export"
    export_run(source_run, ["state-dict"], out_dir=out)
    before = _digest(out)
    out.rename(tmp_path / ".export.old-dead")  # killed between the two renames
    from ftstudio.core.export.staging import recover

    recover(out)
    assert _digest(out) == before


def test_an_export_never_replaces_a_folder_of_other_files(source_run, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="mine.txt.*choose a new or empty folder"):
        export_run(source_run, ["state-dict"], out_dir=tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_nan_weights_are_reported_as_nan(source_run, tmp_path):
    ckpt = checkpoint.load(source_run / "checkpoints" / "best.pt")
    first = next(iter(ckpt["model"]))
    ckpt["model"][first] = torch.full_like(ckpt["model"][first], float("nan"))
    bad = tmp_path / "nan.pt"
    checkpoint.save(bad, {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    with pytest.raises(InputError, match=f"contain NaN or infinity \\(first in {first.split('.')[0]}"):
        export_run(bad, ["onnx"], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
