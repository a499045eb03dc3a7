"""Model files a user names — checkpoints, --weights, exported models — are checked before any
runtime reads them: torch, safetensors and onnxruntime would read /dev/zero or a FIFO forever,
and a file over the model-file size limit is refused by name instead of filling the memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftstudio.core.errors import InputError
from ftstudio.core.runs.folders import load_run_model
from ftstudio.core.training import checkpoint
from tests.ft_helpers import source_run  # noqa: F401  (fixture)
from tests.helpers import ROOT
from tests.robustness.test_hostile_files import _checkpoint

# every loader of a user-named model file: (module, expression of the module ``m`` and the path ``p``)
LOADERS = {
    "checkpoint": ("ftstudio.core.training.checkpoint", "m.load(p)"),
    "weights .pt": ("ftstudio.core.architecture.backbones", "m.load_weights_file(p)"),
    "weights .safetensors": ("ftstudio.core.architecture.backbones", "m.load_weights_file(p)"),
    "--weights torchvision": ("ftstudio.core.finetune.sources", "m._torchvision('resnet18', str(p))"),
    "--weights timm": ("ftstudio.core.finetune.sources", "m._timm('resnet18', str(p))"),
    "export onnx": ("ftstudio.core.export.formats", "m.load_onnx(p, None)"),
    "export pt2": ("ftstudio.core.export.formats", "m.load_pt2(p, None)"),
    "export safetensors": ("ftstudio.core.export.formats", "m.load_safetensors(p, None)"),
    "export state-dict": ("ftstudio.core.export.formats", "m.load_state_dict(p, None)"),
    "predict onnx": ("ftstudio.core.inference.predict", "m._export_runner('onnx', p, (1, 8, 8), 10)"),
    "predict pt2": ("ftstudio.core.inference.predict", "m._export_runner('pt2', p, (1, 8, 8), 10)"),
}
SUFFIX = {"weights .safetensors": ".safetensors", "export safetensors": ".safetensors", "export onnx": ".onnx",
          "predict onnx": ".onnx", "export pt2": ".pt2", "predict pt2": ".pt2"}
PROBE = """
import importlib, json, sys
from pathlib import Path
from ftstudio.core.errors import InputError
out = {}
for name, (module, call, path) in json.loads(sys.argv[1]).items():
    try:
        eval(call, {"m": importlib.import_module(module), "p": Path(path)})
        out[name] = "loaded"
    except InputError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def _probe(cases: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    """Each loader on its path, in a child process that a hang or a memory blow-up cannot take the tests down with."""
    payload = json.dumps({name: (*LOADERS[name], path) for name, path in cases.items()})
    done = subprocess.run([sys.executable, "-c", PROBE, payload], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _named(tmp_path, target, name: str):
    """``target`` (a device or FIFO) under a file name with the suffix the loader expects."""
    link = tmp_path / f"{name.replace(' ', '_').replace('-', '')}{SUFFIX.get(name, '.pt')}"
    if target == "fifo":
        os.mkfifo(link)
    else:
        link.symlink_to(target)
    return str(link)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_device_or_fifo_is_refused_by_every_loader_without_hanging(tmp_path, target):
    results = _probe({name: _named(tmp_path, target, name) for name in LOADERS})
    for name, message in results.items():
        assert "not a regular file: a device, pipe or socket" in message, (name, message)
        assert str(tmp_path) in message, (name, message)  # the message names the file


def test_a_file_over_the_limit_is_refused_by_every_loader_without_reading_it(tmp_path):
    cases = {}
    for name in LOADERS:
        path = tmp_path / f"{name.replace(' ', '_').replace('-', '')}{SUFFIX.get(name, '.pt')}"
        with open(path, "wb") as f:
            f.truncate(20_000_000)  # sparse: no disk used
        cases[name] = str(path)
    results = _probe(cases, env={checkpoint.LIMIT_ENV: "0.01"})
    for name, message in results.items():
        assert "is 20 MB, over the 10 MB limit for model files" in message, (name, message)
        assert checkpoint.LIMIT_ENV in message and cases[name] in message, (name, message)


def test_the_default_limit_refuses_a_terabyte_file(tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoint.LIMIT_ENV, raising=False)
    huge = tmp_path / "huge.pt"
    with open(huge, "wb") as f:
        f.truncate(10**12)  # sparse
    with pytest.raises(InputError, match=r"huge.pt: the checkpoint is 1000 GB, over the 4 GB limit"):
        checkpoint.load(huge)


def test_the_limit_follows_the_environment(tmp_path, monkeypatch):
    path = _checkpoint(tmp_path / "c.pt")
    size = path.stat().st_size
    monkeypatch.setenv(checkpoint.LIMIT_ENV, str(size / 1e9))
    assert checkpoint.load(path)["epoch"] == 1  # exactly at the limit
    monkeypatch.setenv(checkpoint.LIMIT_ENV, str((size - 1) / 1e9))
    with pytest.raises(InputError, match="over the .* limit for model files"):
        checkpoint.load(path)
    for bad in ("lots", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(checkpoint.LIMIT_ENV, bad)
        with pytest.raises(InputError, match=f"{checkpoint.LIMIT_ENV}='{bad}': expected a size in GB"):
            checkpoint.load(path)


def test_evaluate_on_a_device_names_it_with_exit_2():
    from tests.helpers import cli

    done = cli("evaluate", "/dev/zero")
    assert done.returncode == 2 and "/dev/zero: cannot load this checkpoint (not a regular file" in done.stderr, \
        done.stderr


def test_an_export_is_reloaded_only_within_what_its_model_should_hold(source_run, tmp_path, monkeypatch):
    import ftstudio.core.export as export

    from ftstudio.core.export import export_run

    model, _ = load_run_model(source_run)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert export.expected_size(model) == 2 * weights + 64_000_000
    report = export_run(source_run, ["state-dict"], out_dir=tmp_path / "ok")
    assert report.ok and report.files[0].size_bytes <= export.expected_size(model)
    monkeypatch.setattr(export, "expected_size", lambda model: 100)  # as if the file were far larger than its model
    report = export_run(source_run, ["state-dict"], out_dir=tmp_path / "big")
    assert not report.ok and "over the 100 bytes limit" in report.files[0].message
