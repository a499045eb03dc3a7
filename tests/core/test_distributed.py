"""torchrun: a 2-process gloo run on the CPU matches one process with the same global batch,
rank 0 alone writes the run, and its checkpoint resumes with a different world size."""

import json
import subprocess
import sys

import pytest

from ftstudio.core.training import checkpoint
from tests.helpers import ROOT, cli


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ftstudio", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def epochs(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"kind": "epoch"' in line]


def test_two_processes_match_one(tmp_path):
    args = ["train", "--data", "digits", "--model", "mlp", "--epochs", "3", "--batch-size", "64"]
    single = cli(*args, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    ddp = torchrun(*args, "--out", str(tmp_path / "two"))
    assert ddp.returncode == 0, ddp.stderr
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    one, two = epochs(tmp_path / "one"), epochs(tmp_path / "two")
    assert [r["epoch"] for r in two] == [1, 2, 3]  # rank 0 alone wrote: no duplicated rows
    for a, b in zip(one, two):  # same global batches, gradients averaged: equal up to rounding
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
        assert b["val_accuracy"] == pytest.approx(a["val_accuracy"], abs=0.003)

    # a checkpoint written by 2 processes resumes in 1 process
    resumed = cli("train", "--out", str(tmp_path / "two"), "--resume", "--epochs", "4")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in epochs(tmp_path / "two")] == [1, 2, 3, 4]
    assert checkpoint.load(tmp_path / "two" / "checkpoints" / "last.pt")["epoch"] == 4


def test_uneven_global_batch_is_refused(tmp_path):
    out = torchrun("train", "--epochs", "1", "--batch-size", "63", "--out", str(tmp_path / "r"))
    assert out.returncode != 0 and "divide evenly across 2 processes" in out.stderr


def test_a_torchrun_worker_ends_without_finalization_but_keeps_its_output_and_exit_code(tmp_path):
    """`python -m ftstudio` as a torchrun worker (WORLD_SIZE > 1) leaves through os._exit after the
    command (distributed.torchrun.leave_worker): what it printed is flushed first, even into a pipe,
    and its exit code is the command's — 0 for a listing, 2 for a missing run folder."""
    import os

    env = {**os.environ, "WORLD_SIZE": "2", "PYTHONPATH": str(ROOT)}
    listing = subprocess.run([sys.executable, "-m", "ftstudio", "presets"], capture_output=True, text=True,
                             env=env, timeout=120, cwd=ROOT)
    assert listing.returncode == 0 and "seed" in listing.stdout and listing.stdout.endswith("\n")
    plain = subprocess.run([sys.executable, "-m", "ftstudio", "presets"], capture_output=True, text=True,
                           env={**env, "WORLD_SIZE": "1"}, timeout=120, cwd=ROOT)
    assert listing.stdout == plain.stdout
    missing = subprocess.run([sys.executable, "-m", "ftstudio", "evaluate", str(tmp_path / "nothing")],
                             capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert missing.returncode == 2 and str(tmp_path / "nothing") in missing.stderr
