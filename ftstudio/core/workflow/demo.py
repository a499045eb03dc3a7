"""The pretrain → fine-tune story on bundled data, headless: what `ftstudio demo` runs (and the wizard's defaults).

Pretrain the ``cnn`` preset on clean ``digits``; fine-tune it on 5 labelled images per class of
``digits-shifted`` (rotated, blurred, noisy) with the full, head and LoRA strategies; train the same
architecture from scratch on the same 50 images for the same number of steps; compare accuracy on
the held-out shifted images and export the winner.

Honesty: ``digits-shifted`` is made from the same 1,797 images as ``digits``. Both use the same
stratified split (same labels, ``val_split`` and seed), so the clean originals of the held-out
shifted images sit in the pretraining's *validation* split and are never trained on. Pretraining
uses its last checkpoint (no model selection on those originals), and every row reports its last
checkpoint (no selection on the held-out images either).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftstudio.core.workflow.pipeline import FINETUNE_REF, PRETRAIN_REF, ComparePlan, ExportPlan, Pipeline
from ftstudio.core.config.recipe import Recipe, TrainConfig
from ftstudio.core.workflow.runner import (Comparison, ComparisonRow, StageControls, measure, run_stage,
                                           stage_controls)

SPLIT = {"val_split": 0.2, "split_seed": 0}
SHOTS = 5
STRATEGIES = ("full", "head", "lora")
PRETRAIN_EPOCHS = 10
STEPS = 100  # optimizer steps of each few-shot run (50 images: one step per epoch)
ROTATION = 40.0  # pretraining augmentation (degrees): generic robustness, not the target images
LAST = ComparePlan(checkpoint="last")  # every row reports its last checkpoint (module docstring)


def pretrain_recipe(epochs: int = PRETRAIN_EPOCHS) -> Recipe:
    return Recipe.from_dict({"name": "demo-pretrain-digits", "model": "cnn",
                             "data": {"name": "digits", **SPLIT, "augment": {"rotation": ROTATION, "crop": 1}},
                             "train": {"epochs": epochs}})


def _few_shot() -> dict[str, Any]:
    return {"name": "digits-shifted", **SPLIT, "per_class": SHOTS}


def finetune_epochs(steps: int) -> int:
    """Epochs to ask for so that ``min_steps=steps`` decides the length on few-shot data (at most the default)."""
    return min(TrainConfig().epochs, steps) if steps > 0 else TrainConfig().epochs


def finetune_recipe(source: str | Path, strategy: str = "full", steps: int = STEPS) -> Recipe:
    """Default training settings; ``min_steps`` raises the epochs until ``steps`` optimizer steps happen."""
    return Recipe.from_dict({"name": f"demo-finetune-{strategy}", "data": _few_shot(),
                             "train": {"epochs": finetune_epochs(steps)},
                             "finetune": {"source": str(source), "checkpoint": "last", "strategy": strategy,
                                          "min_steps": steps}})


def scratch_recipe(epochs: int) -> Recipe:
    """The same architecture on the same few-shot data for the same number of steps, from random weights."""
    return Recipe.from_dict({"name": "demo-scratch", "model": "cnn", "data": _few_shot(), "train": {"epochs": epochs}})


def default_pipeline(prefix: str = "wizard", strategy: str = "full") -> Pipeline:
    """The demo's story as a pipeline (`ftstudio demo`'s recipes): the wizard's defaults."""
    pretrain = pretrain_recipe().replace(name=f"{prefix}-pretrain-digits")
    finetune = finetune_recipe(PRETRAIN_REF, strategy).replace(name=f"{prefix}-finetune-{strategy}")
    scratch = Recipe(name=f"{prefix}-scratch", model=FINETUNE_REF, data=finetune.data, train=finetune.train)
    return Pipeline(name=f"{prefix}: digits → shifted digits", pretrain=pretrain, finetune=finetune,
                    scratch=scratch, export=ExportPlan())


def held_out_is_unseen() -> bool:
    """True when the held-out shifted images' clean originals are outside the pretraining's training split."""
    from ftstudio.core.datasets import sources, stratified_split

    clean, shifted = sources.load_digits().labels, sources.load_digits_shifted().labels
    train, _ = stratified_split(clean, SPLIT["val_split"], SPLIT["split_seed"])
    _, held_out = stratified_split(shifted, SPLIT["val_split"], SPLIT["split_seed"])
    return bool((clean == shifted).all()) and not set(train.tolist()) & set(held_out.tolist())


@dataclass
class DemoResult:
    pretrain: Path
    pretrain_accuracy: float
    rows: list[ComparisonRow]
    held_out: int
    export: Any = None  # ExportReport of the winner

    @property
    def winner(self) -> ComparisonRow:
        return Comparison(self.rows).winner


def run_demo(out: str | Path | None = None, *, say: Callable[[str], None] = print,
             controls: StageControls | None = None, export_formats: tuple[str, ...] | None = None,
             pretrain_epochs: int = PRETRAIN_EPOCHS, steps: int = STEPS) -> DemoResult:
    """Run the whole story (module docstring); ``controls(stage)`` steers each stage's run.

    The runs go into folder ``out`` (``out/pretrain``, … ``out/export``), or, without one, into the
    runs folder as ordinary runs (the history lists them) with the export in the winner's folder."""
    from ftstudio.core.export import export_run
    from ftstudio.core.runs.folders import new_run_dir

    folder = Path(out) if out is not None else None
    if not held_out_is_unseen():  # guards the claim we print; cheap
        raise RuntimeError("the demo's held-out images overlap the pretraining data")

    def train(stage: str, recipe: Recipe, label: str) -> ComparisonRow:
        path = folder / stage if folder is not None else new_run_dir(None, f"demo-{stage}")
        run = run_stage("demo", stage, recipe, path, say=say, controls=stage_controls(controls, stage))
        return measure(run, stage, label, LAST)

    say(f"1/4 pretraining the cnn preset on clean digits ({pretrain_epochs} epochs, random rotations up to "
        f"±{ROTATION:g}°)")
    pre = train("pretrain", pretrain_recipe(pretrain_epochs), "pretrained")
    pre_dir, pre_acc = pre.run, pre.accuracy
    rows = []
    for i, strategy in enumerate(STRATEGIES):
        say(f"2/4 fine-tuning on {SHOTS} images per class of digits-shifted: strategy {strategy} "
            f"({i + 1}/{len(STRATEGIES)})")
        recipe = finetune_recipe(pre_dir, strategy, steps)
        rows.append(train(f"finetune-{strategy}", recipe, f"fine-tune ({strategy})"))
    epochs = int(Recipe.from_dict(_read(rows[0].run / "recipe.json")).train.epochs)
    say(f"3/4 training the same cnn from scratch on the same {SHOTS * 10} images ({epochs} epochs, same steps)")
    rows.append(train("scratch", scratch_recipe(epochs), "scratch"))
    result = DemoResult(pre_dir, pre_acc, rows, rows[0].count)
    say(f"4/4 exporting the winner, {result.winner.label}")
    export_dir = folder / "export" if folder is not None else None
    result.export = export_run(result.winner.run, export_formats, export_dir, checkpoint="last")
    return result


def _read(path: Path) -> dict:
    from ftstudio.core.config.recipe import read_json

    return read_json(path)


def table(result: DemoResult) -> str:
    """The comparison as plain text (the words "fine-tune" and "scratch" label its rows)."""
    lines = [f"held-out: {result.held_out} shifted digits never used in training (their clean originals were in "
             f"the pretraining's validation split); last checkpoints, no selection on held-out data",
             f"pretrained cnn on clean digits: accuracy {result.pretrain_accuracy:.3f} on its own validation split",
             ""]
    return "\n".join(lines) + "\n" + Comparison(result.rows).table()
