"""The Model page's memory estimate (core/planning/memory.py) against a real training step's peak.

On the CPU, each network trains two Adam steps in a fresh process at 224×224; the peak resident memory
(ru_maxrss) minus the resident memory just before the first step is what the step needed beyond the
weights already loaded, compared with the estimate less its parameter part. On a GPU (``--device cuda``)
the same with ``torch.cuda.max_memory_allocated``.

    python bench/memory_fit.py torchvision:resnet18 torchvision:resnet50 timm:vit_small_patch16_224 --batch 16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import torch, torch.nn.functional as F
from ftstudio.core.architecture import analyze, parse_model
from ftstudio.core.planning.memory import activation_profile, estimate

name, batch, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kind, _, bare = name.partition(":")
layer = "TimmBackbone" if kind == "timm" else "Backbone"
spec = parse_model({"layers": [{"type": layer, "params": {"name": bare}},
                               {"type": "Linear", "params": {"out_features": "classes"}}]})
analysis = analyze(spec, (3, 224, 224), 10)
need = estimate(analysis.params, analysis.trainable, activation_profile(analysis), batch)
if kind == "timm":
    import timm
    net = timm.create_model(bare, num_classes=10)
else:
    from torchvision.models import get_model
    net = get_model(bare, num_classes=10)
net = net.to(device)
x = torch.randn(batch, 3, 224, 224, device=device)
y = torch.randint(0, 10, (batch,), device=device)
opt = torch.optim.Adam(net.parameters())

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))

before = torch.cuda.memory_allocated() if device == "cuda" else rss()
for _ in range(2):
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
if device == "cuda":
    peak = torch.cuda.max_memory_allocated()
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": need.total - need.params, "measured": peak - before}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    for name in args.names:
        out = subprocess.run([sys.executable, "-c", CHILD, name, str(args.batch), args.device], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{name:<36} batch {args.batch}: estimate {r['estimate'] / 1e9:.2f} GB, "
              f"measured {r['measured'] / 1e9:.2f} GB — measured / estimate {r['measured'] / r['estimate']:.2f}")


if __name__ == "__main__":
    main()
