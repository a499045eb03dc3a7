"""Architecture presets shipped as JSON under resources/presets, and resolving a --model argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftstudio.core import messages, paths
from ftstudio.core.architecture.spec import ModelSpec, parse_model
from ftstudio.core.errors import InputError


def presets_dir() -> Path:
    return paths.resources_dir() / "presets"


def preset_names() -> list[str]:
    order = ["mlp", "seed", "lenet", "cnn", "resnet18"]
    found = sorted(p.stem for p in presets_dir().glob("*.json"))
    return [n for n in order if n in found] + [n for n in found if n not in order]


def preset_description(name: str) -> str:
    from ftstudio.core.config.recipe import read_json

    data = read_json(presets_dir() / f"{name}.json", "preset")
    return str(data.get("description", ""))


def load_preset(name: str) -> ModelSpec:
    from ftstudio.core.config.recipe import read_json

    path = presets_dir() / f"{name}.json"
    data = read_json(path, "preset")
    data.pop(TRAIN_DEFAULTS, None)
    return parse_model(data, f"preset {name}")


TRAIN_DEFAULTS = "train_defaults"


def preset_train_defaults(model: Any) -> dict[str, Any]:
    """The TrainConfig fields a preset ships with (the seed: plain SGD, lr 0.01, no momentum); {} otherwise.

    They are the recipe's defaults for that network: flags and recipe fields still override them."""
    from ftstudio.core.config.recipe import read_json

    if not isinstance(model, str) or model.lower() not in preset_names():
        return {}
    defaults = read_json(presets_dir() / f"{model.lower()}.json", "preset").get(TRAIN_DEFAULTS) or {}
    return dict(defaults) if isinstance(defaults, dict) else {}


def resolve_model(model: Any) -> ModelSpec:
    """A ModelSpec from a preset name, a path to architecture JSON, or the architecture itself."""
    from ftstudio.core.config.recipe import read_json

    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return parse_model(model, "model")
    if not isinstance(model, str) or not model:
        raise InputError("model: expected a preset name, an architecture JSON file or an architecture object")
    if model.lower() in preset_names():
        return load_preset(model.lower())
    path = Path(model).expanduser()
    if path.suffix.lower() == ".json" or path.exists():
        if not path.exists():
            raise InputError(f"{path}: architecture file not found")
        data = read_json(path, "architecture")
        try:
            return parse_model(data, str(path))
        except InputError:
            raise
    raise InputError(messages.UNKNOWN_PRESET.format(name=model, known=", ".join(preset_names())))
