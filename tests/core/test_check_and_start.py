"""The composer's engine helpers: the one-batch dry run, and starting from a trained run's weights."""

from __future__ import annotations

import math

import pytest
import torch

from ftstudio.core.architecture import parse_model
from ftstudio.core.architecture.presets import load_preset
from ftstudio.core.architecture.composer import Change, Insert, new_layer
from ftstudio.core.datasets import load_data
from ftstudio.core.dryrun import check_one_batch
from ftstudio.core.engine import train
from ftstudio.core.config.recipe import DatasetSpec, Recipe, TrainConfig
from ftstudio.core.finetune.start_from import open_run, plan_for
from ftstudio.core.training import checkpoint
from tests.ft_helpers import HEAD, SOURCE_CLASSES, source_run  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def digits():
    return load_data(DatasetSpec(name="digits", per_class=10))


def test_check_runs_one_training_step_and_measures_it(digits):
    spec = load_preset("mlp")
    report = check_one_batch(spec, digits, 32, "cpu")
    assert report.ok, report.message
    assert report.batch_size == 32 and report.device == "cpu"
    assert report.seconds > 0 and math.isfinite(report.loss)
    params = (64 * 256 + 256) + (256 * 10 + 10)
    # weights and their gradients, plus at least the hidden activations kept for backward
    assert report.peak_bytes >= 2 * params * 4 + 32 * 256 * 4
    assert "32" in report.summary() and "MB" in report.summary()


def test_check_resizes_the_batch_to_what_the_network_takes(digits):
    report = check_one_batch(load_preset("lenet"), digits, 8, "cpu", input_shape=(1, 28, 28))
    assert report.ok, report.message


def test_check_names_the_layer_the_engine_refuses(digits):
    spec = load_preset("lenet")
    report = check_one_batch(spec, digits, 8, "cpu")  # 8×8 digits: too small for the second 5×5 conv
    assert not report.ok and report.layer == "3"
    assert report.message.startswith("layer 3 (Conv2d):") and "too small" in report.message


def test_check_names_the_layer_that_fails_while_running(digits, monkeypatch):
    def broken(self, x):
        raise RuntimeError("boom")

    monkeypatch.setattr(torch.nn.ReLU, "forward", broken)
    report = check_one_batch(load_preset("mlp"), digits, 4, "cpu")
    assert not report.ok and report.layer == "2" and report.message == "layer 2 (ReLU): boom"


def test_a_run_opens_with_its_head_and_plans_follow_the_edits(source_run):
    start = open_run(source_run)
    assert start.head == HEAD and start.classes == tuple(SOURCE_CLASSES)
    assert start.head_fits(5) and not start.head_fits(7)
    assert start.with_new_head().layers[HEAD].params["out_features"] == "classes"
    spec = start.architecture
    plan = plan_for(start, spec)
    assert plan is not None and plan.source == str(source_run) and plan.strategy == "none" and plan.layers == ()
    assert plan_for(start, start.with_new_head()) == plan  # a new head is still the same network

    frozen = Change.fields(spec, "0", freeze=True).apply(spec)
    overrides = {o.layer: (o.freeze, o.lr_mult) for o in plan_for(start, frozen).layers}
    assert overrides["0"] == (True, 1.0) and overrides[str(HEAD)] == (False, 1.0)
    block = Change.fields(spec, "3", freeze=True, lr_mult=0.5).apply(spec)
    overrides = {o.layer: (o.freeze, o.lr_mult) for o in plan_for(start, block).layers}
    assert overrides["3"] == overrides["3.0"] == (True, 0.5)  # the block's choice reaches its layers
    assert "3.1" not in overrides  # a ReLU has no weights to override

    assert plan_for(start, Insert("1", new_layer("ReLU")).apply(spec)) is None
    assert plan_for(start, Change.param(spec, "0", "out_channels", 5).apply(spec)) is None


def test_training_from_a_run_honours_the_edited_freeze_flags(source_run, tmp_path):
    start = open_run(source_run)
    spec = Change.fields(start.with_new_head(), "0", freeze=True).apply(start.with_new_head())
    plan = plan_for(start, spec)
    recipe = Recipe(data=DatasetSpec(name="digits", classes=("0", "1", "2"), per_class=5), model=spec.to_dict(),
                    train=TrainConfig(epochs=1, batch_size=8, device="cpu"), finetune=plan)
    recipe = Recipe.from_dict(recipe.to_dict())  # as the desktop app's session hands it over
    result = train(recipe, tmp_path / "ft")
    before = checkpoint.load(source_run / "checkpoints" / "best.pt")["model"]
    after = checkpoint.load(result.run.checkpoint("last"))["model"]
    assert torch.equal(after["0.weight"], before["0.weight"])  # frozen in the composer: untouched
    assert not torch.equal(after["3.body.0.weight"], before["3.body.0.weight"])  # trained from the run's weights
    assert after[f"{HEAD}.weight"].shape[0] == 3  # the new head


def test_parse_model_roundtrip_keeps_controls():
    spec = parse_model({"layers": [{"type": "Linear", "freeze": True, "lr_mult": 0.1}]})
    assert parse_model(spec.to_dict()) == spec
