"""Running a pipeline recipe headless, and the comparison both the wizard and `ftstudio run` show.

`run_pipeline` trains the stages in order (pretrain → fine-tune → from-scratch baseline), measures
the fine-tuned and baseline models with `engine.evaluate_run` — exactly what `ftstudio evaluate`
prints — and exports the chosen one. The wizard runs the same stages one by one on its own thread
and calls the same `measure` / `compare` functions, so its Results page and a replay agree.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core.config.recipe import Recipe
from ftstudio.core.workflow.pipeline import ComparePlan, Pipeline, resolve_finetune, resolve_scratch

if TYPE_CHECKING:  # (the engine, with numpy and torch behind it, is imported when a stage trains)
    from ftstudio.core.engine import RunControls

StageControls = Callable[[str], "RunControls"]  # a stage's name → the controls of its run

LABELS = {"finetune": "fine-tuned", "scratch": "from scratch"}
COMPARISON_FILE = "comparison.json"


@dataclass(frozen=True)
class ComparisonRow:
    """One model measured on the held-out images (`ftstudio evaluate RUN --checkpoint C --split S`)."""

    stage: str  # "finetune", "scratch" (the demo also has "finetune-head" …)
    label: str
    run: Path
    accuracy: float
    loss: float
    count: int  # held-out images
    trainable: int
    params: int
    seconds: float  # training time recorded in the run's summary
    classes: tuple[str, ...] = ()
    confusion: tuple[tuple[int, ...], ...] = ()
    checkpoint: str = "last"
    split: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "label": self.label, "run": str(self.run), "accuracy": self.accuracy,
                "loss": self.loss, "count": self.count, "trainable": self.trainable, "params": self.params,
                "seconds": self.seconds, "checkpoint": self.checkpoint, "split": self.split}


def measure(run: str | Path, stage: str, label: str | None = None, plan: ComparePlan = ComparePlan()) -> ComparisonRow:
    """Evaluate a run on its own held-out split, as `ftstudio evaluate` does, plus its size and time."""
    from ftstudio.core.engine import evaluate_run
    from ftstudio.core.runs.folders import Run

    ev = evaluate_run(run, which=plan.checkpoint, split=plan.split)
    s = Run(Path(run)).read_summary()
    return ComparisonRow(stage, label or LABELS.get(stage, stage), Path(run), float(ev["accuracy"]),
                         float(ev["loss"]), int(ev["count"]), int(s.get("trainable_params") or 0),
                         int(s.get("params") or 0), float(s.get("duration_s") or 0.0), tuple(ev["classes"]),
                         tuple(tuple(int(v) for v in row) for row in ev["confusion"]), plan.checkpoint, ev["split"])


@dataclass
class Comparison:
    rows: list[ComparisonRow]

    @property
    def winner(self) -> ComparisonRow:
        return max(self.rows, key=lambda r: r.accuracy)

    def row(self, stage: str) -> ComparisonRow | None:
        return next((r for r in self.rows if r.stage == stage), None)

    def verdict(self) -> str:
        scratch = self.row("scratch")
        tuned = [r for r in self.rows if r.stage != "scratch"]
        if scratch is None or not tuned:
            return ""
        best = max(tuned, key=lambda r: r.accuracy)
        gap = best.accuracy - scratch.accuracy
        # in the table's unit (held-out accuracy, %), so the headline and the table read alike
        both = f"{best.accuracy:.1%} vs {scratch.accuracy:.1%} held-out accuracy"
        if gap > 0:
            return f"fine-tuning beats training from scratch by {gap * 100:.1f} points ({both})"
        return f"fine-tuning did not beat training from scratch here ({gap * 100:+.1f} points: {both})"

    def table(self) -> str:
        """Plain text, one row per model ("fine-tune"/"scratch" in the labels), the winner marked."""
        lines = [f"{'model':<20} {'held-out accuracy':>17} {'loss':>7} {'trainable params':>17} {'time':>7}"]
        for r in self.rows:
            mark = "  ← winner" if r is self.winner and len(self.rows) > 1 else ""
            lines.append(f"{r.label:<20} {r.accuracy:>17.1%} {r.loss:>7.3f} {r.trainable:>8,} / {r.params:<7,} "
                         f"{r.seconds:>6.1f}s{mark}")
        verdict = self.verdict()
        return "\n".join(lines + (["", verdict] if verdict else []))

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "winner": self.winner.stage, "verdict": self.verdict()}


def compare(runs: dict[str, Path], plan: ComparePlan = ComparePlan()) -> Comparison:
    """Measure the fine-tune run and, when there is one, the baseline."""
    return Comparison([measure(runs[stage], stage, plan=plan) for stage in ("finetune", "scratch") if stage in runs])


def write_comparison(folder: str | Path, p: Pipeline, comparison: Comparison) -> Path:
    """``comparison.json`` in ``folder``: the rows, the winner and the verdict (atomically)."""
    from ftstudio.core.fileio import atomic_write_text

    where = Path(folder) / COMPARISON_FILE
    atomic_write_text(where, json.dumps({"pipeline": p.name, **comparison.to_dict()}, indent=2) + "\n")
    return where


def export_target(p: Pipeline, comparison: Comparison) -> ComparisonRow | None:
    """The row whose model the pipeline's export plan picks."""
    if p.export is None:
        return None
    if p.export.run == "winner":
        return comparison.winner
    return comparison.row(p.export.run)


@dataclass
class PipelineResult:
    runs: dict[str, Path]
    comparison: Comparison
    export: Any = None  # ExportReport
    notes: list[str] = field(default_factory=list)


def run_stage(story: str, stage: str, recipe: Recipe, path: Path, *, say: Callable[[str], None],
              controls: RunControls) -> Path:
    """Train one stage of ``story`` (the demo, a pipeline) into ``path``, saying the fine-tune
    plan's notes; stopped → `Interrupted`."""
    from ftstudio.core.engine import train
    from ftstudio.core.errors import Interrupted

    then = controls.on_prepared

    def on_prepared(prepared) -> None:
        for note in prepared.notes:
            say(f"  {note}")
        if then is not None:
            then(prepared)

    result = train(recipe, path, dataclasses.replace(controls, on_prepared=on_prepared))
    if result.finished.reason == "stopped":
        raise Interrupted(f"{story} stopped during {stage}; its run is {path}")
    return result.run.path


def stage_controls(controls: StageControls | None, stage: str) -> RunControls:
    """``controls(stage)``, or plain controls (nothing stops the stage but its own end)."""
    from ftstudio.core.engine import RunControls

    return controls(stage) if controls is not None else RunControls()


def run_pipeline(p: Pipeline, out: str | Path | None = None, *, say: Callable[[str], None] = print,
                 controls: StageControls | None = None) -> PipelineResult:
    """Train every stage (into ``out/<stage>``, or new run folders), compare, export; see the module
    docstring. ``controls(stage)`` steers each stage's run (one stop event for all stops the pipeline)."""
    from ftstudio.core.runs.folders import new_run_dir

    if p.cpu_threads:
        import torch

        torch.set_num_threads(p.cpu_threads)
    folder = Path(out) if out is not None else None
    runs: dict[str, Path] = {}

    def train(stage: str, recipe: Recipe) -> Path:
        path = folder / stage if folder is not None else new_run_dir(None, recipe.name or stage)
        say(f"{stage}: {recipe.name or stage} → {path}")
        return run_stage("pipeline", stage, recipe, path, say=say, controls=stage_controls(controls, stage))

    if p.pretrain is not None:
        runs["pretrain"] = train("pretrain", p.pretrain)
    runs["finetune"] = train("finetune", resolve_finetune(p, runs.get("pretrain")))
    scratch = resolve_scratch(p, runs["finetune"])
    if scratch is not None:
        runs["scratch"] = train("scratch", scratch)
    comparison = compare(runs, p.compare)
    where = write_comparison(folder if folder is not None else runs["finetune"], p, comparison)
    result = PipelineResult(runs, comparison, notes=[f"comparison written to {where}"])
    target = export_target(p, comparison)
    if target is not None:
        from ftstudio.core.export import export_run

        say(f"exporting {target.label} ({target.run})")
        export_dir = folder / "export" if folder is not None else None
        result.export = export_run(target.run, list(p.export.formats), export_dir, checkpoint=p.export.checkpoint)
    return result
