"""The wizard's set-up pages: data (the Data page itself), the base model (the Model page) and the strategy.

The Data and Model pages are embedded through their public API, each on its own `Session`, so
whatever those pages learn (the composer included) shows up here unchanged. The Strategy page
counts the trainable parameters the plan really gives by preparing the fine-tune in the
background (`engine.prepare`: data, source weights, new head, strategy).
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QVBoxLayout, QWizardPage

from ftstudio.core.config.recipe import FinetunePlan, TrainConfig
from ftstudio.gui import dialogs
from ftstudio.gui.pages.data import DataPage
from ftstudio.gui.pages.model import ModelPage
from ftstudio.gui.state import Session
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.form import DataclassForm
from ftstudio.gui.wizard import texts
from ftstudio.gui.wizard.model import WizardModel
from ftstudio.gui.wizard.start_pages import choice_box
from ftstudio.gui.workers import Tasks

COUNT_DELAY_MS = 300  # settle the controls before preparing the model again


class DataStepPage(QWizardPage):
    """The Data page on one stage's session; Next once that data has loaded."""

    def __init__(self, session: Session, tasks: Tasks, title: str, subtitle: str) -> None:
        super().__init__()
        self.session, self.tasks = session, tasks
        self.setTitle(title)
        self.setSubTitle(subtitle)
        self.data_page = DataPage(session, tasks)
        self.data_page.open_folder_requested.connect(self._open_folder)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.data_page)
        for signal in (session.data_loaded, session.data_spec_changed, session.engine_ready):
            signal.connect(self.completeChanged)

    def _open_folder(self) -> None:
        path = dialogs.choose_folder(self, "Open an image folder (one subfolder per class)")
        if path:
            self.data_page.use_folder(path)

    def loaded(self) -> bool:
        """The session's current data spec has loaded without error."""
        return (self.session.bundle is not None and not self.data_page.busy()
                and not self.tasks.busy("data"))

    def isComplete(self) -> bool:  # noqa: N802 — Qt override
        return self.loaded()

    def cleanupPage(self) -> None:  # noqa: N802 — keep the choices when going back
        pass


class BaseModelPage(QWizardPage):
    """The architecture to pretrain (presets, a file, or the composer) and how long to pretrain it."""

    def __init__(self, session: Session, tasks: Tasks) -> None:
        super().__init__()
        self.session = session
        self.setTitle("Base model")
        self.setSubTitle("The architecture to pretrain; the fine-tune keeps it and gives it a new head.")
        self.model_page = ModelPage(tasks)
        self.model_page.set_model(session.model)
        self.model_page.set_train(session.train)
        self.model_page.changed.connect(
            lambda: session.set_model(self.model_page.model_value(), self.model_page.model_spec()))
        session.data_loaded.connect(self._update_input)
        session.train_changed.connect(lambda: self.model_page.set_train(session.train))
        box = QGroupBox("Pretraining")
        row = QHBoxLayout(box)
        self.form = DataclassForm(TrainConfig, ["epochs", "batch_size", "lr", "seed"], float_steps={"lr": 1e-4})
        self.form.set_values(session.train)
        self.form.setFixedWidth(290)
        self.form.changed.connect(
            lambda: session.set_train(dataclasses.replace(session.train, **self.form.values())))
        row.addWidget(self.form)
        row.addSpacing(16)
        row.addWidget(header_label("The defaults train the cnn preset on clean digits for 10 epochs, with random "
                                   "rotations (set on the previous page) so the features it learns hold up on "
                                   "tilted digits. Other settings (Adam, no learning-rate schedule) keep their "
                                   "defaults; the saved recipe records them all.", "hint"), 1,
                          Qt.AlignmentFlag.AlignTop)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(9, 0, 9, 0)
        bottom.addWidget(box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.model_page, 1)
        layout.addLayout(bottom)
        self._update_input()

    def _update_input(self) -> None:
        found = self.session.model_input()
        self.model_page.set_input(*(found if found else (None, 0)))

    def cleanupPage(self) -> None:  # noqa: N802
        pass


class StrategyPage(QWizardPage):
    """How to fine-tune (one sentence per strategy), the live trainable count, and the baseline switch."""

    def __init__(self, model: WizardModel, tasks: Tasks) -> None:
        super().__init__()
        self.model, self.tasks = model, tasks
        self.error = ""
        self.counted = None  # (trainable, total, strategy note, normalisation note) of the last preparation
        self.counting = False  # a preparation is under way
        self.setTitle("Fine-tuning strategy")
        self.setSubTitle("What trains, and how fast. Every strategy starts from the base model's weights.")
        box, self.radios = choice_box("Strategy", texts.STRATEGIES, model.strategy_choice(), self._strategy)
        settings = QGroupBox("Settings")
        s = QHBoxLayout(settings)
        self.plan_form = DataclassForm(FinetunePlan, ["min_steps", "backbone_lr_mult", "chance_backbone_lr_mult",
                                                     "lora_rank", "chance_lora_alpha", "unfreeze_after", "bn",
                                                     "polarity"])
        self.plan_form.changed.connect(lambda: model.set_plan(**self.plan_form.values()))
        self.train_form = DataclassForm(TrainConfig, ["lr", "batch_size", "seed"], float_steps={"lr": 1e-4})
        self.train_form.changed.connect(self._train_edited)
        for form in (self.plan_form, self.train_form):
            form.setFixedWidth(330)
            s.addWidget(form, 0, Qt.AlignmentFlag.AlignTop)
            s.addSpacing(24)
        s.addStretch(1)
        self.count = header_label("Counting trainable parameters…")
        self.count.setToolTip("Prepared exactly as training will: the base weights, the new head, the strategy")
        self.note = header_label("", "hint")
        self.norm = header_label("", "hint")  # frozen BatchNorm layers: what happens (finetune.normalisation)
        self.norm.setToolTip(texts.NORMALISATION_TIP)
        self.banner = Banner()
        self.scratch = QCheckBox(texts.SCRATCH)
        self.scratch.setToolTip(texts.SCRATCH_TIP)
        self.scratch.setChecked(model.scratch)
        self.scratch.toggled.connect(lambda on: model.set(scratch=on))
        self.registerField("scratch", self.scratch)
        layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addWidget(settings)
        layout.addWidget(self.count)
        layout.addWidget(self.note)
        layout.addWidget(self.norm)
        layout.addWidget(self.banner)
        layout.addWidget(self.scratch)
        layout.addStretch(1)
        self.timer = QTimer(self, singleShot=True, interval=COUNT_DELAY_MS)
        self.timer.timeout.connect(self.recount)
        model.changed.connect(self._model_changed)

    def initializePage(self) -> None:  # noqa: N802
        self.plan_form.set_values(self.model.plan)
        self.train_form.set_values(self.model.finetune.train)
        self.radios[self.model.strategy_choice()].setChecked(True)
        self._enable()
        self.recount()

    def cleanupPage(self) -> None:  # noqa: N802
        pass

    def _strategy(self, key: str) -> None:
        self.model.set_strategy(key)
        self.plan_form.set_values(self.model.plan)
        self._enable()

    def _train_edited(self) -> None:
        session = self.model.finetune
        session.set_train(dataclasses.replace(session.train, **self.train_form.values()))

    def _enable(self) -> None:
        choice = self.model.strategy_choice()
        for field in ("backbone_lr_mult", "chance_backbone_lr_mult"):
            self.plan_form.set_field_enabled(field, choice in ("full", "gradual"))
        for field in ("lora_rank", "chance_lora_alpha"):
            self.plan_form.set_field_enabled(field, choice == "lora")
        self.plan_form.set_field_enabled("unfreeze_after", choice == "gradual")

    def _model_changed(self) -> None:
        if self.wizard() is not None and self.wizard().currentPage() is self:
            self.count.setText("Counting trainable parameters…")
            self.timer.start()
            self.completeChanged.emit()

    def recount(self) -> None:
        """Prepare the fine-tune in the background and show how many parameters will train."""
        from ftstudio.core.errors import InputError

        try:
            recipe = self.model.finetune_recipe(self.model.runs.get("pretrain"))
        except InputError as exc:
            self._counted_failed(str(exc))
            return

        def work(cancel):
            from ftstudio.core.engine import prepare

            prepared = prepare(recipe, cancel=cancel)
            params = list(prepared.model.parameters())
            trainable = sum(p.numel() for p in params if p.requires_grad)
            def first(prefix: str) -> str:
                return next((n for n in prepared.notes if n.startswith(prefix)), "")
            note = first("strategy")
            # the base scores about chance on the new images: chance_backbone_lr_mult / chance_lora_alpha applied
            raised, alpha = prepared.summary.get("backbone_lr_mult"), prepared.summary.get("lora_alpha")
            instead = [f"the backbone trains at {raised:g}× instead (“… if the base is at chance”)"] if raised else []
            if alpha:
                instead.append(f"the adapters are scaled by alpha {alpha:g} instead (“LoRA alpha if at chance”)")
            if instead:
                note += "; but as the base scores about chance on these images, " + "; ".join(instead)
            norm = " ".join(_sentence(n) + ("" if n.endswith(".") else ".")
                            for n in (first("input polarity"), first("normalisation")) if n)
            return trainable, sum(p.numel() for p in params), note, norm, first("warning:")

        self.counting = True
        task = self.tasks.start("trainable", work)  # supersedes an older count (its result is dropped)
        task.done.connect(self._counted)
        task.failed.connect(self._counted_failed)
        self.completeChanged.emit()

    def _counted(self, result) -> None:
        trainable, total, note, norm = self.counted = result[:4]
        self.norm.setText(norm)
        self.error, self.counting = "", False
        warning = result[4].removeprefix("warning: ")
        if warning:  # the base model scores about chance on the new images: little of it transfers
            self.banner.show_message("warning", _sentence(warning))
        else:
            self.banner.clear()
        self.count.setText(f"<b>{trainable:,}</b> of {total:,} parameters will train "
                           f"({100 * trainable / max(total, 1):.1f}%)")
        what, _, rest = note.partition(" — ")  # the count is already above; keep what trains and what joins later
        later = rest.partition("; ")[2]
        self.note.setText(what + (f"; {later}" if later else ""))
        self.completeChanged.emit()

    def _counted_failed(self, message: str) -> None:
        self.counted, self.error, self.counting = None, message, False
        self.count.setText("The fine-tune cannot start with these settings:")
        self.note.setText("")
        self.norm.setText("")
        self.banner.show_message("error", message)
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802
        """Not while counting: preparing seeds torch's global generator, which the fine-tune run is about to
        use — both at once would make the run's numbers depend on timing."""
        return not self.error and not self.timer.isActive() and not self.counting


def _sentence(note: str) -> str:
    """An engine note ("normalisation: …", "the source scores …") as a sentence on the page."""
    return note[:1].upper() + note[1:]
