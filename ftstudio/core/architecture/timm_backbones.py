"""timm networks as one layer (the optional ``ftstudio[timm]`` extra): built headless with timm's own
``reset_classifier(0)``, weights read with our safe loaders from a file the user picked, a local Hugging
Face model folder, or the Hugging Face cache timm downloads into — never downloaded here.

The module is a `Backbone` like the torchvision ones, so the composer, LoRA and exports treat both
alike; its name carries the ``timm:`` prefix."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ftstudio.core.errors import InputError

TIMM = "timm:"
NEEDS_TIMM = ("timm backbones need the optional timm package: pip install 'ftstudio[timm]' "
              "(or pip install timm)")


def import_timm():
    try:
        import timm
    except ModuleNotFoundError:
        raise InputError(NEEDS_TIMM) from None
    return timm


def check_name(name: str) -> str:
    """The bare timm model name (``timm:`` stripped); unknown names raise InputError with close matches."""
    timm = import_timm()
    name = name.removeprefix(TIMM).strip()
    if not timm.is_model(name.split(".")[0]):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `ftstudio backbones --search WORD` lists them"
        raise InputError(f"timm:{name}: not a timm model{hint}")
    return name


def pretrained_cfg(name: str):
    """timm's pretrained config (input size, mean, std, licence, Hugging Face repo) for ``name``, or None."""
    import_timm()
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(check_name(name))


def build_timm_backbone(name: str, in_channels: int, weights: str = "none", weights_file: str = "",
                        load: bool = True) -> nn.Module:
    """The timm model ``name`` without its classifier (image → pooled features), taking ``in_channels``."""
    from ftstudio.core.architecture.backbones import _adapt_first_conv, load_weights_file
    from ftstudio.core.architecture.modules import Backbone

    timm = import_timm()
    bare = check_name(name)
    net = timm.create_model(bare, pretrained=False)
    if weights == "pretrained" and load:
        path = weights_file or cached_timm_weights(bare)
        if not path:
            cfg = pretrained_cfg(bare)
            repo = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg is not None and cfg.hf_hub_id else "no Hub copy"
            raise InputError(f"pretrained weights for timm:{bare} are not on this machine ({repo}); "
                             "download them with --download-weights (or the app's Download button), pass "
                             "--weights FILE|FOLDER, or use --weights none for random initialisation")
        state = load_weights_file(path)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"{path}: weights do not match timm:{bare}: {str(exc).splitlines()[0]}") from None
    net.reset_classifier(0)
    if in_channels != 3:
        _adapt_first_conv(net, in_channels)
    return Backbone(f"{TIMM}{bare}", net)


def cached_timm_weights(name: str) -> str:
    """The weights file of ``name`` in the Hugging Face cache, or "" when it is not there (no network)."""
    cfg = pretrained_cfg(name)
    if cfg is None or not getattr(cfg, "hf_hub_id", None):
        return ""
    from huggingface_hub import try_to_load_from_cache

    from ftstudio.core.paths import hf_hub_cache_dir

    filename = getattr(cfg, "hf_hub_filename", None) or "model.safetensors"
    for candidate in (filename, "pytorch_model.bin"):
        found = try_to_load_from_cache(cfg.hf_hub_id, candidate, cache_dir=hf_hub_cache_dir())
        if isinstance(found, str) and Path(found).is_file():
            return found
    return ""
