"""What the wizard is building: the start choice, each stage's settings, and the runs made so far.

Pages edit this object (never hold the only copy); it turns into core recipes — the recipes the
wizard trains, and the `Pipeline` document "Save recipe" writes, which `ftstudio run` replays.
The two Sessions are the Data and Model pages' own state objects, so those pages embed unchanged.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ftstudio.core.workflow.demo import default_pipeline
from ftstudio.core.workflow.pipeline import FINETUNE_REF, PRETRAIN_REF, ExportPlan, Pipeline, resolve_scratch
from ftstudio.core.config.recipe import FinetunePlan, Recipe
from ftstudio.gui.state import Session

TORCHVISION_WEIGHTS = ("cache", "file", "none")  # ImageNet weights from torch's cache, a chosen file, random init
GRADUAL_AFTER = 20  # epochs of head-only training before the backbone joins (few-shot: 1 step per epoch)
DONE = ("completed", "early_stopping")


class PageId(IntEnum):
    """The wizard's pages; the order is the default path, ``nextId`` branches after Start."""

    START = 0
    PRETRAIN_DATA = 1
    BASE_MODEL = 2
    PRETRAIN = 3
    TORCHVISION = 4
    EARLIER_RUN = 5
    FINETUNE_DATA = 6
    STRATEGY = 7
    FINETUNE = 8
    RESULTS = 9


class WizardModel(QObject):
    """See the module docstring. ``changed`` fires when anything a recipe depends on changes."""

    changed = Signal()

    def __init__(self, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        base = default_pipeline("wizard")
        self.device = device
        self.name = "digits → shifted digits"
        self.start = "pretrain"  # see texts.START_CHOICES
        self.pretrain = Session(self)  # data spec, model, training settings of the pretrain stage
        self.finetune = Session(self)  # data spec and training settings of the fine-tune (and scratch) stage
        self._load(self.pretrain, base.pretrain)
        self._load(self.finetune, base.finetune)
        self.plan: FinetunePlan = base.finetune.finetune
        self.gradual = False  # "gradual unfreezing": strategy full + unfreeze_after
        self.backbone = "resnet18"
        self.weights = "cache"
        self.weights_file = ""
        self.earlier_run = ""
        self.earlier_checkpoint = "best"
        self.scratch = True
        self.export = base.export or ExportPlan()
        self.runs: dict[str, Path] = {}  # stage → run folder of the run that finished
        for session in (self.pretrain, self.finetune):
            for signal in (session.data_spec_changed, session.model_changed, session.train_changed):
                signal.connect(self.changed)

    @staticmethod
    def _load(session: Session, recipe: Recipe) -> None:
        session.data_spec, session.train = recipe.data, recipe.train
        if recipe.finetune is None:
            session.set_model(recipe.model)

    def load_pipeline(self, p: Pipeline) -> None:
        """Take a pipeline document's stages and settings (the Start page's "Open the seed's example")."""
        if p.pretrain is not None:
            self._load(self.pretrain, p.pretrain)
        self._load(self.finetune, p.finetune)
        plan = p.finetune.finetune
        assert plan is not None
        self.gradual = plan.strategy == "full" and plan.unfreeze_after is not None
        self.plan = plan
        self.start = "pretrain" if p.pretrain is not None else self.start
        self.name = p.name or self.name
        self.scratch = p.scratch is not None
        self.export = p.export or self.export
        self.changed.emit()

    # ------------------------------------------------------------------------ editing
    def set(self, **values) -> None:
        """Change plain attributes (``start``, ``backbone``, ``scratch`` …) and announce it."""
        for key, value in values.items():
            if not hasattr(self, key):
                raise AttributeError(key)
            setattr(self, key, value)
        self.changed.emit()

    def set_strategy(self, choice: str) -> None:
        """``head`` / ``full`` / ``lora`` / ``gradual`` (full with the backbone joining later)."""
        self.gradual = choice == "gradual"
        strategy = "full" if self.gradual else choice
        after = (self.plan.unfreeze_after or GRADUAL_AFTER) if self.gradual else None
        self.set_plan(strategy=strategy, unfreeze_after=after)

    def strategy_choice(self) -> str:
        return "gradual" if self.gradual else self.plan.strategy

    def set_plan(self, **changes) -> None:
        """Change the fine-tune plan; the step count sets the epochs as `ftstudio demo` does (few-shot data
        makes one step per epoch, so ``min_steps`` decides the length)."""
        plan = dataclasses.replace(self.plan, **changes)
        if plan != self.plan:
            if plan.min_steps != self.plan.min_steps:
                from ftstudio.core.workflow.demo import finetune_epochs

                train = self.finetune.train
                self.finetune.train = dataclasses.replace(train, epochs=finetune_epochs(plan.min_steps))
            self.plan = plan
            self.changed.emit()

    # ------------------------------------------------------------------------ recipes
    def _prefix(self) -> str:
        return "wizard"

    def pretrain_recipe(self) -> Recipe:
        s = self.pretrain
        return Recipe.from_dict(Recipe(name=f"{self._prefix()}-pretrain-{s.data_label()}", data=s.data_spec,
                                       model=s.model, train=self._train(s)).to_dict())

    def source(self, pretrain_run: str | Path | None = None) -> tuple[str, str, str | None]:
        """(source, checkpoint, weights) of the fine-tune plan; ``pretrain_run`` None gives ``@pretrain``."""
        if self.start == "torchvision":
            weights = {"cache": None, "file": self.weights_file or None, "none": "none"}[self.weights]
            name = self.backbone if ":" in self.backbone else f"torchvision:{self.backbone}"
            return name, "best", weights
        if self.start == "earlier":
            return self.earlier_run, self.earlier_checkpoint, None
        return (str(pretrain_run) if pretrain_run else PRETRAIN_REF), self.plan.checkpoint, None

    def finetune_recipe(self, pretrain_run: str | Path | None = None) -> Recipe:
        """The fine-tune stage; with ``pretrain_run`` its source is that folder (else ``@pretrain``)."""
        source, checkpoint, weights = self.source(pretrain_run)
        plan = dataclasses.replace(self.plan, source=source, checkpoint=checkpoint, weights=weights)
        s = self.finetune
        name = f"{self._prefix()}-finetune-{self.strategy_choice()}-{s.data_label()}"
        return Recipe.from_dict(Recipe(name=name, data=s.data_spec, train=self._train(s), finetune=plan).to_dict())

    def scratch_template(self) -> Recipe | None:
        if not self.scratch:
            return None
        s = self.finetune
        return Recipe(name=f"{self._prefix()}-scratch-{s.data_label()}", model=FINETUNE_REF, data=s.data_spec,
                      train=self._train(s))

    def scratch_recipe(self, finetune_run: str | Path) -> Recipe | None:
        """The baseline as the pipeline runs it: the fine-tuned architecture, random weights, same steps."""
        return resolve_scratch(self.pipeline(), finetune_run)

    def _train(self, session: Session):
        return dataclasses.replace(session.train, device=self.device)

    def pipeline(self, cpu_threads: int | None = None) -> Pipeline:
        """The whole pipeline as a document (stage references instead of this computer's run folders)."""
        own = self.start == "pretrain"
        return Pipeline(name=self.name, pretrain=self.pretrain_recipe() if own else None,
                        finetune=self.finetune_recipe(), scratch=self.scratch_template(), export=self.export,
                        cpu_threads=cpu_threads)

    def stage_done(self, stage: str) -> bool:
        from ftstudio.core.runs.folders import Run

        path = self.runs.get(stage)
        return path is not None and Run(path).read_summary().get("status") in DONE
