"""One writer per run folder: an advisory lock held while a process trains into it.

Two ``train --out X`` at once used to both succeed and mix their files. The lock is a lock on
the first byte of ``X/.lock``, taken through one small interface with one backend per platform:
``fcntl.flock`` on Linux and macOS, ``msvcrt.locking`` on Windows. Either way the operating
system drops it when the holder exits, even after ``kill -9``, so a stale lock never blocks anyone
and needs no clean-up. The file keeps the holder's pid (from its second byte on: Windows locks
are mandatory, so the locked first byte cannot be read by others) for the message.

Why not the ``filelock`` package (already installed with torch): what we need — keep the file,
write the pid while holding it, probe without creating folders — takes its newest 4.x options,
its behaviour has changed across many releases, and the job is two system calls per platform.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

from ftstudio.core import messages
from ftstudio.core.errors import InputError

LOCK_NAME = ".lock"
# contention, as flock and msvcrt.locking report it (EDEADLOCK is Windows' spelling of EDEADLK)
_BUSY = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK), errno.EDEADLK}
# a file system without locks (some network mounts): train unlocked, as before locks existed
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}
_OPEN_FLAGS = getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
PID_OFFSET = 1  # the holder's pid starts after the locked byte
RETRIES = 5  # a probe (is_locked) holds the lock for microseconds: try a few times before refusing


class Backend(Protocol):
    """Exclusive, non-blocking lock of a file's first byte, held by one open descriptor."""

    unlink_while_open: bool  # POSIX can remove an open file; Windows only once it is closed

    def try_lock(self, fd: int) -> bool:
        """Take the lock; False when another holder has it. Other failures raise OSError."""
        ...

    def unlock(self, fd: int) -> None: ...


class FlockBackend:
    """Linux, macOS, BSD: ``flock`` belongs to the open file, so two descriptors exclude each other
    even inside one process (the app's training thread and its Runs page)."""

    unlink_while_open = True

    def __init__(self) -> None:
        import fcntl

        self._fcntl = fcntl

    def try_lock(self, fd: int) -> bool:
        return _attempt(lambda: self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB))

    def unlock(self, fd: int) -> None:
        self._fcntl.flock(fd, self._fcntl.LOCK_UN)


class MsvcrtBackend:
    """Windows: ``msvcrt.locking`` locks bytes from the file position, per handle, and must be
    unlocked before the handle closes (else the system frees it only "eventually")."""

    unlink_while_open = False

    def __init__(self) -> None:
        import msvcrt

        self._msvcrt = msvcrt

    def try_lock(self, fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        return _attempt(lambda: self._msvcrt.locking(fd, self._msvcrt.LK_NBLCK, 1))

    def unlock(self, fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        self._msvcrt.locking(fd, self._msvcrt.LK_UNLCK, 1)


def _attempt(lock_call: Callable[[], object]) -> bool:
    try:
        lock_call()
        return True
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise


def backend_for(os_name: str) -> Backend | None:
    """The lock backend of a platform (``os.name``); None where it has neither (then no lock is taken)."""
    try:
        return MsvcrtBackend() if os_name == "nt" else FlockBackend()
    except ImportError:
        return None


BACKEND: Backend | None = backend_for(os.name)


class RunBusy(InputError):
    """Another process is writing this run folder (exit code 2)."""


class RunLock:
    """``with RunLock(folder):`` — hold the folder's lock (creating the folder) or raise RunBusy.

    ``lock_file`` puts the lock file elsewhere than ``folder/.lock``: an export's staging folder is
    renamed while locked, which Windows refuses for a folder holding an open file."""

    def __init__(self, folder: str | Path, lock_file: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.lock_file = Path(lock_file) if lock_file is not None else self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> RunLock:
        backend = BACKEND
        if backend is None:
            return self
        try:
            self._created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o666)
        except OSError as exc:
            raise InputError(messages.RUN_UNWRITABLE.format(path=self.folder, detail=exc.strerror or exc)) from None
        try:
            locked = _try_lock(backend, fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _UNSUPPORTED:
                return self
            raise InputError(messages.RUN_UNWRITABLE.format(path=self.folder, detail=exc.strerror or exc)) from None
        if not locked:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunBusy(messages.RUN_BUSY.format(path=self.folder, pid=holder)) from None
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b" " + f"{os.getpid():<20}\n".encode())  # fixed width: no truncation while locked
        except OSError as exc:  # a full disk: the folder cannot take a run either
            self._fd = fd
            self.release()  # and the folder goes again if this lock made it
            raise InputError(messages.RUN_UNWRITABLE.format(path=self.folder, detail=exc.strerror or exc)) from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock; a folder this lock created and nobody wrote into is removed again."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        backend = BACKEND
        assert backend is not None
        if backend.unlink_while_open:  # removing it while held: nobody can take a lock on it meanwhile
            self._remove_if_untouched()
        try:
            backend.unlock(fd)
        except OSError:  # closing drops it too
            pass
        os.close(fd)  # the file stays otherwise (unlinking it after unlocking would race a new holder)
        if not backend.unlink_while_open:
            self._remove_if_untouched()

    def _remove_if_untouched(self) -> None:
        own = self.lock_file == self.folder / LOCK_NAME
        try:
            if not own:  # a private lock file beside the folder goes with the lock
                self.lock_file.unlink(missing_ok=True)
            if self._created and os.listdir(self.folder) == ([LOCK_NAME] if own else []):
                if own:
                    self.lock_file.unlink()
                self.folder.rmdir()
        except OSError:  # gone already (an export's staging folder is renamed away), refilled, or still open
            pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _try_lock(backend: Backend, fd: int) -> bool:
    for attempt in range(RETRIES):
        if backend.try_lock(fd):
            return True
        if attempt < RETRIES - 1:
            time.sleep(0.05)
    return False


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, PID_OFFSET, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip() or "?"
    except OSError:
        return "?"


def is_locked(folder: str | Path) -> bool:
    """Whether a live process holds ``folder``'s lock now (the Runs page shows such runs as running)."""
    return is_held(Path(folder) / LOCK_NAME)


def is_held(lock_file: str | Path) -> bool:
    """Whether a live process holds the lock on ``lock_file``; never creates it."""
    backend = BACKEND
    if backend is None:
        return False
    try:
        fd = os.open(lock_file, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return False
    try:
        if backend.try_lock(fd):
            backend.unlock(fd)
            return False
        return True
    except OSError:  # no locks on this file system: nobody can hold one
        return False
    finally:
        os.close(fd)
