"""The command line as a user runs it: outputs, files, exit codes and messages (in a subprocess)."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, cli, make_color_folder, make_digit_folder


def test_version_and_help():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("ftstudio ")
    out = cli("--help")
    for word in ("train", "evaluate", "runs", "datasets", "run"):
        assert word in out.stdout


def test_datasets_lists_the_catalog():
    out = cli("datasets")
    assert out.returncode == 0
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "yes" in lines["digits"] and "no" in lines["mnist"]
    rows = json.loads(cli("datasets", "--json").stdout)
    assert {r["name"] for r in rows} >= {"digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "svhn"}


def test_train_writes_a_complete_run_folder(tmp_path):
    out = cli("train", "--data", "digits", "--model", "mlp", "--epochs", "2", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    for name in ("recipe.json", "model.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt",
                 "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("val_accuracy", "best_val_accuracy", "epochs", "classes", "device", "world_size", "params",
                "trainable_params", "skipped_files"):
        assert key in summary, key
    assert summary["epochs"] == 2 and summary["status"] == "completed" and summary["val_accuracy"] > 0.5
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for key in ("epoch", "train_loss", "val_loss", "val_accuracy", "samples_per_s", "seconds"):
        assert key in epochs[0]
    assert "val acc" in out.stderr and str(run) in out.stdout


def test_evaluate_json_matches_summary(tmp_path):
    cli("train", "--epochs", "2", "--out", str(tmp_path / "run"))
    out = cli("evaluate", str(tmp_path / "run"), "--data", "digits", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for key in ("accuracy", "loss", "per_class", "confusion"):
        assert key in report
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert report["accuracy"] == pytest.approx(summary["best_val_accuracy"])
    assert sum(map(sum, report["confusion"])) == report["count"] == 359


def test_runs_lists_newest_first(tmp_path):
    cli("train", "--epochs", "1", "--name", "first")
    cli("train", "--epochs", "1", "--name", "second")
    rows = json.loads(cli("runs", "--json").stdout)
    assert [r["name"] for r in rows] == ["second", "first"]
    assert "completed" in cli("runs").stdout


def test_run_replays_a_recipe(tmp_path):
    cli("train", "--epochs", "1", "--out", str(tmp_path / "a"))
    out = cli("run", str(tmp_path / "a" / "recipe.json"), "--out", str(tmp_path / "b"))
    assert out.returncode == 0, out.stderr
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert a["val_accuracy"] == b["val_accuracy"]  # same recipe, same seed → same result


@pytest.mark.parametrize("args, words", [
    (["train", "--model", "vgg99"], "'vgg99' is not a preset"),
    (["train", "--data", "/nonexistent/folder"], "folder not found"),
    (["train", "--epochs", "0"], "--epochs: must be ≥ 1"),
    (["train", "--lr", "-1"], "--lr: must be > 0"),
    (["train", "--device", "cuda:7"], "--device cuda:7"),
    (["train", "--classes", "1,banana"], "banana"),
    (["train", "--image-size", "big"], "--image-size"),
    (["evaluate", "/nonexistent/run"], "not a run folder"),
    (["run", "/nonexistent/recipe.json"], "recipe not found"),
])
def test_bad_input_exits_2_with_one_line(args, words):
    out = cli(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1]
    assert "Traceback" not in out.stderr


def test_bad_architecture_file_exits_2(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"layers": [{"type": "Linear", "params": {"out_features": 4}}]}))
    out = cli("train", "--model", str(path), "--epochs", "1")
    assert out.returncode == 2 and "add a Flatten layer" in out.stderr


def test_nan_guard_exits_3(tmp_path):
    deep_linear = {"layers": [{"type": "Flatten"}] + [{"type": "Linear", "params": {"out_features": 256}}] * 4
                   + [{"type": "Linear"}]}  # no activations: a high rate makes the logits overflow
    (tmp_path / "deep.json").write_text(json.dumps(deep_linear))
    out = cli("train", "--model", str(tmp_path / "deep.json"), "--lr", "5", "--optimizer", "sgd", "--epochs", "5",
              "--out", str(tmp_path / "run"))
    assert out.returncode == 3, out.stderr
    assert "loss became" in out.stderr and "at epoch" in out.stderr and "step" in out.stderr


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio", "train", "--epochs", "1000", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped"
    done = summary["epochs"]
    resumed = cli("train", "--out", str(run), "--resume", "--epochs", str(done + 2))
    assert resumed.returncode == 0, resumed.stderr
    epochs = [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()
              if '"kind": "epoch"' in r]
    assert epochs == list(range(1, done + 3))


def test_real_folders_train_end_to_end(tmp_path):
    digits = make_digit_folder(tmp_path / "digits", n_per_class=15)
    out = cli("train", "--data", str(digits), "--model", "lenet", "--epochs", "2", "--out", str(tmp_path / "a"))
    assert out.returncode == 0, out.stderr
    photos = make_color_folder(tmp_path / "photos", n_per_class=10, classes=3)
    out = cli("train", "--data", str(photos), "--model", "cnn", "--epochs", "2", "--batch-size", "8",
              "--out", str(tmp_path / "b"))
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["input_shape"][0] == 3 and summary["classes"] == ["class_0", "class_1", "class_2"]


def test_app_entry_never_crashes(tmp_path):
    out = cli("--screenshot", str(tmp_path / "shot.png"), env={"QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr


def test_augmentation_flags_reach_the_recipe(tmp_path):
    out = cli("train", "--epochs", "1", "--augment-rotation", "40", "--augment-crop", "1", "--out", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    recipe = json.loads((tmp_path / "r" / "recipe.json").read_text())
    assert recipe["data"]["augment"] == {"crop": 1, "flip": False, "rotation": 40.0, "scale": [1.0, 1.0],
                                         "color": 0.0, "blur": 0.0, "noise": 0.0, "erase": 0.0}
    bad = cli("train", "--augment-rotation", "400")
    assert bad.returncode == 2 and "--augment-rotation: must be ≤ 180" in bad.stderr


def test_batch_size_auto_picks_one_that_fits(tmp_path):
    out = cli("train", "--epochs", "1", "--batch-size", "auto", "--out", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    chosen = json.loads((tmp_path / "r" / "recipe.json").read_text())["train"]["batch_size"]
    assert f"batch size {chosen}:" in out.stderr and 1 <= chosen <= 1024
    bad = cli("train", "--batch-size", "lots")
    assert bad.returncode == 2 and "--batch-size" in bad.stderr
