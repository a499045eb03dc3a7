"""Training-time augmentation of whole batches on the device: no per-sample Python.

Geometry (shift, flip, rotation, random resized crop) is one ``affine_grid`` + ``grid_sample``;
colour, blur and noise work in pixel space (the batch arrives normalised, so they undo and redo
the per-channel normalisation); random erasing fills a rectangle with the dataset mean (0 after
normalisation), as torchvision's RandomErasing does on normalised tensors.

All randomness comes from the trainer's CPU generator (its state is checkpointed, so a resumed
run augments identically); large random tensors (noise) are drawn on the device from a seed
taken from it, so no image-sized tensor crosses to the GPU per batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ftstudio.core.config.recipe import AugmentSpec

ERASE_AREA = (0.02, 0.33)  # fraction of the image one erased rectangle covers
ERASE_RATIO = (0.3, 3.3)  # its aspect ratio range
ASPECT = (3 / 4, 4 / 3)  # random resized crop's aspect ratio range


def augment_batch(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator | None,
                  mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a float batch ``[B, C, H, W]`` normalised with ``mean``/``std`` (``[1, C, 1, 1]``;
    None = pixels in 0–1). Shapes are kept."""
    if spec.geometric:
        x = _geometry(x, spec, gen)
    if spec.color or spec.blur or spec.noise:
        pixels = x if mean is None else x * std + mean
        if spec.color:
            pixels = _colour(pixels, spec.color, gen)
        if spec.blur:
            pixels = _blur(pixels, spec.blur, gen)
        if spec.noise:
            pixels = pixels + spec.noise * torch.randn(pixels.shape, generator=_device_gen(gen, x.device),
                                                       device=x.device, dtype=pixels.dtype)
        pixels = pixels.clamp(0.0, 1.0)
        x = pixels if mean is None else (pixels - mean) / std
    if spec.erase:
        x = _erase(x, spec.erase, gen)
    return x


def _uniform(gen: torch.Generator | None, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=gen).to(device, non_blocking=True)


def _device_gen(gen: torch.Generator | None, device: torch.device) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return torch.Generator(device=device).manual_seed(seed)


def _geometry(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator | None) -> torch.Tensor:
    """Random shift, flip, rotation and resized crop in one ``grid_sample`` call."""
    b, _, h, w = x.shape
    r = _uniform(gen, (b, 4), x.device)  # (the stream runs that only shift/flip/rotate always drew)
    angle = (r[:, 0] * 2 - 1) * (spec.rotation * math.pi / 180)
    flip = torch.where(r[:, 1] < 0.5, -1.0, 1.0) if spec.flip else torch.ones_like(angle)
    tx = (r[:, 2] * 2 - 1) * (2 * spec.crop / w)
    ty = (r[:, 3] * 2 - 1) * (2 * spec.crop / h)
    low, high = spec.scale
    sx = sy = torch.ones_like(angle)
    if (low, high) != (1.0, 1.0):  # the sampled window covers `area` of the image, at a random place
        s = _uniform(gen, (b, 4), x.device)
        area = low + (high - low) * s[:, 0]
        log_lo, log_hi = math.log(ASPECT[0]), math.log(ASPECT[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * s[:, 1])
        sx = torch.sqrt(area * aspect).clamp(max=1.0)
        sy = torch.sqrt(area / aspect).clamp(max=1.0)
        tx = tx + (s[:, 2] * 2 - 1) * (1 - sx)
        ty = ty + (s[:, 3] * 2 - 1) * (1 - sy)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * flip * sx, -sin * sy, tx], 1),
                         torch.stack([sin * flip * sx, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _colour(p: torch.Tensor, strength: float, gen: torch.Generator | None) -> torch.Tensor:
    """Brightness, contrast and saturation, each by a factor in [1 - s, 1 + s] per image."""
    b, c = p.shape[:2]
    f = (1 + strength * (_uniform(gen, (b, 3), p.device) * 2 - 1)).to(p.dtype).view(b, 3, 1, 1)
    p = p * f[:, 0:1]
    gray = p.mean(dim=1, keepdim=True) if c != 3 else (
        p * torch.tensor([0.299, 0.587, 0.114], device=p.device, dtype=p.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    mu = gray.mean(dim=(2, 3), keepdim=True)
    p = (p - mu) * f[:, 1:2] + mu
    if c == 3:
        p = (p - gray) * f[:, 2:3] + gray
    return p


def _blur(p: torch.Tensor, sigma_max: float, gen: torch.Generator | None) -> torch.Tensor:
    """A separable Gaussian blur with a random sigma in [0, sigma_max] per image."""
    b, c, h, w = p.shape
    radius = max(1, min(math.ceil(2 * sigma_max), (min(h, w) - 1) // 2))
    sigma = (_uniform(gen, (b,), p.device) * sigma_max).clamp_min(1e-3).to(p.dtype)
    offsets = torch.arange(-radius, radius + 1, device=p.device, dtype=p.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [b*c, k]
    k = kernel.shape[1]
    flat = p.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, k), groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(b * c, 1, k, 1), groups=b * c)
    return flat.view(b, c, h, w)


def _erase(x: torch.Tensor, probability: float, gen: torch.Generator | None) -> torch.Tensor:
    """With ``probability`` per image, one random rectangle set to 0 (the mean, once normalised)."""
    b, _, h, w = x.shape
    r = _uniform(gen, (b, 5), x.device)
    area = (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * r[:, 0]) * h * w
    log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * r[:, 1])
    eh = torch.sqrt(area * ratio).clamp(1, h)
    ew = torch.sqrt(area / ratio).clamp(1, w)
    top = (r[:, 2] * (h - eh + 1)).floor()
    left = (r[:, 3] * (w - ew + 1)).floor()
    rows = torch.arange(h, device=x.device, dtype=eh.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=eh.dtype).view(1, 1, w)
    inside = ((rows >= top.view(b, 1, 1)) & (rows < (top + eh.round()).view(b, 1, 1))
              & (cols >= left.view(b, 1, 1)) & (cols < (left + ew.round()).view(b, 1, 1)))
    inside &= (r[:, 4] < probability).view(b, 1, 1)
    return x.masked_fill(inside.unsqueeze(1), 0.0)
