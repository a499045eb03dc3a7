"""Fine-tune plans on tiny data: what is frozen, the new head, rates, unfreezing, lineage, bad sources."""

from __future__ import annotations

import dataclasses

import json
import os
import shutil

import pytest
import torch

from ftstudio.core.errors import InputError
from ftstudio.core.finetune.strategies import prepare_finetune
from ftstudio.core.engine import RunControls, evaluate_run, resume, train
from ftstudio.core.runs.folders import load_run_model
from ftstudio.core.training import checkpoint
from ftstudio.core.training.callbacks import Callback
from tests.ft_helpers import HEAD, SOURCE_CLASSES, recipe, save_payload, source_run  # noqa: F401  (fixture)

NEW_DATA = {"name": "digits", "classes": ["0", "1", "2", "3", "4", "5", "6"], "per_class": 5}


def plan_recipe(source, data=NEW_DATA, train=None, **plan):
    return recipe(data, train, {"source": str(source), **plan})


def names_trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def source_state(source_run):
    return checkpoint.load(source_run / "checkpoints" / "best.pt")["model"]


def test_head_strategy_trains_only_a_head_sized_to_the_new_classes(source_run):
    prepared = prepare_finetune(plan_recipe(source_run, strategy="head"))
    model = prepared.model
    assert model[HEAD].out_features == 7
    assert names_trainable(model) == {f"{HEAD}.weight", f"{HEAD}.bias"}
    old = source_state(source_run)
    # rows of the 5 classes the source knows are kept; the 2 new ones start fresh
    assert torch.equal(model[HEAD].weight[:5], old[f"{HEAD}.weight"])
    assert torch.equal(model[HEAD].bias[:5], old[f"{HEAD}.bias"])
    assert not torch.equal(model[HEAD].weight[5:], torch.zeros_like(model[HEAD].weight[5:]))
    assert torch.equal(model[0].weight, old["0.weight"])  # the backbone came from the source
    assert prepared.lineage["kept_classes"] == SOURCE_CLASSES and prepared.lineage["new_classes"] == ["5", "6"]
    assert prepared.lineage["kind"] == "run" and len(prepared.lineage["checkpoint_sha256"]) == 64
    head_params = 7 * 8 + 7
    total = sum(p.numel() for p in model.parameters())
    assert any(f"{head_params:,} of {total:,} parameters trainable" in n for n in prepared.notes)
    assert prepared.architecture.layers[HEAD].params["out_features"] == 7


def test_fresh_head_when_asked(source_run):
    prepared = prepare_finetune(plan_recipe(source_run, strategy="head", keep_known_classes=False))
    old = source_state(source_run)
    assert not torch.equal(prepared.model[HEAD].weight[:5], old[f"{HEAD}.weight"])
    assert prepared.lineage["kept_classes"] == []


def test_full_strategy_uses_a_lower_backbone_rate(source_run):
    from ftstudio.core.training.optim import make_optimizer, param_groups

    # this tiny source scores chance (0.2 over its 5 classes) on these images, which would raise the backbone
    # to 1× (chance_backbone_lr_mult, tests/core/test_transfer.py): off, to see backbone_lr_mult itself
    r = plan_recipe(source_run, train={"lr": 0.01}, strategy="full", backbone_lr_mult=0.1, head_lr_mult=2.0,
                    chance_backbone_lr_mult=0)
    prepared = prepare_finetune(r)
    model = prepared.model
    assert all(p.requires_grad for p in model.parameters())
    opt = make_optimizer(param_groups(model, prepared.lr_multipliers), r.train)
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert rate[id(model[HEAD].weight)] == pytest.approx(0.02)
    assert rate[id(model[0].weight)] == pytest.approx(0.001)
    assert rate[id(model[6].weight)] == pytest.approx(0.001)


def test_lora_trains_adapters_batchnorm_and_head_and_merges_exactly(source_run, tmp_path):
    from ftstudio.core.architecture.lora import LoRAConv2d, LoRALinear, merge_lora

    r = plan_recipe(source_run, train={"epochs": 3}, strategy="lora", lora_rank=2, lora_alpha=4.0, min_steps=0)
    prepared = prepare_finetune(r)
    model = prepared.model
    adapted = {name for name, m in model.named_modules() if isinstance(m, (LoRALinear, LoRAConv2d))}
    assert adapted == {"0", "3.body.0", "6"}  # every Linear/Conv2d except the head
    expected = {f"{n}.{w}" for n in adapted for w in ("lora_a", "lora_b")} | {f"{HEAD}.weight", f"{HEAD}.bias"}
    expected |= {"1.weight", "1.bias"}  # the BatchNorm layer trains too (finetune.strategies.lora_norm_parameters)
    assert names_trainable(model) == expected
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(prepared, tmp_path / "run")
    after = model.state_dict()
    for key in before:  # frozen base weights did not move; adapters and head did
        moved = not torch.equal(before[key], after[key])
        if key.endswith("lora_b") or key.startswith((f"{HEAD}.", "1.")):
            assert moved, key
        elif key.endswith((".weight", ".bias")):
            assert not moved, key
    model.eval()
    x = torch.randn(6, *prepared.data.input_shape)
    with torch.no_grad():
        adapted_out = model(x)
        reloaded, ckpt = load_run_model(result.run.path, "last")  # the checkpoint merges on load
        merged_out = merge_lora(model)(x)
    assert ckpt["lora"]["rank"] == 2 and any(k.endswith("lora_a") for k in ckpt["model"])
    assert not any(isinstance(m, (LoRALinear, LoRAConv2d)) for m in reloaded.modules())
    torch.testing.assert_close(merged_out, adapted_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(reloaded(x), adapted_out, rtol=1e-5, atol=1e-5)


def test_lora_merge_is_exact_for_nonzero_adapters():
    from ftstudio.core.architecture.lora import add_lora, merge_lora, merge_state_dict

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(5 * 4 * 4, 6))
    add_lora(net, rank=3, alpha=6.0)
    for p in net.parameters():  # B starts at zero; make the adapters matter
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        state = merge_state_dict(net.state_dict(), {"rank": 3, "alpha": 6.0})
        merge_lora(net)
        plain = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, stride=2, padding=1), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(5 * 4 * 4, 6))
        plain.load_state_dict(state)
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-5)


class GradRecorder(Callback):
    def __init__(self, module):
        super().__init__()
        self.module, self.seen = module, []

    def on_epoch_started(self, event):
        self.seen.append(self.module.weight.requires_grad)


def test_gradual_unfreezing_survives_resume(source_run, tmp_path):
    r = plan_recipe(source_run, train={"epochs": 2}, strategy="head", unfreeze_after=1, min_steps=0)
    prepared = prepare_finetune(r)
    recorder = GradRecorder(prepared.model[0])
    assert not prepared.model[0].weight.requires_grad and prepared.model[HEAD].weight.requires_grad
    train(prepared, tmp_path / "run", RunControls(callbacks=[recorder]))
    assert recorder.seen == [False, True]  # frozen in epoch 1, training in epoch 2
    assert not torch.equal(prepared.model[0].weight.detach(), source_state(source_run)["0.weight"])
    result = resume(tmp_path / "run", epochs=3)  # optimizer groups must match
    assert result.summary["epochs"] == 3


def test_layer_overrides_and_unknown_layer(source_run):
    layers = [{"layer": "features", "freeze": True}, {"layer": "3.0", "lr_mult": 0.5}]
    prepared = prepare_finetune(plan_recipe(source_run, strategy="full", layers=layers))
    model = prepared.model
    assert not model[6].weight.requires_grad and model[0].weight.requires_grad
    assert prepared.lr_multipliers[id(model[3].body[0].weight)] == 0.5
    with pytest.raises(InputError, match=r"no layer 'nope'.*8 Linear \(head\)"):
        prepare_finetune(plan_recipe(source_run, layers=[{"layer": "nope", "freeze": True}]))


def test_images_the_source_cannot_take_are_named_as_such(source_run):
    """``--channels 3`` on a grayscale source said 'invalid architecture: layer 0 (Conv2d): in_channels is 1 but the
    input has 3; set it to "auto"' — advice for a composer, not for someone fine-tuning a run."""
    with pytest.raises(InputError) as caught:
        prepare_finetune(plan_recipe(source_run, data={**NEW_DATA, "channels": 3}))
    text = str(caught.value)
    assert text.startswith("the source model was trained on 1-channel 8×8 images and cannot take the 3-channel 8×8")
    assert "leave out --channels and --image-size" in text and '"auto"' not in text
    bigger = prepare_finetune(plan_recipe(source_run, data={**NEW_DATA, "image_size": [12, 12]}))  # pooled: any size
    assert bigger.data.input_shape == (1, 12, 12)


def test_tiny_data_gets_enough_steps(source_run):
    prepared = prepare_finetune(plan_recipe(source_run, train={"epochs": 2, "batch_size": 64}, min_steps=30))
    assert prepared.recipe.train.epochs == 30  # 35 images, batch 64: one step per epoch
    assert any("raised from 2 to 30" in n for n in prepared.notes)
    kept = prepare_finetune(plan_recipe(source_run, train={"epochs": 2}, min_steps=0))
    assert kept.recipe.train.epochs == 2


def test_finetune_run_is_a_normal_run(source_run, tmp_path):
    src = tmp_path / "source"
    shutil.copytree(source_run, src)
    r = plan_recipe(src, data={"name": "digits-shifted", "classes": ["0", "1", "2", "3", "4"], "per_class": 4},
                    strategy="full", min_steps=0)
    result = train(r, tmp_path / "ft")
    summary = result.summary
    assert summary["lineage"]["source"] == str(src.resolve()) and summary["lineage"]["strategy"] == "full"
    assert summary["finetune"] and summary["notes"]
    shutil.rmtree(src)  # the fine-tuned run stands on its own
    model, ckpt = load_run_model(result.run.path, "best")
    assert ckpt["lineage"]["kind"] == "run" and ckpt["lineage"]["strategy"] == "full"
    assert json.loads((result.run.path / "model.json").read_text()) == ckpt["architecture"]
    assert model[HEAD].out_features == 5
    assert evaluate_run(result.run.path)["count"] > 0


def test_torchvision_source_offline_names_the_file(tmp_path):
    from ftstudio.core.architecture.backbones import cached_weights_path

    with pytest.raises(InputError) as err:
        prepare_finetune(plan_recipe("torchvision:mobilenet_v3_small"))
    text = str(err.value)
    assert str(cached_weights_path("mobilenet_v3_small")) in text and "--weights none" in text
    with pytest.raises(InputError, match="unknown backbone"):
        prepare_finetune(plan_recipe("torchvision:vgg99"))


def test_torchvision_source_from_cache_or_local_file(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import get_model

    from ftstudio.core.architecture.backbones import cached_weights_path

    torch.manual_seed(1)
    net = get_model("mobilenet_v3_small", weights=None)
    file = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(file))
    data = {"name": "digits", "classes": ["0", "1", "2"], "per_class": 4, "image_size": [16, 16]}
    prepared = prepare_finetune(plan_recipe("torchvision:mobilenet_v3_small", data=data, weights=str(file),
                                            strategy="head"))
    backbone = prepared.model[0].net
    last = "features.12.0.weight"  # a deep layer (the first conv is adapted to 1 channel)
    assert torch.equal(backbone.state_dict()[last], net.state_dict()[last])
    assert prepared.model[1].out_features == 3 and prepared.lineage["weights_file"] == str(file)
    assert names_trainable(prepared.model) == {"1.weight", "1.bias"}
    cached = cached_weights_path("mobilenet_v3_small")
    cached.parent.mkdir(parents=True)
    torch.save(net.state_dict(), cached)
    from_cache = prepare_finetune(plan_recipe("torchvision:mobilenet_v3_small", data=data, strategy="head"))
    assert torch.equal(from_cache.model[0].net.state_dict()[last], net.state_dict()[last])
    random_init = prepare_finetune(plan_recipe("torchvision:mobilenet_v3_small", data=data, weights="none"))
    assert not torch.equal(random_init.model[0].net.state_dict()[last], net.state_dict()[last])


@pytest.mark.parametrize("kind", ["foreign", "empty", "truncated", "random", "pickle"])
def test_bad_sources_are_refused_without_running_code(source_run, tmp_path, kind):
    bad = tmp_path / "bad.pt"
    marker = tmp_path / "pwned"
    if kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, bad)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        data = (source_run / "checkpoints" / "best.pt").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        bad.write_bytes(os.urandom(4096))
    else:
        save_payload(bad, marker)
    with pytest.raises(InputError) as err:
        prepare_finetune(plan_recipe(bad))
    assert str(bad) in str(err.value)
    assert not marker.exists()
    if kind == "pickle":
        assert "refused" in str(err.value)
        torch.load(bad, weights_only=False)  # the payload is real: an unsafe load runs it
        assert marker.exists()


def test_none_strategy_trains_as_is(source_run):
    prepared = prepare_finetune(plan_recipe(source_run, data={"name": "digits", "classes": SOURCE_CLASSES,
                                                              "per_class": 4}, strategy="none"))
    assert all(p.requires_grad for p in prepared.model.parameters())
    assert set(prepared.lr_multipliers.values()) == {1.0}
    assert torch.equal(prepared.model[HEAD].weight, source_state(source_run)[f"{HEAD}.weight"])


def test_a_finetune_recipe_replays_to_the_same_model(source_run, tmp_path):
    from ftstudio.core.config.recipe import Recipe, read_json

    r = plan_recipe(source_run, strategy="lora", min_steps=0)
    first = train(r, tmp_path / "a").run.path
    replay = Recipe.from_dict(read_json(first / "recipe.json"))
    # the tiny source scores about chance here, so the recipe records the raised LoRA alpha it trained with
    assert read_json(first / "summary.json")["lora_alpha"] == replay.finetune.lora_alpha == 32
    assert replay.finetune == dataclasses.replace(r.finetune, lora_alpha=32)
    assert replay.model["layers"][HEAD]["params"]["out_features"] == 7
    second = train(replay, tmp_path / "b").run.path
    a, b = (checkpoint.load(p / "checkpoints" / "last.pt")["model"] for p in (first, second))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_malformed_lora_entry_is_a_clear_error(source_run, tmp_path):
    from ftstudio.core.runs.folders import model_from_checkpoint

    ckpt = checkpoint.load(source_run / "checkpoints" / "best.pt")
    for bad in ({"rank": 0, "alpha": 1.0}, {"rank": "4"}, {"rank": 2, "alpha": 4.0, "layers": []}):
        state = dict(ckpt["model"], **{"0.lora_a": torch.zeros(2, 9)}) if "layers" in bad else ckpt["model"]
        with pytest.raises(InputError, match="weights do not match"):
            model_from_checkpoint({**ckpt, "model": state, "lora": bad}, "x.pt")
