"""`ftstudio export`: a run's model as ONNX / pt2 / safetensors / state-dict files, each verified by reloading."""

from __future__ import annotations

import argparse

CHOICES = ("onnx", "pt2", "safetensors", "state-dict", "onnx-int8", "torchscript", "all")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's model to files other runtimes load (verified by reloading)",
                       description="Writes the model files, signature.json (classes, input shape, preprocessing) "
                                   "and model_card.md; every file is reloaded by its runtime and compared with "
                                   "PyTorch. Exit code 1 if any file fails verification.")
    p.add_argument("run_dir", help="a run folder or checkpoint file")
    p.add_argument("--format", action="append", metavar="FORMAT",
                   help="onnx, pt2, safetensors, state-dict, all (those four) or onnx-int8 (quantized, calibrated "
                        "on the training images; its held-out accuracy drop is reported) — repeat or "
                        "comma-separate; default all")
    p.add_argument("--out", help="output folder (default: RUN_DIR/export)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    from ftstudio.core.export import FORMATS, check_formats, export_run

    names = [n.strip() for item in (args.format or ["all"]) for n in item.split(",") if n.strip()]
    formats = check_formats([f for n in names for f in (FORMATS if n == "all" else (n,))])
    from ftstudio.core.engine import quant_data

    report = export_run(args.run_dir, formats, args.out, checkpoint=args.checkpoint, quant_loader=quant_data,
                        progress=lambda message: print(message, flush=True))
    for f in report.files:
        diff = f"max diff {f.max_abs_diff:.1e}" if f.max_abs_diff == f.max_abs_diff else ""
        size = f"{f.size_bytes / 1e6:.2f} MB" if f.size_bytes else ""
        latency = f"{f.latency_ms:.2f} ms/image" if f.latency_ms == f.latency_ms else ""
        note = f.message if not f.verified or f.accuracy is not None else ""
        print(f"{'ok  ' if f.verified else 'FAIL'}  {f.format:<12} {f.path}  {size}  {latency}  {diff}  {note}")
    print(f"signature: {report.signature_path}\nmodel card: {report.card_path}")
    return 0 if report.ok else 1
