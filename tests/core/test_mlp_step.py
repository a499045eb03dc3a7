"""The hand-derived MLP step (core/training/mlp_step) trains exactly as autograd does, and stays out of
the way of every model or optimizer it does not cover."""

from __future__ import annotations

import platform
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ftstudio.core.config.recipe import TrainConfig
from ftstudio.core.datasets.bundle import DataBundle, Split
from ftstudio.core.training import mlp_step as mlp_step_module
from ftstudio.core.training import trainer as trainer_module
from ftstudio.core.training.mlp_step import mlp_step
from ftstudio.core.training.callbacks import History
from ftstudio.core.training.trainer import Trainer


def chain(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(),
                         nn.Linear(8, 8), nn.Linear(8, 3))


@pytest.fixture(params=["onednn", "onednn, update by addmm_", "torch.mm"])
def products(request, monkeypatch):
    """Every layer's products through oneDNN (the float32 CPU path; at a small batch SGD's update stays
    with addmm_), or none (float64, CUDA, a torch without it): the tests' layers and batches are small,
    below the sizes where the step picks oneDNN by itself."""
    monkeypatch.setattr(mlp_step_module, "ONEDNN_MIN_WEIGHTS", 2**62 if request.param == "torch.mm" else 0)
    monkeypatch.setattr(mlp_step_module, "ONEDNN_UPDATE_MIN_BATCH", 0 if request.param == "onednn" else 2**62)
    calls = []
    op = mlp_step_module._checked_onednn()
    assert op is not None

    def counted(*args):
        calls.append(1)
        return op(*args)
    monkeypatch.setattr(mlp_step_module, "_checked_onednn", lambda: counted)
    yield calls
    if request.param != "onednn, update by addmm_":  # that one calls oneDNN only for hidden layers
        assert bool(calls) == (request.param == "onednn")


def autograd_step(model, opt, smoothing=0.0):
    def step(xb, yb):
        out = model(xb)
        loss = F.cross_entropy(out, yb, label_smoothing=smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return out, loss
    return step


def groups(model, lrs=(0.05, 0.2)):
    params = list(model.parameters())
    half = len(params) // 2
    return [{"params": [p for p in params[:half] if p.requires_grad], "lr": lrs[0]},
            {"params": [p for p in params[half:] if p.requires_grad], "lr": lrs[1]}]


OPTIMIZERS = {
    "sgd (update folded into the product)": lambda g: torch.optim.SGD(g, lr=0.1),
    "sgd, momentum and weight decay": lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "fused adam": lambda g: torch.optim.Adam(g, lr=1e-2, fused=True),
}


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("freeze_first", [False, True])
@pytest.mark.parametrize("make_opt", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
def test_the_step_matches_autograd_step_for_step(make_opt, freeze_first, smoothing, products):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 1, 3, 4, generator=gen), torch.randint(0, 3, (40,), generator=gen)
    models, steps = [], []
    for fast in (False, True):
        model = chain()
        if freeze_first:
            model[1].requires_grad_(False)
        opt = make_opt(groups(model))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        plain = autograd_step(model, opt, smoothing)
        step = mlp_step(model, opt, plain, smoothing) if fast else plain
        assert step is not None and (step is not plain) == fast
        models.append(model)
        steps.append((step, sched))
    for i in range(0, 40, 8):
        results = []
        for fast, (step, sched) in enumerate(steps):
            out, loss = step(x[i:i + 8], y[i:i + 8])
            sched.step()
            assert (loss is None) == bool(fast)  # the MLP step leaves the loss to the caller
            if fast:
                loss = F.cross_entropy(out, y[i:i + 8], label_smoothing=smoothing)
            results.append((out.detach(), loss.detach()))
        (out_a, loss_a), (out_b, loss_b) = results
        torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(models[1][-1].weight, chain()[-1].weight)  # it did train
    if freeze_first:
        assert torch.equal(models[1][1].weight, chain()[1].weight)
    assert products or mlp_step_module.ONEDNN_MIN_WEIGHTS > 0  # hidden layers: oneDNN where it was asked for



@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 16, bias=False), nn.ReLU(), nn.Linear(16, 3, bias=False)),
    lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 3)),  # one layer: the top is also the lowest
    lambda: nn.Sequential(nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3)),  # no Flatten, rows already
], ids=["no biases", "a single layer", "no flatten"])
@pytest.mark.usefixtures("products")
def test_chains_without_biases_or_hidden_layers_match_autograd(make):
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(24, 12, generator=gen), torch.randint(0, 3, (24,), generator=gen)
    torch.manual_seed(0)
    a = make()
    b = make()
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.3), torch.optim.SGD(b.parameters(), lr=0.3)
    plain, fast = autograd_step(a, opt_a), mlp_step(b, opt_b, None)
    assert fast is not None
    start = b[-1].weight.clone()
    for i in range(0, 24, 6):
        out_a, loss_a = plain(x[i:i + 6], y[i:i + 6])
        out_b, loss_b = fast(x[i:i + 6], y[i:i + 6])
        assert out_b.shape == out_a.shape == (6, 3) and loss_b is None
        torch.testing.assert_close(out_b, out_a.detach(), rtol=1e-5, atol=1e-6)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(b[-1].weight, start)  # it did train

@pytest.mark.usefixtures("products")
@pytest.mark.parametrize("n", [1, 8])
def test_a_batch_that_is_not_contiguous_matches_autograd(n):
    gen = torch.Generator().manual_seed(3)
    wide = torch.randn(n, 24, generator=gen)
    x, y = wide[:, ::2], torch.randint(0, 3, (n,), generator=gen)  # every other column: strided rows
    a, b = chain(), chain()
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.3), torch.optim.SGD(b.parameters(), lr=0.3)
    out_a, _ = autograd_step(a, opt_a)(x, y)
    out_b, _ = mlp_step(b, opt_b, None)(x, y)
    torch.testing.assert_close(out_b, out_a.detach(), rtol=1e-5, atol=1e-6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-5, atol=1e-6)


def test_onednn_products_are_found_for_float32_on_the_cpu_only():
    assert mlp_step_module.onednn_products(torch.zeros(1, dtype=torch.float64)) is None
    assert mlp_step_module.onednn_products(torch.zeros(1, dtype=torch.float16)) is None
    assert mlp_step_module.onednn_products(torch.zeros(1, device="meta")) is None
    if platform.machine().lower() in ("x86_64", "amd64"):  # torch's x86 wheels are built with oneDNN
        assert mlp_step_module.onednn_products(torch.zeros(1)) is not None
    with warnings.catch_warnings():  # flags() warns that TF32 on oneDNN is for Intel GPUs
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=False):  # the user's switch is respected
            assert mlp_step_module.onednn_products(torch.zeros(1)) is None
    assert torch.backends.mkldnn.enabled


def wrong(a, b, *rest):
    return a.mm(b.t()) + 1e-3


def missing(*args):
    raise RuntimeError("mkldnn::_linear_pointwise: not implemented for this build")


@pytest.mark.parametrize("fake", [wrong, missing], ids=["wrong values", "not built"])
def test_a_onednn_op_that_disagrees_or_fails_is_left_alone(monkeypatch, fake):
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", fake)
    check = mlp_step_module._checked_onednn.__wrapped__  # uncached: the real op was checked before
    assert check() is None
    monkeypatch.setattr(mlp_step_module, "_checked_onednn", check)
    monkeypatch.setattr(mlp_step_module, "ONEDNN_MIN_WEIGHTS", 0)
    model, reference = chain(), chain()
    opt, opt_ref = torch.optim.SGD(model.parameters(), lr=0.3), torch.optim.SGD(reference.parameters(), lr=0.3)
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    mlp_step(model, opt, None)(x, y)  # the products go to torch.mm: no call reaches the fake
    autograd_step(reference, opt_ref)(x, y)
    for pa, pb in zip(reference.parameters(), model.parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-5, atol=1e-6)


def hooked() -> nn.Module:
    model = chain()
    model[3].register_forward_hook(lambda *a: None)
    return model


class Sub(nn.Sequential):
    pass


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(4, 3)),
    lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Sigmoid(), nn.Linear(8, 3)),
    lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU()),              # ends in an activation
    lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Dropout(0.5), nn.Linear(8, 3)),
    lambda: Sub(nn.Flatten(), nn.Linear(12, 3)),                                   # a subclass may forward otherwise
    lambda: chain().requires_grad_(False),                                         # nothing trains
    lambda: chain().double().requires_grad_(True).to(torch.float16),
    hooked,
], ids=["conv", "sigmoid", "trailing relu", "dropout", "subclass", "frozen", "half", "forward hook"])
def test_models_it_does_not_cover_train_through_autograd(make):
    model = make()
    params = [p for p in model.parameters() if p.requires_grad] or [nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.1)
    assert mlp_step(model, opt, autograd_step(model, opt)) is None


def test_an_optimizer_missing_a_parameter_is_not_covered_and_step_hooks_still_run():
    model = chain()
    partial = torch.optim.SGD(list(model.parameters())[:-1], lr=0.1)
    assert mlp_step(model, partial, autograd_step(model, partial)) is None
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    opt.register_step_post_hook(lambda *a: calls.append(1))
    step = mlp_step(model, opt, autograd_step(model, opt))
    assert step is not None
    step(torch.randn(4, 12), torch.tensor([0, 1, 2, 0]))
    assert calls == [1]  # a hooked SGD steps through opt.step() with the gradients set


def test_inputs_that_are_not_one_row_per_sample_go_to_the_fallback():
    model = nn.Sequential(nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    used = []

    def fallback(xb, yb):
        used.append(xb.shape)
        return autograd_step(model, opt)(xb, yb)
    step = mlp_step(model, opt, fallback)
    assert step is not None
    step(torch.randn(2, 4), torch.tensor([0, 1]))
    step(torch.randn(2, 5, 4), torch.zeros(2, 3, dtype=torch.long))  # per-position logits
    assert used == [torch.Size([2, 5, 4])]


def data(n: int = 96) -> DataBundle:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 3, 4), generator=gen, dtype=torch.uint8)
    y = (x.float().mean((1, 2, 3)) > 127).long() + (x[:, 0, 0, 0] > 127).long()
    return DataBundle("t", Split(x[:64], y[:64]), Split(x[64:], y[64:]), ("a", "b", "c"), (1, 3, 4), (0.5,), (0.25,))


@pytest.mark.usefixtures("products")
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_trainer_uses_it_and_ends_where_autograd_ends(monkeypatch, optimizer, smoothing):
    # batch 24 on 64 samples: the last batch of each epoch is smaller than the rest
    cfg = TrainConfig(epochs=3, batch_size=24, lr=0.05, optimizer=optimizer, momentum=0.0, scheduler="cosine",
                      device="cpu", seed=0, label_smoothing=smoothing)
    used = []

    def recording(*args, **kwargs):
        step = mlp_step(*args, **kwargs)
        used.append(step is not None)
        return step
    monkeypatch.setattr(trainer_module, "mlp_step", recording)
    fast, fast_history = chain(), History()
    Trainer(fast, data(), cfg, [fast_history]).fit()
    assert used and all(used)
    monkeypatch.setattr(trainer_module, "mlp_step", lambda *a, **k: None)
    slow, slow_history = chain(), History()
    Trainer(slow, data(), cfg, [slow_history]).fit()
    # the step hands back its logits as a transposed view: train accuracy and loss read from them agree
    assert [e.train_accuracy for e in fast_history.epochs] == [e.train_accuracy for e in slow_history.epochs]
    assert len(fast_history.epochs) == 3 and len(fast_history.losses) == 9
    # the step leaves its loss to the trainer, which computes it from the logits once per window
    torch.testing.assert_close(torch.tensor(fast_history.losses), torch.tensor(slow_history.losses),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.tensor([e.train_loss for e in fast_history.epochs]),
                               torch.tensor([e.train_loss for e in slow_history.epochs]), rtol=1e-4, atol=1e-5)
    for a, b in zip(slow.parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert not torch.equal(fast[1].weight, chain()[1].weight)


def test_a_window_computes_the_losses_its_steps_left_to_it_among_those_they_gave():
    gen = torch.Generator().manual_seed(4)
    window = trainer_module._Window(label_smoothing=0.1)
    batches = [(torch.randn(n, 3, generator=gen), torch.randint(0, 3, (n,), generator=gen)) for n in (5, 2, 4)]
    given = torch.tensor(7.5)
    for i, (out, y) in enumerate(batches):
        window.add(given if i == 1 else None, out, y)
    losses, correct = window.read()
    expected = [F.cross_entropy(out, y, label_smoothing=0.1).item() for out, y in batches]
    assert losses[1] == 7.5
    assert losses[0] == pytest.approx(expected[0], rel=1e-6) and losses[2] == pytest.approx(expected[2], rel=1e-6)
    assert correct == sum(int((out.argmax(1) == y).sum()) for out, y in batches)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("sizes", [[24, 24, 16], [50] * 7 + [13]], ids=["3 steps", "8 steps"])
def test_a_steps_loss_is_the_same_bits_whichever_window_reads_it(sizes, smoothing):
    """An interrupted and resumed run reads its steps in other windows: their losses must not move.
    (Reduced down one long classes × samples row, the smoothing term of [24, 24, 16]'s last two steps
    moved by an ulp when the window lost its first step.)"""
    gen = torch.Generator().manual_seed(5)
    steps = [(torch.randn(10, n, generator=gen).t(), torch.randint(0, 10, (n,), generator=gen))
             for n in sizes]  # logits as the MLP step hands them: transposed views

    def read(part):
        window = trainer_module._Window(label_smoothing=smoothing)
        for out, y in part:
            window.add(None, out, y)
        return window.read()
    whole, correct = read(steps)
    for start in (1, 2):
        tail, tail_correct = read(steps[start:])
        assert whole[start:] == tail  # exactly
        assert correct == tail_correct + read(steps[:start])[1]
