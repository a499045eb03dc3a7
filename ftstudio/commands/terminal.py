"""What the commands print, made safe for where it lands.

File and class names come from the user's disk and from downloaded archives and models, and two
kinds of name went wrong:

- bytes that are not UTF-8 (an old zip's Latin-1 names; Python holds them as lone surrogates)
  crashed the print under a desktop's UTF-8 locale, whose standard output is strict;
- control characters reached the terminal, which obeys them: ESC starts sequences that move the
  cursor, retitle the window or (OSC 52) write the clipboard, and U+202E reverses how a name reads.

Like GNU ``ls``, a terminal gets such characters escaped (``\\x1b``, ``\\xff``, ``\\u202e``), while a
pipe or a file gets the names' real bytes, which a script needs to open them.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TextIO

from ftstudio.core import messages

ERRORS = "ftstudio-names"


def escape_controls(text: str) -> str:
    """``text`` with every character a terminal would obey (or cannot show) spelt as an escape; tab,
    newline and carriage return (progress bars redraw with it) stay."""
    return messages.escape_controls(text, keep="\t\n\r")


def _encode_errors(exc: UnicodeError) -> tuple[str | bytes, int]:
    """Lone surrogates go back out as the bytes they came from (what ``ls`` writes into a pipe);
    anything else the stream's encoding lacks is backslash-escaped instead of raising."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    chunk = exc.object[exc.start:exc.end]
    if all("\udc80" <= c <= "\udcff" for c in chunk):
        return bytes(ord(c) - 0xDC00 for c in chunk), exc.end
    return codecs.backslashreplace_errors(exc)


codecs.register_error(ERRORS, _encode_errors)


class _Escaping:
    """A terminal stream whose writes have their control characters escaped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(escape_controls(text))
        return len(text)

    def __getattr__(self, name: str):  # flush, fileno, isatty, encoding… of the real stream
        return getattr(self._stream, name)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def safe_output() -> Iterator[None]:
    """Standard output and error, for one command: never a crash on a name, nothing a terminal obeys."""
    saved = sys.stdout, sys.stderr
    errors = []
    for stream in dict.fromkeys(saved):  # once each, when both are the same stream
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, OSError, AttributeError):  # closed or detached
                errors.append((stream, stream.errors))
                stream.reconfigure(errors=ERRORS)
    sys.stdout, sys.stderr = (_Escaping(s) if _isatty(s) else s for s in saved)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        for stream, before in errors:
            with contextlib.suppress(ValueError, OSError, AttributeError):
                stream.flush()
                stream.reconfigure(errors=before)
