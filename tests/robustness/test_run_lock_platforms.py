"""The run lock's platform backends: which one each platform gets, and the Windows branch's logic
run between two real processes through a POSIX stand-in for ``msvcrt`` (tests/robustness/msvcrt_stand_in.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from ftstudio.core.runs import lock
from ftstudio.core.runs.lock import FlockBackend, MsvcrtBackend, RunBusy, RunLock, backend_for, is_locked
from tests.helpers import ROOT
from tests.robustness import msvcrt_stand_in

HOLD = ("import sys, time; from tests.robustness import msvcrt_stand_in; {setup}"
        "from ftstudio.core.runs.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(600)")


def test_each_platform_gets_its_backend(monkeypatch):
    assert isinstance(backend_for("posix"), FlockBackend)
    assert isinstance(lock.BACKEND, FlockBackend)  # this machine
    monkeypatch.delitem(sys.modules, "msvcrt", raising=False)
    assert backend_for("nt") is None  # no msvcrt here: no lock rather than a crash
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt_stand_in)
    assert isinstance(backend_for("nt"), MsvcrtBackend)


def test_without_any_backend_training_still_takes_its_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(lock, "BACKEND", None)
    with RunLock(tmp_path / "run"):
        assert not is_locked(tmp_path / "run")


def _holder(out, setup: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(setup=setup), str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("windows", [False, True], ids=["flock", "msvcrt"])
def test_two_processes_exclude_each_other(monkeypatch, tmp_path, windows):
    if windows:
        monkeypatch.setitem(sys.modules, "msvcrt", msvcrt_stand_in)
        monkeypatch.setattr(lock, "BACKEND", backend_for("nt"))
    out = tmp_path / "run"
    holder = _holder(out, "msvcrt_stand_in.install(); " if windows else "")
    try:
        assert is_locked(out)
        with pytest.raises(RunBusy, match=rf"another ftstudio process \(pid {holder.pid}\) is writing"):
            RunLock(out).acquire()
        assert is_locked(out)  # a refused attempt and the probes leave the holder's lock alone
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
    assert not is_locked(out)  # the system dropped the lock of the killed process
    with RunLock(out) as held:
        assert held._fd is not None
    assert (out / ".lock").exists()  # not created by this lock: left as found


@pytest.mark.parametrize("windows", [False, True], ids=["flock", "msvcrt"])
def test_an_untouched_new_folder_is_removed_on_release(monkeypatch, tmp_path, windows):
    if windows:
        monkeypatch.setitem(sys.modules, "msvcrt", msvcrt_stand_in)
        monkeypatch.setattr(lock, "BACKEND", backend_for("nt"))
    with RunLock(tmp_path / "new"):
        pass
    with RunLock(tmp_path / "used"):
        (tmp_path / "used" / "summary.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == [".lock", "summary.json"]
