"""The engine's error types. Front doors map them to exit codes and dialogs.

Only these escape the engine on bad input; anything else is a bug.
"""

from __future__ import annotations


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
