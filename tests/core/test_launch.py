"""The cluster launch script: it holds the recipe and a torchrun command that trains it."""

import json
import os
import subprocess
import sys

import pytest

from ftstudio.core.errors import InputError
from ftstudio.core.distributed.launch_script import write_launch_script
from ftstudio.core.config.recipe import Recipe
from tests.helpers import ROOT


def test_script_runs_the_recipe_under_torchrun(tmp_path):
    recipe = Recipe.from_dict({"name": "digits mlp", "train": {"epochs": 1, "batch_size": 64}})
    script = write_launch_script(recipe, tmp_path / "job", nproc_per_node=2, python=sys.executable)
    text = script.read_text()
    assert "torch.distributed.run" in text and "--nproc_per_node" in text and "ftstudio run recipe.json" in text
    assert "--rdzv_endpoint" in text and "--standalone" in text
    assert Recipe.from_dict(json.loads((tmp_path / "job" / "recipe.json").read_text())) == recipe
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "job" / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"


def test_uneven_batch_is_refused(tmp_path):
    recipe = Recipe.from_dict({"train": {"batch_size": 30}})
    with pytest.raises(InputError, match="multiple of 4"):
        write_launch_script(recipe, tmp_path, nproc_per_node=2, nnodes=2)
