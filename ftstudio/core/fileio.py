"""Safe file I/O: bounded reads of regular files only, and atomic writes that respect the umask.

Reads never trust ``st_size`` alone (it is 0 for /dev/zero and FIFOs): a file must be a regular
file, and at most ``limit`` bytes are ever read. Writes go to a temp file that is renamed into
place, so a crash or a full disk never leaves a half-written file. `file_sha256` digests checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO


MAX_JSON_BYTES = 2_000_000
NOT_REGULAR = "not a regular file (a device, pipe or socket)"  # why such a file is refused or skipped


class ReadRefused(OSError):
    """A file that is not a regular file, or is over the size limit. Its message, naming the file, is
    for the user; ``reason`` says the same without the path, for a list of skipped files."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file.

    Opened non-blocking (a FIFO without a writer would otherwise hang ``open`` for good), then
    checked with ``fstat`` on the open descriptor (no race with a swapped path); on a regular file
    non-blocking changes nothing. Raises ``FileNotFoundError``/``OSError`` as ``open`` does, and
    ``ReadRefused`` for a folder, a device, a pipe or a socket.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ReadRefused(f"{path}: is a folder, expected a {what}", "a folder, not a file")
        if not stat.S_ISREG(mode):
            raise ReadRefused(f"{path}: {NOT_REGULAR}; expected a {what}", NOT_REGULAR)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file (`open_regular`) of at most ``limit`` bytes: ``st_size`` is
    checked first, then at most ``limit + 1`` bytes are read, so a file that grows while read is
    still refused. Raises as `open_regular` does, and ``ReadRefused`` for a file over the limit."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ReadRefused(f"{path}: {what} is {_size(size)}, over the {_size(limit)} limit")
        chunks, total = [], 0
        while total <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ReadRefused(f"{path}: {what} is over the {_size(limit)} limit")
        return b"".join(chunks)


def _size(n: int) -> str:
    return f"{round(n / 1e6, 1):g} MB" if n >= 100_000 else f"{n} bytes"


def umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere it is set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def respect_umask(fd: int) -> None:
    """Give a file made by ``mkstemp`` (always 0600) the mode a plain ``open`` would have."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~umask())


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            respect_umask(f.fileno())  # exports and run files are read by servers and colleagues
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with the file it was writing named: a write or fsync that fails on a full disk names
    none, and the user must hear which file (``errors.os_error_message``)."""
    if exc.errno is None or (exc.filename is not None and not str(exc.filename).endswith(".tmp")):
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_text(data: Any, indent: int | None = 2) -> str:
    """JSON that UTF-8 can encode, readable where it can be. Paths from non-UTF-8 file names hold
    surrogates that UTF-8 cannot encode: then every non-ASCII character is escaped (\\udce9), which
    reads back the same."""
    import json

    text = json.dumps(data, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=indent)
    return text


def write_json_file(path: str | Path, data: Any) -> None:
    """JSON written atomically as UTF-8 (``json_text``)."""
    atomic_write_bytes(path, (json_text(data) + "\n").encode("utf-8"))
