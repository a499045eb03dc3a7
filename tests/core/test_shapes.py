"""Shape rules answered without running a layer agree with running it, and analysing the presets
never imports torch._dynamo (slow, and it pulls in triton, which crashed the app under GTK)."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from ftstudio.core.architecture.shapes import probe_shape

CASES = [
    (nn.ReLU(), (3, 8, 8)), (nn.LeakyReLU(0.1), (5,)), (nn.GELU(), (4, 2, 2)), (nn.Tanh(), (7,)),
    (nn.Dropout(0.3), (6,)), (nn.BatchNorm2d(3), (3, 5, 5)), (nn.BatchNorm1d(6), (6,)),
    (nn.LayerNorm(5), (2, 5)), (nn.LayerNorm(5), (5,)), (nn.AdaptiveAvgPool2d(1), (3, 9, 7)),
    (nn.AdaptiveAvgPool2d((2, 3)), (3, 9, 7)), (nn.Conv2d(3, 4, 3), (3, 8, 8)), (nn.Linear(5, 2), (5,)),
    (nn.Linear(5, 2), (3, 5)),
]


@pytest.mark.parametrize(("module", "shape"), CASES, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_probe_agrees_with_a_real_forward(module, shape):
    real = tuple(module.eval()(torch.zeros((2, *shape))).shape[1:])
    assert probe_shape(module.to("meta"), shape, "meta") == real


@pytest.mark.parametrize(("module", "shape"), [(nn.BatchNorm2d(4), (3, 5, 5)), (nn.BatchNorm2d(3), (3,)),
                                               (nn.LayerNorm(6), (2, 5)), (nn.BatchNorm1d(3), (4,)),
                                               (nn.Linear(4, 2), (5,))])
def test_probe_refuses_what_a_real_forward_refuses(module, shape):
    with pytest.raises((RuntimeError, ValueError)):
        module.eval()(torch.zeros((2, *shape)))
    with pytest.raises((RuntimeError, ValueError)):
        probe_shape(module.to("meta"), shape, "meta")


def test_analysing_every_preset_imports_no_dynamo():
    """Presets built on a torchvision backbone are left out: importing torchvision imports dynamo."""
    code = ("import sys, json\n"
            "from ftstudio.core.architecture.build import analyze\n"
            "from ftstudio.core.architecture.presets import load_preset, preset_names\n"
            "for name in preset_names():\n"
            "    if 'Backbone' in json.dumps(load_preset(name).to_dict()):\n"
            "        continue\n"
            "    found = [analyze(load_preset(name), shape, 10) for shape in ((3, 32, 32), (1, 28, 28), (1, 8, 8))]\n"
            "    assert any(not a.error for a in found), (name, [a.error for a in found])\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
