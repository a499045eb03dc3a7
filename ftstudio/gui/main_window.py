"""The main window: the pages and the wiring between them (the sidebar that switches them: `navigation`;
its toolbar, menus and status bar: `chrome`; the offer after running out of memory: `batch_size_offer`).

It owns the session (the recipe being edited), the background tasks and the run controller,
imports torch in the background after it is shown, makes the pages it does not need at start
(Build data, Runs, Export, Try) the first time they are shown or asked for (`PageStack`),
persists geometry and last choices, takes folders dropped on it, and on close stops a running run
(after asking) and joins every thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QApplication, QHBoxLayout, QMainWindow, QMessageBox, QVBoxLayout, QWidget

from ftstudio import __version__
from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import load_recipe
from ftstudio.core.runs.folders import Run
from ftstudio.gui import dialogs, theme
from ftstudio.gui.chrome import AfterFirstPaint, build_bars, make_actions, memory_text
from ftstudio.gui.live import LiveRun
from ftstudio.gui.navigation import PAGES, PageStack, build_navigation
from ftstudio.gui.pages.data import DataPage
from ftstudio.gui.pages.model import ModelPage
from ftstudio.gui.pages.train import TrainPage
from ftstudio.gui.screen_fit import resize_to_fit
from ftstudio.gui.settings import settings, take_notices
from ftstudio.gui.state import Session, load_engine, warm_up_training
from ftstudio.gui.widgets.relabel import DeferredRelabeler
from ftstudio.gui.widgets.drops import local_paths
from ftstudio.gui.workers import Outcome, RunController, Tasks

class MainWindow(QMainWindow):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("ftstudio")
        self.setWindowIcon(theme.icon("ftstudio"))
        self.setAcceptDrops(True)
        self.persist = True  # save geometry and choices on close (screenshots turn it off)
        self.warm_up = True  # import ahead what Start needs, once usable (a screenshot, which closes then, does not)
        self.session = Session(self)
        self.tasks = Tasks(self)
        self.controller = RunController(self)
        store = settings()
        self.session.restore(store)
        self.actions_ = make_actions(self)
        self._restored = False  # pages made from here until _restore_window's end get its settings there
        self._build(store)
        self._wire()
        self._restore_window(store)  # (the pages' settings too: the model's file names the document)
        self._show_document()  # the title names the network (the platform adds the app's name)
        self._update_actions()
        notices = take_notices()  # a settings file that was set aside: say so, and that defaults are used
        if notices:
            self.statusBar().showMessage(" · ".join(notices), 120_000)
        self.memory_timer = QTimer(self, interval=1000)
        self.memory_timer.timeout.connect(self._update_status)
        self.memory_timer.start()
        # torch's import holds the GIL for over a second: start it once the window has painted, so the
        # first frame is not held up (or after a moment, for a window that is never shown)
        self._first_paint = AfterFirstPaint(self, self._load_engine)

    # ----------------------------------------------------------------------------- build
    def _build(self, store) -> None:
        self.relabeler = DeferredRelabeler(lambda: self.dataset_page, self)  # the galleries' "Move to class"
        self.pages = PageStack(self._page_factories(), self._page_made)
        self.stack = self.pages.widget
        self.data_page = self.pages["data"]  # the pages start-up shows or feeds: made now
        self.model_page = self.pages["model"]
        self.train_page = self.pages["train"]
        self.sidebar = build_navigation(self, self.show_page)
        self.sidebar.currentRowChanged.connect(self._page_changed)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        column = QVBoxLayout()
        column.setSpacing(0)
        self.wizard = None
        self.wizard_offer = None
        if not store.value("wizard/offered", False, type=bool):  # first launch: offer the wizard once
            from ftstudio.gui.wizard.offer import WizardOffer

            self.wizard_offer = WizardOffer()
            self.wizard_offer.open_requested.connect(self.open_wizard)
            column.addWidget(self.wizard_offer)
        column.addWidget(self.stack, 1)
        layout.addLayout(column, 1)
        self.setCentralWidget(central)

        bars = build_bars(self, self.actions_, self.model_page.actions_, self._device_changed, self._about)
        self.device = bars.device
        self.status_device, self.status_run = bars.status_device, bars.status_run
        self.status_progress, self.status_memory = bars.status_progress, bars.status_memory

    def _page_factories(self) -> dict:
        def dataset():
            from ftstudio.gui.pages.dataset import DatasetPage

            return DatasetPage(self.tasks, undo_stack=self.relabeler.undo_stack)

        def runs():
            from ftstudio.gui.pages.runs import RunsPage

            return RunsPage(self.tasks)

        def export():
            from ftstudio.gui.pages.export import ExportPage

            return ExportPage(self.tasks)

        def try_():
            from ftstudio.gui.pages.try_page import TryPage

            return TryPage(self.tasks)

        return {"data": lambda: DataPage(self.session, self.tasks), "model": lambda: ModelPage(self.tasks),
                "train": lambda: TrainPage(self.session, self.actions_),
                "dataset": dataset, "runs": runs, "export": export, "try": try_}

    def _page_made(self, key: str, page) -> None:
        """Wire a page just made (at start, or the first time it is shown or asked for)."""
        s = self.session
        if key == "dataset":
            self.relabeler.attach(page)
            page.train_requested.connect(self._train_on_built)
            page.edited.connect(self._built_data_edited)
        elif key == "runs":
            page.resume_requested.connect(self.resume_run)
            page.mistakes.open_in_try.connect(self.open_in_try)
            page.mistakes.set_relabeler(self.relabeler)  # mistakes of built datasets move to their class
            page.reuse_requested.connect(self.reuse_settings)
            page.renamed.connect(lambda path: self.pages.made("export") and self.export_page.refresh())
            page.set_busy_run(self.controller.run_path if self.controller.running else None)
        elif key == "export":
            s.engine_ready.connect(page.load_formats)
            if s.ready:
                page.load_formats()
        elif key == "try":
            page.set_relabeler(self.relabeler)
        if self._restored:
            page.restore_settings(settings())

    # the pages made on first need (see PageStack): asking for one makes it
    dataset_page = property(lambda self: self.pages["dataset"])
    runs_page = property(lambda self: self.pages["runs"])
    export_page = property(lambda self: self.pages["export"])
    try_page = property(lambda self: self.pages["try"])

    def _wire(self) -> None:
        s, c = self.session, self.controller
        self.data_page.open_folder_requested.connect(self.open_folder)
        page = self.model_page
        page.changed.connect(self._architecture_edited)
        page.document_changed.connect(self._show_document)
        s.model_changed.connect(self._model_changed)
        s.data_loaded.connect(self._update_model_input)
        s.train_changed.connect(lambda: self.model_page.set_train(s.train))
        c.state_changed.connect(self._state_changed)
        c.prepared.connect(self.train_page.on_prepared)
        c.prepared.connect(lambda preview: self._show_run(preview.run_path))
        c.progress.connect(self.train_page.on_progress)
        c.finished.connect(self._run_ended)
        c.failed.connect(self._run_ended)
        self.model_page.set_model(s.model)
        self.model_page.set_train(s.train)

    def _restore_window(self, store) -> None:
        geometry = store.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            resize_to_fit(self, (1280, 800))
        state = store.value("window/state")
        if state is not None:
            self.restoreState(state)
        page = store.value("window/page", "data")
        self.show_page(page if page in PAGES else "data")
        for page in self.pages:
            page.restore_settings(store)
        self._restored = True

    def save_settings(self) -> None:
        store = settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState())
        store.setValue("window/page", self.current_page())
        store.setValue("wizard/offered", True)
        for page in self.pages:
            page.save_settings(store)
        self.session.save(store)
        store.sync()

    # ----------------------------------------------------------------------------- pages
    def open_in_try(self, run: Path, mistake) -> None:
        """A gallery's misclassified image on the Try page, with its explanation."""
        self.show_page("try")
        self.try_page.open_mistake(run, mistake)

    def show_page(self, key: str) -> None:
        self.sidebar.setCurrentRow(PAGES.index(key))

    def current_page(self) -> str:
        return PAGES[max(self.sidebar.currentRow(), 0)]

    def _page_changed(self, row: int) -> None:
        key = PAGES[row]
        self.pages.show(key)
        if key == "runs":
            self.runs_page.refresh()
        elif key == "export":
            self.export_page.refresh()
        elif key == "try":
            self.try_page.refresh()

    # ---------------------------------------------------------------------------- engine
    def _load_engine(self) -> None:
        task = self.tasks.start("engine", lambda cancel: load_engine())
        task.done.connect(self._engine_loaded)
        task.failed.connect(lambda message: self.data_page.banner.show_message(
            "error", f"The training engine (PyTorch) could not be loaded: {message}"))

    @Slot(object)
    def _engine_loaded(self, devices: list) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        for d in devices:
            self.device.addItem(d.label, d.name)
        self.device.setCurrentIndex(max(self.device.findData(self.session.device), 0))
        self.device.blockSignals(False)
        self._device_changed()
        self.session.set_engine_ready(devices)
        self._update_actions()
        self._build_plots_when_idle()

    def _build_plots_when_idle(self) -> None:
        # the plots are made once start-up work has settled: made while torch imported they held the GIL
        # the import needed and delayed "ready" by as much; made here they are ready before a first run
        # needs them (begin() builds them anyway). pyqtgraph is imported here, on the GUI thread, though
        # it blocks the usable window for ~0.2-0.35 s once: imported on a worker, its copying of every
        # PySide6 attribute raced the GUI thread's own use of Qt's lazily made types and crashed the app
        # (SIGSEGV in pyqtgraph.Qt._copy_attrs, 1 start in 86 under load; a CI run failed on it)
        if self.tasks.closed:  # the window is closing: nothing more to make
            return
        if not self.settled():
            QTimer.singleShot(100, self, self._build_plots_when_idle)
            return
        self.train_page.plots.build()
        self._warm_up_training()

    def _warm_up_training(self) -> None:
        """Once the window is usable, import quietly what Start would otherwise wait for (`warm_up_training`)."""
        if self.warm_up and "torch._dynamo" not in sys.modules and not self.controller.running \
                and not self.tasks.busy("warm-up"):
            self.tasks.start("warm-up", lambda cancel: warm_up_training(), quiet=True)

    def _device_changed(self, *_) -> None:
        self.session.device = self.device.currentData() or "auto"
        self.model_page.set_data(self.session.bundle, self.session.device)
        self.status_device.setText(f"Device: {self.device.currentText()}")

    def _architecture_edited(self) -> None:
        page = self.model_page
        self.session.set_finetune(page.finetune_plan())
        self.session.set_model(page.model_value(), page.model_spec())

    def _show_document(self) -> None:
        # the platform appends " — ftstudio" (the application's display name): saying it here showed it twice
        self.setWindowTitle(f"{self.model_page.title()}[*]")
        self.setWindowModified(self.model_page.dirty())

    def _model_changed(self) -> None:
        if self.model_page.model_value() != self.session.model:
            self.model_page.set_model(self.session.model)
        self._update_model_input()

    def _update_model_input(self) -> None:
        found = self.session.model_input()
        self.model_page.set_data(self.session.bundle, self.session.device)
        self.model_page.set_input(*(found if found else (None, 0)))

    def settled(self) -> bool:
        """True once startup work is done (engine loaded, data and model shown): for screenshots."""
        return self.session.ready and not self.tasks.busy() and not any(p.busy() for p in self.pages)

    # ---------------------------------------------------------------------------- runs
    def start_training(self, callbacks: tuple = ()) -> None:
        """Train the session's recipe (``callbacks``: extra engine callbacks, e.g. from a wizard)."""
        if self._refuse_second_run("start another"):
            return
        try:
            recipe = self.session.recipe()
        except InputError as exc:
            self.show_page("train")
            self.train_page.banner.show_message("error", f"Cannot start: {exc}")
            return
        self._begin(recipe, None, False, f"Training {recipe.name}", callbacks=tuple(callbacks))

    def resume_run(self, path: Path) -> None:
        if self._refuse_second_run("resume another"):
            return
        run = Run(Path(path))
        try:
            recipe = load_recipe(run.recipe_path)
        except InputError as exc:
            self.runs_page.banner.show_message("error", f"Cannot resume: {exc}")
            return
        # its curves so far are read in the background: a long run's metrics (190 MB for 10 million steps)
        # took seconds to parse on this thread
        self._show_run(run.path)  # Resume is off meanwhile
        task = self.tasks.start("resume-history", lambda cancel: _history(run))
        task.done.connect(lambda history: self._resume_with(recipe, run, history))
        task.failed.connect(lambda message: (self.runs_page.set_busy_run(None),
                                             self.runs_page.banner.show_message("error", f"Cannot resume: {message}")))

    def _resume_with(self, recipe, run: Run, history: LiveRun) -> None:
        if self.controller.running:  # another run started while the history was read
            self._refuse_second_run("resume another")
            return
        self._begin(recipe, run.path, True, f"Resuming {recipe.name or run.id}", history)

    def _refuse_second_run(self, what: str) -> bool:
        """One run at a time (two would share the cores and both crawl): say so where it shows."""
        if not self.controller.running:
            return False
        self.show_page("train")
        self.train_page.banner.show_message(
            "warning", f"A run is already in progress; stop it (Esc) or wait for it to finish before you {what}.")
        return True

    def _begin(self, recipe, out: Path | None, resume: bool, title: str, history=None, callbacks=()) -> None:
        self.train_page.begin(title, history)
        self.show_page("train")
        self.status_run.setText(f"Run: {recipe.name}")
        self.controller.start(recipe, out, resume, callbacks)
        if out is not None:
            self._show_run(out)

    def _show_run(self, path: Path) -> None:
        if self.pages.made("runs"):  # (made later, the page asks the controller)
            self.runs_page.set_busy_run(path)
        self.status_run.setText(f"Run: {Path(path).name}")

    def reuse_settings(self, path: Path) -> None:
        """Load a past run's data, model and hyper-parameters into the editors."""
        from ftstudio.core.architecture.presets import preset_names

        run = Run(Path(path))
        try:
            recipe = load_recipe(run.recipe_path)
        except InputError as exc:
            self.runs_page.banner.show_message("error", str(exc))
            return
        label = run.read_summary().get("model")
        model = label if isinstance(label, str) and label in preset_names() else recipe.model
        self.session.run_name = ""
        self.session.set_data_spec(recipe.data)
        self.session.set_model(model)
        self.session.set_train(recipe.train)
        self.train_page.show_config()
        self.show_page("train")

    def open_wizard(self):
        """Open the pretrain → fine-tune wizard (one at a time, window-modal); returns it."""
        from ftstudio.gui.wizard import PipelineWizard

        if self.wizard is not None:
            self.wizard.raise_()
            return self.wizard
        if self._refuse_second_run("open the wizard"):
            return None
        if self.wizard_offer is not None:
            self.wizard_offer.hide()
        self.wizard = PipelineWizard(self, self.session.device, self.session.devices if self.session.ready else None)
        self.wizard.setWindowModality(Qt.WindowModality.WindowModal)
        self.wizard.finished.connect(self._wizard_closed)
        from ftstudio.gui.wizard.model import PageId

        # a mistake opened in the wizard's gallery waits on the Try page behind the wizard
        self.wizard.page_(PageId.RESULTS).mistakes.open_in_try.connect(self.open_in_try)
        self.wizard.page_(PageId.RESULTS).mistakes.set_relabeler(self.relabeler)
        self.wizard.show()
        return self.wizard

    def _wizard_closed(self, *_) -> None:
        """The wizard's runs are ordinary runs: show them (the fine-tuned one selected) in the history."""
        wizard, self.wizard = self.wizard, None
        self.runs_page.refresh()
        self.export_page.refresh()
        if wizard is not None and wizard.result_run() is not None:
            self.runs_page.select(wizard.result_run())
            self.show_page("runs")
        if wizard is not None:
            wizard.deleteLater()

    @Slot(object)
    def _run_ended(self, outcome: Outcome) -> None:
        self.train_page.end(outcome)
        self.runs_page.set_busy_run(None)
        self.runs_page.refresh()
        if outcome.run_path is not None:
            self.runs_page.select(outcome.run_path)
        self.export_page.refresh(select=outcome.run_path)
        self.status_run.setText(f"Run: {outcome.run_path.name if outcome.run_path else '–'} ({outcome.status})")
        self._update_status()
        if outcome.status == "failed" and outcome.summary.get("failed_kind") == "out_of_memory":
            from ftstudio.gui.batch_size_offer import offer_batch_search

            offer_batch_search(self, self.session, self.tasks, self.train_page.banner)

    def _state_changed(self, state: str) -> None:
        self.train_page.set_state(state)
        self._update_actions()
        self._update_status()

    def _update_actions(self) -> None:
        state = self.controller.state
        running = self.controller.running
        self.actions_["start"].setEnabled(not running and self.session.ready)
        self.actions_["pause"].setEnabled(state == "running")
        self.actions_["resume"].setEnabled(state == "paused")
        self.actions_["stop"].setEnabled(running and state != "stopping")
        self.device.setEnabled(not running)

    def _update_status(self) -> None:
        self.status_memory.setText(memory_text(self.session.ready))
        live = self.train_page.live
        self.status_progress.setValue(round(live.progress.fraction() * 1000))
        training_on = f" — training on {live.device}" if self.controller.running and live.device else ""
        self.status_device.setText(f"Device: {self.device.currentText()}{training_on}")

    # --------------------------------------------------------------------------- folders
    def _built_data_edited(self) -> None:
        """A relabel (or any edit) of the dataset the Data page shows: reload it, so its counts and
        samples are the folder's, not the ones loaded before."""
        built = self.dataset_page.dataset  # (an edit comes from the page, so it is made)
        if built is not None and Path(self.session.data_spec.name).expanduser().resolve() == built.root.resolve():
            self.data_page.load()

    def _train_on_built(self, path: str) -> None:
        self.data_page.use_folder(path)
        self.show_page("data")

    def open_folder(self) -> None:
        path = dialogs.choose_folder(self, "Open an image folder (one subfolder per class)",
                                     str(Path(self.session.data_spec.name).parent))
        if path:
            self.data_page.use_folder(path)
            self.show_page("data")

    @staticmethod
    def _dropped_folder(event) -> str | None:
        return next((p for p in local_paths(event.mimeData()) if Path(p).is_dir()), None)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 — Qt override
        if self._dropped_folder(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        folder = self._dropped_folder(event)
        if folder:
            self.data_page.use_folder(folder)
            self.show_page("data")
            event.acceptProposedAction()

    # -------------------------------------------------------------------------- closing
    def _about(self) -> None:
        QMessageBox.about(self, "About ftstudio", f"<b>ftstudio {__version__}</b><p>Train and fine-tune PyTorch "
                          "models, watch them learn, export them.</p>")

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (event.Type.PaletteChange, event.Type.ApplicationPaletteChange):
            app, sheet = QApplication.instance(), theme.style_sheet()
            if app.styleSheet() != sheet:  # its disabled-text colour follows the palette (unchanged: no re-polish)
                app.setStyleSheet(sheet)
            for page in self.pages:
                page.restyle()
        super().changeEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.model_page.dirty() and not dialogs.confirm(
                self, "Unsaved architecture", f"The architecture “{self.model_page.title()}” has unsaved changes. "
                "Quit without saving it? (Its last state is kept for next time, but not in its file.)",
                "Quit without saving"):
            event.ignore()
            return
        if self.controller.running:
            if not dialogs.confirm(self, "Training in progress", "A run is in progress. Stop it (its checkpoint "
                                   "is saved) and quit?", "Stop and quit"):
                event.ignore()
                return
        self.shutdown()
        if self.persist:
            self.save_settings()
        event.accept()

    def shutdown(self) -> None:
        """Stop a run (the trainer saves its checkpoint) and join every thread; safe to call twice."""
        if self.wizard is not None:
            self.wizard.shutdown()
        self.controller.shutdown()
        for page in self.pages:
            page.shutdown()
        self.memory_timer.stop()
        self.tasks.shutdown()


def _history(run: Run) -> LiveRun:
    """A run's curves so far, parsed and loaded off the GUI thread (10 million steps: 7 s and 3 s)."""
    live = LiveRun()
    live.load_history(run.read_metrics())
    return live
