"""Architecture edits as commands: every sequence of undo/redo restores exactly the same JSON."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftstudio.core.architecture import analyze, parse_model
from ftstudio.core.architecture.presets import load_preset
from ftstudio.core.architecture.composer import (Change, EditHistory, Insert, Move, Remove, ReplaceAll, get_layer,
                                                 new_layer)
from ftstudio.core.errors import InputError


def dump(spec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def test_build_lenet_from_empty_by_commands():
    h = EditHistory(parse_model({"input_shape": ["auto", 28, 28], "layers": [{"type": "Flatten"}]}))
    h.push(Remove.at(h.spec, "0"))
    steps = [new_layer("Conv2d", out_channels=6, kernel_size=5, padding=2), new_layer("ReLU"),
             new_layer("MaxPool2d"), new_layer("Conv2d", out_channels=16, kernel_size=5), new_layer("ReLU"),
             new_layer("MaxPool2d"), new_layer("Flatten"), new_layer("Linear", out_features=120), new_layer("ReLU"),
             new_layer("Linear", out_features=84), new_layer("ReLU"), new_layer("Linear")]
    for i, layer in enumerate(steps):
        h.push(Insert(str(i), layer))
    a = analyze(h.spec, (1, 28, 28), 10)
    assert a.ok and a.params == analyze(load_preset("lenet"), (1, 28, 28), 10).params


def test_param_change_updates_downstream_shapes_and_undoes():
    h = EditHistory(load_preset("lenet"))
    before = dump(h.spec)
    h.push(Change.param(h.spec, "0", "out_channels", 8))
    a = analyze(h.spec, (1, 28, 28), 10)
    assert a.layers[0].out_shape == (8, 28, 28) and a.layers[3].params == 16 * 8 * 25 + 16
    h.undo()
    assert dump(h.spec) == before
    h.redo()
    assert get_layer(h.spec, "0").params["out_channels"] == 8


def test_nested_paths_and_moves():
    h = EditHistory(load_preset("cnn"))
    assert get_layer(h.spec, "3.0").type == "Conv2d"
    h.push(Insert("3.1", new_layer("Dropout", p=0.1)))
    assert get_layer(h.spec, "3.1").type == "Dropout"
    h.push(Move("0", "2"))
    assert [layer.type for layer in h.spec.layers[:3]] == ["BatchNorm2d", "ReLU", "Conv2d"]
    h.undo()
    h.undo()
    assert dump(h.spec) == dump(load_preset("cnn"))


def test_invalid_edits_are_refused():
    spec = load_preset("mlp")
    with pytest.raises(InputError, match="must be ≥ 1"):
        Change.param(spec, "1", "out_features", 0)
    with pytest.raises(InputError, match="no layer at 9"):
        Remove.at(spec, "9")
    with pytest.raises(InputError, match="not inside a block"):
        Insert("1.0", new_layer("ReLU")).apply(spec)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["insert", "remove", "move", "param", "freeze", "replace", "undo", "redo"]),
                          st.integers(0, 20), st.integers(0, 20)), max_size=25))
def test_any_edit_sequence_undoes_to_the_exact_json(ops):
    start = load_preset("cnn")
    h = EditHistory(start)
    snapshots = [dump(start)]
    for op, a, b in ops:
        n = len(h.spec.layers)
        try:
            if op == "insert":
                h.push(Insert(str(a % (n + 1)), new_layer("ReLU")))
            elif op == "remove" and n > 1:
                h.push(Remove.at(h.spec, str(a % n)))
            elif op == "move":
                h.push(Move(str(a % n), str(b % n)))
            elif op == "param":
                h.push(Change.param(h.spec, "0", "out_channels", 1 + a))
            elif op == "freeze":
                h.push(Change.fields(h.spec, str(a % n), freeze=bool(b % 2)))
            elif op == "replace":
                h.push(ReplaceAll(h.spec, load_preset("mlp")))
            elif op == "undo":
                h.undo()
            else:
                h.redo()
        except InputError:
            pass
    while h.done:
        h.undo()
    assert dump(h.spec) == snapshots[0]
