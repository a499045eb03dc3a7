"""Crashes and interruptions lose nothing: kill -9 then --resume, full disks, read-only folders, OOM."""

import errno
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from ftstudio.core import fileio
from ftstudio.core.planning.batch_size import find_batch_size
from ftstudio.core.errors import FtError
from ftstudio.core.engine import RunControls, resume, train
from ftstudio.core.config.recipe import Recipe
from ftstudio.core.runs.folders import Run
from ftstudio.core.training import checkpoint
from ftstudio.core.training.callbacks import Callback
from tests.helpers import ROOT, FillDisk, cli, refuse_writes


def recipe(epochs=4):
    return Recipe.from_dict({"train": {"epochs": epochs, "batch_size": 128, "lr": 3e-3}})


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    ref = cli("train", "--epochs", "40", "--batch-size", "128", "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio", "train", "--epochs", "40", "--batch-size", "128",
                             "--out", str(run)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(Run(run).epochs()) < 3:
        time.sleep(0.02)
    assert Run(run).status() == "running"  # alive: it holds the folder
    proc.send_signal(signal.SIGKILL)  # at an arbitrary moment: mid-epoch, mid-write…
    proc.wait(timeout=30)
    assert Run(run).read_summary()["status"] == "running"  # it never got to say otherwise
    listed = cli("runs", "--dir", str(tmp_path), "--json")
    assert {r["id"]: r["status"] for r in json.loads(listed.stdout)} == {"ref": "completed", "run": "interrupted"}
    resumed = cli("train", "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in Run(run).epochs()] == list(range(1, 41))  # each epoch exactly once
    a = checkpoint.load(tmp_path / "ref" / "checkpoints" / "last.pt")["model"]
    b = checkpoint.load(run / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert Run(run).read_summary()["status"] == "completed"


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    with pytest.raises(FtError, match="cannot write checkpoint .*last.pt: No space left on device"):
        train(recipe(), tmp_path / "run", RunControls(callbacks=[FillDisk(monkeypatch, epoch=2)]))
    run = Run(tmp_path / "run")
    assert checkpoint.load(run.checkpoint("last"))["epoch"] == 1  # the previous one, intact
    assert not list(run.checkpoints.glob(".*.tmp"))  # no half-written leftovers
    summary = run.read_summary()
    assert summary["status"] == "failed"
    assert "No space left" in summary["error"]
    # epoch 2 improved but its best.pt never landed: the summary names the best that is on disk
    assert [r["best"] for r in run.epochs()] == [True, True]
    assert summary["best_epoch"] == checkpoint.load(run.checkpoint("best"))["epoch"] == 1
    assert summary["best_val_accuracy"] == summary["val_accuracy"] == run.epochs()[0]["val_accuracy"]
    assert summary["epochs"] == 1  # what the checkpoints hold; metrics.jsonl keeps epoch 2's row


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("train", "--epochs", "1", "--out", str(blocker / "run"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(blocker) in out.stderr


def test_batch_size_search_halves_until_it_fits():
    class Hungry(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            if x.shape[0] > 24:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return self.lin(x)

    assert find_batch_size(Hungry(), (4,), 3, 256, torch.device("cpu")) == 16


def test_out_of_memory_names_the_batch_size(tmp_path):
    class Boom(Callback):
        def on_epoch_started(self, event):
            def explode(*a):
                raise torch.OutOfMemoryError("CUDA out of memory")
            self.trainer.model.register_forward_hook(explode)

    with pytest.raises(FtError, match="out of memory on cpu at batch size 128; try --batch-size 64"):
        train(recipe(), tmp_path / "run", RunControls(callbacks=[Boom()]))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["failed_kind"] == "out_of_memory"


def test_a_damaged_last_checkpoint_says_how_to_go_on(tmp_path):
    """ftstudio writes checkpoints atomically, but a disk or a copy can still cut one short."""
    train(recipe(epochs=2), tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(FtError) as err:
        resume(tmp_path / "run")
    text = str(err.value)
    assert "last.pt" in text and "truncated or corrupt" in text
    assert f"ftstudio run {tmp_path / 'run' / 'recipe.json'} --out" in text
    assert "best checkpoint (epoch" in text  # best.pt is whole: it still serves


@pytest.mark.parametrize("failing", ["lock", "model.json", "summary.json"])
def test_a_full_disk_names_the_file_and_what_to_do(tmp_path, monkeypatch, capsys, failing):
    """A full disk can refuse any write, not only a checkpoint's: the lock file, the run's first files, its
    summary mid-run. Each used to end in "unexpected failure" and a crash log."""
    from ftstudio.cli import main
    from ftstudio.core.paths import log_dir
    from ftstudio.core.runs import lock

    real_fsync, real_write = fileio.os.fsync, lock.os.write
    writing: list[str] = []

    def atomic(path, write):  # remember which file is being written when fsync runs
        writing.append(str(path))
        return real_atomic(path, write)

    real_atomic = fileio.atomic_write

    def fsync(fd):
        if failing != "lock" and writing and writing[-1].endswith(failing):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    def write(fd, data):
        if failing == "lock":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(fileio, "atomic_write", atomic)
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    monkeypatch.setattr(lock.os, "write", write)
    out = tmp_path / "run"
    code = main(["train", "--epochs", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert "unexpected failure" not in err and not list(log_dir().glob("crash-*"))
    if failing == "lock":
        assert code == 2 and f"{out}: cannot write this run folder (No space left on device)" in err
        assert not out.exists()  # the folder it made is gone again
    else:
        assert code == 1
        assert f"error: {out / failing}: the disk is full: free some space" in err
        assert not list(out.rglob("*.tmp"))  # no half-written leftovers


def test_atomic_write_names_the_file_a_full_disk_refused(tmp_path, monkeypatch):
    target = tmp_path / "export" / "model.onnx"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        fileio.atomic_write(target, lambda f: f.write(b"x" * 10))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # neither the file nor its temp


def test_a_run_that_never_saved_a_checkpoint_says_so_to_every_command(tmp_path, monkeypatch, capsys):
    """The disk filled up before the first epoch's checkpoint: evaluate, predict and export said
    'checkpoints/last.pt: checkpoint not found' (asked for best.pt), resume that last.pt was missing."""
    from ftstudio.cli import main
    from tests.helpers import digit_images

    run = tmp_path / "run"
    with pytest.raises(FtError, match="no checkpoint was written"):
        train(recipe(), run, RunControls(callbacks=[FillDisk(monkeypatch)]))
    monkeypatch.undo()
    image = tmp_path / "one.png"
    from PIL import Image
    Image.fromarray(digit_images(1, 8, seed=1)[0][0]).save(image)
    capsys.readouterr()
    for args in (["evaluate", str(run)], ["predict", str(run), str(image)], ["export", str(run)],
                 ["train", "--out", str(run), "--resume"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert f"{run}: " in err and "before its first epoch was saved" in err, (args, err)
        assert f"ftstudio run {run / 'recipe.json'} --out NEW_FOLDER" in err


def test_an_os_error_that_is_not_the_disk_still_leaves_a_crash_log(tmp_path, monkeypatch, capsys):
    """Only the refusals a user can act on (full, read-only, permissions) become a one-line message: anything
    else is a bug to report, with its traceback kept."""
    from ftstudio.cli import main
    from ftstudio.core.paths import log_dir

    refuse_writes(monkeypatch, "model.json", errno.EBADF, "Bad file descriptor")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run")]) == 1
    assert "unexpected failure" in capsys.readouterr().err
    [log] = log_dir().glob("crash-*")
    assert "Bad file descriptor" in log.read_text()
