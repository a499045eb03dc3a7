"""The backbone catalogue: every torchvision classification network and timm model ftstudio can start from.

One list for the CLI (`ftstudio backbones`), the composer's palette and the wizard. Building a network
to count its parameters costs about a second per timm model, so nothing is built to list them:
torchvision publishes its parameter counts, and a timm model's count is computed on the meta device
the first time someone asks for it (a search with few matches, `--params`) and cached in a JSON file
keyed by the timm version. What is on this machine is looked up fresh each time (a stat per file).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from ftstudio.core.architecture.timm_backbones import TIMM
from ftstudio.core.architecture.torchvision_names import TORCHVISION_BACKBONES

TORCHVISION = "torchvision:"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PARAMS_FOR_AT_MOST = 25  # a search with this many timm matches or fewer gets their parameter counts


@dataclass(frozen=True)
class BackboneEntry:
    name: str  # torchvision:resnet18 / timm:vit_small_patch16_224
    source: str  # torchvision / timm
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    params: int | None  # None: not computed yet (timm; see `with_params`)
    licence: str | None
    weights_here: bool
    weights_url: str

    def to_dict(self) -> dict:
        return asdict(self)


def timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def native_input(name: str) -> tuple[tuple[int, int, int], tuple[float, ...], tuple[float, ...]]:
    """([C, H, W], mean, std) a backbone was trained with (ImageNet's for torchvision)."""
    if name.startswith(TIMM):
        from ftstudio.core.architecture.timm_backbones import pretrained_cfg

        cfg = pretrained_cfg(name[len(TIMM):])
        if cfg is None:
            return (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD
        c, h, w = (int(v) for v in cfg.input_size)
        return (c, h, w), tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
    from torchvision.models import get_model_weights

    transforms = get_model_weights(name.removeprefix(TORCHVISION)).DEFAULT.transforms()
    side = int(transforms.crop_size[0])
    return (3, side, side), tuple(transforms.mean), tuple(transforms.std)


def _torchvision_entries() -> list[BackboneEntry]:
    from torchvision.models import get_model_weights

    from ftstudio.core.architecture.weights import locate

    out = []
    for bare in TORCHVISION_BACKBONES:
        name = f"{TORCHVISION}{bare}"
        weights = get_model_weights(bare).DEFAULT
        shape, mean, std = native_input(name)
        src = locate(name)
        out.append(BackboneEntry(name, "torchvision", shape, mean, std, weights.meta.get("num_params"),
                                 src.licence, src.present, src.url))
    return out


def _timm_entries(search: str) -> list[BackboneEntry]:
    import timm
    from timm.models import get_pretrained_cfg

    from ftstudio.core.architecture.weights import locate

    names = timm.list_models(f"*{search}*" if search else "")
    params = _cached_params(timm.__version__)
    out = []
    for bare in names:
        cfg = get_pretrained_cfg(bare)
        shape = tuple(int(v) for v in cfg.input_size) if cfg else (3, 224, 224)
        mean = tuple(float(v) for v in cfg.mean) if cfg else IMAGENET_MEAN
        std = tuple(float(v) for v in cfg.std) if cfg else IMAGENET_STD
        here, url = False, ""
        if cfg is not None and cfg.hf_hub_id:
            src = locate(f"{TIMM}{bare}")
            here, url = src.present, src.url
        out.append(BackboneEntry(f"{TIMM}{bare}", "timm", shape, mean, std, params.get(bare),
                                 getattr(cfg, "license", None) if cfg else None, here, url))
    return out


def backbone_names() -> list[str]:
    """Every catalogued name, torchvision's first: nothing built, no weights looked up (a live search's list)."""
    names = [f"{TORCHVISION}{n}" for n in TORCHVISION_BACKBONES]
    if timm_available():
        import timm

        names += [f"{TIMM}{n}" for n in timm.list_models()]
    return names


def search_names(names: list[str], text: str) -> list[str]:
    """The names containing every word of ``text`` (case-insensitive): the exact model first, then names
    that start with it, then the rest, each in catalogue order (``resnet18`` before ``resnet18d``)."""
    words = text.lower().split()
    if not words:
        return list(names)
    found = [n for n in names if all(w in n.lower() for w in words)]
    first = words[0].partition(":")[2] or words[0]

    def rank(name: str) -> int:
        bare = name.lower().partition(":")[2]
        return 0 if bare == first else 1 if bare.startswith(first) else 2

    return sorted(found, key=rank)  # stable: catalogue order within a rank


def catalogue(search: str = "", *, with_params: bool | None = None) -> list[BackboneEntry]:
    """Entries whose name contains ``search`` (case-insensitive); timm's only when timm is installed.

    ``with_params``: compute missing timm parameter counts (default: when few entries match)."""
    search = search.strip().lower()
    entries = [e for e in _torchvision_entries() if search in e.name.lower()]
    if timm_available():
        found = _timm_entries(search)
        if with_params or (with_params is None and search and len(found) <= PARAMS_FOR_AT_MOST):
            found = _fill_params(found)
        entries += found
    return entries


def _params_file(version: str):
    from ftstudio.core.paths import cache_dir

    return cache_dir() / f"timm-params-{version}.json"


def _cached_params(version: str) -> dict[str, int]:
    try:
        data = json.loads(_params_file(version).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)}


def params_of(name: str) -> int | None:
    """The parameter count of ``torchvision:NAME`` / ``timm:NAME`` (with its classifier, as published)."""
    if name.startswith(TORCHVISION):
        from torchvision.models import get_model_weights

        return get_model_weights(name[len(TORCHVISION):]).DEFAULT.meta.get("num_params")
    import timm

    bare = name.removeprefix(TIMM)
    known = _cached_params(timm.__version__)
    if bare not in known:
        known[bare] = _count_timm(bare)
        _save_params(timm.__version__, known)
    return known[bare]


def _count_timm(bare: str) -> int:
    import timm
    import torch

    with torch.device("meta"):
        net = timm.create_model(bare, pretrained=False)
    return sum(p.numel() for p in net.parameters())


def _fill_params(entries: list[BackboneEntry]) -> list[BackboneEntry]:
    import dataclasses

    import timm

    missing = [e for e in entries if e.params is None]
    if not missing:
        return entries
    known = _cached_params(timm.__version__)
    for entry in missing:
        bare = entry.name[len(TIMM):]
        known[bare] = _count_timm(bare)
    _save_params(timm.__version__, known)
    return [dataclasses.replace(e, params=known.get(e.name[len(TIMM):], e.params)) for e in entries]


def _save_params(version: str, known: dict[str, int]) -> None:
    path = _params_file(version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: counting again next time is fine
