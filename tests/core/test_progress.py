"""TrainProgress: its checkpoint keys are format 1's, old checkpoints resume bit-exactly, forged ones are named."""

import pytest
import torch

from ftstudio.core.config.recipe import Recipe
from ftstudio.core.engine import RunControls, resume, train
from ftstudio.core.errors import InputError
from ftstudio.core.runs.folders import Run
from ftstudio.core.training import checkpoint
from ftstudio.core.training.callbacks import History
from ftstudio.core.training.progress import TrainProgress
from tests.helpers import StopAt

TRAIN = {"epochs": 2, "batch_size": 128, "lr": 3e-3, "scheduler": "cosine"}


def recipe() -> Recipe:
    return Recipe.from_dict({"data": {"name": "digits"}, "model": "mlp", "train": TRAIN})


@pytest.fixture(autouse=True)
def _every_step_reported(monkeypatch):
    """A BatchFinished per step, so that StopAt stops at exactly its step (not at the next event)."""
    monkeypatch.setattr("ftstudio.core.training.trainer.EVENT_INTERVAL_S", 0.0)


def test_state_dict_round_trip_continues_the_same_random_streams():
    a = TrainProgress(seed=3)
    torch.randperm(50, generator=a.shuffle)
    a.epoch, a.step, a.batch, a.mid_epoch = 1, 17, 5, True
    a.begin_epoch()
    a.sums.loss_sum, a.sums.seen, a.sums.correct = 2.5, 640, 300
    a.best.offer(1, 0.4, 0.3, 0.9)
    state = a.state_dict()
    b = TrainProgress(seed=99)
    b.load_state_dict(state)
    assert (b.epoch, b.step, b.batch, b.sums, b.best) == (1, 17, 5, a.sums, a.best)
    assert torch.equal(torch.randperm(50, generator=b.shuffle), torch.randperm(50, generator=a.shuffle))
    assert torch.equal(torch.rand(4, generator=b.augment), torch.rand(4, generator=a.augment))


def test_a_nan_validation_is_never_the_best_epoch():
    best = TrainProgress().best
    assert best.offer(1, 1.0, 0.5, 0.8)
    assert not best.offer(2, 1.0, float("nan"), float("nan")) and best.epoch == 1


def test_checkpoint_in_format_1_resumes_bit_exactly(tmp_path):
    """A checkpoint whose progress keys are spelled out as the trainer wrote them before TrainProgress
    (epoch, batch, step, partial, rng, best) resumes to the weights of an uninterrupted run."""
    full = History()
    train(recipe(), tmp_path / "full", RunControls(callbacks=[full]))
    train(recipe(), tmp_path / "part", RunControls(callbacks=[StopAt(17)]))  # inside epoch 2 (12 steps an epoch)
    last = tmp_path / "part" / "checkpoints" / "last.pt"
    written = checkpoint.load(last)
    progress_keys = ("epoch", "batch", "step", "partial", "rng", "best")
    assert set(TrainProgress().state_dict()) == set(progress_keys)
    old = {k: v for k, v in written.items() if k not in ("format", "version", *progress_keys)}
    partial, rng, best = written["partial"], written["rng"], written["best"]
    assert set(partial) == {"loss_sum", "correct", "seen", "seconds"}
    assert set(rng) == {"torch", "cuda", "shuffle", "augment"} and set(best) == {"epoch", "key", "val_accuracy",
                                                                               "val_loss"}
    old.update({"epoch": 1, "batch": 5, "step": 17,
                "partial": {"loss_sum": partial["loss_sum"], "correct": partial["correct"], "seen": partial["seen"],
                            "seconds": partial["seconds"]},
                "rng": {"torch": rng["torch"], "cuda": [], "shuffle": rng["shuffle"], "augment": rng["augment"]},
                "best": {"epoch": 1, "key": list(best["key"]), "val_accuracy": best["val_accuracy"],
                         "val_loss": best["val_loss"]}})
    assert written["epoch"] == 1 and written["batch"] == 5 and written["step"] == 17
    checkpoint.save(last, old)
    rest = History()
    resume(tmp_path / "part", RunControls(callbacks=[rest]))
    a = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")["model"]
    b = checkpoint.load(last)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rest.losses == full.losses[-len(rest.losses):]
    # the unfinished epoch's sums came back (summed in other windows: equal up to rounding)
    assert [r["train_loss"] for r in Run(tmp_path / "part").epochs()] == pytest.approx(
        [r["train_loss"] for r in Run(tmp_path / "full").epochs()], rel=1e-9)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("rng", {"torch": "x"}, "rng.torch"),
    ("partial", {"loss_sum": 1.0, "mystery": 2}, "partial.mystery"),
    ("best", {"epoch": 1, "key": [0.5]}, "best.key"),
])
def test_a_forged_progress_field_is_named_before_anything_is_touched(tmp_path, field, value, words):
    train(recipe(), tmp_path / "run", RunControls(callbacks=[StopAt(5)]))
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    forged = {k: v for k, v in checkpoint.load(last).items() if k not in ("format", "version")}
    checkpoint.save(last, {**forged, field: value})
    metrics = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(InputError, match=words):
        resume(tmp_path / "run")
    assert Run(tmp_path / "run").read_summary()["status"] == "stopped"
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == metrics
