"""`ftstudio backbones`: the pretrained networks to start from, and fetching their weights when asked."""

from __future__ import annotations

import argparse
import json
import sys

from ftstudio.core.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backbones", help="list pretrained backbones (torchvision, timm) and whether weights are here",
                       description="torchvision classification networks and timm models (with the optional "
                                   "ftstudio[timm] extra): native input size, normalisation, parameters, licence "
                                   "and whether the weights are on this machine. Start from one with "
                                   "`ftstudio finetune --from NAME`.")
    p.add_argument("--search", default="", metavar="WORD", help="only names containing WORD (e.g. vit, resnet)")
    p.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    p.add_argument("--params", action="store_true",
                   help="count every timm model's parameters (slow the first time; cached per timm version)")
    p.add_argument("--download", metavar="NAME",
                   help="download NAME's weights now (checked, into torch's / Hugging Face's cache)")
    p.set_defaults(handler=backbones)


def backbones(args: argparse.Namespace) -> int:
    if args.download:
        path = fetch_weights(args.download)
        print(path)
        return 0
    from ftstudio.core.architecture.catalogue import catalogue, timm_available

    entries = catalogue(args.search, with_params=True if args.params else None)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=1))
        return 0
    print(f"{'name':<48} {'input':<11} {'params':>8}  {'weights':<8} licence")
    for e in entries:
        size = "×".join(str(v) for v in e.input_size)
        params = f"{e.params / 1e6:.1f}M" if e.params else "?"
        print(f"{e.name:<48} {size:<11} {params:>8}  {'here' if e.weights_here else '-':<8} {e.licence or '?'}")
    if not timm_available():
        print("(timm models: pip install 'ftstudio[timm]')", file=sys.stderr)
    elif any(e.params is None for e in entries):
        print("(? params: counted on request — --search with few matches, or --params)", file=sys.stderr)
    return 0


def fetch_weights(name: str, quiet: bool = False) -> str:
    """Download ``name``'s weights (the user asked with a flag); a progress line on stderr."""
    from ftstudio.core.architecture.weights import download, locate

    if ":" not in name:
        raise InputError(f"{name}: name a backbone as torchvision:NAME or timm:NAME (`ftstudio backbones` lists them)")
    src = locate(name)
    here = src.local_file()
    if here:
        return here
    size = f" ({src.size / 1e6:.0f} MB)" if src.size else ""
    print(f"downloading {name} weights{size} from {src.url}", file=sys.stderr, flush=True)

    def progress(done: int, total: int) -> None:
        if not quiet and sys.stderr.isatty():
            shown = f"{100 * done / total:.0f}%" if total else f"{done / 1e6:.0f} MB"
            print(f"\r  {shown}", end="", file=sys.stderr, flush=True)

    path = download(src, progress)
    print(f"\n  checked and saved to {path}" if sys.stderr.isatty() else f"  checked and saved to {path}",
          file=sys.stderr, flush=True)
    return path
