"""A stand-in for Windows' ``msvcrt`` locking API on POSIX, so the lock's Windows branch runs here.

``msvcrt.locking(fd, mode, nbytes)`` locks ``nbytes`` from the file position, per handle, and
reports contention as OSError(EACCES). ``fcntl.lockf`` locks the same byte ranges, but per
*process*: the stand-in is faithful only between processes, which is how the tests use it.
What it cannot show: Windows' mandatory locking (others cannot read the locked byte), and that
Windows refuses to delete or rename a file that is open.
"""

from __future__ import annotations

import errno
import fcntl
import os

LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4


def locking(fd: int, mode: int, nbytes: int) -> None:
    start = os.lseek(fd, 0, os.SEEK_CUR)
    if mode == LK_UNLCK:
        fcntl.lockf(fd, fcntl.LOCK_UN, nbytes, start, os.SEEK_SET)
        return
    writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY  # lockf: F_WRLCK needs write access
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if writable else fcntl.LOCK_SH) | fcntl.LOCK_NB, nbytes, start, os.SEEK_SET)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise OSError(errno.EACCES, "Permission denied") from None
        raise


def install() -> None:
    """Make ``import msvcrt`` find this module and switch ftstudio's run lock to its Windows backend."""
    import sys

    from ftstudio.core.runs import lock

    sys.modules["msvcrt"] = sys.modules[__name__]
    lock.BACKEND = lock.backend_for("nt")
