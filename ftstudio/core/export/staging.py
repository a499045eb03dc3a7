"""Exports are written to a fresh hidden folder beside the target and swapped in at the end.

A SIGKILL mid-export once left new model files beside the old model card and signature, and a
``.tmp`` file. Now the old export stays whole until the new one is complete: two renames swap
them (the old one is parked as ``.NAME.old-*`` for that instant and restored if the process died
between the renames). Leftover staging folders of dead exports are removed on the next export.
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
from ftstudio.core.runs.lock import LOCK_NAME, RunLock, is_locked

# What an export folder may hold: anything else means the user pointed --out at their own files.
EXPORT_FILES = {"signature.json", "architecture.json", "model_card.md"}


def recover(out: Path) -> None:
    """Undo a swap cut short (``out`` gone, its parked copy left) and remove dead staging folders."""
    parent = out.parent
    if not parent.is_dir():
        return
    parked = sorted(parent.glob(f".{out.name}.old-*"))
    if parked and not out.exists():
        os.replace(parked[-1], out)
        parked = parked[:-1]
    for leftover in [*parked, *parent.glob(f".{out.name}.new-*")]:
        if not is_locked(leftover):
            shutil.rmtree(leftover, ignore_errors=True)


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
    lock = RunLock(stage).acquire()  # marks the staging folder as alive for a concurrent recover()
    try:
        os.chmod(stage, 0o777 & ~umask())
        yield stage
        (stage / LOCK_NAME).unlink(missing_ok=True)
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
