"""Keeping the window responsive while the app trains on the same CPU.

With other processes keeping every core busy, the training thread starved the event loop
(p99 lateness 279–416 ms, issue #17). These are the levers `bench/ui_responsiveness.py`
measures; ``DEFAULT`` holds the ones that earned their place (figures in bench/README.md). They
apply to the app's training thread only: the CLI and torchrun train at full speed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Levers:
    nice: int = 0  # added to the training thread's OS niceness (Linux: per thread); 0 = unchanged
    spare_cores: int = 0  # torch intra-op threads = cores - spare_cores (at least 1) while training
    switch_interval_s: float | None = None  # sys.setswitchinterval while training (Python's default 5 ms)
    yield_s: float | None = None  # sleep this long between batches (0 = just give up the GIL)


DEFAULT = Levers(nice=5, yield_s=0.0)


@contextlib.contextmanager
def applied(levers: Levers) -> Iterator[None]:
    """Apply ``levers`` on the calling (training) thread for the duration of the block."""
    undo: list = []
    if levers.nice and hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        tid = threading.get_native_id()  # a Linux thread is a task: its nice value is its own
        with contextlib.suppress(OSError):
            before = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, before + levers.nice))
            # lowering priority is allowed; raising it back is not (without privileges): keep it
    if levers.spare_cores:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - levers.spare_cores))
        undo.append(lambda: torch.set_num_threads(threads))
    if levers.switch_interval_s is not None:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(levers.switch_interval_s)
        undo.append(lambda: sys.setswitchinterval(interval))
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


class YieldingPause(threading.Event):
    """The pause event, which the trainer checks once per batch: checking it also yields.

    ``time.sleep`` releases the GIL and lets the OS schedule the GUI thread before the next
    batch takes the GIL back; that is the "yield between batches" lever, without the engine
    knowing about windows."""

    def __init__(self, yield_s: float | None) -> None:
        super().__init__()
        self.yield_s = yield_s

    def is_set(self) -> bool:
        if self.yield_s is not None:
            time.sleep(self.yield_s)
        return super().is_set()
