"""Hostile and careless files: devices, pipes, huge numbers, forged checkpoint fields.

Each case once crashed, hung or ate the memory (issue #17); each must now be a clear InputError
naming the file and field, or an exit code 2 from the command line.
"""

from __future__ import annotations

import os
import stat

import pytest

from ftstudio.core.errors import InputError
from ftstudio.core.fileio import ReadRefused, read_bounded
from ftstudio.core.config.recipe import Recipe, load_recipe, read_json
from tests.helpers import cli


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "f.json"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo", "folder"])
def test_json_reads_refuse_anything_but_a_regular_file(target, tmp_path, request):
    path = {"fifo": lambda: request.getfixturevalue("fifo"), "folder": lambda: tmp_path}.get(target, lambda: target)()
    with pytest.raises(InputError, match=r"not a regular file|is a folder"):
        read_json(path, "recipe")


def test_bounded_read_stops_at_the_limit_even_when_st_size_lies(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"1" * 1000)
    assert read_bounded(path, 1000) == b"1" * 1000
    with pytest.raises(ReadRefused, match="over the 999 bytes limit"):
        read_bounded(path, 999)


def test_a_5000_digit_number_is_an_input_error(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"train": {"seed": ' + "9" * 5000 + "}}")
    with pytest.raises(InputError, match="r.json: unreadable JSON value"):
        load_recipe(path)


@pytest.mark.parametrize("doc, field", [
    ({"train": {"seed": 2**70}}, "train.seed"),
    ({"train": {"seed": 2**64 - 1}}, "train.seed: must be ≤"),
    ({"data": {"split_seed": -1}}, "data.split_seed"),
    ({"data": {"image_size": [100000, 100000]}}, r"data.image_size\[0\]: must be ≤ 4096"),
    ({"data": {"image_size": [-8, 8]}}, r"data.image_size\[0\]: must be ≥ 1"),
    ({"data": {"channels": 2}}, "data.channels: must be one of 1, 3"),
    ({"train": {"warmup_epochs": 10**400}}, "train.warmup_epochs"),
    ({"train": {"grad_clip": 10**30}}, "train.grad_clip: number too large"),
])
def test_numbers_out_of_range_name_the_field(doc, field):
    with pytest.raises(InputError, match=field):
        Recipe.from_dict(doc)


def test_cli_refuses_devices_and_pipes_quickly(tmp_path, fifo):
    for args in (["run", "/dev/zero"], ["run", str(fifo)], ["train", "--model", "/dev/zero", "--epochs", "1"],
                 ["train", "--seed", str(2**70), "--epochs", "1", "--out", str(tmp_path / "run")]):
        done = cli(*args, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()  # a bad flag leaves no run folder behind


def _checkpoint(path, **changes):
    import torch

    state = {"format": "ftstudio.checkpoint", "version": 1, "model": {"w": torch.zeros(2)}, "epoch": 1, "step": 3,
             "architecture": {"layers": [{"type": "Flatten"}]}, "classes": ["a", "b"],
             "preprocess": {"input_shape": [1, 8, 8], "mean": [0.5], "std": [0.25], "scale": 255.0}}
    for key, value in changes.items():
        if key.startswith("pre_"):
            state["preprocess"] = {**state["preprocess"], key[4:]: value}
        else:
            state[key] = value
    torch.save(state, path)
    return path


@pytest.mark.parametrize("changes, detail", [
    ({}, None),
    ({"pre_input_shape": [1, 30000, 30000]}, "preprocess.input_shape"),
    ({"pre_input_shape": [2, 8]}, "preprocess.input_shape"),
    ({"pre_input_shape": "big"}, "preprocess.input_shape"),
    ({"pre_mean": [float("nan")]}, "preprocess.mean"),
    ({"pre_std": [0.0]}, "preprocess.std"),
    ({"pre_std": [1.0, 2.0]}, "preprocess.std"),
    ({"epoch": -1}, "epoch"),
    ({"step": 2**80}, "step"),
    ({"classes": []}, "classes"),
    ({"classes": [1, 2]}, "classes"),
    ({"model": {"w": [1, 2]}}, "model"),
    ({"architecture": 5}, "architecture"),
    ({"recipe": [1]}, "recipe"),
])
def test_every_checkpoint_field_is_validated(tmp_path, changes, detail):
    from ftstudio.core.training import checkpoint

    path = _checkpoint(tmp_path / "c.pt", **changes)
    if detail is None:
        assert checkpoint.load(path)["epoch"] == 1
        return
    with pytest.raises(InputError, match=detail):
        checkpoint.load(path)


def test_a_checkpoint_that_is_a_device_is_refused():
    from ftstudio.core.training import checkpoint

    with pytest.raises(InputError, match="not a regular file"):
        checkpoint.load("/dev/zero")


def test_atomic_writes_respect_the_umask(tmp_path):
    from ftstudio.core.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "folder"])
def test_image_decoding_refuses_devices_pipes_and_folders_at_once(tmp_path, target):
    """Every image reader (training, data check, predict, the Try page) goes through these two."""
    from ftstudio.core.datasets.decode import DecodeError, decode, probe

    path = tmp_path / "x.png"
    if target == "fifo":
        os.mkfifo(path)
    elif target == "folder":
        path.mkdir()
    else:
        path.symlink_to(target)
    for read in (lambda: decode(path, (8, 8), 1), lambda: probe(path)):
        with pytest.raises(DecodeError, match="a folder, not a file" if target == "folder" else "not a regular file"):
            read()
