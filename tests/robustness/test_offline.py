"""Nothing leaves the machine: training, evaluating and exporting open no network connection."""

import json
import os
import subprocess
import sys

from tests.helpers import ROOT

BLOCKER = '''
import os, socket
_log = os.environ["FTSTUDIO_NET_LOG"]
def _refuse(self, address, *args, **kwargs):
    with open(_log, "a") as f:
        f.write(repr(address) + "\\n")
    raise OSError("network blocked by the test")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
'''


def test_no_connection_is_attempted(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "net.log"
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "FTSTUDIO_NET_LOG": str(log)}
    run = tmp_path / "run"
    for args in (["train", "--epochs", "1", "--out", str(run)], ["evaluate", str(run), "--json"],
                 ["export", str(run), "--format", "onnx", "--format", "safetensors"], ["datasets", "--json"]):
        out = subprocess.run([sys.executable, "-m", "ftstudio", *args], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=300)
        assert out.returncode == 0, (args, out.stderr)
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert not log.exists(), log.read_text()
