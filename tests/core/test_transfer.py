"""Fine-tuning under a domain shift: frozen BatchNorm adapted (AdaBN), the baseline before training, new classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ftstudio.core.architecture.build import module_at
from tests.ft_helpers import HEAD, SOURCE_CLASSES, recipe, source_run  # noqa: F401  (fixture)

# a small CNN whose BatchNorm layers freeze with the head strategy; the head is layer 8
BN_CNN = {"name": "bn cnn", "layers": [
    {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False}},
    {"type": "BatchNorm2d"}, {"type": "ReLU"},
    {"type": "Conv2d", "params": {"out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False}},
    {"type": "BatchNorm2d"}, {"type": "ReLU"},
    {"type": "AdaptiveAvgPool2d", "params": {"output_size": 2}}, {"type": "Flatten"},
    {"type": "Linear", "params": {"out_features": "classes"}}]}


def scanner_folder(out: Path, every: int = 3) -> Path:
    """The bundled digits from 'another scanner': low contrast, brighter, a little noise, as PNGs."""
    from PIL import Image

    from ftstudio.core.datasets.sources import load_digits

    raw = load_digits()
    gen = torch.Generator().manual_seed(0)
    x = 0.3 + 0.3 * torch.from_numpy(raw.images).float() / 255 + torch.randn(raw.images.shape, generator=gen) * 0.05
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    for i in range(0, len(images), every):
        folder = out / str(raw.labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i, 0]).save(folder / f"{i}.png")
    return out


@pytest.fixture(scope="module")
def bn_source(tmp_path_factory) -> Path:
    from ftstudio.core.engine import train

    out = tmp_path_factory.mktemp("bn-source") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTSTUDIO_HOME", str(tmp_path_factory.mktemp("bn-home")))
        train(recipe({"name": "digits"}, {"epochs": 5, "lr": 0.01}, model=BN_CNN), out)
    return out


def noise_folder(out: Path) -> Path:
    """Ten classes of uniform noise, 30 images each: a source finds nothing in them (chance)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in map(str, range(10)):
        (out / c).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(out / c / f"{i}.png")
    return out


def _finetune(source: Path, folder: Path, bn: str, out: Path):
    from ftstudio.core.engine import train

    r = recipe({"name": str(folder), "per_class": 5, "val_split": 0.5}, {"epochs": 1, "lr": 0.01},
               {"source": str(source), "checkpoint": "last", "strategy": "head", "bn": bn, "min_steps": 40})
    return train(r, out)


@pytest.mark.slow
def test_frozen_batchnorm_head_only_on_a_shifted_scanner_ends_far_above_chance(bn_source, tmp_path):
    """Measured: keep (the old behaviour) 0.28, adapt 0.86; the source alone scores chance on these images."""
    folder = scanner_folder(tmp_path / "scanner")
    keep = _finetune(bn_source, folder, "keep", tmp_path / "keep").summary
    adapt = _finetune(bn_source, folder, "auto", tmp_path / "adapt").summary
    assert keep["baseline"]["val_accuracy"] < 0.2  # chance: the source's BatchNorm statistics do not fit
    assert adapt["bn"]["applied"] == "adapt" and keep["bn"]["applied"] == "keep"
    assert adapt["bn"]["shift"] == keep["bn"]["shift"] > 0.5  # the same measurement, printed and recorded
    assert adapt["baseline"]["after_bn"]["val_accuracy"] > 0.5  # AdaBN alone, before any step
    assert adapt["val_accuracy"] > 0.6 and adapt["val_accuracy"] > keep["val_accuracy"] + 0.25
    written = json.loads((tmp_path / "adapt" / "summary.json").read_text())
    assert written["bn"]["layers"][0]["layer"] == "1" and written["bn"]["mode"] == "auto"


def _prepared(source: Path, data: dict, **plan):
    from ftstudio.core.finetune.strategies import prepare_finetune

    return prepare_finetune(recipe(data, {}, {"source": str(source), "checkpoint": "last", "strategy": "head",
                                              **plan}))


def test_bn_keep_leaves_the_source_statistics_and_adapt_reestimates_them(source_run):
    from ftstudio.core.training import checkpoint

    old = checkpoint.load(source_run / "checkpoints" / "last.pt")["model"]
    data = {"name": "digits", "classes": SOURCE_CLASSES, "per_class": 20}
    keep = _prepared(source_run, data, bn="keep")
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(keep.model[1].state_dict()[key], old[f"1.{key}"])  # today's behaviour, exactly
    adapt = _prepared(source_run, data, bn="adapt")
    assert adapt.summary["bn"]["applied"] == "adapt" and not torch.equal(adapt.model[1].running_mean,
                                                                        old["1.running_mean"])
    # AdaBN by hand: the 100 training images in one batch → the batch's mean and unbiased variance
    from ftstudio.core.training.loader import DeviceBatches

    x = next(DeviceBatches(adapt.data.train, adapt.data.mean, adapt.data.std, torch.device("cpu"), 1000).epoch())[0]
    with torch.no_grad():
        conv = adapt.model[0](x)
    assert torch.allclose(adapt.model[1].running_mean, conv.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(adapt.model[1].running_var, conv.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert adapt.model[1].momentum == 0.1  # restored after the cumulative pass
    assert any(n.startswith("normalisation:") and "AdaBN" in n for n in adapt.notes)


def test_lora_trains_the_batchnorm_layers_and_a_freeze_override_still_freezes_one(source_run):
    """bench/transfer.py, 5 shots: LoRA with frozen, AdaBN-adapted BatchNorm reached 0.53 on inverted digits (full
    0.68); with the layers training 0.68. Their statistics then follow the new data: nothing is left to adapt."""
    from ftstudio.core.finetune.normalisation import frozen_norms

    data = {"name": "digits", "classes": SOURCE_CLASSES, "per_class": 10}
    lora = _prepared(source_run, data, strategy="lora")
    bn = lora.model[1]
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.weight.requires_grad and bn.bias.requires_grad
    assert not lora.model[0].weight.requires_grad  # the base weights stay frozen
    assert frozen_norms(lora.model) == [] and lora.summary["bn"]["applied"] == "none"
    assert any("the BatchNorm layers and the head train" in n for n in lora.notes)
    frozen = _prepared(source_run, data, strategy="lora", layers=[{"layer": "1", "freeze": True}])
    assert not frozen.model[1].weight.requires_grad and frozen.summary["bn"]["applied"] == "adapt"


def test_full_strategy_has_nothing_to_adapt_and_train_mode_marks_layers(source_run):
    from ftstudio.core.finetune.strategies import prepare_finetune
    from ftstudio.core.finetune.normalisation import uses_batch_stats

    data = {"name": "digits", "classes": SOURCE_CLASSES, "per_class": 10}
    full = prepare_finetune(recipe(data, {}, {"source": str(source_run), "strategy": "full"}))
    assert full.summary["bn"]["applied"] == "none"
    trained = _prepared(source_run, data, bn="train")
    assert trained.summary["bn"]["applied"] == "train" and uses_batch_stats(trained.model[1])


def test_baseline_is_the_source_on_the_new_validation_images_of_known_classes(source_run, tmp_path):
    from ftstudio.core.engine import train
    from ftstudio.core.runs.folders import load_run_model
    from ftstudio.core.training.loader import DeviceBatches

    data = {"name": "digits", "classes": ["3", "1", "7", "0"], "per_class": 10}  # 3 known (other order), 1 new
    r = recipe(data, {"epochs": 1}, {"source": str(source_run), "checkpoint": "last", "strategy": "head",
                                     "min_steps": 0})
    result = train(r, tmp_path / "run")
    base = json.loads((tmp_path / "run" / "summary.json").read_text())["baseline"]
    # by hand: the source model, its own head over its 5 classes, on the validation images of 3, 1 and 0
    from ftstudio.core.datasets import load_data
    from ftstudio.core.config.recipe import DatasetSpec

    source, ckpt = load_run_model(source_run, "last")
    bundle = load_data(DatasetSpec(name="digits", classes=("3", "1", "7", "0"), per_class=10))
    known = [ckpt["classes"].index(c) if c in ckpt["classes"] else -1 for c in bundle.classes]
    y = torch.tensor(known)[bundle.val.y]
    keep = torch.nonzero(y >= 0).flatten().numpy()
    split = bundle.val.subset(keep).relabel(y[keep])
    pre = ckpt["preprocess"]
    xb, yb = next(DeviceBatches(split, tuple(pre["mean"]), tuple(pre["std"]), torch.device("cpu"), 10_000).epoch())
    with torch.no_grad():
        logits = source(xb)
    assert base["count"] == len(keep) == int((bundle.val.y != bundle.classes.index("7")).sum())
    assert base["val_accuracy"] == pytest.approx(float((logits.argmax(1) == yb).float().mean()))
    assert base["val_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, yb)), rel=1e-4)
    assert result.summary["baseline"]["val_accuracy"] == base["val_accuracy"]


def test_a_source_at_chance_on_the_new_images_is_flagged_and_one_that_transfers_is_not(bn_source, tmp_path):
    """Images in which the source finds nothing (noise under its class names) get the warning that a
    frozen backbone will learn little, in the notes and in the baseline; the source's own digits do not."""
    from ftstudio.core.finetune.baseline import describe, near_chance

    noise = _prepared(bn_source, {"name": str(noise_folder(tmp_path))})
    base = noise.summary["baseline"]
    assert base["near_chance"] is True and base["val_accuracy"] < 0.15  # 10 classes: chance 0.1
    (warning,) = [n for n in noise.notes if n.startswith("warning: the source scores")]
    assert "--strategy full or lora" in warning and "about chance (0.100)" in warning
    assert "about chance" in describe(noise.summary)
    # full: a backbone with nothing to protect trains at chance_backbone_lr_mult (1×), not 0.1×;
    # 0 turns that off, and a per-layer rate override is kept
    def rates(prepared):
        head = {id(p) for p in module_at(prepared.model, prepared.lineage["head_layer"]).parameters()}
        return {round(m, 6) for pid, m in prepared.lr_multipliers.items() if pid not in head}
    full = _prepared(bn_source, {"name": str(tmp_path)}, strategy="full")
    assert rates(full) == {1.0} and full.summary["backbone_lr_mult"] == 1.0
    assert "the backbone trained at 1×" in describe(full.summary)
    assert any(n.startswith("the backbone trains at 1× the learning rate instead of 0.1×") for n in full.notes)
    kept = _prepared(bn_source, {"name": str(tmp_path)}, strategy="full", chance_backbone_lr_mult=0)
    assert rates(kept) == {0.1} and "backbone_lr_mult" not in kept.summary
    layer = _prepared(bn_source, {"name": str(tmp_path)}, strategy="full",
                      layers=[{"layer": "0", "lr_mult": 0.3}])
    assert rates(layer) == {0.3, 1.0}

    # full on a scanner whose noise only the BatchNorm statistics mishandle: chance as is, but its
    # statistics re-estimated (measured, then put back: these layers train) it transfers
    from ftstudio.core.training import checkpoint
    folder = scanner_folder(tmp_path.with_name(tmp_path.name + "-scanner"))  # not inside the noise folder
    scanner = _prepared(bn_source, {"name": str(folder), "per_class": 5, "val_split": 0.5}, strategy="full")
    base = scanner.summary["baseline"]
    assert base["val_accuracy"] < 0.2 and base["after_bn"]["val_accuracy"] > 0.5 and base["near_chance"] is False
    assert rates(scanner) == {0.1} and not any(n.startswith("warning: the source") for n in scanner.notes)
    old = checkpoint.load(bn_source / "checkpoints" / "last.pt")["model"]
    assert torch.equal(scanner.model[1].running_var, old["1.running_var"])
    clean = _prepared(bn_source, {"name": "digits", "per_class": 10})
    assert rates(_prepared(bn_source, {"name": "digits", "per_class": 10}, strategy="full")) == {0.1}
    assert clean.summary["baseline"]["val_accuracy"] > 0.5
    assert clean.summary["baseline"]["near_chance"] is False
    assert not any(n.startswith("warning: the source scores") for n in clean.notes)
    # the threshold: the best of "as is" and "BatchNorm adapted", under 1.5× chance
    assert near_chance({"val_accuracy": 0.10, "after_bn": {"val_accuracy": 0.121}}, 10)
    assert not near_chance({"val_accuracy": 0.10, "after_bn": {"val_accuracy": 0.677}}, 10)  # AdaBN fixed it
    assert not near_chance({"val_accuracy": None}, 10) and not near_chance({"val_accuracy": 0.0}, 1)


def test_lora_on_a_source_at_chance_scales_its_adapters_up_and_a_resumed_run_keeps_that_scale(bn_source, tmp_path):
    """LoRA's adapters are scaled by chance_lora_alpha (32) instead of lora_alpha (8) when the source
    scores about chance: in the modules, the checkpoint's lora entry, recipe.json and summary.json, so
    merging and resuming use the scale that trained; 0 turns it off, a higher alpha is kept, and a
    source that transfers keeps 8."""
    from ftstudio.core.architecture.lora import LoRAConv2d, LoRALinear
    from ftstudio.core.config.recipe import Recipe
    from ftstudio.core.engine import resume, train
    from ftstudio.core.finetune.baseline import describe
    from ftstudio.core.finetune.strategies import prepare_finetune
    from ftstudio.core.runs.folders import load_run_model
    from ftstudio.core.training import checkpoint

    def scales(prepared):
        return {m.scale for m in prepared.model.modules() if isinstance(m, (LoRALinear, LoRAConv2d))}
    data = {"name": str(noise_folder(tmp_path / "noise"))}
    raised = _prepared(bn_source, data, strategy="lora")
    assert scales(raised) == {32 / 4} and raised.lora["alpha"] == 32 and raised.summary["lora_alpha"] == 32
    assert raised.recipe.finetune.lora_alpha == 32
    assert any(n.startswith("the LoRA adapters are scaled by alpha 32 instead of 8") for n in raised.notes)
    assert "LoRA alpha raised to 32" in describe(raised.summary)
    off = _prepared(bn_source, data, strategy="lora", chance_lora_alpha=0)
    assert scales(off) == {8 / 4} and off.lora["alpha"] == 8 and "lora_alpha" not in off.summary
    assert scales(_prepared(bn_source, data, strategy="lora", lora_alpha=64)) == {64 / 4}
    assert scales(_prepared(bn_source, {"name": "digits", "per_class": 10}, strategy="lora")) == {8 / 4}

    r = recipe(data, {"epochs": 1, "lr": 0.01}, {"source": str(bn_source), "checkpoint": "last", "strategy": "lora",
                                                 "min_steps": 0})
    run = train(r, tmp_path / "run").run.path
    saved = Recipe.from_dict(json.loads((run / "recipe.json").read_text()))
    assert saved.finetune.lora_alpha == 32 and json.loads((run / "summary.json").read_text())["lora_alpha"] == 32
    again = prepare_finetune(saved)  # what resume rebuilds: the same scale, not raised twice
    assert scales(again) == {32 / 4} and not any(n.startswith("the LoRA adapters are scaled") for n in again.notes)
    resume(run, epochs=2)
    ckpt = checkpoint.load(run / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["lora"]["alpha"] == 32
    merged, _ = load_run_model(run, "last")  # adapters folded at the scale that trained: W + 8·B·A
    key = next(k for k in ckpt["model"] if k.endswith(".lora_a")).removesuffix("lora_a")
    delta = torch.einsum("or,r...->o...", ckpt["model"][key + "lora_b"], ckpt["model"][key + "lora_a"]) * 8
    assert delta.abs().max() > 0
    assert torch.allclose(merged.state_dict()[key + "weight"], ckpt["model"][key + "weight"] + delta, atol=1e-6)


def test_baseline_is_null_when_the_source_knows_no_class(source_run):
    prepared = _prepared(source_run, {"name": "digits", "classes": ["5", "6", "7"], "per_class": 5})
    assert prepared.summary["baseline"]["val_accuracy"] is None and prepared.summary["baseline"]["val_loss"] is None
    assert any("nothing to measure" in n for n in prepared.notes)


@pytest.mark.parametrize("method", ["imprint", "mean", "random"])
def test_growing_5_to_10_classes_keeps_known_rows_and_starts_new_ones(source_run, method):
    from ftstudio.core.training import checkpoint

    old = checkpoint.load(source_run / "checkpoints" / "last.pt")
    prepared = _prepared(source_run, {"name": "digits", "per_class": 20}, new_rows=method)
    head, classes = prepared.model[HEAD], prepared.data.classes
    for name in SOURCE_CLASSES:  # by name
        i, j = classes.index(name), old["classes"].index(name)
        assert torch.equal(head.weight[i], old["model"][f"{HEAD}.weight"][j])
        assert torch.equal(head.bias[i], old["model"][f"{HEAD}.bias"][j])
    new = [classes.index(c) for c in classes if c not in SOURCE_CLASSES]
    known_norm = old["model"][f"{HEAD}.weight"].norm(dim=1).mean()
    if method == "mean":
        assert torch.allclose(head.weight[new], old["model"][f"{HEAD}.weight"].mean(0).expand(len(new), -1))
    if method == "imprint":  # scaled like the known rows, pointing along each class's mean feature
        assert torch.allclose(head.weight[new].norm(dim=1), known_norm.expand(len(new)), rtol=1e-4)
        assert len({tuple(r.tolist()) for r in head.weight[new]}) == len(new)
    assert any(n.startswith("new head rows") for n in prepared.notes)


MLP = {"name": "small mlp", "layers": [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 32}},
                                      {"type": "ReLU"}, {"type": "Linear", "params": {"out_features": "classes"}}]}


def test_head_only_growth_learns_the_new_classes(tmp_path):
    """Head-only, 5 known → 10 classes (the seed's move): known rows start exact, the run learns the new ones."""
    from ftstudio.core.engine import evaluate_run, train

    train(recipe({"name": "digits", "classes": SOURCE_CLASSES}, {"epochs": 3, "lr": 0.01}, model=MLP),
          tmp_path / "source")
    r = recipe({"name": "digits", "per_class": 30}, {"epochs": 1, "lr": 0.01},
               {"source": str(tmp_path / "source"), "checkpoint": "last", "strategy": "head", "min_steps": 40})
    result = train(r, tmp_path / "run")
    ev = evaluate_run(tmp_path / "run", which="last")
    new = [c for c in ev["classes"] if c not in SOURCE_CLASSES]
    assert np.mean([ev["per_class"][c]["accuracy"] for c in new]) > 0.5, ev["per_class"]  # chance: 0.1
    assert np.mean([ev["per_class"][c]["accuracy"] for c in SOURCE_CLASSES]) > 0.5, ev["per_class"]
    assert result.summary["lineage"]["kept_classes"] == SOURCE_CLASSES
