"""Exports are written to a fresh hidden folder beside the target and swapped in at the end.

A SIGKILL mid-export once left new model files beside the old model card and signature, and a
``.tmp`` file. Now the old export stays whole until the new one is complete: two renames swap
them (the old one is parked as ``.NAME.old-*`` for that instant and restored if the process died
between the renames). Leftover staging folders of dead exports are removed on the next export.
A live export holds the lock file ``.NAME.TOKEN.lock`` beside its folders, not inside them:
Windows refuses to rename a folder that holds an open file.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftstudio.core import messages
from ftstudio.core.errors import InputError
from ftstudio.core.fileio import umask
from ftstudio.core.runs.lock import RunLock, is_held

# What an export folder may hold: anything else means the user pointed --out at their own files.
EXPORT_FILES = {"signature.json", "architecture.json", "model_card.md"}


def recover(out: Path) -> None:
    """Undo a swap cut short (``out`` gone, its parked copy left) and remove dead staging folders."""
    parent = out.parent
    if not parent.is_dir():
        return
    parked = [p for p in sorted(parent.glob(f".{out.name}.old-*")) if not _alive(p)]
    if parked and not out.exists():
        os.replace(parked[-1], out)
        parked = parked[:-1]
    for leftover in [*parked, *parent.glob(f".{out.name}.new-*")]:
        if not _alive(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
    for lock_file in parent.glob(f".{out.name}.*.lock"):
        if not is_held(lock_file):
            lock_file.unlink(missing_ok=True)


def _lock_file(out: Path, token: str) -> Path:
    return out.parent / f".{out.name}.{token}.lock"


def _alive(leftover: Path) -> bool:
    """Whether the export that made ``.NAME.new-TOKEN`` / ``.NAME.old-TOKEN`` still runs."""
    name, _, token = leftover.name.rpartition("-")
    out = leftover.parent / name[1:].rsplit(".", 1)[0]
    return is_held(_lock_file(out, token))


def check_target(out: Path, known: set[str]) -> None:
    """``out`` is new, empty or a previous export: never swap away a folder of the user's own files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(messages.EXPORT_NOT_WRITABLE.format(path=out, reason="a file, not a folder"))
    foreign = sorted(p.name for p in out.iterdir() if p.name not in known | EXPORT_FILES)
    if foreign:
        raise InputError(messages.EXPORT_FOREIGN.format(path=out, name=foreign[0]))


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """Yield a fresh folder to write the export into; swap it in as ``out`` if the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    token = secrets.token_hex(4)
    stage = out.parent / f".{out.name}.new-{token}"
    lock = RunLock(stage, _lock_file(out, token)).acquire()  # marks its folders alive for a concurrent recover()
    try:
        os.chmod(stage, 0o777 & ~umask())
        yield stage
        if out.exists():
            parked = out.parent / f".{out.name}.old-{token}"
            os.replace(out, parked)
            os.replace(stage, out)
            shutil.rmtree(parked, ignore_errors=True)
        else:
            os.replace(stage, out)
    finally:
        lock.release()
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
