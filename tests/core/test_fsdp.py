"""--distributed fsdp: a 2-process gloo run shards the model (FSDP2), matches one process with the same
global batch, writes sharded (DCP) checkpoints plus an ordinary last.pt, and resumes at another world
size with the optimizer state intact; its run folder evaluates and exports like any other."""

import json
import shutil

import pytest
import torch

from ftstudio.cli import main
from ftstudio.core.errors import InputError
from ftstudio.core.training import checkpoint
from tests.core.test_distributed import epochs, torchrun

ARGS = ["train", "--data", "digits", "--model", "mlp", "--batch-size", "64", "--optimizer", "adam"]


def sharded_folders(run) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("sharded-*"))


def assert_same_epochs(got: list[dict], want: list[dict]) -> None:
    """Same global batches, gradients averaged by reduce-scatter: equal up to float rounding."""
    assert [r["epoch"] for r in got] == [r["epoch"] for r in want]
    for a, b in zip(want, got):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """Three epochs in one plain process: what every fsdp run below must reproduce."""
    out = tmp_path_factory.mktemp("fsdp") / "one"
    assert main([*ARGS, "--epochs", "3", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference(reference_run):
    return epochs(reference_run)


@pytest.mark.slow
def test_two_processes_shard_checkpoint_and_resume_on_one(reference, tmp_path, capsys):
    run = tmp_path / "two"
    done = torchrun(*ARGS, "--epochs", "2", "--distributed", "fsdp", "--out", str(run))
    assert done.returncode == 0, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["distributed"] == "fsdp" and summary["world_size"] == 2 and summary["status"] == "completed"
    assert_same_epochs(epochs(run), reference[:2])

    # last.pt: the whole model (what evaluate / export / fine-tune read) and the name of the DCP folder
    # that holds model and optimizer shards — one folder per rank's file, the older ones removed
    last = checkpoint.load(run / "checkpoints" / "last.pt")
    assert last["optimizer"] is None and sharded_folders(run) == [last["sharded"]]
    shards = sorted(p.name for p in (run / "checkpoints" / last["sharded"]).iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert set(last["model"]) == {"1.weight", "1.bias", "3.weight", "3.bias"}

    # resumed on one process: epoch 3 is the uninterrupted run's, so Adam's moments came back whole
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 0  # (in this process: no group)
    assert_same_epochs(epochs(run), reference)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["distributed"] is None and summary["epochs"] == 3
    assert len(sharded_folders(run)) == 1

    capsys.readouterr()
    assert main(["evaluate", str(run), "--checkpoint", "last", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(reference[2]["val_loss"], rel=1e-4)
    # exit 0: the ONNX file was reloaded by onnxruntime and its outputs matched PyTorch's
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "export")]) == 0
    assert (tmp_path / "export" / "model.onnx").stat().st_size > 0


@pytest.mark.slow
def test_one_process_resumes_under_two_with_gradient_checkpointing(reference, tmp_path):
    run = tmp_path / "one"
    assert main([*ARGS, "--epochs", "1", "--distributed", "fsdp", "--grad-checkpoint", "--out", str(run)]) == 0
    assert json.loads((run / "summary.json").read_text())["grad_checkpoint"] is True
    assert checkpoint.load(run / "checkpoints" / "last.pt")["optimizer"] is None  # the recipe asks for DCP

    resumed = torchrun("train", "--out", str(run), "--resume", "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["distributed"] == "fsdp" and summary["world_size"] == 2
    assert_same_epochs(epochs(run), reference[:2])


@pytest.mark.slow
def test_fine_tuning_under_fsdp_keeps_layer_rates_and_gradual_unfreezing(reference_run, tmp_path):
    """FSDP replaces the parameters with sharded ones: what was keyed by parameter (the backbone's lower
    rate, the parameters unfrozen after epoch 1) must follow them, or the backbone would train at the
    head's rate — or not at all."""
    args = ["finetune", "--from", str(reference_run), "--data", "digits", "--strategy", "head", "--unfreeze-after",
            "1", "--epochs", "2", "--min-steps", "0", "--batch-size", "64", "--distributed", "fsdp"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    done = torchrun(*args, "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr
    assert_same_epochs(epochs(tmp_path / "two"), epochs(tmp_path / "one"))
    one, two, source = (checkpoint.load(d / "checkpoints" / "last.pt")["model"]
                        for d in (tmp_path / "one", tmp_path / "two", reference_run))
    assert not torch.equal(two["1.weight"], source["1.weight"])  # the backbone trained after unfreezing…
    for name, tensor in one.items():
        assert torch.allclose(two[name], tensor, atol=1e-6), name  # …at its own rate, as on one process


def test_stopped_inside_an_epoch_resumes_bit_exactly_from_the_sharded_folder(tmp_path):
    """One process, distributed: fsdp (the checkpoint format follows the recipe): a stop at step 17, in the
    middle of epoch 2, resumes from the DCP folder to the uninterrupted run's weights and losses."""
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.engine import RunControls, resume, train
    from ftstudio.core.training.callbacks import History
    from tests.helpers import StopAt

    recipe = Recipe.from_dict({"data": {"name": "digits"}, "model": "mlp", "train": {
        "epochs": 3, "batch_size": 128, "lr": 3e-3, "scheduler": "cosine", "distributed": "fsdp",
        "grad_checkpoint": True}})
    full, rest = History(), History()
    train(recipe, tmp_path / "full", RunControls(callbacks=[full]))
    assert train(recipe, tmp_path / "part", RunControls(callbacks=[StopAt(17)])).finished.reason == "stopped"
    stopped = checkpoint.load(tmp_path / "part" / "checkpoints" / "last.pt")
    assert stopped["step"] >= 17 and sharded_folders(tmp_path / "part") == [stopped["sharded"]]  # (stops at the
    # first step reported after 17: reports come every 0.25 s)
    resume(tmp_path / "part", RunControls(callbacks=[rest]))
    a, b = (checkpoint.load(tmp_path / d / "checkpoints" / "last.pt")["model"] for d in ("full", "part"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rest.losses == full.losses[-len(rest.losses):]


def test_the_launch_script_says_which_parallelism(tmp_path):
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.distributed.launch_script import write_launch_script

    recipe = Recipe.from_dict({"train": {"distributed": "fsdp", "batch_size": 64}})
    script = write_launch_script(recipe, tmp_path / "job").read_text()
    assert "with PyTorch FSDP (torchrun" in script
    assert json.loads((tmp_path / "job" / "recipe.json").read_text())["train"]["distributed"] == "fsdp"


def test_a_checkpoint_cannot_point_outside_its_folder(tmp_path):
    state = {"model": {"w": torch.zeros(1)}, "epoch": 1, "step": 1, "architecture": {}, "classes": ["a"],
             "preprocess": {"input_shape": [1, 8, 8], "mean": [0.0], "std": [1.0]}, "optimizer": None}
    path = tmp_path / "last.pt"
    for bad in ("../../elsewhere", "/tmp/x", "sharded-000000001-zzzzzzzz", 7):
        checkpoint.save(path, {**state, "sharded": bad})
        with pytest.raises(InputError, match="sharded: expected the name"):
            checkpoint.load(path)
    checkpoint.save(path, {**state, "sharded": "sharded-000000001-0123abcd"})
    assert checkpoint.load(path)["sharded_path"] == str(tmp_path / "sharded-000000001-0123abcd")


def test_resuming_without_the_sharded_folder_says_what_is_missing(tmp_path, capsys):
    run = tmp_path / "r"
    assert main([*ARGS, "--epochs", "1", "--distributed", "fsdp", "--out", str(run)]) == 0
    for folder in (run / "checkpoints").glob("sharded-*"):
        shutil.rmtree(folder)
    before = (run / "summary.json").read_text()
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 2
    assert "sharded model and optimizer state of this checkpoint is missing" in capsys.readouterr().err
    assert (run / "summary.json").read_text() == before  # refused before anything was touched
    assert main(["evaluate", str(run), "--json"]) == 0  # last.pt alone still evaluates


def test_distributed_flag_is_validated(capsys):
    with pytest.raises(SystemExit):
        main([*ARGS, "--epochs", "1", "--distributed", "zero3"])
    assert "--distributed: invalid choice: 'zero3'" in capsys.readouterr().err
    from ftstudio.core.config.recipe import Recipe

    with pytest.raises(InputError, match="train.distributed: must be one of ddp, fsdp"):
        Recipe.from_dict({"train": {"distributed": "zero3"}})
    with pytest.raises(InputError, match="train.grad_checkpoint: expected true or false"):
        Recipe.from_dict({"train": {"grad_checkpoint": "yes"}})
