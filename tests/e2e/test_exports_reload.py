"""Exports reloaded in a fresh interpreter that cannot import ftstudio: onnxruntime, torch.export.load,
safetensors and torch.load agree with each other and with the model; the signature's preprocessing
applied to image files reproduces `evaluate`; the model card's snippets run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ftstudio.core.export import export_run
from ftstudio.core.engine import evaluate_run, train
from ftstudio.core.runs.folders import load_run_model
from ftstudio.core.config.recipe import DatasetSpec
from tests.ft_helpers import recipe, source_run  # noqa: F401  (fixture)
from tests.helpers import make_digit_folder

NO_FTSTUDIO = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "ftstudio" or name.startswith("ftstudio."):
            raise ImportError("this process must not import ftstudio")
sys.meta_path.insert(0, _Block())
"""


def run_without_ftstudio(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter (ftstudio blocked); it prints one JSON object last."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tail = "\nassert not any(m.split('.')[0] == 'ftstudio' for m in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", NO_FTSTUDIO + code + tail], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


RELOAD = """
import json
import numpy as np, onnx, onnxruntime as ort, torch
from safetensors.numpy import load_file
x, expected = np.load("x.npy"), np.load("expected.npy")
onnx.checker.check_model("model.onnx", full_check=True)
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
program = torch.export.load("model.pt2")
net = program.module()
with torch.no_grad():
    pt2 = net(torch.from_numpy(x)).numpy()
    pt2_big = net(torch.from_numpy(np.concatenate([x] * 3))).numpy()
onnx_out = session.run(None, {"input": x})[0]
onnx_one = session.run(None, {"input": x[:1]})[0]
st = load_file("model.safetensors")
sd = torch.load("model.pt", weights_only=True)
weights_equal = sorted(st) == sorted(sd) and all(np.array_equal(st[k], sd[k].numpy()) for k in st)
program_equal = all(np.array_equal(v.detach().numpy(), st[k]) for k, v in program.state_dict.items())
print(json.dumps({
    "onnx": float(abs(onnx_out - expected).max()), "pt2": float(abs(pt2 - expected).max()),
    "onnx_batch1": float(abs(onnx_one - expected[:1]).max()), "pt2_batch15": float(abs(pt2_big[:5] - expected).max()),
    "weights_equal": weights_equal, "program_equal": program_equal, "program_keys": len(program.state_dict),
}))
"""


def test_exports_load_and_agree_without_ftstudio(source_run, tmp_path):
    report = export_run(source_run, out_dir=tmp_path)
    assert report.ok
    model, _ = load_run_model(source_run, "best")
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x).numpy()
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "expected.npy", expected)
    result = run_without_ftstudio(RELOAD, tmp_path)
    for key in ("onnx", "pt2", "onnx_batch1", "pt2_batch15"):
        assert result[key] < 1e-4, (key, result)
    assert result["weights_equal"] and result["program_equal"] and result["program_keys"] > 0


PREDICT_FOLDER = """
import json
from pathlib import Path
import numpy as np, onnxruntime as ort
from PIL import Image
sig = json.load(open("signature.json"))
pre = sig["preprocessing"]
h, w = pre["image_size"]
mean = np.array(pre["mean"], np.float32)[:, None, None]
std = np.array(pre["std"], np.float32)[:, None, None]
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
correct = total = 0
for path in sorted(Path(FOLDER).glob("*/*.png")):
    img = Image.open(path).convert("L").resize((w, h), Image.BILINEAR)
    x = (np.asarray(img, np.float32)[None] / pre["scale"] - mean) / std
    label = sig["classes"][int(session.run(None, {"input": x[None]})[0].argmax())]
    correct += label == path.parent.name
    total += 1
print(json.dumps({"accuracy": correct / total, "count": total}))
"""


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A tiny CNN trained on a folder of 12×12 PNG digits, resized to 10×10 for the model."""
    base = tmp_path_factory.mktemp("folder-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTSTUDIO_HOME", str(base / "home"))
        folder = make_digit_folder(base / "digits", n_per_class=15, size=12, classes=range(4))
        r = recipe({"name": str(folder), "image_size": [10, 10], "val_split": 0.2}, {"epochs": 12, "lr": 0.01})
        run = train(r, base / "run").run.path
        report = export_run(run, ["onnx", "pt2"], out_dir=base / "export")
        assert report.ok
        evaluation = evaluate_run(run, DatasetSpec(name=str(folder), val_split=0.0))
    return folder, report, evaluation


def test_signature_preprocessing_reproduces_evaluate(folder_run):
    folder, report, evaluation = folder_run
    result = run_without_ftstudio(f"FOLDER = {str(folder)!r}\n" + PREDICT_FOLDER, report.out_dir)
    assert result["count"] == evaluation["count"] == 60
    assert evaluation["accuracy"] > 0.5  # predictions vary: a constant answer would prove nothing
    assert result["accuracy"] == pytest.approx(evaluation["accuracy"], abs=1e-9)


def test_model_card_snippets_run_as_written(folder_run):
    folder, report, _ = folder_run
    card = report.card_path.read_text()
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 2
    image = next(folder.glob("digit_2/*.png"))
    classes = json.loads(report.signature_path.read_text())["classes"]
    for code in blocks:
        assert len(code.strip().splitlines()) <= 15
        code = code.replace('"image.png"', repr(str(image)))
        out = run_without_ftstudio(code.replace("print(sig", "print_label = (sig") +
                                   "\nimport json as _j\nprint(_j.dumps({'label': print_label}))\n", report.out_dir)
        assert out["label"] in classes
