"""Gradient checkpointing per stage: the same gradients and BatchNorm statistics as without it, the
stages really recomputed in the backward pass, and a run with --grad-checkpoint trains the same."""

import copy
import json

import pytest
import torch
import torchvision

from ftstudio.cli import main
from ftstudio.core.architecture import build_model
from ftstudio.core.architecture.modules import Backbone
from ftstudio.core.architecture.presets import resolve_model
from ftstudio.core.training.stages import checkpoint_stages, network_stages
from tests.core.test_distributed import epochs


def cnn() -> torch.nn.Module:  # conv → BN → ReLU blocks, a Residual, Dropout: ftstudio's own chain
    torch.manual_seed(0)
    return build_model(resolve_model("cnn"), (1, 16, 16), 10)[0]


def resnet() -> torch.nn.Module:  # a torchvision backbone inside a chain, as `--model resnet18` builds
    torch.manual_seed(0)
    return torch.nn.Sequential(Backbone("resnet18", torchvision.models.resnet18(num_classes=10)))


def step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.train()
    torch.manual_seed(1)  # the same dropout masks (checkpoint replays the RNG when it recomputes)
    out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    return out


@pytest.mark.parametrize("make, shape, regions", [(cnn, (4, 1, 16, 16), 5), (resnet, (2, 3, 32, 32), 7)])
def test_gradients_and_statistics_equal_those_without(make, shape, regions):
    plain = make()
    checked = copy.deepcopy(plain)
    assert checkpoint_stages(checked) == regions
    recomputed = []
    # (a stage's own forward hooks run once: the recomputation calls its forward directly)
    convs = [m for m in checked.modules() if isinstance(m, torch.nn.Conv2d) and "forward" not in vars(m)]
    assert len(convs) >= 4
    for conv in convs:
        conv.register_forward_hook(lambda *_: recomputed.append(1))
    x, y = torch.randn(*shape), torch.arange(shape[0]) % 10
    out_plain, out_checked = step(plain, x, y), step(checked, x, y)
    assert torch.equal(out_plain, out_checked)
    assert len(recomputed) == 2 * len(convs)  # every convolution ran again in the backward pass
    for (name, p), q in zip(plain.named_parameters(), checked.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), name
    for (name, a), b in zip(plain.state_dict().items(), checked.state_dict().values()):
        assert torch.equal(a, b), name  # running statistics moved once, not twice
    with torch.no_grad():  # evaluation recomputes nothing
        recomputed.clear()
        checked.eval()(x)
        assert len(recomputed) == len(convs)


def test_stages_of_backbones_and_chains():
    names = [type(s).__name__ for s in network_stages(resnet())]
    assert names == ["Conv2d", "BatchNorm2d", "Sequential", "Sequential", "Sequential", "Sequential", "Linear"]
    import timm

    vit = torch.nn.Sequential(Backbone("vit", timm.create_model("vit_tiny_patch16_224", num_classes=0, depth=2)))
    assert [type(s).__name__ for s in network_stages(vit)] == ["PatchEmbed", "Block", "Block", "LayerNorm"]
    assert [type(s).__name__ for s in network_stages(cnn())].count("Residual") == 1  # a block, not its body


def test_a_run_with_grad_checkpoint_trains_the_same(tmp_path):
    args = ["train", "--data", "digits", "--model", "cnn", "--epochs", "1", "--batch-size", "128",
            "--per-class", "30"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--grad-checkpoint", "--out", str(tmp_path / "checked")]) == 0
    summary = json.loads((tmp_path / "checked" / "summary.json").read_text())
    assert summary["grad_checkpoint"] is True and summary["status"] == "completed"
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["grad_checkpoint"] is False
    (a,), (b,) = epochs(tmp_path / "plain"), epochs(tmp_path / "checked")
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
    assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
