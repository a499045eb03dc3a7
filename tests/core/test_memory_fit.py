"""Memory fit (core/planning/memory.py): the estimate by part, against a device budget, and the suggestions
in their order — with numbers worked out by hand, and real networks analysed on the meta device."""

from __future__ import annotations

import pytest

from ftstudio.core.architecture import analyze, parse_model
from ftstudio.core.planning.memory import (Activations, DeviceBudget, activation_profile, device_budget, estimate,
                                           plan)

GPU = DeviceBudget("cuda:0", "GPU 0 (pretend)", free=10_000_000_000, total=16_000_000_000, gpus=1)
CPU = DeviceBudget("cpu", "this computer's RAM", free=10_000_000_000, total=16_000_000_000)
M = 1_000_000


def test_the_parts_follow_the_optimizer_amp_and_sharding():
    acts = Activations(kept=1000, checkpointed=300, largest=50)
    adam = estimate(10 * M, 4 * M, acts, batch_size=8)
    assert (adam.params, adam.grads, adam.optimizer) == (40 * M, 16 * M, 32 * M)  # frozen weights: no grad, no state
    assert adam.activations == (1000 + 2 * 50) * 8
    assert estimate(10 * M, 4 * M, acts, 8, optimizer="sgd").optimizer == 16 * M  # momentum: one tensor
    assert estimate(10 * M, 4 * M, acts, 8, optimizer="sgd", momentum=0.0).optimizer == 0
    amp = estimate(10 * M, 4 * M, acts, 8, amp=True)
    assert amp.activations == adam.activations // 2 and amp.params == 60 * M  # + a 16-bit copy of the weights
    assert estimate(10 * M, 4 * M, acts, 8, checkpointing=True).activations == (300 + 100) * 8
    fsdp = estimate(10 * M, 4 * M, acts, 8, shards=4)
    assert (fsdp.params, fsdp.grads, fsdp.optimizer, fsdp.activations) == (10 * M, 4 * M, 8 * M, 1100 * 2)


def test_a_network_that_fits_says_so_without_suggestions():
    fit = plan(1 * M, 1 * M, Activations(kept=10_000), 64, GPU)
    assert fit.fits and fit.suggestions == ()
    assert fit.line().startswith("Memory: about 17 MB to train at batch size 64 — fits GPU 0 (pretend)")
    assert "Optimizer state: 8 MB" in fit.details()


def test_activations_too_large_suggest_checkpointing_first():
    # 100 M parameters (1.6 GB with Adam) and 100 MB of activations per sample at batch 128 (12.8 GB)
    acts = Activations(kept=100 * M, checkpointed=10 * M, largest=0)
    fit = plan(100 * M, 100 * M, acts, 128, GPU)
    assert not fit.fits
    assert [s.key for s in fit.suggestions] == ["checkpointing", "fsdp", "batch", "bf16"]
    first = fit.suggestions[0]
    assert first.fits and first.need == 1_600 * M + 10 * M * 128
    assert "more than the 10.0 GB free on GPU 0 (pretend). Try gradient checkpointing" in fit.line()
    fsdp, batch, bf16 = fit.suggestions[1:]
    assert fsdp.text == "--distributed fsdp on 2 GPUs (this machine has 1)"
    assert fsdp.need == (1_600 * M + 12_800 * M) / 2
    assert batch.text == "batch size 64" and batch.need == 1_600 * M + 6_400 * M  # 8.0 GB: 80 % of 10 GB fits
    # bf16: a 16-bit copy of the weights (+0.2 GB) and half the activations: 8.2 GB, just over
    assert bf16.need == 1_800 * M + 6_400 * M and not bf16.fits
    small = DeviceBudget("cuda:0", "GPU 0", 4_000 * M, 8_000 * M, 8)  # room: 3.2 GB
    tight = plan(100 * M, 100 * M, acts, 128, small)
    assert [(s.key, s.fits) for s in tight.suggestions] == [("checkpointing", True), ("fsdp", True), ("batch", True),
                                                            ("bf16", False)]
    assert tight.suggestions[1].text == "--distributed fsdp on 8 GPUs"  # 5 would fit, but 128 splits over 8
    assert tight.suggestions[2].text == "batch size 16"  # 1.6 + 16 × 0.1 GB
    already = plan(100 * M, 100 * M, acts, 128, GPU, checkpointing=True)  # what is on is counted, not suggested
    assert already.fits and already.need.activations == 10 * M * 128
    close = plan(100 * M, 100 * M, Activations(kept=0), 1, DeviceBudget("cuda:0", "GPU 0", 1_800 * M, 2_000 * M))
    assert not close.fits and "1.6 GB to train at batch size 1 — too close to the 1.8 GB free on GPU 0" in close.line()
    sharded = plan(100 * M, 100 * M, acts, 128, small, shards=2)
    assert [s.text for s in sharded.suggestions if s.key == "fsdp"] == ["--distributed fsdp on 8 GPUs"]


def test_parameters_too_large_on_a_gpu_suggest_fsdp_and_on_the_cpu_nothing_helps():
    acts = Activations(kept=1 * M)  # nothing to checkpoint (no backbone): not suggested
    fit = plan(1_000 * M, 1_000 * M, acts, 64, GPU)  # 16 GB of weights, gradients and Adam state
    assert [s.key for s in fit.suggestions][:1] == ["fsdp"] and "batch" not in [s.key for s in fit.suggestions]
    # 16.06 GB over 8 GB of room: 3 GPUs would do, 4 split the batch of 64 evenly
    assert fit.suggestions[0].text == "--distributed fsdp on 4 GPUs (this machine has 1)"
    assert "Try --distributed fsdp on 4 GPUs" in fit.line()
    on_cpu = plan(1_000 * M, 1_000 * M, acts, 64, CPU)  # processes on one computer share its RAM: no fsdp
    assert on_cpu.suggestions == () and "choose a smaller network" in on_cpu.line()
    roomy = DeviceBudget("cpu", "this computer's RAM", free=11_000 * M, total=16_000 * M)
    sgd = plan(1_000 * M, 1_000 * M, acts, 64, roomy, optimizer="sgd", momentum=0.0)  # 8.06 GB of 8.8: fits
    assert sgd.fits


def _backbone(name: str, freeze: bool = False, kind: str = "Backbone"):
    return parse_model({"layers": [{"type": kind, "params": {"name": name}, "freeze": freeze},
                                   {"type": "Linear", "params": {"out_features": "classes"}}]})


def test_a_backbone_is_measured_inside_and_checkpointing_keeps_less():
    analysis = analyze(_backbone("resnet18"), (3, 64, 64), 5)
    profile = activation_profile(analysis)
    # the analysis sees the backbone's 512 features; its layers keep about 1.9 MB per 64×64 image (the stem's
    # conv and bn outputs alone are 2 × 64×32×32 floats = 0.52 MB; its ReLU works in place)
    assert analysis.activation_bytes < 3_000 and 1.5 * M < profile.kept < 2.5 * M
    assert profile.checkpointed is not None and profile.checkpointed < profile.kept * 0.85
    frozen = activation_profile(analyze(_backbone("resnet18", freeze=True), (3, 64, 64), 5))
    assert frozen.kept < 100_000  # no gradient flows through a frozen first layer: nothing kept for it
    small = DeviceBudget("cuda:0", "GPU 0 (pretend)", free=925 * M, total=1_000 * M, gpus=1)
    fit = plan(analysis.params, analysis.trainable, profile, 256, small)  # ~0.79 GB, ~0.71 checkpointed; room 0.74
    assert not fit.fits and fit.suggestions[0].key == "checkpointing" and fit.suggestions[0].fits


def test_a_chain_is_checkpointed_in_blocks_as_grad_checkpoint_cuts_it():
    conv = {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": "same"}}
    spec = parse_model({"layers": [conv, {"type": "BatchNorm2d"}, {"type": "ReLU"}, conv, {"type": "BatchNorm2d"},
                                   {"type": "ReLU"}, {"type": "Flatten"},
                                   {"type": "Linear", "params": {"out_features": "classes"}}]})
    profile = activation_profile(analyze(spec, (3, 8, 8), 5))
    # kept: the 3×8×8 batch, seven outputs of 8×8×8 and the 5 logits, in floats
    assert profile.kept == (192 + 7 * 512 + 5) * 4
    # blocks [conv bn relu] [conv bn relu flatten] [linear]: the batch, the inputs of blocks 2 and 3, and the
    # largest block's insides (4 × 512) while it is recomputed
    assert profile.checkpointed == (192 + 512 + 512 + 4 * 512) * 4 and profile.largest == 512 * 4


def test_a_timm_vit_is_measured_per_block():
    profile = activation_profile(analyze(_backbone("vit_tiny_patch16_224", kind="TimmBackbone"), (3, 224, 224), 5))
    # per block: qkv, proj, fc1, GELU, fc2, two LayerNorms (Identity and p=0 Dropout outputs are their inputs)
    assert 20 * M < profile.kept < 40 * M and profile.checkpointed < profile.kept / 4


def test_the_cpu_budget_is_the_available_ram():
    budget = device_budget("cpu")
    assert 0 < budget.free <= budget.total and budget.label == "this computer's RAM" and not budget.is_gpu


@pytest.mark.parametrize("optimizer,states", [("adam", 2), ("adamw", 2), ("sgd", 1)])
def test_optimizer_state_per_trainable_parameter(optimizer, states):
    assert estimate(0, 1000, Activations(0), 1, optimizer=optimizer).optimizer == 4000 * states
