"""Explanations follow the evidence: only one quadrant decides the class, and the heat is there."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ftstudio.cli import main
from ftstudio.core.inference.explain import explain, explanation_name, grad_cam, last_conv
from ftstudio.core.inference.predict import Predictor, softmax
from tests.ft_helpers import source_run  # noqa: F401  (fixture)

SIZE = 16


def quadrant_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise everywhere; the top-left quadrant holds horizontal (class 0) or vertical (class 1) stripes."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 1, SIZE, SIZE)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    q = SIZE // 2
    stripes = (np.arange(q) % 2 * 255).astype(np.uint8)
    for i in range(n):
        x[i, 0, :q, :q] = stripes[:, None] if y[i] == 0 else stripes[None, :]
    return x, y


def trained(model: nn.Module, steps: int = 40) -> Predictor:
    torch.manual_seed(0)
    x, y = quadrant_images(128, seed=0)
    predictor = Predictor(None, "run", ("horizontal", "vertical"), (1, SIZE, SIZE), (0.5,), (0.5,),
                          lambda a: model(torch.from_numpy(a)).detach().numpy(), model)
    xt, yt = torch.from_numpy(predictor.preprocess(x)), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.eval()
    return predictor


def _check_hot_quadrant(predictor: Predictor, expected_method: str) -> None:
    x, y = quadrant_images(24, seed=1)
    probs = softmax(predictor.run(predictor.preprocess(x)))
    assert (probs.argmax(1) == y).mean() >= 0.9  # it learned the quadrant
    heat, method = explain(predictor, x, probs.argmax(1))
    assert method == expected_method and heat.shape == (24, SIZE, SIZE)
    assert heat.min() >= 0 and heat.max() <= 1 and (heat.reshape(24, -1).max(1) == 1).all()  # not blank
    q = SIZE // 2
    inside = heat[:, :q, :q].mean(axis=(1, 2))
    outside = np.stack([heat[:, q:, :q], heat[:, :q, q:], heat[:, q:, q:]]).mean(axis=(2, 3)).max(axis=0)
    assert (inside > outside).mean() >= 0.9, (inside, outside)


@pytest.mark.slow  # trains a small conv net: ~5 s alone, more on a loaded machine
def test_grad_cam_on_a_conv_net_is_hot_in_the_deciding_quadrant():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    predictor = trained(model)
    assert last_conv(model) is model[2]
    _check_hot_quadrant(predictor, "Grad-CAM")


class _ForwardElsewhereToo(nn.Module):
    """Runs its network, then the same network again on another thread without a graph: as the app's
    other jobs do with a shared model while a heat map is computed."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)

        def elsewhere() -> None:
            with torch.no_grad():
                self.net(x.detach())
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        return out


def test_grad_cam_ignores_forwards_of_the_same_model_on_other_threads():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((2, 1, SIZE, SIZE)).astype(np.float32)
    alone = grad_cam(net, net[0], x, np.array([0, 1]))
    shared = grad_cam(_ForwardElsewhereToo(net), net[0], x, np.array([0, 1]))
    np.testing.assert_allclose(shared, alone, atol=1e-6)


def test_occlusion_on_a_net_without_convolutions_is_hot_in_the_deciding_quadrant():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 32), nn.ReLU(), nn.Linear(32, 2))
    predictor = trained(model)
    assert last_conv(model) is None
    _check_hot_quadrant(predictor, "occlusion")


def test_explain_writes_one_png_per_image_named_after_it(source_run, tmp_path, capsys):  # noqa: F811
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.fromarray(np.full((30, 20), 200, np.uint8)).save(tmp_path / "in" / folder / "same.png")
    out = tmp_path / "heat"
    assert main(["predict", str(source_run), str(tmp_path / "in"), "--explain", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["same-2.png", "same.png"]
    with Image.open(out / "same.png") as img:
        assert img.size[1] / img.size[0] == pytest.approx(30 / 20, rel=0.02) and min(img.size) >= 224
    taken: set[str] = set()
    assert [explanation_name(p, taken) for p in ("x/cat.jpg", "y/cat.png", "dog.tif")] == \
        ["cat.png", "cat-2.png", "dog.png"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["predict", str(source_run), str(tmp_path / "in"), "--explain", str(blocker / "sub")]) == 2
    assert "--explain" in capsys.readouterr().err
