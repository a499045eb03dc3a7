"""The trainer: event order, determinism, resume from any batch, guards, stop/pause, checkpoints."""

import pickle
import threading

import pytest
import torch

from ftstudio.core.errors import GuardStop, InputError
from ftstudio.core.engine import RunControls, resume, train
from ftstudio.core.config.recipe import DatasetSpec, Recipe, TrainConfig
from ftstudio.core.runs.folders import Run
from ftstudio.core.training import checkpoint
from ftstudio.core.training.callbacks import Callback, History
from tests.helpers import StopAt


def recipe(**train) -> Recipe:
    cfg = {"epochs": 3, "batch_size": 128, "lr": 3e-3, **train}
    return Recipe.from_dict({"data": {"name": "digits"}, "model": "mlp", "train": cfg})


def test_event_order_is_recorded(tmp_path):
    h = History()
    train(recipe(epochs=2), tmp_path / "run", RunControls(callbacks=[h]))
    kinds = h.kinds()
    assert kinds[0] == "FitStarted" and kinds[-1] == "FitFinished"
    per_epoch = ["EpochStarted", "BatchFinished", "ValidationFinished", "EpochFinished"]
    compact = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    assert compact == ["FitStarted", *per_epoch, *per_epoch, "FitFinished"]
    assert h.steps == list(range(1, len(h.steps) + 1)) == list(range(1, 2 * 12 + 1))  # 1438/128 → 12 steps/epoch


def test_same_seed_same_curve_other_seed_differs(tmp_path):
    a, b, c = History(), History(), History()
    train(recipe(), tmp_path / "a", RunControls(callbacks=[a]))
    train(recipe(), tmp_path / "b", RunControls(callbacks=[b]))
    train(recipe(seed=1), tmp_path / "c", RunControls(callbacks=[c]))
    assert a.losses == b.losses
    assert a.losses != c.losses


@pytest.mark.parametrize("stop_step", [12, 17])  # at an epoch boundary, and in the middle of epoch 2
def test_resume_gives_identical_results(tmp_path, stop_step):
    cfg = dict(epochs=3, scheduler="cosine", warmup_epochs=0.5)
    full = History()
    train(recipe(**cfg), tmp_path / "full", RunControls(callbacks=[full]))
    stopped = train(recipe(**cfg), tmp_path / "part", RunControls(callbacks=[StopAt(stop_step)]))
    assert stopped.finished.reason == "stopped"
    assert Run(tmp_path / "part").read_summary()["status"] == "stopped"
    rest = History()
    resume(tmp_path / "part", RunControls(callbacks=[rest]))
    a = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")["model"]
    b = checkpoint.load(tmp_path / "part" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rest.losses == full.losses[-len(rest.losses):]
    epochs = [r["epoch"] for r in Run(tmp_path / "part").epochs()]
    assert epochs == [1, 2, 3]  # every epoch logged exactly once
    full_rows = Run(tmp_path / "full").epochs()
    part_rows = Run(tmp_path / "part").epochs()
    assert [r["val_loss"] for r in full_rows] == [r["val_loss"] for r in part_rows]


def test_nan_loss_stops_with_guard_and_keeps_last_good_checkpoint(tmp_path):
    class Poison(Callback):
        order = 500  # after the checkpoint of epoch 1 is written

        def on_epoch_finished(self, event):
            if event.epoch == 1:
                with torch.no_grad():
                    for p in self.trainer.model.parameters():
                        p.fill_(float("nan"))

    with pytest.raises(GuardStop, match=r"loss became nan at epoch 2, step 13"):
        train(recipe(), tmp_path / "run", RunControls(callbacks=[Poison()]))
    run = Run(tmp_path / "run")
    assert run.read_summary()["status"] == "failed"
    good = checkpoint.load(run.checkpoint("last"))
    assert good["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


def test_early_stopping(tmp_path):
    result = train(recipe(epochs=50, lr=0.5, optimizer="sgd", early_stopping=2), tmp_path / "run")
    assert result.finished.reason == "early_stopping"
    assert result.finished.epochs_done < 50


def test_stop_from_another_thread_within_a_batch(tmp_path):
    stop = threading.Event()

    class StopSoon(Callback):
        def on_epoch_finished(self, event):
            threading.Thread(target=stop.set).start()

    result = train(recipe(epochs=500), tmp_path / "run", RunControls(stop=stop, callbacks=[StopSoon()]))
    assert result.finished.reason == "stopped" and result.finished.epochs_done <= 3
    ckpt = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["epoch"] + (ckpt["batch"] > 0) >= 1


class WatchedEvent(threading.Event):
    """A pause event that tells the test when the trainer has looked at it while it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_set = threading.Event()

    def is_set(self) -> bool:
        value = super().is_set()
        if value:
            self.seen_set.set()
        return value


def test_pause_then_resume(tmp_path):
    """A handshake, not a timer: the pause is lifted only once the trainer has seen it."""
    pause, lifted = WatchedEvent(), threading.Event()
    started, batches = [], []

    def lift_once_seen() -> None:
        if pause.seen_set.wait(120):  # (never seen: lift anyway so the run ends; `lifted` stays clear)
            lifted.set()
        pause.clear()

    class PauseOnce(Callback):
        def on_epoch_finished(self, event):
            if event.epoch == 1:
                pause.set()
                threading.Thread(target=lift_once_seen, daemon=True).start()

        def on_epoch_started(self, event):
            if event.epoch == 2:
                started.append(lifted.is_set())

        def on_batch_finished(self, event):
            if event.epoch == 2:
                batches.append(lifted.is_set())

    result = train(recipe(epochs=2), tmp_path / "run", RunControls(pause=pause, callbacks=[PauseOnce()]))
    assert result.finished.reason == "completed" and lifted.is_set()
    # epoch 2 starts, but none of its batches trains before the pause is lifted
    assert started == [False] and batches and all(batches)


@pytest.mark.parametrize("scheduler", ["step", "cosine", "onecycle"])
def test_schedulers_change_the_lr(tmp_path, scheduler):
    h = History()
    train(recipe(epochs=3, scheduler=scheduler, step_size=1, gamma=0.5), tmp_path / scheduler,
          RunControls(callbacks=[h]))
    lrs = [e.lr for e in h.epochs]
    assert len(set(lrs)) == 3
    if scheduler == "step":
        assert lrs[1] == pytest.approx(lrs[0] * 0.5)


def test_checkpoints_are_weights_only_and_self_contained(tmp_path):
    train(recipe(epochs=1), tmp_path / "run")
    data = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert data["format"] == "ftstudio.checkpoint" and data["classes"][0] == "0"
    assert data["architecture"]["layers"][1]["params"]["in_features"] == 64
    assert data["preprocess"]["input_shape"] == [1, 8, 8]


def test_hostile_checkpoints_are_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(Payload()))
    zipped = tmp_path / "zipped.pt"
    torch.save({"model": Payload()}, zipped)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    good = tmp_path / "good.pt"
    torch.save({"format": "ftstudio.checkpoint", "version": 1}, good)
    truncated = tmp_path / "truncated.pt"
    train(recipe(epochs=1), tmp_path / "run")
    truncated.write_bytes((tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()[:5000])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 10)
    cases = {plain: "refused", zipped: "refused", foreign: "not one ftstudio wrote", good: "missing model",
             truncated: "not an ftstudio checkpoint", empty: "empty", noise: "not an ftstudio checkpoint"}
    for path, words in cases.items():
        with pytest.raises(InputError, match=words):
            checkpoint.load(path)
    assert not marker.exists()


def test_data_too_small_for_split_is_clear(tmp_path):
    from tests.helpers import make_digit_folder

    root = make_digit_folder(tmp_path / "d", n_per_class=4, classes=range(2))
    for extra in list((root / "digit_1").glob("*.png"))[1:]:
        extra.unlink()
    with pytest.raises(InputError, match="class 'digit_1' has only 1 image"):
        train(Recipe(data=DatasetSpec(name=str(root)), train=TrainConfig(epochs=1)), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing half-made


def test_frozen_batchnorm_keeps_its_running_statistics(tmp_path):
    import torch

    arch = {"input_shape": ["auto", "auto", "auto"], "layers": [
        {"type": "Conv2d", "params": {"out_channels": 4, "padding": 1}, "freeze": True},
        {"type": "BatchNorm2d", "freeze": True},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"}, {"type": "Flatten"}, {"type": "Linear"}]}
    recipe = Recipe.from_dict({"model": arch, "train": {"epochs": 1}})
    train(recipe, tmp_path / "run")
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert torch.equal(state["1.running_mean"], torch.zeros(4))  # frozen: untouched
    assert not torch.equal(state["2.running_mean"], torch.zeros(4))  # trainable: adapted
