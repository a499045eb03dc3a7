"""A newcomer's first minutes in the window (issue #20): no crash at start, no stale state."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest


def test_status_bar_timer_ignores_torch_while_it_is_still_importing(make_window, monkeypatch):
    """First start: the memory timer fired while the background `import torch` was half done
    (``partially initialized module 'torch' has no attribute 'cuda'``), and a crash dialog opened."""
    window = make_window(settle=False)  # no events processed yet: the engine has not started loading
    assert not window.session.ready
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # what sys.modules holds mid-import
    window._update_status()
    window.memory_timer.timeout.emit()
    assert window.status_memory.text().startswith("RAM ")
    assert "GPU" not in window.status_memory.text()


def _tiny_runs(*names: str) -> list:
    """Real past runs in the (temporary) runs folder."""
    from ftstudio.core.engine import train
    from ftstudio.core.config.recipe import DatasetSpec, Recipe, TrainConfig

    recipe = Recipe(data=DatasetSpec(per_class=10), train=TrainConfig(epochs=1, batch_size=32))
    return [train(recipe.replace(name=name)).run for name in names]


@pytest.mark.slow
def test_export_results_belong_to_the_selected_run(qtbot, make_window):
    """Run A's "Exported and verified" and its files were still shown after run B was selected."""
    a, b = _tiny_runs("run-a", "run-b")
    window = make_window()
    window.show_page("export")
    page = window.export_page
    qtbot.waitUntil(lambda: bool(page.formats), timeout=60_000)
    page.refresh(select=a.path)
    page.set_selected_formats(["safetensors"])
    page.export_button.click()
    qtbot.waitUntil(lambda: page.report is not None, timeout=120_000)
    assert "Exported and verified" in page.banner.text() and page.table.rowCount() >= 1
    assert page.open_button.isEnabled()

    page.run.setCurrentIndex(page.run.findData(str(b.path)))
    assert page.selected_run() == b.path
    assert page.report is None and page.table.rowCount() == 0 and not page.banner.text()
    assert not page.open_button.isEnabled() and "Choose a run" in page.header.text()
    assert page.folder.text() == str(b.path / "export")


def test_export_results_are_cleared_when_the_checkpoint_changes(qtbot, make_window):
    (a,) = _tiny_runs("run-a")
    window = make_window()
    page = window.export_page
    window.show_page("export")
    qtbot.waitUntil(lambda: bool(page.formats), timeout=60_000)
    page.refresh(select=a.path)
    page.set_selected_formats(["safetensors"])
    page.export_button.click()
    qtbot.waitUntil(lambda: page.report is not None, timeout=120_000)
    page.checkpoint.setCurrentIndex(page.checkpoint.findData("last"))
    assert page.report is None and page.table.rowCount() == 0


def test_a_failed_start_does_not_keep_saying_preparing(qtbot, window, tmp_path):
    from tests.gui.conftest import Outcomes
    from tests.helpers import make_digit_folder

    outcomes = Outcomes(window)
    folder = make_digit_folder(tmp_path / "one-class", n_per_class=5, classes=range(1))
    window.data_page.use_folder(str(folder))
    qtbot.waitUntil(lambda: bool(window.data_page.banner.text()), timeout=30_000)
    window.actions_["start"].trigger()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=60_000)
    assert outcomes[0].status == "failed"
    text = window.train_page.progress_label.text()
    assert "Preparing" not in text and "Failed" in text and "before the first epoch" in text


def test_undo_that_makes_the_network_valid_clears_the_check_failure(qtbot, window):
    from tests.gui.composer_helpers import settle

    window.show_page("model")
    page = window.model_page
    settle(qtbot, page)
    page.editor.insert("Conv2d", str(len(page.editor.spec.layers) - 1))  # a Conv2d on flat features: invalid
    settle(qtbot, page)
    page.actions_["check"].trigger()
    qtbot.waitUntil(lambda: page.check_report is not None or "Check failed" in page.banner.text(),
                    timeout=60_000)
    assert "Check failed" in page.banner.text()
    page.actions_["undo"].trigger()
    settle(qtbot, page)
    assert page.analysis is not None and page.analysis.ok
    assert "Check failed" not in page.banner.text()


@pytest.mark.slow
def test_two_runs_of_the_same_setup_get_names_that_tell_them_apart(qtbot, window):
    import dataclasses

    from PySide6.QtCore import Qt

    from tests.gui.conftest import Outcomes

    outcomes = Outcomes(window)
    page = window.train_page
    window.session.set_train(dataclasses.replace(window.session.train, epochs=1))
    assert page.name.placeholderText() == "mlp-digits"
    window.start_training()
    qtbot.waitUntil(lambda: len(outcomes) == 1, timeout=120_000)
    assert page.name.placeholderText() == "mlp-digits #2"  # said before Start, where the name is typed
    window.session.set_train(dataclasses.replace(window.session.train, lr=0.01))
    assert page.name.placeholderText() == "mlp-digits lr 0.01"
    window.start_training()
    qtbot.waitUntil(lambda: len(outcomes) == 2, timeout=120_000)
    first, second = (o.run_path for o in outcomes)

    runs = window.runs_page
    window.show_page("runs")
    assert runs.row_texts(first)["Name"] == "mlp-digits"
    assert runs.row_texts(second)["Name"] == "mlp-digits lr 0.01"
    runs._select_rows([0, 1])
    legend = runs.plots.acc_plot.getPlotItem().legend
    assert sorted(label.text for _, label in legend.items) == ["mlp-digits", "mlp-digits lr 0.01"]

    runs.select(first)  # rename: one click, type, Enter
    qtbot.mouseClick(runs.buttons["rename"], Qt.MouseButton.LeftButton)
    from PySide6.QtWidgets import QAbstractItemView, QLineEdit

    assert runs.table.state() == QAbstractItemView.State.EditingState
    editor = runs.table.viewport().findChild(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "baseline")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next event-loop turn
    qtbot.waitUntil(lambda: runs.row_texts(first)["Name"] == "baseline", timeout=5_000)
    from ftstudio.core.runs.folders import Run

    assert Run(first).read_summary()["name"] == "baseline"
    assert any("baseline" in window.export_page.run.itemText(i) for i in range(window.export_page.run.count()))


def test_the_mlp_preset_reads_its_real_widths_on_8x8_digits(qtbot, window):
    """It said "the seed's 784-256-10" on the bundled 8×8 digits, where it is 64-256-10."""
    from tests.gui.composer_helpers import settle

    page = window.model_page
    from PySide6.QtCore import Qt

    mlp = next(page.presets.item(i).text() for i in range(page.presets.count())
               if page.presets.item(i).data(Qt.ItemDataRole.UserRole) == "mlp")
    assert "784" not in mlp  # (the "seed" preset is fixed at 784 inputs and says so)
    assert "64-256-10" in page.header.text()
    page.editor.set_input_shape((1, 28, 28))
    settle(qtbot, page)
    assert "784-256-10" in page.header.text()
    page.set_model("lenet")
    settle(qtbot, page)
    assert "-256-" not in page.header.text()  # only a plain MLP is named by its widths


def test_the_window_title_names_the_app_once(window):
    from PySide6.QtWidgets import QApplication

    assert QApplication.applicationDisplayName() == "ftstudio"  # the platform appends it to the title
    assert "ftstudio" not in window.windowTitle() and "mlp (preset)" in window.windowTitle()


def test_save_dialogs_start_in_the_same_folder(window, answers, monkeypatch, tmp_path):
    """Save recipe started in the working directory, Save architecture in home."""
    from ftstudio.gui import dialogs

    starts = []
    monkeypatch.setattr(dialogs, "choose_save_file",
                        lambda parent, title, start="", filters="": starts.append(start) or answers.save_file)
    page = window.model_page
    page.actions_["save_as"].trigger()  # cancelled
    from ftstudio.gui.wizard.model import PageId

    wizard = window.open_wizard()
    wizard.page_(PageId.RESULTS).save_recipe()  # asks for the file first: cancelled too
    wizard.reject()
    first, second = (Path(s).parent for s in starts)
    assert first == second == dialogs.documents_folder()

    answers.save_file = str(tmp_path / "mine" / "net.json")
    (tmp_path / "mine").mkdir()
    page.actions_["save_as"].trigger()
    assert dialogs.documents_folder() == tmp_path / "mine"  # next time both start where the user saved


@pytest.mark.slow
def test_a_saved_architecture_keeps_its_name_after_a_relaunch(qtbot, make_window, answers, tmp_path):
    first = make_window()
    page = first.model_page
    answers.save_file = str(tmp_path / "my-net.json")
    page.actions_["save_as"].trigger()
    assert page.title() == "my-net.json"
    page.editor.insert("ReLU", "2")  # …edited: the settings keep the network itself
    page.actions_["save"].trigger()
    first.close()

    second = make_window()
    assert second.model_page.title() == "my-net.json" and not second.model_page.dirty()
    assert "my-net.json" in second.windowTitle()


def test_the_plots_are_made_after_start_up_not_while_torch_imports(qtbot, make_window, monkeypatch):
    """Made while torch imported, the plots held the GIL the import needed and delayed "ready" (#19);
    they must still exist before a first run needs them, without anyone opening the Train page."""
    from ftstudio.gui.widgets.plots import TrainingPlots

    built_when_ready: list[bool] = []
    real_build = TrainingPlots._build

    def build(self):
        built_when_ready.append(window.session.ready and window.settled())
        real_build(self)

    monkeypatch.setattr(TrainingPlots, "_build", build)
    window = make_window(settle=False)
    qtbot.waitUntil(lambda: window.train_page.plots._built, timeout=60_000)
    assert built_when_ready == [True]


def test_a_closing_window_makes_no_plots_and_starts_no_import(window, monkeypatch):
    """Its retry timer fired after close: the task a closed window's Tasks hands back (never run, held by
    nothing) was gone before its signal could be connected — "Signal source has been deleted"."""
    import sys

    window.tasks.shutdown()
    monkeypatch.delitem(sys.modules, "pyqtgraph", raising=False)  # as in a process that never drew a plot
    monkeypatch.setattr(window, "settled", lambda: True)
    window._build_plots_when_idle()  # raised RuntimeError
    assert not window.tasks.busy("pyqtgraph") and not window.tasks.busy("warm-up")


# A fresh app process, offscreen, on the Model page until start-up has settled, the plots exist and the
# training warm-up is over: which thread imported pyqtgraph, torch and torch._dynamo, which full (generation 2)
# cycle collections ran while torch imported, and which collections ran during the warm-up.
START_UP = '''
import gc, importlib.abc, json, os, sys, threading, time
found = {}
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("pyqtgraph", "torch", "torch._dynamo") and name not in found:
            found[name] = threading.current_thread() is threading.main_thread()
        return None
sys.meta_path.insert(0, Spy())
full, warming, during_warm_up, quiet = [], {}, [], []
gc.callbacks.append(lambda phase, info: full.append("torch" in found) if phase == "start" and info["generation"] == 2
                    else None)
gc.callbacks.append(lambda phase, info: during_warm_up.append(info["generation"])
                    if phase == "start" and warming.get("now") else None)
import ftstudio.gui.main_window as main_window
real_warm_up = main_window.warm_up_training
def warm_up():
    warming["now"] = True
    try:
        real_warm_up()
    finally:
        warming.update(now=False, done=True)
main_window.warm_up_training = warm_up
from ftstudio.gui.app import make_app, settle
app = make_app()
window = main_window.MainWindow()
window.persist = False
window.show_page("model")
window.show()
during_import = []
def ready():
    if window.session.ready and not during_import:
        during_import.append(sum(full))  # full collections since torch's import began, up to the engine's ready
    if warming.get("now"):
        quiet.append(window.settled())
    return window.settled() and window.train_page.plots._built and warming.get("done", False)
settled = settle(app, ready, timeout=120)
print(json.dumps({"settled": settled, "main thread imported": found, "full collections while importing":
                  during_import[0], "frozen": gc.get_freeze_count(), "gc enabled": gc.isenabled(),
                  "collections during the warm-up": during_warm_up, "settled while warming up": quiet}))
os._exit(0)
'''


def test_start_up_keeps_the_gui_thread_and_the_import_free(tmp_path):
    """Time to ready (#19): three full cycle collections (150 ms, finding nothing) ran while torch imported. And the
    time to a first step: Start waited 1.37 s, 1.1 s of it importing torch._dynamo."""
    import json
    import os
    import subprocess

    env = {**os.environ, "FTSTUDIO_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", START_UP], capture_output=True, text=True, env=env, timeout=180,
                         cwd=Path(__file__).resolve().parents[2])
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["settled"], out.stderr[-2000:]
    # pyqtgraph on the GUI thread, once settled: on a worker its copying of PySide6's attributes raced the
    # GUI thread's use of Qt and crashed the app (SIGSEGV, 1 start in 86 under load)
    assert got["main thread imported"] == {"torch": False, "pyqtgraph": True, "torch._dynamo": False}
    assert got["full collections while importing"] == 0
    assert got["frozen"] > 100_000 and got["gc enabled"]  # torch's objects no longer walked by full collections
    # Start no longer waits 1.1 s for torch._dynamo (its first optimizer imports it): imported ahead, without
    # making the window busy, and without the cycle collections that each held the GIL for 100-130 ms
    assert got["settled while warming up"] and all(got["settled while warming up"])
    assert got["collections during the warm-up"] == []
