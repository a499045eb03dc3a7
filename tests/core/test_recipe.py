"""Recipes: validation names the field, JSON round trips, safe reading of files."""

import json

import pytest

from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import Recipe, TrainConfig, load_recipe, read_json


def test_defaults_round_trip():
    recipe = Recipe()
    data = json.loads(json.dumps(recipe.to_dict()))
    assert Recipe.from_dict(data) == recipe
    assert data["data"]["name"] == "digits" and data["train"]["epochs"] == 10


@pytest.mark.parametrize("doc, words", [
    ({"train": {"lr": -1}}, "train.lr: must be > 0"),
    ({"train": {"epochs": "ten"}}, "train.epochs: expected a whole number"),
    ({"train": {"optimizer": "rmsprop"}}, "train.optimizer: must be one of sgd, adam, adamw"),
    ({"data": {"val_split": 2}}, "data.val_split: must be ≤ 0.9"),
    ({"data": {"classes": "0,1"}}, "data.classes: expected a list"),
    ({"train": {"batch_size": True}}, "train.batch_size: expected a whole number"),
    ({"bogus": 1}, "unknown field 'bogus'"),
    ({"train": {"lr": float("nan")}}, "train.lr: must be a finite number"),
    ({"finetune": {}}, "finetune.source: missing"),
])
def test_bad_fields_are_named(doc, words):
    with pytest.raises(InputError) as err:
        Recipe.from_dict(doc)
    assert words in str(err.value)


def test_tuple_fields_become_tuples():
    r = Recipe.from_dict({"data": {"classes": ["1", "2"], "image_size": [28, 28]}})
    assert r.data.classes == ("1", "2") and r.data.image_size == (28, 28)
    assert isinstance(r.train, TrainConfig)


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"r.json: not valid JSON \(line 1"):
        load_recipe(bad)
    with pytest.raises(InputError, match="not found"):
        read_json(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_text("[" + "1," * 1_500_000 + "1]")
    with pytest.raises(InputError, match="over the 2 MB limit"):
        read_json(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        read_json(deep)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"train": {"epochs": 0}}))
    with pytest.raises(InputError, match="wrong.json: train.epochs: must be ≥ 1"):
        load_recipe(wrong)
