"""One writer per run folder: an advisory lock held while a process trains into it.

Two ``train --out X`` at once used to both succeed and mix their files. The lock is an
``flock`` on ``X/.lock``: the kernel drops it when the holder exits, even after ``kill -9``,
so a stale lock never blocks anyone and needs no clean-up. The file keeps the holder's pid
for the message. (Where ``fcntl`` does not exist, Windows, no lock is taken.)
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from ftstudio.core import messages
from ftstudio.core.errors import InputError

LOCK_NAME = ".lock"


class RunBusy(InputError):
    """Another process is writing this run folder (exit code 2)."""


class RunLock:
    """``with RunLock(folder):`` — hold the folder's lock (creating the folder) or raise RunBusy."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one process at a time is on the user
            return self
        try:
            self._created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(messages.RUN_UNWRITABLE.format(path=self.folder, detail=exc.strerror or exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunBusy(messages.RUN_BUSY.format(path=self.folder, pid=holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock; a folder this lock created and nobody wrote into is removed again."""
        if self._fd is None:
            return
        try:
            if self._created and os.listdir(self.folder) == [LOCK_NAME]:
                (self.folder / LOCK_NAME).unlink()
                self.folder.rmdir()
        except OSError:  # gone already (an export's staging folder is renamed away), or refilled
            pass
        os.close(self._fd)  # closing drops the flock; otherwise the file stays (unlinking it would race)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def is_locked(folder: str | Path) -> bool:
    """Whether a live process holds ``folder``'s lock now (the Runs page shows such runs as running)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
