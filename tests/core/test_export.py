"""Exports: every format written, reloaded by its runtime and compared; signature, card, failures named."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch

from ftstudio.core.errors import InputError
from ftstudio.core.export import FORMATS, export_model, export_run
from ftstudio.core.export import formats as fmt_module
from ftstudio.core.runs.folders import load_run_model
from tests.ft_helpers import SOURCE_CLASSES, source_run  # noqa: F401  (fixture)


def test_every_format_is_verified_with_signature_and_card(source_run, tmp_path):
    messages = []
    report = export_run(source_run, out_dir=tmp_path / "out", progress=messages.append)
    assert report.ok and [f.format for f in report.files] == list(FORMATS)
    assert any("onnxruntime" in m for m in messages)
    for f in report.files:
        assert f.verified and f.max_abs_diff <= 1e-4, f
        assert f.sha256 == hashlib.sha256(f.path.read_bytes()).hexdigest()
    _, ckpt = load_run_model(source_run, "best")
    sig = json.loads(report.signature_path.read_text())
    assert sig["classes"] == SOURCE_CLASSES and sig["input_shape"] == [1, 8, 8]
    assert sig["preprocessing"]["mean"] == ckpt["preprocess"]["mean"]
    assert sig["preprocessing"]["std"] == ckpt["preprocess"]["std"]
    assert sig["files"]["onnx"] == "model.onnx"
    card = report.card_path.read_text()
    for f in report.files:
        assert f.sha256 in card
    assert "ort.InferenceSession(\"model.onnx\")" in card and "torch.export.load(\"model.pt2\")" in card
    assert "digits" in card and "Hyper-parameters" in card and "Lineage" in card
    assert (tmp_path / "out" / "architecture.json").is_file()
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temp files left behind


def test_default_folder_and_format_errors(source_run):
    report = export_run(source_run, ["state-dict"])
    assert report.out_dir == source_run / "export" and report.ok
    with pytest.raises(InputError, match="torch.jit is deprecated"):
        export_run(source_run, ["torchscript"])
    with pytest.raises(InputError, match="--format tflite: unknown format"):
        export_run(source_run, ["tflite"])


def test_not_writable_folder_is_a_clear_error(source_run, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the export there"):
        export_run(source_run, ["onnx"], out_dir=blocker / "export")


@pytest.mark.parametrize("refusing", ["model.pt", "model_card.md"])
def test_a_full_disk_names_the_export_file_and_leaves_nothing_half_made(source_run, tmp_path, monkeypatch, refusing):
    """The message named the hidden staging folder (.out.new-1a2b3c4d/model.pt), and an empty ``out`` stayed
    behind; a previous export in ``out`` must stay whole."""
    from ftstudio.core.errors import os_error_message
    from tests.helpers import refuse_writes

    out = tmp_path / "out"
    for first in (True, False):  # into a new folder, then over a previous export
        refuse_writes(monkeypatch, refusing)
        with pytest.raises((InputError, OSError)) as caught:
            export_run(source_run, ["state-dict"], out_dir=out)
        monkeypatch.undo()
        text = str(caught.value) if isinstance(caught.value, InputError) else os_error_message(caught.value)
        assert f"{out / refusing}: " in text and "the disk is full" in text and ".new-" not in text
        assert [p.name for p in tmp_path.iterdir()] == (["out"] if not first else [])  # no empty out, no staging
        if first:
            export_run(source_run, ["state-dict"], out_dir=out)
            before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous export, whole


class DataDependent(torch.nn.Module):
    """Control flow on tensor values: torch.export and the ONNX exporter cannot capture it."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


def test_a_layer_a_format_cannot_represent_is_named(source_run, tmp_path):
    model, ckpt = load_run_model(source_run, "best")
    model[2] = DataDependent()  # replaces a ReLU
    report = export_model(model, ckpt, ["pt2", "onnx"], tmp_path)
    assert not report.ok
    for f in report.files:
        assert not f.verified
        assert f"{f.format}: cannot represent layer 2 (DataDependent)" in f.message
    assert "**NO**" in report.card_path.read_text()


def test_a_mismatch_makes_the_report_fail(source_run, tmp_path, monkeypatch):
    good = fmt_module.FORMAT_TABLE["state-dict"]

    def skewed(path, rebuild):
        run = good.load(path, rebuild)
        return lambda x: run(x) + 0.5

    monkeypatch.setitem(fmt_module.FORMAT_TABLE, "state-dict", dataclasses.replace(good, load=skewed))
    report = export_run(source_run, ["state-dict"], out_dir=tmp_path)
    assert not report.ok
    assert "disagrees with the PyTorch model" in report.files[0].message
    assert report.files[0].max_abs_diff == pytest.approx(0.5, abs=1e-5)


def test_lora_run_exports_merged_weights(source_run, tmp_path):
    from ftstudio.core.engine import train
    from tests.ft_helpers import recipe

    r = recipe({"name": "digits", "classes": SOURCE_CLASSES, "per_class": 4}, {"epochs": 2},
               {"source": str(source_run), "strategy": "lora", "min_steps": 0})
    run = train(r, tmp_path / "lora").run.path
    report = export_run(run, ["safetensors", "onnx"], checkpoint="last")
    assert report.ok
    from safetensors.torch import load_file

    keys = load_file(str(report.files[0].path)).keys()
    assert not any("lora" in k for k in keys) and "0.weight" in keys
    assert "merged into plain weights" in report.card_path.read_text()
