"""File and class names a terminal would obey, or that are not UTF-8, from the command line.

A desktop's UTF-8 locale makes Python's standard output strict (``PYTHONIOENCODING=utf-8:strict``
stands in for it here: this machine has only the C.UTF-8 locale, where Python is lenient), and a
name from an old Latin-1 zip crashed `data check` and `predict` with "unexpected failure". A class
folder named with an escape sequence reached the terminal as one.
"""

import io
import json
import os
import pty
import subprocess
import sys

import pytest

from ftstudio.commands.terminal import safe_output
from tests.helpers import ROOT, cli, make_photo_folder

STRICT = {"PYTHONIOENCODING": "utf-8:strict"}
ESCAPE_CLASS = "cat\x1b]0;owned\x07"  # would retitle the terminal window
LATIN1 = b"caf\xe9.png"  # "café.png" from a Latin-1 system: not UTF-8
CLEARS = b"\x1b[2J.png"  # would clear the screen


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = make_photo_folder(tmp_path_factory.mktemp("names") / "ds", n_per_class=6, classes=("cat", "dog", "b\nnl"))
    os.rename(root / "cat", root / ESCAPE_CLASS)
    dog = os.fsencode(root / "dog")
    os.rename(dog + b"/dog_000.png", dog + b"/" + LATIN1)
    os.rename(dog + b"/dog_001.png", dog + b"/" + CLEARS)
    return root


@pytest.fixture(scope="module")
def trained(hostile, tmp_path_factory):
    run = tmp_path_factory.mktemp("names") / "run"
    done = cli("train", "--data", str(hostile), "--model", "mlp", "--epochs", "1", "--out", str(run), env=STRICT)
    assert done.returncode == 0, done.stderr
    return run


def run_in_terminal(*args: str) -> tuple[int, bytes]:
    """`python -m ftstudio ARGS` on a pseudo-terminal, as typed into one: (exit code, what it showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio", *args], stdin=follower, stdout=follower,
                            stderr=follower, cwd=ROOT, env={**os.environ, **STRICT})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed its side
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return proc.wait(timeout=120), shown


def test_a_terminal_is_shown_escapes_not_sent_them(hostile, trained):
    code, shown = run_in_terminal("data", "check", str(hostile))
    assert code == 0, shown
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert b"cat\\x1b]0;owned\\x07 6" in shown  # the class, spelt out
    assert b"b\\x0anl 6" in shown  # a newline in a name cannot split the line
    code, shown = run_in_terminal("predict", str(trained), str(hostile / "dog"))
    assert code == 0, shown
    assert b"\x1b" not in shown and b"dog/\\x1b[2J.png\t" in shown and b"dog/caf\\xe9.png\t" in shown


def test_pipes_get_the_real_bytes_under_a_strict_locale(hostile, trained):
    run = trained
    assert json.loads((run / "summary.json").read_text())["classes"] == ["b\\x0anl", "cat\\x1b]0;owned\\x07", "dog"]

    dog = hostile / "dog"
    plain = subprocess.run([sys.executable, "-m", "ftstudio", "predict", str(run), str(dog), "--top-k", "3"],
                           capture_output=True, cwd=ROOT, env={**os.environ, **STRICT}, timeout=120)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 6 and all(len(line.split(b"\t")) == 7 for line in lines)  # labels add no column
    named = [line.split(b"\t")[0] for line in lines]
    assert os.fsencode(dog) + b"/" + LATIN1 in named  # the name's own bytes: a script can open it
    assert all(os.path.exists(path) for path in named)

    checked = cli("data", "check", str(hostile), "--json", env=STRICT)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)  # valid UTF-8 JSON
    assert set(report["classes"]) == {"b\\x0anl", "cat\\x1b]0;owned\\x07", "dog"}
    assert report["readable"] == report["images"] == 18 and not report["corrupt"] and not report["skipped"]


def test_safe_output_gives_the_streams_back(monkeypatch):
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdout", stream)
    with safe_output():
        print("caf\udce9 \x1b[2J")  # a lone surrogate is written, not raised; not a terminal: as is
    assert sys.stdout is stream and stream.errors == "strict"
    stream.flush()
    assert raw.getvalue() == b"caf\xe9 \x1b[2J\n"
