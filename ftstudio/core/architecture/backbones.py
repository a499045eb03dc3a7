"""torchvision backbones as one layer: built headless, first convolution adapted to the input's
channels, ImageNet weights loaded only from local files (torch's cache or a file the user picked)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ftstudio.core.errors import InputError

HEADS = {"resnet": "fc", "shufflenet": "fc", "mobilenet": "classifier", "efficientnet": "classifier"}


def _remove_head(name: str, net: nn.Module) -> None:
    """Cut the classifier: the whole head for the original eight (their checkpoints' keys), else the last Linear."""
    attr = next((attr for prefix, attr in HEADS.items() if name.startswith(prefix)), None)
    if attr is not None:
        setattr(net, attr, nn.Identity())
        return
    last = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    parent, _, child = last.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, nn.Identity())


def weights_url(name: str) -> str:
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT.url


def cached_weights_path(name: str) -> Path:
    """Where torch's hub cache keeps (or would keep) the ImageNet weights of ``name``."""
    from ftstudio.core.paths import torch_hub_dir

    return torch_hub_dir() / "checkpoints" / Path(weights_url(name)).name


# what a Hugging Face model folder holds, best first
FOLDER_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth (weights only, never code), a .safetensors file or a Hugging Face model folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = next((path / f for f in FOLDER_FILES if (path / f).is_file()), None)
        if found is None:
            raise InputError(f"{path}: a folder without weights; expected one of {', '.join(FOLDER_FILES)}")
        path = found
    from ftstudio.core.training.checkpoint import check_model_file, safe_torch_load

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        check_model_file(path, "weights file")  # a device or FIFO would be read forever
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise InputError(f"{path}: not a readable safetensors file ({exc})") from None
    data = safe_torch_load(path, "weights file")
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InputError(f"{path}: expected a state dict of tensors")
    return data


def imagenet_weights(name: str, weights_file: str = "") -> dict[str, torch.Tensor]:
    """ImageNet weights of ``name`` from a chosen file or torch's cache; never downloads here."""
    if weights_file:
        return load_weights_file(weights_file)
    cached = cached_weights_path(name)
    if cached.is_file():
        return load_weights_file(cached)
    raise InputError(
        f"ImageNet weights for {name} are not on this machine. Download {weights_url(name)} "
        f"and place it at {cached} (or choose the file with weights_file), "
        f"or use weights \"none\" to start from random initialisation")


def build_backbone(name: str, in_channels: int, weights: str = "none", weights_file: str = "",
                   load: bool = True) -> nn.Module:
    """The torchvision model ``name`` with its classifier removed, accepting ``in_channels``.

    ``load=False`` skips reading weights (shape inference on the meta device)."""
    from torchvision.models import get_model

    from ftstudio.core.architecture.modules import Backbone

    net = get_model(name, weights=None)
    if weights == "imagenet" and load:
        state = imagenet_weights(name, weights_file)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"weights for {name} do not match the model: {str(exc).splitlines()[0]}") from None
    _remove_head(name, net)
    if in_channels != 3:
        _adapt_first_conv(net, in_channels)
    return Backbone(name, net)


def _adapt_first_conv(net: nn.Module, channels: int) -> None:
    """Replace the first convolution so it takes ``channels`` inputs, keeping learned filters."""
    for parent in net.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups if child.groups == 1 else channels,
                                child.bias is not None, device=child.weight.device)
                if child.weight.device.type != "meta":
                    with torch.no_grad():
                        w = child.weight.sum(1, keepdim=True) / channels
                        new.weight.copy_(w.expand(-1, channels, -1, -1))
                        if child.bias is not None:
                            new.bias.copy_(child.bias)
                setattr(parent, child_name, new)
                return


def build_on_meta(name: str, in_channels: int) -> nn.Module:
    """The headless backbone on the meta device (no memory); a few (regnet) compute their widths with
    real tensors while building, so those are built on the CPU and moved."""
    try:
        with torch.device("meta"):
            return build_backbone(name, in_channels, load=False)
    except NotImplementedError:
        return build_backbone(name, in_channels, load=False).to("meta")


@dataclass(frozen=True)
class Stage:
    """One stage of a backbone, for the composer's nested cards."""

    name: str
    type: str
    out_shape: tuple[int, ...]
    params: int


def backbone_stages(name: str, in_shape: tuple[int, int, int]) -> tuple[Stage, ...]:
    """The stages of backbone ``name`` on an input of ``in_shape``: shapes and parameters, on the meta device."""
    backbone = build_on_meta(name, in_shape[0])
    parts: list[tuple[str, nn.Module]] = []
    for child_name, child in backbone.net.named_children():
        if isinstance(child, nn.Identity):
            continue  # the removed classifier
        if child_name == "features" and isinstance(child, nn.Sequential):  # mobilenet / efficientnet
            parts.extend((f"features.{n}", c) for n, c in child.named_children())
        else:
            parts.append((child_name, child))
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [module.register_forward_hook(lambda m, a, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:])))
             for n, module in parts]
    try:
        with torch.no_grad():
            backbone.eval()(torch.zeros((1, *in_shape), device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return tuple(Stage(n, type(m).__name__, shapes[n], sum(p.numel() for p in m.parameters()))
                 for n, m in parts if n in shapes)
