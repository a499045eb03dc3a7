"""A hand-derived training step for multilayer perceptrons: forward, cross-entropy and backward of a
chain of Linear and ReLU layers written out as the few tensor operations they are, without autograd.

Why: on a small network autograd's bookkeeping (the graph, the engine, a gradient tensor per
parameter, an optimizer call) costs as much as the arithmetic. With the seed's optimizer — SGD
without momentum or weight decay — the update is applied straight from the weight-gradient product
(``W += -lr/B · gᵀx``), so no ``.grad`` is made at all; with any other optimizer the gradients are
written to ``.grad`` and the optimizer steps as usual (its state, hooks and schedulers unchanged).
Activations are kept features × batch, so each ReLU's mask has the layout of the gradient it masks
and the weight-gradient products take contiguous operands. On a CPU where torch has oneDNN, the
large products go through it (see ``onednn_products``; SGD's update from batch 256 up). The seed's
MLP (784-256-10) on a 2-core CPU trains 1.8–1.9× as fast as the hand-written PyTorch loop at batch
64, 1.4× at batch 256, 0.88–0.91 of the GEMM-bound limit (bench/throughput.py, bench/README.md).

It covers exactly ``nn.Sequential([Flatten,] Linear[, ReLU], …, Linear)`` of float parameters, with
no hooks, on one process; anything else (other layers, a wrapped or hooked model, AMP, clipping,
DDP/FSDP) returns None and trains through autograd. The two paths agree to float rounding
(tests/core/test_mlp_step.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules import module as _module
from torch.optim import optimizer as _optimizer

threshold_backward = torch.ops.aten.threshold_backward.grad_input
StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def mlp_step(model: nn.Module, optimizer: torch.optim.Optimizer, fallback: StepFn,
             label_smoothing: float = 0.0) -> StepFn | None:
    """The step function for ``model`` if it is a plain Linear/ReLU chain this module can train, else None;
    ``fallback`` (the autograd step) takes a batch it cannot: inputs that are not one row per sample.

    The step returns ``(logits, None)``: the loss is the caller's to compute from the logits
    (``F.cross_entropy`` with the same label smoothing), and the Trainer does it for a window of a
    few hundred steps at once. The gradient needs only the softmax; the loss took five more small
    operations a step (log-softmax, the target's gather, the mean, exp, a fill), 0.02-0.03 of the
    GEMM-bound limit at batch 256 on this project's 2-core CPU."""
    layers = _chain(model)
    if layers is None or not _plain_optimizer(model, optimizer):
        return None
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    relu_after = [False] * len(linears)
    i = -1
    for m in layers:
        if isinstance(m, nn.Linear):
            i += 1
        elif isinstance(m, nn.ReLU):
            relu_after[i] = True
    trains = [m.weight.requires_grad for m in linears]
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    fold = type(optimizer) is torch.optim.SGD and all(
        g["momentum"] == 0 and g["weight_decay"] == 0 and not g["maximize"] and not g.get("differentiable")
        for g in optimizer.param_groups) and not _optimizer_hooks(optimizer)
    lowest = trains.index(True)  # no gradient flows below the lowest layer that trains
    eps = float(label_smoothing)
    flatten = isinstance(layers[0], nn.Flatten)

    onednn = onednn_products(linears[0].weight)
    # oneDNN's fixed cost per call (~10 µs) outweighs its gain on small layers such as the class head
    big = [onednn is not None and m.weight.numel() >= ONEDNN_MIN_WEIGHTS for m in linears]
    product: Callable[..., torch.Tensor] = onednn if onednn is not None else _unused
    # bound once: a module's attribute lookup (Module.__getattr__) costs ~1 µs, 16 of them a step
    weights = [m.weight for m in linears]
    biases = [m.bias for m in linears]
    # views made once, not each step (a view costs ~1 µs): the parameters are updated in place, and the
    # step is built again for each epoch (Trainer._step_function), after anything that moves them
    weights_t = [w.t() for w in weights]
    bias_columns = [None if b is None else b[:, None] for b in biases]
    w_groups = [group_of.get(id(m.weight)) for m in linears]
    b_groups = [group_of.get(id(m.bias)) if m.bias is not None else None for m in linears]
    # batch size → (what the target's class adds to the gradient, a column of ones). With the ones a
    # bias's gradient is gᵀ·1, one matrix-vector product that adds into the bias in place (addmv_):
    # 5 µs against 9 for a sum and an add at 256 × 256 here
    constants: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def step(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = xb.flatten(1) if flatten else xb
        if x.dim() != 2 or yb.dim() != 1:
            return fallback(xb, yb)
        with torch.no_grad():
            # activations are kept features × batch: the mask of each ReLU then has the layout of the
            # gradient it masks, and the weight-gradient products take contiguous operands
            if big[0]:
                x = x.contiguous()
            h_t = x.t()
            inputs_t: list[torch.Tensor] = [h_t]
            for weight, bias_column, relu, fast in zip(weights[:-1], bias_columns, relu_after, big):
                if fast:  # W·hᵀ, then the bias down each column
                    h_t = product(weight, h_t.t())
                    if bias_column is not None:
                        h_t.add_(bias_column)
                elif bias_column is not None:
                    h_t = torch.addmm(bias_column, weight, h_t)
                else:
                    h_t = weight.mm(h_t)
                if relu:
                    h_t = h_t.relu_()
                inputs_t.append(h_t)
            # the logits as classes × batch: log-softmax down a column of the batch is vectorised along
            # the batch, 6× as fast as along a row of 10 classes (40 → 6 µs at batch 256 here)
            top_w, top_b = weights[-1], bias_columns[-1]
            out_t = torch.addmm(top_b, top_w, h_t) if top_b is not None else top_w.mm(h_t)
            # d loss / d logits × batch: softmax − target, classes × batch. The loss itself is left to
            # the caller, who reads it a few times a second (see ``mlp_step``)
            g_t = torch.softmax(out_t, 0)
            if eps:
                g_t.sub_(eps / out_t.shape[0])
            size = out_t.shape[1]
            if size not in constants:
                constants[size] = (torch.full((1, size), eps - 1.0, dtype=g_t.dtype, device=g_t.device),
                                   torch.ones(size, dtype=g_t.dtype, device=g_t.device))
            target, column = constants[size]
            g_t.scatter_add_(0, yb[None], target)
            scale = 1.0 / size
            # oneDNN's weight-gradient product needs a pass of its own to add into W; MKL's addmm_ adds
            # in place, and below ONEDNN_UPDATE_MIN_BATCH rows that pass costs more than oneDNN saves
            onednn_update = size >= ONEDNN_UPDATE_MIN_BATCH
            for j in range(len(linears) - 1, lowest - 1, -1):
                weight, bias, below_t = weights[j], biases[j], inputs_t[j]
                dh_t = weights_t[j].mm(g_t) if j > lowest else None  # before the update
                if trains[j]:
                    if fold:
                        rate = -w_groups[j]["lr"] * scale
                        if big[j] and onednn_update:
                            weight.add_(product(g_t, below_t), alpha=rate)
                        else:
                            weight.addmm_(g_t, below_t.t(), alpha=rate)
                        if bias is not None:
                            bias.addmv_(g_t, column, alpha=-b_groups[j]["lr"] * scale)
                    else:
                        grad = product(g_t, below_t) if big[j] else g_t.mm(below_t.t())
                        weight.grad = grad.mul_(scale)
                        if bias is not None:
                            bias.grad = torch.mv(g_t, column).mul_(scale)
                if dh_t is not None:
                    if relu_after[j - 1]:  # in place: dh_t is this step's own
                        threshold_backward(dh_t, below_t, 0, grad_input=dh_t)
                    g_t = dh_t
            out = out_t.t()
        if fold:
            optimizer._opt_called = True  # type: ignore[attr-defined]  # what a scheduler checks opt.step() did
        else:
            optimizer.step()
        return out, None

    return step


ONEDNN_MIN_WEIGHTS = 2**15  # a layer with fewer weights keeps torch.mm (measured: the 10 × 256 head, 30 vs 21 µs)
# measured on the seed MLP (scratch A/B in fresh processes): with the update through oneDNN, batch 128
# ran 0.78-0.81 of the limit against 0.83-0.87 through addmm_; batch 256 0.862-0.885 against 0.849-0.865
ONEDNN_UPDATE_MIN_BATCH = 256


def onednn_products(weight: torch.Tensor) -> Callable[..., torch.Tensor] | None:
    """oneDNN's matrix product (``torch.ops.mkldnn._linear_pointwise``: ``a·bᵀ``) for float32 on the CPU,
    where torch has it and it agrees with ``torch.mm``; else None (the products go to ``torch.mm``).

    Why: on this project's 2-core AVX-512 machine it ran the seed MLP's two large products 5-15 %
    faster than ``torch.mm`` (MKL), the whole step 1.06× as fast on the same batches. It is what
    torch.compile's CPU backend calls for a Linear whose weights it freezes, so it is maintained, but
    it is not public API: it is checked against ``torch.mm`` once, transposed operand included, and
    left alone if it differs or is missing. Its float32 rounding is not MKL's (against float64, max
    error 1.5–3× torch.mm's, ~1e-6 relative), so a run can part from autograd's where an activation
    sits within that of zero and its ReLU mask flips: 1 of 307,000 in a 3072-1024 layer measured."""
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not torch.backends.mkldnn.enabled:
        return None  # not where it runs, or turned off with torch.backends.mkldnn.flags(enabled=False)
    op = _checked_onednn()
    return None if op is None else lambda a, b: op(a, b, None, "none", [], "")  # no bias, no post-op


def _unused(*args: object) -> torch.Tensor:
    raise AssertionError("oneDNN products are used only where onednn_products found them")


@functools.cache  # checked once per process
def _checked_onednn() -> Callable[..., torch.Tensor] | None:
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        op = torch.ops.mkldnn._linear_pointwise
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(5, 7, generator=gen), torch.randn(3, 7, generator=gen)
        wide = torch.randn(7, 3, generator=gen)
        ok = all(torch.allclose(op(left, right, None, "none", [], ""), left.mm(right.t()), rtol=1e-4, atol=1e-5)
                 for left, right in ((a, b), (a, wide.t())))
    except (AttributeError, RuntimeError):
        return None
    return op if ok else None


def _chain(model: nn.Module) -> list[nn.Module] | None:
    """The layers of a plain [Flatten,] Linear[, ReLU], …, Linear chain with no hooks, or None."""
    if type(model) is not nn.Sequential or _global_hooks():
        return None
    layers = [m for m in model if type(m) is not nn.Identity and not (type(m) is nn.Dropout and m.p == 0)]
    if not layers:
        return None
    if type(layers[0]) is nn.Flatten and (layers[0].start_dim, layers[0].end_dim) == (1, -1):
        body = layers[1:]
    else:
        body = layers
    if not body or type(body[0]) is not nn.Linear or type(body[-1]) is not nn.Linear:
        return None
    previous: type | None = None
    for m in body:
        kind = type(m)
        if kind not in (nn.Linear, nn.ReLU) or (kind is nn.ReLU and previous is not nn.Linear):
            return None
        previous = kind
    for m in layers:
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
            return None
    linears = [m for m in body if type(m) is nn.Linear]
    params = [p for m in linears for p in m.parameters(recurse=False)]
    first = params[0]
    if any(p.dtype not in (torch.float32, torch.float64) or p.dtype != first.dtype or p.device != first.device
           or p._backward_hooks or getattr(p, "_post_accumulate_grad_hooks", None) for p in params):
        return None
    for m in linears:
        if m.bias is not None and m.bias.requires_grad != m.weight.requires_grad:
            return None
    if not any(m.weight.requires_grad for m in linears):
        return None
    return layers


def _plain_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """The optimizer holds exactly the parameters that train, each once."""
    held = [id(p) for g in optimizer.param_groups for p in g["params"]]
    training = [id(p) for p in model.parameters() if p.requires_grad]
    return len(held) == len(set(held)) and set(held) == set(training)


def _optimizer_hooks(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or _optimizer._global_optimizer_pre_hooks or _optimizer._global_optimizer_post_hooks)


def _global_hooks() -> bool:
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks
                or _module._global_backward_hooks or _module._global_backward_pre_hooks)
