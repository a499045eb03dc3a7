"""`ftstudio datasets` and `ftstudio presets`: what data and architectures are at hand."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="the dataset catalog: what each is, where it lives, offline or not")
    p.add_argument("--root", help="folder for torchvision datasets (default: the ftstudio data folder)")
    p.add_argument("--download", metavar="NAME", help="download a torchvision dataset into --root")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=datasets)
    p = sub.add_parser("data", help="work on an image folder: `data check FOLDER` reports its problems",
                       description="data check FOLDER [--json]: duplicates and near-duplicates, label conflicts, "
                                   "train/val leakage, corrupt files, imbalance, tiny classes, size/mode outliers")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = data_sub.add_parser("check", help="duplicates, label conflicts, leakage, corrupt files, imbalance, outliers")
    c.add_argument("folder", help="a folder with one subfolder per class (or train/ val/ folders of those)")
    c.add_argument("--json", action="store_true", help="print one JSON document")
    c.set_defaults(handler=data_check)
    p = sub.add_parser("presets", help="the architecture presets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=presets)


def datasets(args: argparse.Namespace) -> int:
    from ftstudio.core.datasets import CATALOG, find, is_available
    from ftstudio.core.datasets.catalog import location
    from ftstudio.core.errors import InputError

    if args.download:
        entry = find(args.download)
        if entry is None or entry.kind != "torchvision":
            raise InputError(f"--download {args.download}: not a downloadable dataset "
                             f"({', '.join(e.name for e in CATALOG if e.kind == 'torchvision')})")
        from ftstudio.core.datasets.sources import load_torchvision

        load_torchvision(entry, args.root, download=True)
        print(f"{entry.name}: ready in {location(entry, args.root)}")
        return 0
    rows = [{"name": e.name, "title": e.title, "description": e.description, "shape": list(e.shape),
             "classes": e.num_classes, "offline": is_available(e, args.root), "location": location(e, args.root),
             "size": e.size} for e in CATALOG]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<15} {'offline':<8} {'classes':>7}  {'shape':<10} description")
    for r in rows:
        shape = "×".join(map(str, r["shape"]))
        offline = "yes" if r["offline"] else "no"
        print(f"{r['name']:<15} {offline:<8} {r['classes']:>7}  {shape:<10} {r['description']}")
    root = args.root or str(__import__("ftstudio.core.datasets.catalog", fromlist=["x"]).default_root())
    print(f"\ntorchvision datasets live in {root} (--root to change); fetch one with "
          f"`ftstudio datasets --download NAME` or use --download with train.\n"
          f"Any folder with one subfolder of images per class works too: ftstudio train --data PATH")
    return 0


def data_check(args: argparse.Namespace) -> int:
    """Exit 0 whatever is found: the findings are the output, not a failure."""
    import sys

    from ftstudio.core import messages
    from ftstudio.core.datasets.health import check_folder

    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(desc="checking", unit="img", file=sys.stderr, leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        report = check_folder(args.folder, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        from ftstudio.core.fileio import json_text

        print(json_text(report))
        return 0
    counts = ", ".join(f"{c} {n}" for c, n in report["classes"].items())
    print(f"{report['folder']}: {report['images']} images in {len(report['classes'])} classes ({counts})")
    for line in report["problems"] or [messages.CHECK_HEALTHY]:
        print(f"  {line}")
    return 0


def presets(args: argparse.Namespace) -> int:
    from ftstudio.core.architecture.presets import preset_description, preset_names

    rows = [{"name": n, "description": preset_description(n)} for n in preset_names()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<10} {r['description']}")
    return 0
