"""Default run names tell runs apart; renaming a run keeps everything else."""

from __future__ import annotations

import dataclasses

import pytest

from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import Recipe, TrainConfig
from ftstudio.core.runs.names import differences, distinct_name, rename_run
from ftstudio.core.runs.folders import Run, new_run_dir


def _past_run(tmp_path, name: str, recipe: Recipe, created: float) -> Run:
    run = Run(new_run_dir(tmp_path, name))
    run.write_json("recipe.json", recipe.replace(name=name).to_dict())
    run.update_summary(name=name, created_ts=created, status="completed")
    return run


def test_the_first_run_of_a_model_and_data_keeps_the_plain_name(tmp_path):
    assert distinct_name("mlp-digits", Recipe(), tmp_path) == "mlp-digits"


def test_a_second_run_says_what_differs_or_counts(tmp_path):
    base = Recipe()
    _past_run(tmp_path, "mlp-digits", base, 1.0)
    faster = base.replace(train=dataclasses.replace(base.train, lr=0.01))
    assert distinct_name("mlp-digits", faster, tmp_path) == "mlp-digits lr 0.01"
    assert distinct_name("mlp-digits", base, tmp_path) == "mlp-digits #2"  # nothing differs: counted
    _past_run(tmp_path, "mlp-digits #2", base, 2.0)
    assert distinct_name("mlp-digits", base, tmp_path) == "mlp-digits #3"
    assert distinct_name("cnn-digits", base, tmp_path) == "cnn-digits"  # another model: its own name


def test_many_differences_are_counted_not_listed():
    a = Recipe()
    b = a.replace(train=TrainConfig(lr=0.01, epochs=20, batch_size=16, weight_decay=0.1))
    assert len(differences(b, a)) == 4
    assert differences(a, a) == []


def test_rename_changes_only_the_display_name(tmp_path):
    run = _past_run(tmp_path, "mlp-digits", Recipe(), 1.0)
    assert rename_run(run, "  baseline   lr 1e-3 ") == "baseline lr 1e-3"
    summary = run.read_summary()
    assert summary["name"] == "baseline lr 1e-3" and summary["status"] == "completed"
    with pytest.raises(InputError, match="cannot be empty"):
        rename_run(run, "   ")
    with pytest.raises(InputError, match="at most 80"):
        rename_run(run, "x" * 81)
