"""Where the model looked: heat maps for the predicted class, and PNG overlays of them.

Conv nets get Grad-CAM on their last ``Conv2d`` (Selvaraju et al. 2017: the class score's gradient,
averaged per channel, weights that layer's activations). Anything else — an MLP, or an exported
ONNX / pt2 file that runs outside PyTorch's module tree — gets an occlusion map: grey out one
patch at a time and record how much the class's probability drops. Occlusion only needs the
runner, so it explains exactly what a user deploys.

Written here rather than taken from captum: captum requires matplotlib (which ftstudio never uses)
and its attributions take torch modules, while occlusion must also run through onnxruntime; the two
methods are ~60 lines and the quadrant test pins their behaviour.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

OVERLAY_MIN_SIDE = 224  # small inputs (8×8 digits) are upscaled so the overlay can be seen
OVERLAY_MAX_SIDE = 768
ALPHA = 0.5


def last_conv(module: Any):
    """The last ``nn.Conv2d`` in registration order (the deepest one in a sequential net), or None."""
    from torch import nn

    if not isinstance(module, nn.Module):
        return None
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def explain(predictor, images: np.ndarray, targets: list[int] | np.ndarray) -> tuple[np.ndarray, str]:
    """Heat maps ``[N, H, W]`` in [0, 1] for uint8 images ``[N, C, H, W]`` and the method used."""
    targets = np.asarray(targets, dtype=np.int64)
    x = predictor.preprocess(images)
    layer = last_conv(predictor.module)
    if layer is not None:
        heat = grad_cam(predictor.module, layer, x, targets)
        flat = heat.reshape(len(heat), -1).max(axis=1) <= 0
        if flat.any():  # no positive evidence at that layer: fall back to occlusion for those images
            heat[flat] = occlusion(predictor.run, x[flat], targets[flat])
        return heat, "Grad-CAM"
    return occlusion(predictor.run, x, targets), "occlusion"


def grad_cam(model, layer, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Grad-CAM of ``targets`` at ``layer``, upsampled to the input size and scaled to [0, 1] per image."""
    import torch
    import torch.nn.functional as F

    seen: dict[str, torch.Tensor] = {}
    me = threading.get_ident()

    def record(module, args, out) -> None:
        # the app predicts with the same module on other threads meanwhile (the Try page's batch, the
        # mistakes panel's measurement): their forwards, without a graph, must not replace this one's
        if threading.get_ident() == me:
            seen["a"] = out
    hook = layer.register_forward_hook(record)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            inputs = torch.from_numpy(x).requires_grad_(True)  # a graph even when every weight is frozen
            logits = model(inputs)
            score = logits.gather(1, torch.from_numpy(targets)[:, None]).sum()
            grads = torch.autograd.grad(score, seen["a"])[0]
    finally:
        hook.remove()
        model.train(was_training)
    acts = seen["a"].detach()
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    return _unit(cam.numpy())


def occlusion(run, x: np.ndarray, targets: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Drop of each target's margin (its logit minus the log-sum-exp of the others) when a patch (~1/6 of
    the side, half-overlapping) is set to the mean (0 after normalisation), averaged over the patches
    covering each pixel, scaled to [0, 1]. A margin, not a probability: a confident model's 0.99999
    does not move in float32, its margin does."""

    n, _, h, w = x.shape
    ph, pw = max(1, math.ceil(h / 6)), max(1, math.ceil(w / 6))
    sh, sw = max(1, ph // 2), max(1, pw // 2)
    boxes = [(i, j) for i in range(0, max(1, h - ph) + 1, sh) for j in range(0, max(1, w - pw) + 1, sw)]
    out = np.zeros((n, h, w), np.float32)
    for k in range(n):
        base = _margin(run(x[k:k + 1]), targets[k])[0]
        drops = []
        for start in range(0, len(boxes), chunk):
            batch = np.repeat(x[k:k + 1], len(boxes[start:start + chunk]), axis=0)
            for b, (i, j) in enumerate(boxes[start:start + chunk]):
                batch[b, :, i:i + ph, j:j + pw] = 0.0
            drops.append(base - _margin(run(batch), targets[k]))
        drop = np.concatenate(drops)
        total, cover = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        for d, (i, j) in zip(drop, boxes):
            total[i:i + ph, j:j + pw] += d
            cover[i:i + ph, j:j + pw] += 1
        out[k] = np.maximum(total / np.maximum(cover, 1), 0)
    return _unit(out)


def _margin(logits: np.ndarray, target: int) -> np.ndarray:
    z = logits.astype(np.float64)
    others = np.delete(z, target, axis=1)
    top = others.max(axis=1, keepdims=True)
    return z[:, target] - (top[:, 0] + np.log(np.exp(others - top).sum(axis=1)))


def _unit(maps: np.ndarray) -> np.ndarray:
    maps = np.nan_to_num(maps.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1) if len(maps) else maps
    return np.where(top > 0, maps / np.where(top > 0, top, 1), 0).astype(np.float32)


# ------------------------------------------------------------------------------------ overlays
def colorize(heat: np.ndarray) -> np.ndarray:
    """A [0, 1] map → uint8 RGB, blue (cold) → green → red (hot), a jet-like ramp."""
    t = np.clip(heat, 0, 1)[..., None]
    ramp = np.clip(1.5 - np.abs(4 * t - np.array([3.0, 2.0, 1.0])), 0, 1)
    return (ramp * 255).astype(np.uint8)


def overlay(image_path: str | Path, heat: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """The image (its own aspect ratio, upscaled when small) with ``heat`` blended over it: uint8 RGB."""
    from PIL import Image

    from ftstudio.core.datasets.decode import DecodeError, decode, probe

    def source():  # a stream (pasted or gallery image) is read twice: rewind it each time
        if hasattr(image_path, "seek"):
            image_path.seek(0)
        return image_path

    try:
        h, w, _ = probe(source())
    except DecodeError:
        h, w = heat.shape
    scale = max(1.0, OVERLAY_MIN_SIDE / max(1, min(h, w)))
    scale = min(scale, OVERLAY_MAX_SIDE / max(1, h, w)) if max(h, w) * scale > OVERLAY_MAX_SIDE else scale
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    try:
        base = decode(source(), (size[1], size[0]), 3).transpose(1, 2, 0).astype(np.float32)
    except DecodeError:
        base = np.zeros((size[1], size[0], 3), np.float32) if fallback is None else fallback.astype(np.float32)
    hot = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    t = np.asarray(hot, np.float32) / 255.0
    colour = colorize(t).astype(np.float32)
    alpha = (ALPHA * np.sqrt(t))[..., None]  # cold areas keep the photo visible
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def explanation_name(path: str | Path, taken: set[str]) -> str:
    """``cat.jpg`` → ``cat.png``; a second ``cat.*`` from another folder → ``cat-2.png``."""
    stem = Path(path).stem or "image"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return name


def write_overlay(image_path: str | Path, heat: np.ndarray, out: Path) -> None:
    from PIL import Image

    from ftstudio.core.fileio import atomic_write

    picture = Image.fromarray(overlay(image_path, heat))
    atomic_write(out, lambda f: picture.save(f, format="PNG"))
