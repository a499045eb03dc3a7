"""Out of memory in the app: the window offers to find a batch size that fits, and sets it."""

from __future__ import annotations

import torch

from ftstudio.core.training.callbacks import Callback
from tests.gui.conftest import set_train


class OutOfMemoryAtFirstReport(Callback):
    """What the trainer sees when the device runs out of memory mid-epoch."""

    def on_batch_finished(self, event) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def fail_out_of_memory(qtbot, window, outcomes) -> None:
    window.start_training(callbacks=(OutOfMemoryAtFirstReport(),))
    qtbot.waitUntil(lambda: len(outcomes) >= 1, timeout=120_000)
    assert outcomes[-1].status == "failed" and outcomes[-1].summary.get("failed_kind") == "out_of_memory"


def test_accepting_the_offer_sets_the_batch_size_found(qtbot, window, outcomes, answers):
    set_train(window, epochs=1, batch_size=64)
    fail_out_of_memory(qtbot, window, outcomes)
    assert any("ran out of memory at batch size 64" in q and "from 32 down" in q for q in answers.asked)
    qtbot.waitUntil(lambda: window.session.train.batch_size == 32, timeout=60_000)  # the CPU estimate: 32 fits
    assert "Batch size set to 32" in window.train_page.banner.label.text()
    qtbot.waitUntil(lambda: not window.tasks.busy(), timeout=10_000)


def test_declining_the_offer_keeps_the_batch_size(qtbot, window, outcomes, answers):
    set_train(window, epochs=1, batch_size=64)
    answers.yes = False
    fail_out_of_memory(qtbot, window, outcomes)
    assert any("ran out of memory" in q for q in answers.asked)
    assert window.session.train.batch_size == 64 and not window.tasks.busy("batch search")
