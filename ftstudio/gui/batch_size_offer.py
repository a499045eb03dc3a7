"""After a run ran out of memory: offer to find the largest batch size that fits, then set it.

The search (`planning.batch_size.largest_fitting_batch`: one trial step on a GPU, an estimate on
the CPU) runs as a background task; its answer becomes the session's batch size and the banner
says what to do next.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QWidget

from ftstudio.gui import dialogs
from ftstudio.gui.state import Session
from ftstudio.gui.widgets.banner import Banner
from ftstudio.gui.workers import Tasks


def offer_batch_search(parent: QWidget, session: Session, tasks: Tasks, banner: Banner) -> None:
    """Ask, then search from half the batch size that failed down; ``banner`` tells how it went."""
    failed = session.train.batch_size
    start = max(1, failed // 2)
    if not dialogs.confirm(parent, "Out of memory", f"Training ran out of memory at batch size {failed}. Find the "
                           f"largest batch size (from {start} down) that fits on this device?", "Find batch size"):
        return
    from ftstudio.core.planning.batch_size import largest_fitting_batch

    recipe = session.recipe()
    banner.show_message("info", f"Looking for a batch size that fits (from {start} down)…")
    task = tasks.start("batch search", lambda cancel: largest_fitting_batch(recipe, start))

    def found(result: tuple[int, str]) -> None:
        size, how = result
        session.set_train(dataclasses.replace(session.train, batch_size=size))
        banner.show_message("success", f"Batch size set to {size} ({how}); press Start to train again.")

    task.done.connect(found)
    task.failed.connect(lambda message: banner.show_message("error", f"No batch size fits: {message}"))
