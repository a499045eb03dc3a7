"""Training from the real window: Start, live curves, pause / resume / stop, closing mid-run, failures."""

from __future__ import annotations

from PySide6.QtCore import Qt

from ftstudio.core.runs.folders import Run
from ftstudio.core.training.callbacks import Callback
from tests.gui.conftest import set_train
from tests.helpers import FillDisk, make_digit_folder, refuse_writes

LONG = 500  # epochs for runs we stop: far more than a test could ever finish


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_outcome(qtbot, outcomes, count: int = 1, timeout: int = 120_000):
    qtbot.waitUntil(lambda: len(outcomes) >= count, timeout=timeout)
    return outcomes[count - 1]


def start_long_run(qtbot, window):
    """Start a run that cannot finish on its own and wait until its first epoch is on screen."""
    set_train(window, epochs=LONG, batch_size=16)
    click(qtbot, window.train_page.buttons["start"])
    qtbot.waitUntil(lambda: window.train_page.live.val_acc.n >= 1, timeout=60_000)


def test_user_trains_the_bundled_digits_and_finds_the_run(qtbot, window, outcomes):
    """The newcomer's path: bundled digits + the seed's MLP, Start, watch, find the run, export it."""
    data = window.data_page
    data.dataset.setCurrentIndex(data.dataset.findData("digits"))
    model = window.model_page
    row = next(i for i in range(model.presets.count()) if model.presets.item(i).data(Qt.ItemDataRole.UserRole) == "mlp")
    model.presets.setCurrentRow(row)
    window.train_page.form.widgets["epochs"].setValue(3)
    assert window.session.train.epochs == 3 and window.session.model == "mlp"

    click(qtbot, window.train_page.buttons["start"])
    assert window.current_page() == "train"
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "completed", outcome.message

    page = window.train_page
    qtbot.waitUntil(lambda: page.plots.point_counts()["val_acc"] == 3)
    counts = page.plots.point_counts()
    steps = outcome.summary["epochs"] * -(-outcome.summary["train_size"] // 64)
    assert counts["loss"] == counts["smooth"] == steps > 0
    assert counts["train_acc"] == counts["val_loss"] == 3 and counts["lr"] > 0
    assert page.live.best_epoch >= 1 and page.plots.best_lines[1].isVisible()
    matrix = page.confusion.matrix
    assert matrix is not None and matrix.shape == (10, 10)
    assert matrix.sum() == outcome.summary["val_size"] and matrix.trace() > 0.8 * matrix.sum()
    marks = {item.mark for item in page.samples.items}
    assert marks <= {"ok", "wrong"} and "ok" in marks
    assert "Completed" in page.banner.text() and page.progress.value() == 1000

    window.show_page("runs")
    runs = window.runs_page
    assert outcome.run_path in runs.run_paths()
    row = runs.row_texts(outcome.run_path)
    assert row["Best val acc"] == f"{outcome.summary['best_val_accuracy']:.1%}"
    assert row["Status"] == "completed" and row["Data"] == "digits" and row["Model"] == "mlp"

    export = window.export_page
    assert export.available, "ftstudio.core.export could not be found: the Export page is disabled"
    window.show_page("export")
    qtbot.waitUntil(lambda: bool(export.formats), timeout=60_000)
    assert export.selected_run() == outcome.run_path
    export.set_selected_formats(["onnx"])
    click(qtbot, export.export_button)
    qtbot.waitUntil(lambda: export.report is not None, timeout=120_000)
    assert export.report.ok
    onnx = [f for f in export.report.files if f.format == "onnx"]
    assert onnx and onnx[0].verified and onnx[0].path.exists()
    assert export.table.rowCount() == len(export.report.files)


def test_pause_holds_training_and_resume_finishes(qtbot, window, outcomes):
    set_train(window, epochs=2)
    controller = window.controller
    window.actions_["start"].trigger()
    window.actions_["pause"].trigger()  # before the first batch: training must not advance
    assert controller.state == "paused" and controller.pause_event.is_set()
    assert window.actions_["resume"].isEnabled() and not window.actions_["pause"].isEnabled()
    qtbot.waitUntil(lambda: window.train_page.live.progress.epochs == 2, timeout=60_000)  # FitStarted arrived
    with qtbot.assertNotEmitted(controller.progress, wait=600):
        pass
    assert len(window.train_page.live.loss) == 0
    assert "Paused" in window.train_page.progress_label.text()

    click(qtbot, window.train_page.buttons["resume"])
    assert controller.state == "running"
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "completed" and outcome.summary["epochs"] == 2


def test_stop_mid_training_keeps_a_checkpoint(qtbot, window, outcomes):
    start_long_run(qtbot, window)
    assert window.actions_["stop"].isEnabled()
    click(qtbot, window.train_page.buttons["stop"])
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "stopped"
    run = Run(outcome.run_path)
    assert run.checkpoint("last").exists()
    assert 1 <= run.read_summary()["epochs"] < LONG
    assert "checkpoint saved" in window.train_page.banner.text() and str(run.path) in window.train_page.banner.text()
    assert window.width() == 1280  # a long path in a message wraps; it never widens the window
    window.show_page("runs")
    assert window.runs_page.row_texts(run.path)["Status"] == "stopped"


def test_escape_stops_a_paused_run_and_resume_completes_it(qtbot, window, outcomes, monkeypatch):
    set_train(window, epochs=2)
    window.actions_["start"].trigger()
    window.actions_["pause"].trigger()
    qtbot.waitUntil(lambda: window.train_page.live.progress.epochs == 2, timeout=60_000)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "stopped"
    run = Run(outcome.run_path)
    assert run.checkpoint("last").exists() and run.read_summary()["epochs"] == 0
    assert not window.controller.running and window.actions_["start"].isEnabled()

    import threading

    run.append_metrics({"kind": "steps", "epoch": 1, "steps": [0], "losses": [2.3], "lr": 0.001,
                        "samples_per_s": 1.0})  # a history to load (this run stopped before its first window)
    read_on_gui = []
    real = Run.read_metrics
    monkeypatch.setattr(Run, "read_metrics", lambda self: read_on_gui.append(
        threading.current_thread() is threading.main_thread()) or real(self))
    from ftstudio.gui.live import LiveRun

    loaded = LiveRun.load_history
    monkeypatch.setattr(LiveRun, "load_history", lambda self, rows: read_on_gui.append(
        threading.current_thread() is threading.main_thread()) or loaded(self, rows))
    window.show_page("runs")
    runs = window.runs_page
    runs.select(run.path)
    assert runs.buttons["resume"].isEnabled()
    click(qtbot, runs.buttons["resume"])
    assert not runs.buttons["resume"].isEnabled()  # not twice at once
    outcome = wait_outcome(qtbot, outcomes, 2)
    assert outcome.status == "completed" and outcome.run_path == run.path
    assert run.read_summary()["epochs"] == 2 and run.read_summary()["status"] == "completed"
    assert window.train_page.live.val_acc.n == 2
    assert read_on_gui == [False, False]  # the run's history so far, read and loaded off the window's thread


def test_closing_during_a_run_asks_then_stops_and_joins(qtbot, window, answers):
    start_long_run(qtbot, window)
    path = window.controller.run_path
    answers.yes = False
    window.close()
    assert answers.asked and window.isVisible() and window.controller.running  # "no": keep training

    answers.yes = True
    window.close()
    assert not window.isVisible()
    assert not window.controller.running  # the thread was joined before the window went away
    run = Run(path)
    assert run.read_summary()["status"] == "stopped"
    assert run.checkpoint("last").exists()


def test_an_engine_error_appears_as_a_message(qtbot, window, outcomes, tmp_path):
    folder = make_digit_folder(tmp_path / "one-class", n_per_class=5, classes=range(1))
    window.data_page.use_folder(str(folder))
    qtbot.waitUntil(lambda: bool(window.data_page.banner.text()), timeout=30_000)
    assert "only one class" in window.data_page.banner.text()  # shown in place on the Data page

    window.actions_["start"].trigger()
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "failed" and "only one class" in outcome.message
    assert "only one class" in window.train_page.banner.text()
    assert window.actions_["start"].isEnabled() and window.isVisible()
    assert not list((tmp_path / "one-class").glob("*.pt"))


def test_a_full_disk_names_the_file_not_an_unexpected_failure(qtbot, window, outcomes, monkeypatch):
    """The run's first files are written outside the trainer's own error handling; on a full disk the banner
    named no file and asked for a bug report."""
    refuse_writes(monkeypatch, "model.json")
    set_train(window, epochs=1)
    window.start_training()
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "failed"
    assert "model.json: the disk is full: free some space" in outcome.message
    assert "model.json: the disk is full" in window.train_page.banner.text()
    assert "bug report" not in window.train_page.banner.text()


def test_a_checkpoint_a_full_disk_refused_is_said_once(qtbot, window, outcomes, monkeypatch):
    """The engine's message already says the previous checkpoint is kept; the banner said it twice."""
    set_train(window, epochs=3)
    window.start_training(callbacks=(FillDisk(monkeypatch, epoch=2),))
    outcome = wait_outcome(qtbot, outcomes)
    text = window.train_page.banner.text()
    assert outcome.status == "failed" and "the previous checkpoint is kept (the disk is full" in text
    assert text.count("kept") == 1 and f"and try again). Run folder: {outcome.run_path}." in text
    assert Run(outcome.run_path).read_summary()["epochs"] == 1


class FailAt(Callback):
    """Raises like a bug in an engine component would, at the end of one epoch."""

    order = 300

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_finished(self, event) -> None:
        if event.epoch == self.epoch:
            raise RuntimeError("disk on fire")


def test_a_failed_run_shows_why_and_keeps_its_checkpoint(qtbot, window, outcomes):
    set_train(window, epochs=4)
    window.start_training(callbacks=(FailAt(2),))
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "failed" and "disk on fire" in outcome.message
    run = Run(outcome.run_path)
    assert run.checkpoint("last").exists()
    summary = run.read_summary()
    assert summary["status"] == "failed" and "disk on fire" in summary["error"]
    assert "disk on fire" in window.train_page.banner.text()
    assert "last checkpoint is kept" in window.train_page.banner.text()
    window.show_page("runs")
    window.runs_page.select(run.path)
    assert window.runs_page.row_texts(run.path)["Status"] == "failed"
    assert "Why it failed" in window.runs_page.details.toHtml()
    assert window.runs_page.buttons["resume"].isEnabled()


def test_train_page_writes_a_cluster_launch_script(window, answers, tmp_path):
    import json

    from ftstudio.core.config.recipe import Recipe

    answers.folder = str(tmp_path / "job")
    window.show_page("train")
    window.train_page.launch.click()
    script = tmp_path / "job" / "launch.sh"
    assert script.exists() and "torch.distributed.run" in script.read_text()
    recipe = Recipe.from_dict(json.loads((tmp_path / "job" / "recipe.json").read_text()))
    assert recipe == window.session.recipe()
    assert "launch.sh" in window.train_page.banner.text()
