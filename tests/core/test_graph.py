"""Architecture format version 2: layers wired as a graph (ids, inputs, Add / Concat / Multiply)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ftstudio.core.architecture import analyze, build_model, parse_model
from ftstudio.core.architecture.dag import GraphNet
from ftstudio.core.architecture.graph import connect, disconnect, wiring
from ftstudio.core.architecture.presets import load_preset, preset_names, presets_dir
from ftstudio.core.errors import InputError


def two_branch(**add) -> dict:
    """A 3×3 and a 1×1 convolution side by side, concatenated, then an Add skip around both."""
    return {"version": 2, "input_shape": [1, 8, 8], "layers": [
        {"id": "stem", "type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
        {"id": "b3", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
        {"id": "b1", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 1}, "inputs": ["stem"]},
        {"id": "cat", "type": "Concat", "params": {"dim": 1}, "inputs": ["b3", "b1"]},
        {"id": "skip", "type": "Add", "inputs": ["cat", "stem"], **add},
        {"type": "ReLU"}, {"type": "Flatten"}, {"id": "head", "type": "Linear"}]}


# stem 1·9·8+8, b3 8·9·4+4, b1 8·4+4, head (8·8·8)·10+10
HAND_COUNT = 80 + 292 + 36 + 5130


def test_two_branch_shapes_and_parameter_count_by_hand():
    a = analyze(parse_model(two_branch()), (1, 8, 8), 10)
    assert a.ok, a.error
    shapes = {i.id or i.path: i.out_shape for i in a.layers}
    assert shapes["b3"] == shapes["b1"] == (4, 8, 8)
    assert shapes["cat"] == shapes["skip"] == (8, 8, 8)
    assert a.params == HAND_COUNT == 5538
    model, _ = build_model(parse_model(two_branch()), (1, 8, 8), 10)
    assert isinstance(model, GraphNet) and sum(p.numel() for p in model.parameters()) == HAND_COUNT
    # numbered like a chain: model[i] and state-dict keys are positions, as in version 1
    assert {k.split(".")[0] for k in model.state_dict()} == {"0", "1", "2", "7"}


def test_graph_forward_is_the_wiring():
    model, _ = build_model(parse_model(two_branch()), (1, 8, 8), 10)
    x = torch.randn(3, 1, 8, 8)
    stem = model[0](x)
    hand = model[7](model[6](model[5](torch.cat([model[1](stem), model[2](stem)], 1) + stem)))
    torch.testing.assert_close(model(x), hand)


def test_two_branch_trains():
    torch.manual_seed(0)
    model, _ = build_model(parse_model(two_branch()), (1, 8, 8), 2)
    x = torch.randn(32, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    losses = []
    for _ in range(20):  # plain gradient steps: torch.optim's first step imports torch._dynamo (~4 s here)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
    assert all(p.grad is not None for p in model.parameters())  # every branch received gradient


@pytest.mark.slow  # torch.export imports torch._dynamo
def test_torch_export_of_a_graph():
    model, _ = build_model(parse_model(two_branch()), (1, 8, 8), 10)
    program = torch.export.export(model.eval(), (torch.randn(2, 1, 8, 8),))
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(program.module()(x), model(x))


@pytest.mark.parametrize("change, words", [
    ({"inputs": ["cat", "b1"]}, ["'skip' (Add)", "same shape", "[8, 8, 8] from layer 'cat'",
                                 "[4, 8, 8] from layer 'b1'"]),
    ({"inputs": ["cat", "nowhere"]}, ["'skip' (Add)", "'nowhere' is not the id of any layer"]),
    ({"inputs": ["cat", "head"]}, ["'skip' (Add)", "'head' is a layer below it"]),
])
def test_wiring_errors_name_the_layer_id(change, words):
    a = analyze(parse_model(two_branch(**change)), (1, 8, 8), 10)
    assert not a.ok
    for w in words:
        assert w in a.error
    bad = next(i for i in a.layers if i.error)
    assert bad.id == "skip"
    with pytest.raises(InputError, match="'skip'"):
        build_model(parse_model(two_branch(**change)), (1, 8, 8), 10)


def test_other_wiring_errors():
    doc = two_branch()
    doc["layers"][2]["id"] = "stem"
    assert "already used" in analyze(parse_model(doc), (1, 8, 8), 10).error
    doc = two_branch(inputs=["cat"])
    assert "joins two or more inputs" in analyze(parse_model(doc), (1, 8, 8), 10).error
    doc = two_branch()
    doc["layers"][5]["inputs"] = ["cat", "skip"]  # a ReLU with two inputs
    assert "takes one input" in analyze(parse_model(doc), (1, 8, 8), 10).error
    doc = two_branch()
    doc["layers"][4]["inputs"] = ["cat", "b3"]  # stem's second consumer is gone: still used by b3/b1
    doc["layers"][2]["inputs"] = ["stem"]
    doc["layers"].insert(3, {"id": "dead", "type": "ReLU", "inputs": ["stem"]})
    assert "'dead' (ReLU): its output goes nowhere" in analyze(parse_model(doc), (1, 8, 8), 10).error


@pytest.mark.parametrize("field, value, words", [
    ("id", "input", "layers[0].id"), ("id", "3x", "layers[0].id"), ("inputs", "stem", "layers[0].inputs"),
    ("inputs", [1], "layers[0].inputs"),
])
def test_malformed_ids_and_inputs_name_the_field(field, value, words):
    doc = two_branch()
    doc["layers"][0][field] = value
    with pytest.raises(InputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_model(doc)


def test_ids_inside_blocks_are_refused():
    doc = {"layers": [{"type": "Residual", "layers": [{"id": "x", "type": "ReLU"}]}]}
    with pytest.raises(InputError, match="inside a block"):
        parse_model(doc)


def test_version_1_files_load_unchanged():
    for name in preset_names():
        raw = json.loads((presets_dir() / f"{name}.json").read_text())
        spec = load_preset(name)
        out = spec.to_dict()
        assert out["version"] == raw["version"], name
        assert out["layers"] == parse_model(out).to_dict()["layers"]
        if raw["version"] == 1:
            assert not any("id" in layer or "inputs" in layer for layer in out["layers"])
    # a chain still builds the same nn.Sequential with the same keys (old checkpoints load)
    model, _ = build_model(load_preset("cnn"), (1, 8, 8), 10)
    assert type(model) is torch.nn.Sequential
    assert "3.body.0.weight" in model.state_dict()


def test_connect_and_disconnect_rewire_and_name_layers():
    spec = parse_model({"layers": [{"type": "Conv2d", "params": {"out_channels": 4, "padding": 1}},
                                   {"type": "Conv2d", "params": {"out_channels": 4, "padding": 1}},
                                   {"type": "Add"}, {"type": "Flatten"}, {"type": "Linear"}]})
    assert "joins two or more" in analyze(spec, (1, 6, 6), 3).error
    wired = connect(spec, 0, 2)
    assert wiring(wired.layers).sources[2] == (1, 0)
    assert wired.layers[2].inputs == ("conv2d2", "conv2d1") and wired.layers[0].id == "conv2d1"
    assert analyze(wired, (1, 6, 6), 3).ok
    assert parse_model(json.loads(json.dumps(wired.to_dict()))) == wired
    assert wiring(disconnect(wired, 0, 2).layers).sources[2] == (1,)
    with pytest.raises(InputError, match="below"):
        connect(spec, 3, 1)


def test_freeze_and_layer_lr_by_node_id():
    from ftstudio.core.architecture import layer_multipliers

    doc = two_branch()
    doc["layers"][1].update(freeze=True)
    doc["layers"][2].update(lr_mult=0.1)
    spec = parse_model(doc)
    a = analyze(spec, (1, 8, 8), 10)
    assert a.trainable == HAND_COUNT - 292
    model, concrete = build_model(spec, (1, 8, 8), 10)
    assert not any(p.requires_grad for p in model[1].parameters())
    mults = layer_multipliers(model, concrete)
    assert {mults[id(p)] for p in model[2].parameters()} == {0.1}


@pytest.mark.slow
def test_graph_trains_exports_to_onnx_and_finetunes_from_the_cli(tmp_path):
    """In-process `ftstudio` commands (the presets' subprocess runs are in tests/e2e/test_presets_cli.py)."""
    import onnxruntime as ort

    from ftstudio.cli import main

    net = tmp_path / "branch.json"
    net.write_text(json.dumps(two_branch()))
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--per-class", "8", "--model", str(net), "--epochs", "1",
                 "--device", "cpu", "--out", str(run)]) == 0
    assert main(["export", str(run), "--format", "onnx"]) == 0  # verified against PyTorch by the command
    session = ort.InferenceSession(str(next((run / "export").glob("*.onnx"))))
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert logits.shape == (3, 10) and np.isfinite(logits).all()
    assert main(["finetune", "--from", str(run), "--data", "digits", "--classes", "0,1,2", "--per-class", "8",
                 "--strategy", "lora", "--freeze", "b3", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "ft")]) == 0
    assert json.loads((tmp_path / "ft" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("change, words", [
    ({"inputs": ["cat", "b1"]}, "'skip' (Add): Add needs inputs of the same shape"),
    ({"inputs": ["cat", "nowhere"]}, "'skip' (Add): input 'nowhere' is not the id"),
    ({"inputs": ["cat", "head"]}, "'skip' (Add): input 'head' is a layer below it"),
])
def test_cli_refuses_bad_wiring_with_exit_2(tmp_path, capsys, change, words):
    from ftstudio.cli import main  # in-process; the subprocess front door is tests/e2e/test_presets_cli.py

    net = tmp_path / "bad.json"
    net.write_text(json.dumps(two_branch(**change)))
    assert main(["train", "--data", "digits", "--model", str(net), "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert words in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("preset, shape", [("cnn", (1, 8, 8)), (None, (1, 8, 8))])
def test_a_residual_block_expands_to_the_same_network_with_an_add(preset, shape):
    from ftstudio.core.architecture.graph import expand_residual

    spec = load_preset(preset) if preset else parse_model({"layers": [  # a block that halves and widens
        {"type": "Conv2d", "params": {"out_channels": 8, "padding": 1}},
        {"type": "Residual", "freeze": True, "layers": [
            {"type": "Conv2d", "params": {"out_channels": 16, "padding": 1, "stride": 2}}, {"type": "ReLU"}]},
        {"type": "Flatten"}, {"type": "Linear"}]})
    index = next(i for i, layer in enumerate(spec.layers) if layer.type == "Residual")
    before = analyze(spec, shape, 10)
    block = before.layers[[i.path for i in before.layers].index(str(index))]
    expanded = expand_residual(spec, index, block.in_shape, block.out_shape)
    after = analyze(expanded, shape, 10)
    assert after.ok, after.error
    assert (after.params, after.trainable, after.output_shape) == (before.params, before.trainable, before.output_shape)
    assert "Residual" not in [layer.type for layer in expanded.layers]
    add = next(layer for layer in expanded.layers if layer.type == "Add")
    assert len(add.inputs) == 2
    # same function: copy the weights across in order and compare outputs
    torch.manual_seed(0)
    old, _ = build_model(spec, shape, 10)
    new, _ = build_model(expanded, shape, 10)
    src = list(old.state_dict().values())  # body, then shortcut: the graph's order too (projection last)
    assert len(src) == len(new.state_dict())
    new.load_state_dict(dict(zip(new.state_dict(), src)))
    x = torch.randn(2, *shape)
    torch.testing.assert_close(new.eval()(x), old.eval()(x))


def test_rename_moves_the_wires_and_refuses_clashes():
    from ftstudio.core.architecture.graph import rename

    spec = parse_model(two_branch())
    renamed = rename(spec, 0, "trunk")
    assert renamed.layers[2].inputs == ("trunk",) and renamed.layers[4].inputs == ("cat", "trunk")
    assert analyze(renamed, (1, 8, 8), 10).params == HAND_COUNT
    for bad, words in (("b1", "already used"), ("input", "letters"), ("", "by its id")):
        with pytest.raises(InputError, match=words):
            rename(spec, 0, bad)


def test_multiply_gates_one_branch_by_another():
    spec = parse_model({"layers": [
        {"id": "feat", "type": "Conv2d", "params": {"out_channels": 4, "padding": 1}},
        {"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 1}},
        {"id": "gate", "type": "Sigmoid"},
        {"type": "Multiply", "inputs": ["feat", "gate"]}, {"type": "Flatten"}, {"type": "Linear"}]})
    a = analyze(spec, (1, 6, 6), 3)
    assert a.ok and a.layers[3].out_shape == (4, 6, 6)
    model, _ = build_model(spec, (1, 6, 6), 3)
    x = torch.randn(2, 1, 6, 6)
    feat = model[0](x)
    torch.testing.assert_close(model(x), model[5](model[4](feat * torch.sigmoid(model[1](feat)))))
    bad = parse_model({"layers": [{"id": "a", "type": "Flatten"},
                                  {"id": "b", "type": "Linear", "params": {"out_features": 7}},
                                  {"type": "Multiply", "inputs": ["a", "b"]}]})
    assert "Multiply needs inputs of the same shape" in analyze(bad, (1, 2, 2), 3).error


def test_a_chain_of_concats_that_explodes_is_refused_by_name():
    layers = [{"id": "c0", "type": "Conv2d", "params": {"out_channels": 4}}, {"id": "c1", "type": "ReLU"}]
    layers += [{"id": f"c{i}", "type": "Concat", "inputs": [f"c{i - 1}", f"c{i - 2}"]} for i in range(2, 60)]
    layers += [{"type": "Flatten"}, {"type": "Linear"}]
    a = analyze(parse_model({"layers": layers}), (1, 8, 8), 10)
    assert "(Concat): concatenating gives" in a.error and "over 1,048,576" in a.error


def test_a_graph_cut_into_its_first_nodes_is_the_body_under_its_head():
    """Fine-tuning measures the body under the head as ``model[:head]`` (the baseline, new rows)."""
    from torch import nn

    torch.manual_seed(0)
    a, b, head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    class Add(nn.Module):
        def forward(self, x, y):
            return x + y

    net = GraphNet([a, b, Add(), head], [[-1], [0], [0, 1], [2]])
    body = net[:3]
    x = torch.randn(5, 4)
    assert isinstance(body, GraphNet) and len(body) == 3
    assert torch.equal(body(x), a(x) + b(a(x)))
    assert torch.equal(head(body(x)), net(x))
    with pytest.raises(IndexError):
        net[1:3]
