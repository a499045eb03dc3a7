"""Run folders under pressure: two writers, kill -9, SIGTERM, late bad input, edited recipes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from ftstudio.core.errors import InputError
from ftstudio.core.engine import resume, train
from ftstudio.core.config.recipe import Recipe
from ftstudio.core.runs.lock import RunBusy, RunLock, is_locked
from ftstudio.core.runs.folders import Run
from tests.helpers import ROOT, cli

TINY = {"train": {"epochs": 1, "batch_size": 256, "device": "cpu"}, "data": {"per_class": 20}}


def test_a_second_writer_is_refused_with_exit_2(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        with pytest.raises(RunBusy, match=r"another ftstudio process \(pid \d+\) is writing"):
            train(Recipe.from_dict(TINY), out)
        done = cli("train", "--epochs", "1", "--out", str(out))
        assert done.returncode == 2 and "another ftstudio process" in done.stderr, done.stderr
        assert is_locked(out)
    assert not Run(out).exists()  # neither wrote anything
    assert not is_locked(out)


def test_a_lock_left_by_kill_9_does_not_block(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ftstudio.core.runs.lock import RunLock; "
                               "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)", str(out)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert is_locked(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    assert (out / ".lock").exists() and not is_locked(out)  # the file stays, the lock went with the process
    result = train(Recipe.from_dict(TINY), out)
    assert result.summary["status"] == "completed"


@pytest.mark.slow
def test_sigterm_checkpoints_marks_stopped_and_exits_143(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio", "train", "--epochs", "500", "--batch-size", "32",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not Run(out).epochs():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"ftstudio train --out {out} --resume" in err and "Traceback" not in err
    summary = Run(out).read_summary()
    assert summary["status"] == "stopped"
    from ftstudio.core.training import checkpoint

    assert checkpoint.load(Run(out).checkpoint("last"))["epoch"] >= 1


def test_a_bad_device_leaves_no_run_behind(tmp_path):
    out = tmp_path / "run"
    bad = Recipe.from_dict({**TINY, "train": {**TINY["train"], "device": "tpu"}})
    with pytest.raises(InputError, match="tpu"):
        train(bad, out)
    assert not Run(out).exists() and not (out / "summary.json").exists()
    assert train(Recipe.from_dict(TINY), out).summary["status"] == "completed"  # the folder is free


def test_a_folder_of_the_users_own_files_is_not_made_a_run(tmp_path):
    """As export and pipelines refuse it: the run's files would mix with the user's, untouched here."""
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    done = cli("train", "--epochs", "1", "--out", str(mine))
    assert done.returncode == 2 and "notes: holds files that are not a run's (todo.txt)" in done.stderr, done.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["todo.txt"]  # not even a lock file left
    left = tmp_path / "left"  # what a start that failed before recipe.json leaves is taken again
    left.mkdir()
    (left / "summary.json").write_text("{}")
    (left / ".lock").write_text("")
    assert train(Recipe.from_dict(TINY), left).summary["status"] == "completed"


def test_resume_after_editing_recipe_json_names_the_file(tmp_path):
    out = tmp_path / "run"
    train(Recipe.from_dict({**TINY, "model": "mlp"}), out)
    recipe = json.loads((out / "recipe.json").read_text())
    recipe["model"]["layers"][1]["params"]["out_features"] = 17  # a careless edit of a hidden width
    (out / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(InputError,
                       match=r"recipe\.json: recipe\.json no longer matches|recipe\.json no longer matches"):
        resume(out, epochs=2)
    assert Run(out).read_summary()["status"] == "completed"  # not marked failed
    recipe["data"]["name"] = "no-such-data"
    (out / "recipe.json").write_text(json.dumps(recipe))
    with pytest.raises(InputError, match=r"recipe\.json"):
        resume(out, epochs=2)


def test_a_run_remembers_its_data_folder_as_an_absolute_path(tmp_path, monkeypatch):
    from tests.helpers import make_digit_folder

    make_digit_folder(tmp_path / "ds" / "x", n_per_class=6, classes=range(2), size=8)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    train(Recipe.from_dict({"data": {"name": "ds/x", "val_split": 0.5},
                            "train": {"epochs": 1, "device": "cpu"}}), out)
    saved = json.loads((out / "recipe.json").read_text())["data"]["name"]
    assert saved == str(tmp_path / "ds" / "x")
    other = tmp_path / "elsewhere"
    make_digit_folder(other / "ds" / "x", n_per_class=6, classes=range(3), size=8)  # a different ds/x
    monkeypatch.chdir(other)
    result = resume(out, epochs=2)
    assert result.summary["classes"] == ["digit_0", "digit_1"] and result.summary["epochs"] == 2


def test_evaluate_names_the_checkpoint_it_really_used(tmp_path):
    import threading

    from ftstudio.core.engine import RunControls, evaluate_run
    from ftstudio.core.training.callbacks import Callback

    stop = threading.Event()

    class StopAtOnce(Callback):
        def on_epoch_started(self, event):
            stop.set()

    out = tmp_path / "run"
    train(Recipe.from_dict({**TINY, "train": {**TINY["train"], "batch_size": 8}}), out,
          RunControls(stop=stop, callbacks=[StopAtOnce()]))
    assert not Run(out).checkpoint("best").exists() and Run(out).checkpoint("last").exists()
    report = evaluate_run(out, which="best")
    assert report["checkpoint"] == "last" and report["checkpoint_file"].endswith("last.pt")


def test_a_screenshot_that_cannot_be_written_exits_2(tmp_path):
    done = cli("--screenshot", str(tmp_path / "no" / "such" / "folder" / "x.png"), timeout=120)
    assert done.returncode == 2 and "cannot write there" in done.stderr, done.stderr


def test_an_unwritable_ftstudio_home_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # FTSTUDIO_HOME below a file: as unwritable as a read-only file system
    done = cli("train", "--epochs", "1", env={"FTSTUDIO_HOME": str(blocker / "home")})
    assert done.returncode == 2 and "set FTSTUDIO_HOME to a folder you can write to" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
