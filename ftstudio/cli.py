"""The command-line front door: no arguments opens the desktop app; subcommands run the engine.

Exit codes: 0 done · 2 bad input · 3 stopped by a guard (loss NaN/inf) · 130 interrupted (after
saving a checkpoint) · 1 anything unexpected (the traceback goes to a log file we name).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from datetime import datetime

from ftstudio import __version__
from ftstudio.core.allocator import keep_freed_memory, one_arena

COMMANDS = ("datasets", "train", "finetune", "evaluate", "runs", "run", "export", "demo",
            "presets", "predict", "data", "backbones")


def build_parser() -> argparse.ArgumentParser:
    from ftstudio.commands import data_commands, run_commands

    parser = argparse.ArgumentParser(
        prog="ftstudio", description="Train and fine-tune PyTorch models — a desktop app and a command line.",
        epilog="Run `ftstudio` with no arguments to open the desktop app.")
    parser.add_argument("--version", action="version", version=f"ftstudio {__version__}")
    parser.add_argument("--screenshot", metavar="OUT.png", help="render the main window to a PNG and exit")
    parser.add_argument("--page", default="data",
                        help="page for --screenshot: data, dataset, model, train, runs, export, try, wizard")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    data_commands.register(sub)
    run_commands.register(sub)
    for name in ("finetune_commands", "export_commands", "predict_commands", "backbone_commands"):
        try:
            module = __import__(f"ftstudio.commands.{name}", fromlist=["register"])
        except ModuleNotFoundError:
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    one_arena()  # first, before Qt's and torch's threads allocate (core/allocator.py)
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _gui(args)
    return run_command(args)


def _gui(args: argparse.Namespace) -> int:
    try:
        from ftstudio.gui.app import run_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("ftstudio.gui"):
            print("The desktop app is not part of this build yet; use the command line: ftstudio --help")
            return 0
        print(f"error: the desktop app needs {exc.name}; install it with `pip install ftstudio` "
              f"(or use the command line: ftstudio --help)", file=sys.stderr)
        return 2
    return run_app(screenshot=args.screenshot, page=args.page)


def run_command(args: argparse.Namespace) -> int:
    """Run a subcommand, mapping engine errors to exit codes and one-line messages."""
    from ftstudio.commands.terminal import safe_output

    with safe_output():  # names with non-UTF-8 bytes or control characters (commands/terminal.py)
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    from ftstudio.core.errors import FtError, os_error_message

    try:
        with keep_freed_memory():  # a command's large blocks serve its next batch (core/allocator.py)
            return int(args.handler(args) or 0)
    except FtError as exc:  # the exit code comes from the error's class (core/errors.py)
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # the reader went away (`ftstudio runs --json | head`): nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # keep Python's exit-time flush from failing again
        return 0
    except OSError as exc:  # a full or read-only disk, permissions: the file and what to do, not a crash log
        message = os_error_message(exc)
        if message is None:
            return _crashed()
        _error(message)
        return 1
    except Exception:  # anything unexpected: keep the traceback for a bug report, not on screen
        return _crashed()


def _crashed() -> int:
    """Called inside an ``except``: the traceback goes to a crash log, one line to the screen."""
    log = _write_crash_log(traceback.format_exc())
    _error(f"unexpected failure; the details are in {log} — please include that file in a bug report")
    return 1


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _write_crash_log(text: str) -> str:
    from ftstudio.core.paths import log_dir

    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{datetime.now():%Y%m%d-%H%M%S-%f}.log"
        path.write_text(f"ftstudio {__version__}\n{' '.join(sys.argv)}\n\n{text}", encoding="utf-8")
        return str(path)
    except OSError:  # the data folder itself is unwritable (FTSTUDIO_HOME read-only): use the temp folder
        import tempfile

        try:
            fd, name = tempfile.mkstemp(prefix="ftstudio-crash-", suffix=".log")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"ftstudio {__version__}\n{' '.join(sys.argv)}\n\n{text}")
            return name
        except OSError:
            sys.stderr.write(text)
            return "(could not write a log; traceback above)"
