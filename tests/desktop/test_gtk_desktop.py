"""The app under a real X server with Qt's GTK platform theme (what a GNOME desktop selects).

There, GTK opens Mesa's GL driver, which brings the system's libLLVM into the process's global
symbol scope; triton's libtriton (in the CUDA torch wheel) then bound to it and segfaulted on
import (see `ftstudio.core.native_libs`). This runs the first minute of a session in its own
process — window, composer analysis, Check, one epoch of training, torch._dynamo → triton —
and asserts it exits cleanly.

Needs Xvfb and GTK 3 (`.ci/run` installs Debian's `xvfb`, `libgtk-3-0` and Mesa). Without them the
test is skipped on a developer's machine but fails in CI (``FTSTUDIO_REQUIRE_DESKTOP=1``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("FTSTUDIO_REQUIRE_DESKTOP") == "1"


def _missing() -> str:
    if not sys.platform.startswith("linux"):
        return "the GTK/LLVM clash is a Linux desktop's"
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (apt-get install xvfb libgtk-3-0 libgl1-mesa-dri)"
    if not any(Path(d).glob("libgtk-3.so.0") for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                                        "/usr/lib64", "/usr/lib")):
        return "GTK 3 is not installed (apt-get install libgtk-3-0)"
    return ""


@pytest.fixture
def display(tmp_path):
    """A private Xvfb on a free display number; killed (by its pid) afterwards."""
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"FTSTUDIO_REQUIRE_DESKTOP=1 but {reason}")
        pytest.skip(reason)
    number = next(n for n in range(150, 250) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Xvfb :{number} did not start")
            time.sleep(0.05)
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_first_minute_under_the_gtk_theme_does_not_crash(display, tmp_path):
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed (CPU-only torch): nothing to clash with GTK's LLVM")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=display, QT_QPA_PLATFORMTHEME="gtk3", FTSTUDIO_HOME=str(tmp_path / "home"),
               PYTHONFAULTHANDLER="1", NO_AT_BRIDGE="1")
    proc = subprocess.run([sys.executable, "-m", "tests.desktop.session"], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=500)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, f"exit {proc.returncode} (-11 is SIGSEGV):\n{tail}"
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # the hazard was really there: the GTK theme, the system's LLVM and triton in one process
    assert seen["platform"] == "xcb" and seen["gtk"], seen
    assert seen["system_llvm"], f"Mesa's libLLVM was not loaded, so this proves nothing: {seen}"
    assert seen["triton"] and seen["check_ok"] and seen["status"] == "completed", seen
