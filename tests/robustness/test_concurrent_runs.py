"""Two ftstudio processes training at once into the same runs folder never collide."""

import json
import subprocess
import sys

from ftstudio.core.runs.folders import list_runs
from tests.helpers import ROOT


def test_two_processes_write_two_intact_runs(_isolated_home):
    cmd = [sys.executable, "-m", "ftstudio", "train", "--epochs", "3", "--name", "same-name"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    runs = list_runs()
    assert len(runs) == 2 and runs[0].path != runs[1].path
    for run in runs:
        summary = json.loads(run.summary_path.read_text())
        assert summary["status"] == "completed" and summary["epochs"] == 3
        assert [r["epoch"] for r in run.epochs()] == [1, 2, 3]
