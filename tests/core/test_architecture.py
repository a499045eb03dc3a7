"""Architectures: hand-computed shapes and parameter counts, readable errors, size guards, presets."""

import json

import pytest
import torch

from ftstudio.core.architecture import analyze, build_model, parse_model
from ftstudio.core.architecture.presets import load_preset, preset_names, resolve_model
from ftstudio.core.errors import InputError


def arch(*layers, shape=("auto", "auto", "auto")):
    return parse_model({"input_shape": list(shape), "layers": list(layers)})


def test_lenet_shapes_and_params_by_hand():
    a = analyze(load_preset("lenet"), (1, 28, 28), 10)
    assert a.ok, a.error
    shapes = [i.out_shape for i in a.layers]
    assert shapes[0] == (6, 28, 28) and shapes[2] == (6, 14, 14)
    assert shapes[3] == (16, 10, 10) and shapes[5] == (16, 5, 5) and shapes[6] == (400,)
    conv1 = 6 * (1 * 5 * 5) + 6
    conv2 = 16 * (6 * 5 * 5) + 16
    fc = (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert a.layers[0].params == conv1 == 156
    assert a.params == conv1 + conv2 + fc == 61_706


def test_seed_mlp_is_784_256_10():
    a = analyze(load_preset("mlp"), (1, 28, 28), 10)
    assert [i.out_shape for i in a.layers] == [(784,), (256,), (256,), (10,)]
    assert a.params == 784 * 256 + 256 + 256 * 10 + 10


def test_auto_and_classes_resolve_in_build():
    model, concrete = build_model(load_preset("mlp"), (3, 4, 4), 7)
    d = concrete.to_dict()
    assert d["layers"][1]["params"]["in_features"] == 48
    assert d["layers"][3]["params"]["out_features"] == 7
    assert d["input_shape"] == [3, 4, 4]
    assert model(torch.zeros(2, 3, 4, 4)).shape == (2, 7)
    # the resolved spec rebuilds to the same network
    again, _ = build_model(parse_model(json.loads(json.dumps(d))), (3, 4, 4), 7)
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())


def test_residual_block_with_projection():
    spec = arch({"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
                {"type": "Residual", "layers": [
                    {"type": "Conv2d", "params": {"out_channels": 16, "kernel_size": 3, "padding": 1, "stride": 2}},
                    {"type": "ReLU"}]},
                {"type": "Flatten"}, {"type": "Linear"})
    a = analyze(spec, (1, 8, 8), 3)
    assert a.ok, a.error
    res = next(i for i in a.layers if i.path == "1")
    inner = next(i for i in a.layers if i.path == "1.0")
    assert res.out_shape == (16, 4, 4) and inner.out_shape == (16, 4, 4)
    assert res.params == inner.params + 8 * 16  # + 1×1 projection without bias
    model, _ = build_model(spec, (1, 8, 8), 3)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("layers, shape, words", [
    ([{"type": "Linear", "params": {"out_features": 4}}], (1, 8, 8), "add a Flatten layer"),
    ([{"type": "Conv2d", "params": {"kernel_size": 9}}, {"type": "Flatten"}, {"type": "Linear"}], (1, 8, 8),
     "too small for Conv2d with kernel 9"),
    ([{"type": "Flatten"}, {"type": "Linear", "params": {"in_features": 10}}], (1, 8, 8),
     "in_features is 10 but the input has 64"),
    ([{"type": "Flatten"}, {"type": "Conv2d"}], (1, 8, 8), "expects an image"),
    ([{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 5}}], (1, 8, 8),
     "outputs [5] per image but the data has 10 classes"),
])
def test_layer_errors_name_the_layer(layers, shape, words):
    a = analyze(arch(*layers), shape, 10)
    assert not a.ok and words in a.error
    with pytest.raises(InputError, match="invalid architecture"):
        build_model(arch(*layers), shape, 10)


def test_layers_after_an_error_are_marked():
    a = analyze(arch({"type": "Linear"}, {"type": "ReLU"}), (1, 8, 8), 10)
    assert a.layers[0].error and a.layers[1].error == "after an invalid layer"


@pytest.mark.parametrize("doc, words", [
    ({"layers": [{"type": "Exec", "params": {}}]}, "layers[0].type: unknown layer type 'Exec'"),
    ({"layers": [{"type": "Linear", "params": {"out_features": -3}}]}, "layers[0].params.out_features: must be ≥ 1"),
    ({"layers": [{"type": "Linear", "params": {"out_features": "many"}}]}, "expected a number or 'classes'"),
    ({"layers": [{"type": "Linear", "params": {"weight": 1}}]}, "Linear has no such parameter"),
    ({"layers": [{"type": "Conv2d", "params": {"kernel_size": 2.5}}]}, "expected a whole number"),
    ({"layers": []}, "non-empty list"),
    ({"layers": "Linear"}, "non-empty list"),
    ({"version": 99, "layers": [{"type": "ReLU"}]}, "update ftstudio"),
    ({"input_shape": [1, 2], "layers": [{"type": "ReLU"}]}, "input_shape"),
    ({"layers": [{"type": "ReLU", "layers": []}]}, "cannot hold other layers"),
    ([], "expected an object"),
])
def test_invalid_json_is_refused_with_the_field(doc, words):
    with pytest.raises(InputError) as err:
        parse_model(doc)
    assert words in str(err.value)


def test_deep_nesting_and_too_many_layers_refused():
    layer = {"type": "ReLU"}
    for _ in range(12):
        layer = {"type": "Residual", "layers": [layer]}
    with pytest.raises(InputError, match="nested more than"):
        parse_model({"layers": [layer]})
    with pytest.raises(InputError, match="more than 500 layers"):
        parse_model({"layers": [{"type": "ReLU"}] * 501})


def test_absurd_sizes_refused_before_allocating():
    spec = arch({"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 1_000_000}},
                {"type": "Linear", "params": {"out_features": 1_000_000}}, {"type": "Linear"})
    a = analyze(spec, (1, 28, 28), 10)  # 10^12 parameters: analysed on the meta device in no time
    assert a.params > 10**12 and "parameters" in a.error and "layer 2 (Linear)" in a.error
    with pytest.raises(InputError):
        build_model(spec, (1, 28, 28), 10)


def test_every_preset_builds_and_runs():
    curated = ["mlp", "lenet", "cnn", "resnet18"]  # first, in this order; others (seed, graphs) fit between/after
    assert [n for n in preset_names() if n in curated] == curated and preset_names()[0] == "mlp"
    for name in preset_names():
        spec = resolve_model(name)
        shape = (3, 32, 32) if name == "resnet18" else (1, 28, 28)
        model, _ = build_model(spec, shape, 5)
        model.eval()
        assert model(torch.zeros(2, *shape)).shape == (2, 5)


def test_backbone_adapts_to_grayscale_and_counts_params():
    a = analyze(resolve_model("resnet18"), (1, 16, 16), 4)
    assert a.ok, a.error
    assert a.layers[0].out_shape == (512,)
    assert a.params == 11_170_240 + 512 * 4 + 4  # resnet18 without fc, first conv 1-channel


def test_freeze_flags_and_trainable_counts():
    spec = arch({"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 8}, "freeze": True},
                {"type": "ReLU"}, {"type": "Linear"})
    a = analyze(spec, (1, 2, 2), 3)
    assert a.params == (4 * 8 + 8) + (8 * 3 + 3) and a.trainable == 8 * 3 + 3
    model, _ = build_model(spec, (1, 2, 2), 3)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_preset_or_file_resolution(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(load_preset("lenet").to_dict()))
    assert resolve_model(str(path)).name == "LeNet-5"
    with pytest.raises(InputError, match="not a preset"):
        resolve_model("vgg99")
    with pytest.raises(InputError, match="architecture file not found"):
        resolve_model(str(tmp_path / "missing.json"))
