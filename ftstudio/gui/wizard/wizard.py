"""The pretrain → fine-tune wizard: a QWizard over a `WizardModel`, from the choice to the comparison.

Pages (ids in `PageId`): Start → [Pretrain data → Base model → Pretrain | torchvision weights |
an earlier run] → Fine-tune data → Strategy → Fine-tune (+ from scratch) → Results. Training and
every slow job run through `workers` (the only place that makes threads); Cancel, closing and
`shutdown` stop the run in progress and join every thread before the wizard goes away.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QWidget, QWizard

from ftstudio.gui import dialogs, theme
from ftstudio.gui.screen_fit import resize_to_fit
from ftstudio.gui.wizard import texts
from ftstudio.gui.wizard.model import PageId, WizardModel
from ftstudio.gui.wizard.results_page import ResultsPage
from ftstudio.gui.wizard.setup_pages import BaseModelPage, DataStepPage, StrategyPage
from ftstudio.gui.wizard.start_pages import EarlierRunPage, StartPage, TorchvisionPage
from ftstudio.gui.wizard.training_page import TrainingStepPage
from ftstudio.gui.workers import Tasks

SIZE = (1180, 780)


class PipelineWizard(QWizard):
    """See the module docstring. ``devices`` (from a window whose engine has loaded) skips loading it again."""

    def __init__(self, parent: QWidget | None = None, device: str = "auto", devices: list | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pretrain & fine-tune wizard")
        self.setWindowIcon(theme.icon("ftstudio"))
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.model = WizardModel(device, self)
        self.tasks = Tasks(self)  # short jobs: engine, model analysis, trainable count, measuring, export
        self.data_tasks = {"pretrain": Tasks(self), "finetune": Tasks(self)}  # each Data page loads on its own
        self.ready = False
        m = self.model
        self.pages_: dict[PageId, object] = {
            PageId.START: StartPage(m),
            PageId.PRETRAIN_DATA: DataStepPage(m.pretrain, self.data_tasks["pretrain"], "Pretraining data",
                                               "A large, general dataset the base model learns from (default: "
                                               "clean digits, with random rotations)."),
            PageId.BASE_MODEL: BaseModelPage(m.pretrain, self.tasks),
            PageId.PRETRAIN: TrainingStepPage(m, lambda: [("pretrain", m.pretrain_recipe)], {"pretrain": "Pretraining"},
                                              lambda: m.pretrain_recipe().to_dict(), PageId.FINETUNE_DATA,
                                              "Pretraining", "The base model learns general features; watch it "
                                                             "live."),
            PageId.TORCHVISION: TorchvisionPage(m, self.tasks),
            PageId.EARLIER_RUN: EarlierRunPage(m),
            PageId.FINETUNE_DATA: DataStepPage(m.finetune, self.data_tasks["finetune"], "Fine-tuning data",
                                               "Your task: another dataset, a subset of classes, or only a few "
                                               "images per class (default: 5 shifted digits per class)."),
            PageId.STRATEGY: StrategyPage(m, self.tasks),
            PageId.FINETUNE: TrainingStepPage(m, self._finetune_stages, {"finetune": "Fine-tuning",
                                                                         "scratch": "From scratch"},
                                              self._finetune_key, PageId.RESULTS, "Fine-tuning",
                                              "The fine-tune run, then the same model from scratch on the same "
                                              "images for the same number of steps."),
            PageId.RESULTS: ResultsPage(m, self.tasks),
        }
        for page_id, page in self.pages_.items():
            self.setPage(int(page_id), page)
        self.setStartId(int(PageId.START))
        resize_to_fit(self, SIZE, parent)  # Next and Cancel stay on a 1024×640 screen
        self._load_engine(devices)

    def page_(self, page_id: PageId):
        return self.pages_[page_id]

    # --------------------------------------------------------------------------- stages
    def _finetune_stages(self):
        m = self.model
        stages = [("finetune", lambda: m.finetune_recipe(m.runs.get("pretrain")))]
        if m.scratch:
            stages.append(("scratch", lambda: m.scratch_recipe(m.runs["finetune"])))
        return stages

    def _finetune_key(self):
        m = self.model
        scratch = m.scratch_template()
        return [m.finetune_recipe(m.runs.get("pretrain")).to_dict(), scratch.to_dict() if scratch else None]

    def training_pages(self) -> list[TrainingStepPage]:
        return [self.pages_[PageId.PRETRAIN], self.pages_[PageId.FINETUNE]]

    # --------------------------------------------------------------------------- engine
    def _load_engine(self, devices: list | None) -> None:
        if devices:
            self._engine_loaded(devices)
            return

        from ftstudio.gui.state import load_engine

        task = self.tasks.start("engine", lambda cancel: load_engine())
        task.done.connect(self._engine_loaded)

    def _engine_loaded(self, devices: list) -> None:
        self.ready = True
        for session in (self.model.pretrain, self.model.finetune):
            session.set_engine_ready(devices)

    def settled(self) -> bool:
        """Engine loaded and no background job left (for screenshots and tests)."""
        return self.ready and not self.tasks.busy() and not any(t.busy() for t in self.data_tasks.values())

    def running(self) -> bool:
        return any(page.runner.running for page in self.training_pages())

    def result_run(self) -> Path | None:
        """The fine-tuned run, once there is one (the window selects it on the Runs page)."""
        return self.model.runs.get("finetune")

    # ------------------------------------------------------------------------- closing
    def reject(self) -> None:
        """Cancel: ask when training runs, then stop it and join every thread before closing."""
        if self.running() and not dialogs.confirm(self, "Training in progress", texts.CANCEL_RUNNING,
                                                  "Stop and close"):
            return
        self.shutdown()
        super().reject()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event) -> None:  # noqa: N802 — Qt override: the title bar's close button
        if self.running() and not dialogs.confirm(self, "Training in progress", texts.CANCEL_RUNNING,
                                                  "Stop and close"):
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop any run (its checkpoint is kept) and join every thread; safe to call twice."""
        for page in self.training_pages():
            page.shutdown()
        for tasks in (self.tasks, *self.data_tasks.values()):
            tasks.shutdown()
