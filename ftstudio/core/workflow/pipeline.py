"""A pipeline recipe: pretrain → fine-tune (→ a from-scratch baseline) → compare → export, as one JSON file.

The wizard saves one; `ftstudio run pipeline.json` replays it headless (`workflow.runner`). Each
stage is an ordinary `Recipe`; two references tie them together and are resolved when the stage
runs: ``"@pretrain"`` as the fine-tune plan's ``source`` (the pretrain stage's run folder) and
``"@finetune"`` as the baseline's ``model`` (the fine-tuned architecture, from random weights).
With ``match_steps`` the baseline trains as many epochs as the fine-tune run ended up with, so
both see the same number of optimizer steps. ``cpu_threads`` pins torch's CPU threads: float
rounding depends on it, so the same seeds and threads give the same numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import Recipe, load_validated, read_json, save_json
from ftstudio.core.config.schema import from_dict, spec, to_dict

PIPELINE_FORMAT = "ftstudio.pipeline"
PIPELINE_VERSION = 1
PRETRAIN_REF = "@pretrain"
FINETUNE_REF = "@finetune"
STAGES = ("pretrain", "finetune", "scratch")

Which = Literal["best", "last"]


@dataclass(frozen=True)
class ComparePlan:
    """How the fine-tuned and from-scratch models are measured (what `ftstudio evaluate` does)."""

    checkpoint: Which = spec("last", help="Which checkpoint of each run is measured (last: no selection on the "
                                          "held-out images)")
    split: Literal["auto", "val", "test", "train"] = spec("auto", help="auto: the test split if the data has one, "
                                                                       "else validation")


@dataclass(frozen=True)
class ExportPlan:
    """Which model to export at the end, to which formats."""

    formats: tuple[str, ...] = spec(("onnx", "safetensors"), help="Export formats (onnx, pt2, safetensors, "
                                                                   "state-dict)")
    run: Literal["finetune", "scratch", "winner"] = spec("finetune", help="The fine-tuned model, the from-scratch "
                                                                          "one, or whichever scored higher")
    checkpoint: Which = spec("last", help="Which checkpoint to export")


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """Pretrain (optional), fine-tune, an optional from-scratch baseline, the comparison and an export."""

    format: str = spec(PIPELINE_FORMAT, help=f"Always {PIPELINE_FORMAT!r}")
    version: int = spec(PIPELINE_VERSION, min=1, max=PIPELINE_VERSION, help="Pipeline format version")
    name: str = spec("", help="A label for the pipeline")
    pretrain: Recipe | None = spec(None, help="Train a base model first (null: the fine-tune starts from a run, "
                                              "a checkpoint or torchvision weights)")
    finetune: Recipe = spec(help=f"The fine-tune run; its finetune.source {PRETRAIN_REF!r} means the pretrain "
                                 "stage's run")
    scratch: Recipe | None = spec(None, help=f"The baseline: same data, random weights; model {FINETUNE_REF!r} "
                                             "means the fine-tuned architecture")
    match_steps: bool = spec(True, help="Train the baseline for as many epochs as the fine-tune run ended up with")
    compare: ComparePlan = spec(factory=ComparePlan, help="How both models are measured")
    export: ExportPlan | None = spec(None, help="Export a model at the end (null: no export)")
    cpu_threads: int | None = spec(None, min=1, max=4096, help="torch CPU threads to train with (results depend "
                                                               "on it in the last digits)")

    def replace(self, **changes: Any) -> Pipeline:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Pipeline:
        """Validate a pipeline document; InputError names the field (``finetune.finetune.source: …``)."""
        if isinstance(data, dict) and data.get("format") != PIPELINE_FORMAT:
            raise InputError(f"format: must be {PIPELINE_FORMAT!r} (got {data.get('format')!r})")
        pipeline = from_dict(cls, data, "")
        for stage in STAGES:
            recipe = getattr(pipeline, stage)
            if recipe is not None and not isinstance(recipe.model, (str, dict)):
                raise InputError(f"{stage}.model: expected a preset name, a file path or an architecture object")
        _check_references(pipeline)
        if pipeline.export is not None:
            from ftstudio.core.export import check_formats

            try:
                check_formats(pipeline.export.formats)
            except InputError as exc:
                raise InputError(f"export.formats: {exc}") from None
            if pipeline.export.run == "scratch" and pipeline.scratch is None:
                raise InputError("export.run: 'scratch' needs a scratch stage (scratch is null)")
        return pipeline


def _check_references(p: Pipeline) -> None:
    plan = p.finetune.finetune
    if plan is None:
        raise InputError("finetune.finetune: missing; the fine-tune stage needs a plan (source, strategy…)")
    if p.pretrain is not None:
        if plan.source != PRETRAIN_REF:
            raise InputError(f"finetune.finetune.source: is {plan.source!r}, so the pretrain stage would be trained "
                             f"for nothing; use {PRETRAIN_REF!r} (or set pretrain to null)")
        if p.pretrain.finetune is not None and p.pretrain.finetune.source == PRETRAIN_REF:
            raise InputError(f"pretrain.finetune.source: {PRETRAIN_REF!r} cannot refer to the pretrain stage itself")
    elif plan.source == PRETRAIN_REF:
        raise InputError(f"finetune.finetune.source: {PRETRAIN_REF!r} refers to the pretrain stage, but pretrain "
                         "is null")
    if p.finetune.model == FINETUNE_REF or (p.pretrain is not None and p.pretrain.model == FINETUNE_REF):
        raise InputError(f"model: {FINETUNE_REF!r} is only meaningful in the scratch stage")
    if p.scratch is not None:
        if p.scratch.finetune is not None:
            raise InputError("scratch.finetune: must be null; the baseline trains from random weights")
        if p.scratch.data != p.finetune.data:
            raise InputError("scratch.data: must equal finetune.data, so both models are measured on the same "
                             "held-out images")


def is_pipeline_document(data: Any) -> bool:
    """Whether parsed JSON is a pipeline (rather than a single-run recipe)."""
    return isinstance(data, dict) and "format" in data  # a Recipe has no "format" field


def bundled_pipelines() -> list[str]:
    """Names of the pipeline recipes shipped under resources/pipelines (``ftstudio run seed``)."""
    from ftstudio.core import paths

    return sorted(p.stem for p in (paths.resources_dir() / "pipelines").glob("*.json"))


def bundled_pipeline(name: str) -> Path | None:
    """The file of a bundled pipeline called ``name`` — unless a file of that name exists here."""
    from ftstudio.core import paths

    if Path(name).expanduser().exists() or name not in bundled_pipelines():
        return None
    return paths.resources_dir() / "pipelines" / f"{name}.json"


def load_pipeline(path: str | Path) -> Pipeline:
    return load_validated(path, "pipeline", Pipeline.from_dict)


def save_pipeline(path: str | Path, pipeline: Pipeline) -> None:
    """Write atomically (validated first: a document we write always loads)."""
    Pipeline.from_dict(pipeline.to_dict())
    save_json(path, pipeline.to_dict())


# ------------------------------------------------------------------------------ resolving stages
def resolve_finetune(p: Pipeline, pretrain_run: str | Path | None) -> Recipe:
    """The fine-tune stage's recipe with ``@pretrain`` replaced by the pretrain run's folder."""
    plan = p.finetune.finetune
    assert plan is not None
    if plan.source != PRETRAIN_REF:
        return p.finetune
    if pretrain_run is None:
        raise InputError(f"finetune.finetune.source: {PRETRAIN_REF!r} needs the pretrain stage's run")
    return p.finetune.replace(finetune=dataclasses.replace(plan, source=str(pretrain_run)))


def resolve_scratch(p: Pipeline, finetune_run: str | Path) -> Recipe | None:
    """The baseline's recipe: ``@finetune`` → the fine-tuned architecture (random weights); epochs matched."""
    if p.scratch is None:
        return None
    ran = Recipe.from_dict(read_json(Path(finetune_run) / "recipe.json", "recipe"))
    recipe = p.scratch
    if recipe.model == FINETUNE_REF:
        from ftstudio.core.architecture import parse_model, strip_pretrained

        arch = strip_pretrained(parse_model(ran.model, f"{finetune_run}: architecture"))
        recipe = recipe.replace(model=arch.replace(name=arch.name or "fine-tuned architecture").to_dict())
    if p.match_steps:
        recipe = recipe.replace(train=dataclasses.replace(recipe.train, epochs=ran.train.epochs))
    return recipe
