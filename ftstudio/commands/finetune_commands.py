"""`ftstudio finetune` (a fine-tune plan from flags) and `ftstudio demo` (the pretrain → fine-tune story)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftstudio.commands.recipe_flags import add_data_flags, add_train_flags, recipe_from_args
from ftstudio.core.errors import InputError

# fine-tune plan field → the flag that sets it (messages name the flag the user typed)
PLAN_FLAGS = {"source": "--from", "checkpoint": "--checkpoint", "weights": "--weights", "strategy": "--strategy",
              "lora_rank": "--lora-rank", "lora_alpha": "--lora-alpha", "unfreeze_after": "--unfreeze-after",
              "backbone_lr_mult": "--backbone-lr-mult", "head_lr_mult": "--head-lr-mult",
              "chance_backbone_lr_mult": "--chance-backbone-lr-mult", "chance_lora_alpha": "--chance-lora-alpha",
              "min_steps": "--min-steps", "bn": "--bn", "polarity": "--polarity", "new_rows": "--new-rows",
              "layers": "--freeze/--unfreeze/--layer-lr"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a trained model on new data (new head, lower backbone rate…)",
                       description="Start from a run folder, a checkpoint or torchvision:NAME (ImageNet weights) and "
                                   "adapt it to --data. The head is resized to the new classes; rows of classes the "
                                   "source already knows are kept.")
    p.add_argument("--from", dest="source", required=True, metavar="RUN_DIR|CHECKPOINT|torchvision:NAME|timm:NAME",
                   help="what to start from; torchvision:resnet18, timm:vit_small_patch16_224 … use pretrained "
                        "weights (`ftstudio backbones` lists them)")
    p.add_argument("--checkpoint", choices=("best", "last"), help="which checkpoint of a run folder (default best)")
    p.add_argument("--weights", metavar="FILE|FOLDER|none",
                   help="torchvision/timm sources: a local .pth/.safetensors file (or a Hugging Face model folder), "
                        "or none for random init")
    p.add_argument("--download-weights", action="store_true",
                   help="torchvision/timm sources: download the weights when they are not on this machine "
                        "(checked; FTSTUDIO_WEIGHTS_MIRROR=URL replaces torchvision's host)")
    p.add_argument("--strategy", choices=("head", "full", "lora", "none"),
                   help="head: only a new head trains; full (default): everything, the backbone at a lower rate; "
                        "lora: low-rank adapters + head; none: train as is")
    p.add_argument("--lora-rank", type=int, help="LoRA rank (default 4)")
    p.add_argument("--lora-alpha", type=float, help="LoRA alpha; adapters are scaled by alpha/rank (default 8)")
    p.add_argument("--unfreeze-after", type=int, metavar="N", help="train only the head for N epochs, then the rest")
    p.add_argument("--backbone-lr-mult", type=float, help="backbone learning rate relative to --lr (default 0.1)")
    p.add_argument("--head-lr-mult", type=float, help="head learning rate relative to --lr (default 1)")
    p.add_argument("--chance-backbone-lr-mult", type=float, metavar="MULT",
                   help="the backbone rate used instead when the source scores about chance on the new images "
                        "(default 1; 0 = keep --backbone-lr-mult)")
    p.add_argument("--chance-lora-alpha", type=float, metavar="ALPHA",
                   help="the LoRA alpha used instead when the source scores about chance on the new images "
                        "(default 32; 0 = keep --lora-alpha)")
    p.add_argument("--bn", choices=("auto", "adapt", "keep", "train"),
                   help="frozen BatchNorm layers: adapt = re-estimate their statistics on the new data (AdaBN), "
                        "keep = the source's, train = batch statistics while training; auto (default) adapts "
                        "whenever one is frozen. The measured shift is printed and kept in summary.json")
    p.add_argument("--polarity", choices=("auto", "keep", "invert"),
                   help="invert = the new images are the negative of the source's (light and dark swapped): "
                        "invert every pixel before the network; keep = as they are; auto (default) inverts only "
                        "where the source scores clearly better on the inverted training images")
    p.add_argument("--new-rows", choices=("imprint", "mean", "random"),
                   help="head rows of classes the source does not know: imprint (default: each class's mean "
                        "feature), mean (of the known rows) or random")
    p.add_argument("--fresh-head", action="store_true", help="start every head row fresh (default: keep known classes)")
    p.add_argument("--min-steps", type=int, help="train at least this many optimizer steps (default 100; "
                                                 "0 when --epochs is given)")
    p.add_argument("--freeze", metavar="LAYERS", help="comma-separated layers (index paths like 3 or 5.1, or names) "
                                                      "to freeze")
    p.add_argument("--unfreeze", metavar="LAYERS", help="comma-separated layers to train whatever the strategy says")
    p.add_argument("--layer-lr", metavar="LAYER=MULT,…", help="per-layer learning-rate multipliers, e.g. 0=0,3=0.5")
    add_data_flags(p, required=True)
    add_train_flags(p)
    p.set_defaults(handler=finetune)

    p = sub.add_parser("demo", help="pretrain on digits, fine-tune on a few shifted digits, compare with scratch")
    p.add_argument("--out", help="folder for the demo's runs and export (default: ordinary runs in the runs folder, "
                                 "the export in the winner's run folder)")
    p.set_defaults(handler=demo)


def plan_from_args(args: argparse.Namespace) -> dict:
    """The FinetunePlan fields the flags set (validated later with the whole recipe)."""
    plan: dict = {"source": args.source}
    for key in ("checkpoint", "weights", "strategy", "lora_rank", "lora_alpha", "unfreeze_after",
                "backbone_lr_mult", "head_lr_mult", "chance_backbone_lr_mult", "chance_lora_alpha", "min_steps", "bn",
                "polarity", "new_rows"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    if args.fresh_head:
        plan["keep_known_classes"] = False
    if args.epochs is not None and args.min_steps is None:
        plan["min_steps"] = 0  # an explicit --epochs is taken as meant
    layers = [{"layer": name, "freeze": True} for name in _names(args.freeze)]
    layers += [{"layer": name, "freeze": False} for name in _names(args.unfreeze)]
    for item in _names(args.layer_lr):
        name, _, value = item.rpartition("=")
        try:
            layers.append({"layer": name.strip(), "lr_mult": float(value)})
        except ValueError:
            name = ""
        if not name.strip():
            raise InputError(f"--layer-lr: expected LAYER=MULT like 3=0.1, got {item!r}")
    if layers:
        plan["layers"] = layers
    return plan


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def finetune(args: argparse.Namespace) -> int:
    from ftstudio.commands.run_commands import execute

    if args.download_weights and args.weights is None and args.source.startswith(("torchvision:", "timm:")):
        from ftstudio.commands.backbone_commands import fetch_weights

        args.weights = fetch_weights(args.source)

    try:
        recipe = recipe_from_args(args, {"finetune": plan_from_args(args)})
    except InputError as exc:
        field, _, rest = str(exc).partition(": ")
        key = field.removeprefix("finetune.").split(".")[0].split("[")[0]
        if field.startswith("finetune.") and key in PLAN_FLAGS:
            raise InputError(f"{PLAN_FLAGS[key]}: {rest}") from None
        raise

    def show(prepared) -> None:
        for note in prepared.notes:
            print(note, file=sys.stderr, flush=True)

    return execute(recipe, args.out, args.resume, on_prepared=show)


def demo(args: argparse.Namespace) -> int:
    from ftstudio.core.engine import RunControls
    from ftstudio.core.workflow.demo import run_demo, table

    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: not empty; the demo writes its runs there — choose a new or empty --out folder")
    result = run_demo(out, say=lambda line: print(line, flush=True),
                      controls=lambda stage: RunControls(callbacks=(_milestones(),)))
    print()
    print(table(result))
    report = result.export
    print(f"\nexported {result.winner.label} ({result.winner.run}) to {report.out_dir}:")
    for f in report.files:
        print(f"  {f.format:<12} {f.path.name:<18} {'verified' if f.verified else 'FAILED'}  {f.message}")
    return 0 if report.ok else 1


def _milestones():
    from ftstudio.core.training.callbacks import Callback

    class Milestones(Callback):
        """A few progress lines per run (the demo trains four runs of 100 short epochs)."""

        def on_epoch_finished(self, event) -> None:
            if event.epoch % max(1, event.epochs // 4) == 0 or event.epoch == event.epochs:
                acc = "–" if event.val_accuracy is None else f"{event.val_accuracy:.3f}"
                print(f"    epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.3f}, val accuracy {acc}",
                      flush=True)

    return Milestones()
