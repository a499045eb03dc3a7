"""What travels next to exported model files: ``signature.json`` and a Markdown model card.

The signature is the contract for another runtime: class names in output order, the input shape
and the preprocessing as plain numbers. The card tells a person what the model is — data,
metrics, hyper-parameters, lineage, file hashes — and shows ten-line inference snippets.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ftstudio import __version__

SIGNATURE_FORMAT = "ftstudio.signature"


def signature(ckpt: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """The plain-number contract an inference program needs (see module docstring)."""
    pre = ckpt["preprocess"]
    c, h, w = (int(v) for v in pre["input_shape"])
    return {
        "format": SIGNATURE_FORMAT, "version": 1,
        "classes": [str(x) for x in ckpt["classes"]],
        "input_shape": [c, h, w],
        "input": {"name": "input", "shape": ["batch", c, h, w], "dtype": "float32", "layout": "NCHW"},
        "output": {"name": "logits", "shape": ["batch", len(ckpt["classes"])],
                   "meaning": "unnormalised class scores in the order of classes; softmax gives probabilities"},
        "preprocessing": {
            "image_size": [h, w], "channels": c, "color": "grayscale (PIL mode L)" if c == 1 else "RGB",
            "resize": "bilinear (PIL Image.resize((width, height), Image.BILINEAR))",
            "scale": float(pre.get("scale", 255.0)), "range": [0.0, 1.0],
            "mean": [float(v) for v in pre["mean"]], "std": [float(v) for v in pre["std"]],
            "steps": ["convert to " + ("grayscale (L)" if c == 1 else "RGB"), f"resize to {w}x{h} (width x height)",
                      "divide pixel values by 255 to get [0, 1]", "per channel: (x - mean) / std",
                      "arrange as [batch, channels, height, width] float32"],
            **({"inverted": "std is negative: the model takes inverted images (light and dark swapped from what it "
                            "was pretrained on); (x - mean) / std does the inversion, apply it as written"}
               if any(float(v) < 0 for v in pre["std"]) else {}),
        },
        "files": files,
    }


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _bytes(n: int) -> str:
    if not n:
        return "–"
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} KB"


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value == value else "–"


def _pct(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


def _lineage_lines(lineage: dict[str, Any] | None) -> list[str]:
    lines, depth = [], 0
    while isinstance(lineage, dict) and depth < 20:
        what = lineage.get("source")
        if lineage.get("kind") == "torchvision":
            what = f"{what} with weights {lineage.get('weights')} ({lineage.get('weights_file') or 'random init'})"
        extra = f", strategy {lineage['strategy']}" if lineage.get("strategy") else ""
        data = f", trained on {lineage['data']}" if lineage.get("data") else ""
        acc = f", val accuracy {_pct(lineage['val_accuracy'])}" if lineage.get("val_accuracy") is not None else ""
        sha = lineage.get("checkpoint_sha256") or lineage.get("weights_sha256")
        lines.append(f"{'  ' * depth}- fine-tuned from `{what}`{data}{acc}{extra}"
                     + (f" (sha256 `{sha[:16]}…`)" if sha else ""))
        lineage, depth = lineage.get("parent"), depth + 1
    return lines or ["- trained from scratch (no parent model)"]


def snippets(sig: dict[str, Any], onnx_file: str | None, pt2_file: str | None) -> dict[str, str]:
    """Ten-line inference programs for onnxruntime and torch that follow the signature."""
    c, h, w = sig["input_shape"]
    mode = "L" if c == 1 else "RGB"
    to_chw = "[None]" if c == 1 else ".transpose(2, 0, 1)"
    load = (f'img = Image.open("image.png").convert("{mode}").resize(({w}, {h}), Image.BILINEAR)\n'
            f"x = np.asarray(img, np.float32){to_chw} / 255.0  # [C, H, W] in [0, 1]\n"
            'mean, std = (np.array(pre[k], np.float32)[:, None, None] for k in ("mean", "std"))\n'
            "x = ((x - mean) / std)[None]  # [1, C, H, W]\n")
    head = ("import json\nimport numpy as np\n{extra}from PIL import Image\n\n"
            'sig = json.load(open("signature.json"))\npre = sig["preprocessing"]\n')
    out = {}
    if onnx_file:
        out["onnxruntime"] = (head.format(extra="import onnxruntime as ort\n") + load
                              + f'session = ort.InferenceSession("{onnx_file}")\n'
                              'logits = session.run(None, {"input": x})[0]\n'
                              'print(sig["classes"][int(logits.argmax())])\n')
    if pt2_file:
        out["torch"] = (head.format(extra="import torch\n") + load
                        + f'model = torch.export.load("{pt2_file}").module()\n'
                        "with torch.no_grad():\n    logits = model(torch.from_numpy(x))\n"
                        'print(sig["classes"][int(logits.argmax())])\n')
    return out


def model_card(ckpt: dict[str, Any], summary: dict[str, Any], which: str, sig: dict[str, Any],
               files: list[Any], params: int) -> str:
    """The Markdown model card (see module docstring); ``files`` are ExportedFile records."""
    recipe = ckpt.get("recipe") or {}
    data, train, plan = recipe.get("data") or {}, recipe.get("train") or {}, recipe.get("finetune")
    best = ckpt.get("best") or {}
    name = summary.get("name") or recipe.get("name") or "model"
    pre = sig["preprocessing"]
    classes = sig["classes"]
    parts = [
        f"# {name}",
        f"Exported by ftstudio {__version__} on {datetime.now():%Y-%m-%d %H:%M} from the **{which}** checkpoint "
        f"(epoch {ckpt.get('epoch')}). Architecture: {(ckpt.get('architecture') or {}).get('name') or 'custom'}; "
        f"{params:,} parameters.",
        "## Data",
        f"- dataset: `{data.get('name')}`" + (f", at most {data['per_class']} training images per class"
                                              if data.get("per_class") else "")
        + f"\n- training / validation images: {summary.get('train_size', '–')} / {summary.get('val_size', '–')} "
          f"(validation split {data.get('val_split')}, seed {data.get('split_seed')})"
        + f"\n- {len(classes)} classes, in output order: " + ", ".join(f"`{c}`" for c in classes),
        "## Metrics",
        _table([("best validation accuracy", _pct(best.get("val_accuracy")), f"epoch {best.get('epoch')}"),
                ("best validation loss", _pct(best.get("val_loss")), ""),
                ("last validation accuracy", _pct(summary.get("val_accuracy")), f"epoch {summary.get('epochs')}")],
               ("metric", "value", "when")),
        "## Hyper-parameters",
        _table([(k, f"`{json.dumps(v)}`") for k, v in train.items()], ("setting", "value")),
    ]
    if plan:
        parts += ["Fine-tune plan:", _table([(k, f"`{json.dumps(v)}`") for k, v in plan.items()], ("setting", "value"))]
    if ckpt.get("lora"):
        parts.append(f"LoRA adapters (rank {ckpt['lora'].get('rank')}, alpha {ckpt['lora'].get('alpha')}) were "
                     "merged into plain weights before export: the files hold an ordinary network.")
    parts += ["## Lineage", "\n".join(_lineage_lines(ckpt.get("lineage"))),
              "## Input and preprocessing",
              f"Input `input`: float32 `[batch, {', '.join(map(str, sig['input_shape']))}]`; output `logits`: "
              f"`[batch, {len(classes)}]`. Steps: " + "; ".join(pre["steps"]) + f". mean = {pre['mean']}, "
              f"std = {pre['std']}." + (f" {pre['inverted'].capitalize()}." if pre.get("inverted") else "")
              + " All of it is in `signature.json`.",
              "## Files",
              _table([(f.format, f"`{f.path.name}`", _bytes(getattr(f, "size_bytes", 0)),
                       _ms(getattr(f, "latency_ms", float("nan"))), f"`{f.sha256}`", "yes" if f.verified else "**NO**",
                       f"{f.max_abs_diff:.2e}" if f.max_abs_diff == f.max_abs_diff else "–", f.message)
                      for f in files], ("format", "file", "size", "latency (1 image, this machine)", "sha256",
                                        "verified", "max abs diff", "note"))]
    names = {f.format: f.path.name for f in files if f.verified}
    code = snippets(sig, names.get("onnx"), names.get("pt2"))
    if code:
        parts.append("## Inference")
        for runtime, text in code.items():
            parts += [f"With {runtime}:", f"```python\n{text}```"]
    return "\n\n".join(parts) + "\n"
