"""Which devices torch can use, and turning a device string into a checked torch.device."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ftstudio.core.errors import InputError


@dataclass(frozen=True)
class DeviceInfo:
    """One choice for the device selector: its string (``cuda:0``) and a label for people."""

    name: str
    label: str
    memory_bytes: int = 0


def list_devices() -> list[DeviceInfo]:
    import torch

    out = [DeviceInfo("auto", "Auto (best available)"),
           DeviceInfo("cpu", f"CPU ({os.cpu_count() or 1} cores, {torch.get_num_threads()} threads)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append(DeviceInfo(f"cuda:{i}", f"GPU {i}: {props.name} ({props.total_memory / 2**30:.0f} GB)",
                                  props.total_memory))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append(DeviceInfo("mps", "Apple GPU (MPS)"))
    return out


def resolve_device(name: str) -> torch.device:  # noqa: F821
    """``auto`` → CUDA, then MPS, then CPU; anything else is checked against what exists."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) (cuda:0 … "
                             f"cuda:{torch.cuda.device_count() - 1})")
        return torch.device("cuda", index)
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise InputError("--device mps: Apple's MPS is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise InputError(f"--device {name}: expected auto, cpu, cuda, cuda:N or mps")
