"""The engine's error types. Front doors map them to exit codes and dialogs.

Only these escape the engine on bad input; anything else is a bug.
"""

from __future__ import annotations

import errno


class FtError(Exception):
    """Base of every error the engine raises on purpose; its message is for the user."""

    exit_code = 1


class InputError(FtError):
    """Bad input from the user: a file, a flag, a field. Exit code 2."""

    exit_code = 2


class GuardStop(FtError):
    """A guard stopped training (the loss became NaN/inf). Exit code 3."""

    exit_code = 3


class Cancelled(FtError):
    """The stop event was set before training started (while data decoded, a source loaded…). Exit code 130.

    A type, so that front doors tell a cancel from a failure without comparing messages; the CLI
    reports it as the interrupt (Ctrl-C, SIGTERM) that set the event."""

    exit_code = 130


class Interrupted(FtError):
    """The user interrupted (Ctrl-C) after a checkpoint was saved. Exit code 130."""

    exit_code = 130


class Terminated(Interrupted):
    """Stopped by SIGTERM (a service manager, ``kill``) after a checkpoint was saved. Exit code 143."""

    exit_code = 143


# what the user can do about a file the system refused; other errnos are bugs or rarer faults
_OS_HINTS = {code: hint for name, hint in (
    ("ENOSPC", "the disk is full: free some space, or choose a folder on another disk, and try again"),
    ("EDQUOT", "your disk quota is used up: free some space, or choose a folder on another disk"),
    ("EROFS", "the disk is read-only: choose a folder you can write to"),
    ("EACCES", "permission denied: fix its permissions, or choose a folder you can use"),
    ("EPERM", "not permitted: fix its permissions, or choose a folder you can use"),
    ("EIO", "the disk reported an input/output error: check it, or use another one"),
) if (code := getattr(errno, name, None)) is not None}  # (not every platform names every code)


def os_error_message(exc: OSError) -> str | None:
    """One line for a file the system refused (a full disk, a read-only one, permissions), naming the file
    and what to do; None for an OSError that is not one of those (the front door reports it as a bug).

    Why here: a full disk can strike any write — a lock file, summary.json, an export — and every front
    door (CLI, app) must say the same thing instead of an "unexpected failure" and a crash log."""
    hint = os_error_hint(exc)
    if hint is None:
        return None
    return f"{exc.filename}: {hint}" if exc.filename else f"a file could not be written: {hint}"


def os_error_hint(exc: OSError) -> str | None:
    """What to do about ``exc`` (a full disk, a read-only one, permissions), or None."""
    return _OS_HINTS.get(exc.errno) if exc.errno is not None else None


def os_error_reason(exc: OSError) -> str:
    """What to do about ``exc`` where there is advice, else the system's own words: for the parentheses of
    a message that already names the file."""
    return os_error_hint(exc) or exc.strerror or str(exc)
