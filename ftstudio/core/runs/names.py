"""Default run names that tell runs apart, and renaming a run.

Two runs of the same data and model were both "mlp-digits" in the Runs list and in overlay
legends. A default name now says what differs from the latest run of that model and data
("mlp-digits lr 0.01, epochs 20"), or counts ("mlp-digits #2") when nothing does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import Recipe, load_recipe
from ftstudio.core.runs.folders import Run, list_runs

MAX_NAME = 80
MAX_DIFFERENCES = 3  # more than this reads as noise: count instead
IGNORED = {"device", "name", "version"}


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in IGNORED:
                out.update(_leaves(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "×".join(str(v) for v in value)
    return str(value)


def differences(recipe: Recipe, other: Recipe) -> list[str]:
    """What ``recipe`` changes against ``other``, as short "key value" phrases (data and training)."""
    mine, theirs = _leaves(recipe.to_dict()), _leaves(other.to_dict())
    out = []
    for key, value in mine.items():
        if key.startswith(("data.", "train.")) and theirs.get(key) != value:
            out.append(f"{key.rsplit('.', 1)[-1]} {_short(value)}")
    return out


def distinct_name(base: str, recipe: Recipe, runs_dir: str | Path | None = None) -> str:
    """``base`` if no run is called that yet; else base + what differs from the latest such run;
    else (nothing or too much differs, or that name is taken too) base + " #n"."""
    same = []
    names = set()
    for run in list_runs(runs_dir):
        name = run.summary().name
        if isinstance(name, str):
            names.add(name)
            if name == base or name.startswith(f"{base} "):
                same.append(run)
    if not same:
        return base
    try:
        latest = load_recipe(same[0].recipe_path)
    except InputError:
        latest = None
    changed = differences(recipe, latest) if latest is not None else []
    if changed and len(changed) <= MAX_DIFFERENCES:
        candidate = f"{base} {', '.join(changed)}"[:MAX_NAME]
        if candidate not in names:
            return candidate
    n = len(same) + 1
    while f"{base} #{n}" in names:
        n += 1
    return f"{base} #{n}"


def rename_run(run: Run, name: str) -> str:
    """Give ``run`` a new display name (summary.json; the folder keeps its name). Returns it."""
    name = " ".join(name.split())
    if not name:
        raise InputError("a run's name cannot be empty")
    if len(name) > MAX_NAME:
        raise InputError(f"a run's name is at most {MAX_NAME} characters (this one has {len(name)})")
    if not run.summary_path.is_file():
        raise InputError(f"{run.path}: not a run folder (no summary.json)")
    run.update_summary(name=name)
    return name
