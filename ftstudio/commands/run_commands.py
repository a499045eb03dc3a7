"""`ftstudio train`, `run`, `evaluate` and `runs`: training and looking at results."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from ftstudio.commands.progress import ConsoleProgress, ctrl_c_stops
from ftstudio.commands.recipe_flags import add_data_flags, add_train_flags, recipe_from_args
from ftstudio.core import messages
from ftstudio.core.errors import Cancelled


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset")
    add_data_flags(p)
    p.add_argument("--model", default="mlp", help="a preset (mlp, seed, lenet, cnn, resnet18) or architecture JSON; "
                                                  "seed is the seed document's 784-256-10 MLP with plain SGD, lr 0.01")
    add_train_flags(p)
    p.set_defaults(handler=train)

    p = sub.add_parser("run", help="train what a recipe JSON describes (one run, or a whole pipeline)")
    p.add_argument("recipe", help="a recipe file (saved by the app or a run folder's recipe.json), or a pipeline "
                                  "recipe saved by the pretrain → fine-tune wizard")
    p.add_argument("--out", help="run folder (default: a new one); for a pipeline, a folder that receives "
                                 "pretrain/, finetune/, scratch/, export/ and comparison.json")
    p.set_defaults(handler=run)

    p = sub.add_parser("evaluate", help="accuracy, loss, per-class precision / recall / F1 and confusion of a run")
    p.add_argument("run_dir", help="a run folder or checkpoint file")
    p.add_argument("--data", help="dataset (default: the run's own, on its held-out split)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--split", choices=("auto", "val", "test", "train"), default="auto",
                   help="auto: the test split if the data has one, else validation")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=evaluate)

    p = sub.add_parser("runs", help="past runs, newest first")
    p.add_argument("--dir", help="runs folder (default: the ftstudio runs folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=runs)


def execute(recipe, out: str | None, resume: bool = False, epochs: int | None = None, prefix: str = "",
            on_prepared=None) -> int:
    """Train (or, with ``resume``, continue the run in ``out``) with a console progress bar; Ctrl-C
    stops cleanly with a checkpoint (exit 130). ``on_prepared(prepared)`` runs before training."""
    from ftstudio.core.distributed.torchrun import train_maybe_distributed
    from ftstudio.core.engine import RunControls
    from ftstudio.core.errors import InputError

    if resume and out is None:
        raise InputError("--resume needs --out RUN_DIR: the run folder to continue")
    stop = threading.Event()
    controls = RunControls(stop=stop, callbacks=(ConsoleProgress(prefix=prefix),),
                           on_prepared=_warn_about_data(on_prepared, prefix))
    with ctrl_c_stops(stop) as interrupted:
        try:
            result = train_maybe_distributed(recipe, out, controls, resume=resume, epochs=epochs)
        except Cancelled:
            if interrupted.is_set():
                raise interrupted.error("interrupted before training started") from None
            raise
    if result is None:  # a non-zero rank under torchrun: rank 0 reports
        return 0
    s = result.summary
    if interrupted.is_set():
        command = f"ftstudio train --out {result.run.path} --resume"
        text = messages.TERMINATED if interrupted.signum == signal.SIGTERM else messages.INTERRUPTED
        raise interrupted.error(text.format(command=command))
    acc = s.get("val_accuracy")
    best = s.get("best_val_accuracy")
    status = s.get("status")
    line = f"{status}: {s.get('epochs')} epoch(s)"
    if acc is not None:
        line += f", val accuracy {acc:.4f} (best {best:.4f} at epoch {s.get('best_epoch')})"
    print(f"{line}\nrun folder: {result.run.path}")
    return 0


def _warn_about_data(then, prefix: str = ""):
    """Print the data's warnings (skipped files, under-represented classes, the grouped split) on
    the terminal before training, not only into summary.json."""
    import os
    import sys

    def on_prepared(prepared) -> None:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            for line in prepared.data.warnings:
                print(f"{prefix}warning: {line}", file=sys.stderr, flush=True)
        if then is not None:
            then(prepared)

    return on_prepared


def train(args: argparse.Namespace) -> int:
    if args.resume:  # the run's own recipe; only --epochs may change its length
        return execute(None, args.out, resume=True, epochs=args.epochs)
    return execute(recipe_from_args(args), args.out)


def run(args: argparse.Namespace) -> int:
    from ftstudio.core.workflow.pipeline import is_pipeline_document, load_pipeline
    from ftstudio.core.config.recipe import load_recipe, read_json

    from ftstudio.core.workflow.pipeline import bundled_pipeline

    path = bundled_pipeline(args.recipe) or args.recipe
    if is_pipeline_document(read_json(path, "recipe")):
        return run_pipeline_file(load_pipeline(path), args.out)
    return execute(load_recipe(path), args.out)


def run_pipeline_file(pipeline, out: str | None) -> int:
    """Replay a pipeline with progress bars; Ctrl-C stops the current stage with a checkpoint (exit 130)."""
    from ftstudio.core.engine import RunControls
    from ftstudio.core.errors import InputError
    from ftstudio.core.workflow.runner import run_pipeline

    folder = Path(out).expanduser() if out else None
    if folder is not None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"--out {folder}: not an empty folder; a pipeline writes pretrain/, finetune/, scratch/ "
                         "and export/ there — choose a new or empty folder")
    stop = threading.Event()
    with ctrl_c_stops(stop) as interrupted:
        try:
            result = run_pipeline(pipeline, folder, say=lambda line: print(line, flush=True),
                                  controls=lambda stage: RunControls(stop=stop,
                                                                     callbacks=(ConsoleProgress(prefix=f"{stage} "),)))
        except Exception as exc:
            if interrupted.is_set():
                raise interrupted.error(f"interrupted: {exc}") from None
            raise
    print()
    print(result.comparison.table())
    for note in result.notes:
        print(note)
    report = result.export
    if report is not None:
        print(f"exported to {report.out_dir}:")
        for f in report.files:
            print(f"  {f.format:<12} {f.path.name:<18} {'verified' if f.verified else 'FAILED'}  {f.message}")
        return 0 if report.ok else 1
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from ftstudio.core.engine import evaluate_run

    report = evaluate_run(args.run_dir, args.data, which=args.checkpoint, split=args.split, device=args.device)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['data']} ({report['split']} split, {report['count']} images), checkpoint {report['checkpoint']}")
    print(f"accuracy {report['accuracy']:.4f}   loss {report['loss']:.4f}")
    print(class_table(report))
    return 0


def class_table(report: dict) -> str:
    """Per-class precision / recall / F1 / support and the macro and weighted averages, as text."""
    rows = [(name, r) for name, r in report["per_class"].items()]
    rows += [(f"{kind} avg", report[kind]) for kind in ("macro", "weighted") if kind in report]
    width = max(12, *(len(name) for name, _ in rows))
    lines = [f"  {'class':<{width}}  precision  recall      f1  support"]
    for i, (name, r) in enumerate(rows):
        if i == len(report["per_class"]):
            lines.append("")
        lines.append(f"  {name:<{width}}  {r['precision']:>9.3f}  {r['recall']:>6.3f}  {r['f1']:>6.3f}  "
                     f"{r['support']:>7}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    """A field of the runs table; one that a damaged summary lost shows as a dash, not as "None"."""
    return "–" if value is None else str(value)


def runs(args: argparse.Namespace) -> int:
    from ftstudio.core.runs.folders import list_runs

    rows = []
    for r in list_runs(args.dir):
        s = r.summary()
        for problem in s.problems:  # junk in one run's summary never hides the others
            print(f"warning: {r.summary_path}: {problem}", file=sys.stderr)
        rows.append({"id": r.id, "path": str(r.path), "name": s.get("name"), "created": s.get("created"),
                     "status": r.status(), "data": s.get("data"), "model": s.get("model"),
                     "epochs": s.get("epochs"), "val_accuracy": s.get("val_accuracy"),
                     "best_val_accuracy": s.get("best_val_accuracy"), "duration_s": s.get("duration_s")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        from ftstudio.core.paths import runs_dir

        print(f"no runs yet in {args.dir or runs_dir()}; start one with: ftstudio train")
        return 0
    print(f"{'created':<20} {'status':<11} {'data':<16} {'model':<10} {'epochs':>6} {'val acc':>8} {'time':>8}  folder")
    for r in rows:
        acc = f"{r['val_accuracy']:.4f}" if isinstance(r["val_accuracy"], (int, float)) else "–"
        dur = f"{r['duration_s']:.0f}s" if isinstance(r["duration_s"], (int, float)) else "–"
        data = Path(str(r["data"])).name[:16] if r["data"] is not None else "–"
        print(f"{_cell(r['created']):<20} {_cell(r['status']):<11} {data:<16} {_cell(r['model'])[:10]:<10} "
              f"{_cell(r['epochs']):>6} {acc:>8} {dur:>8}  {r['path']}")
    return 0


