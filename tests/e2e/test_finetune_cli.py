"""`ftstudio finetune`, `export` and `demo` as a user runs them: exit codes, messages, files."""

from __future__ import annotations

import json

import pytest

from tests.ft_helpers import save_payload, source_run  # noqa: F401  (fixture)
from tests.helpers import cli


def test_finetune_then_export_then_evaluate(source_run, tmp_path):
    out = tmp_path / "ft"
    done = cli("finetune", "--from", str(source_run), "--data", "digits", "--classes", "0,1,2,3,4,5",
               "--per-class", "4", "--strategy", "head", "--min-steps", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "strategy head: only the new head trains" in done.stderr
    assert "kept the rows of 5 known class(es); 1 new class(es) start fresh: 5" in done.stderr
    assert "epochs raised" not in done.stderr  # 10 epochs already make more than 3 steps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lineage"]["source"] == str(source_run.resolve())
    exported = cli("export", str(out), "--format", "onnx,pt2", "--checkpoint", "last")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count("ok  ") == 2 and (out / "export" / "model.onnx").is_file()
    evaluated = cli("evaluate", str(out), "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["classes"] == list("012345")


def test_a_checkpoint_carrying_code_is_refused_with_exit_2(tmp_path):
    evil, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    save_payload(evil, marker)
    for args in (("finetune", "--from", str(evil), "--data", "digits"), ("export", str(evil))):
        done = cli(*args)
        assert done.returncode == 2, done.stderr
        assert "refused" in done.stderr and str(evil) in done.stderr and "Traceback" not in done.stderr
        assert not marker.exists()


def test_bad_export_requests_exit_2(source_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = cli("export", str(source_run), "--out", str(blocker / "out"))
    assert done.returncode == 2 and "cannot write the export there" in done.stderr
    done = cli("export", str(source_run), "--format", "torchscript")
    assert done.returncode == 2 and "export pt2 instead" in done.stderr
    done = cli("finetune", "--from", "torchvision:resnet18", "--data", "digits")
    assert done.returncode == 2 and "--weights none" in done.stderr and "resnet18" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(960)  # its own subprocess may take 900 s on a busy machine: pytest's 600 s would cut it first
def test_demo_prints_the_comparison_and_exports_the_winner(tmp_path):
    done = cli("demo", "--out", str(tmp_path / "demo"), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()
            if line.startswith(("fine-tune (", "scratch"))}
    assert set(rows) == {"fine-tune (full)", "fine-tune (head)", "fine-tune (lora)", "scratch"}
    accuracy = {k: float(v.split()[2 if k != "scratch" else 1].rstrip("%")) / 100 for k, v in rows.items()}
    assert accuracy["fine-tune (full)"] > accuracy["scratch"] + 0.1, done.stdout
    assert "verified" in done.stdout and (tmp_path / "demo" / "export" / "model.onnx").is_file()
