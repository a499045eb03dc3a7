"""The composer in the real window: build LeNet with the mouse, save it, train it from the Train page
and from the CLI; freeze toggles and learning-rate multipliers reach the trainer; start from a run;
the one-batch Check; the unsaved-changes prompt; the page's screenshot."""

from __future__ import annotations

import json

import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from ftstudio.core.architecture import parse_model
from ftstudio.core.architecture.presets import load_preset
from ftstudio.core.runs.folders import Run
from ftstudio.core.training import checkpoint
from ftstudio.core.training.callbacks import Callback
from tests.ft_helpers import HEAD, source_run  # noqa: F401  (fixture)
from tests.gui.composer_helpers import card_shapes, click_card, drop_at_end, engine_shapes, set_param, settle
from tests.gui.conftest import Outcomes, set_train
from tests.helpers import cli

LENET = ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear",
         "ReLU", "Linear"]


def click(qtbot, widget) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def tool(page, key: str):
    return page.toolbar.widgetForAction(page.actions_[key])


def type_number(qtbot, spin, value: int) -> None:
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), str(value))
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def train(qtbot, window, epochs: int = 1, callbacks: tuple = ()):
    outcomes = Outcomes(window)
    set_train(window, epochs=epochs, batch_size=64, device="cpu")
    if callbacks:
        window.start_training(callbacks)
    else:
        click(qtbot, window.train_page.buttons["start"])
    qtbot.waitUntil(lambda: len(outcomes) == 1, timeout=180_000)
    assert outcomes[0].status == "completed", outcomes[0].message
    return outcomes[0]


def test_user_builds_lenet_from_an_empty_canvas_trains_it_and_the_cli_trains_the_same(qtbot, window, answers,
                                                                                      tmp_path):
    window.show_page("model")
    page = window.model_page
    click(qtbot, tool(page, "new"))
    assert page.model_spec().layers == ()
    click_card(qtbot, page, "input")  # LeNet takes 28×28: the 8×8 digits are resized
    for name in ("1", "2"):
        type_number(qtbot, page.properties.widgets[name], 28)
    for kind in LENET:
        drop_at_end(qtbot, page, kind)
    for path, name, value in (("0", "out_channels", 6), ("0", "kernel_size", 5), ("0", "padding", 2),
                              ("3", "out_channels", 16), ("3", "kernel_size", 5),
                              ("7", "out_features", 120), ("9", "out_features", 84)):
        click_card(qtbot, page, path)
        type_number(qtbot, page.properties.widgets[name], value)
    lenet = load_preset("lenet")
    assert page.model_spec().layers == lenet.layers and page.model_spec().input_shape == lenet.input_shape

    settle(qtbot, page)
    assert page.analysis.input_shape == (1, 28, 28)
    assert card_shapes(page) == engine_shapes(lenet, (1, 28, 28), 10)  # every shape, as the engine says
    assert card_shapes(page)["6"] == "400" and page.canvas.output_card.shape.text() == "10"
    assert "resized to 1×28×28" in page.canvas.input_card.detail.text()

    answers.save_file = str(tmp_path / "lenet-mine.json")
    click(qtbot, tool(page, "save"))
    saved = tmp_path / "lenet-mine.json"
    assert parse_model(json.loads(saved.read_text())).layers == lenet.layers
    assert not window.isWindowModified() and "lenet-mine.json" in window.windowTitle()

    outcome = train(qtbot, window)
    gui_model = json.loads((outcome.run_path / "model.json").read_text())
    assert [layer["type"] for layer in gui_model["layers"]] == LENET and gui_model["input_shape"] == [1, 28, 28]

    out = cli("train", "--data", "digits", "--model", str(saved), "--epochs", "1", "--device", "cpu",
              "--out", str(tmp_path / "cli-run"))
    assert out.returncode == 0, out.stderr
    cli_model = json.loads((tmp_path / "cli-run" / "model.json").read_text())
    assert cli_model["layers"] == gui_model["layers"]  # the same network, every "auto" resolved alike
    assert Run(tmp_path / "cli-run").read_summary()["status"] == "completed"


class Weights(Callback):
    """Copies of layer weights when training starts, and each parameter's learning rate."""

    def on_fit_started(self, event) -> None:
        model, optimizer = self.trainer.module, self.trainer.optimizer
        self.start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.lr = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        self.ids = {name: id(p) for name, p in model.named_parameters()}


def test_freeze_toggles_and_lr_multipliers_reach_the_trainer(qtbot, window):
    window.show_page("model")
    page = window.model_page
    settle(qtbot, page)
    card = page.canvas.cards["1"]
    click(qtbot, card.freeze)  # the snowflake on the card
    assert page.model_spec().layers[1].freeze and window.session.model["layers"][1]["freeze"] is True
    set_param(qtbot, page, "3", "out_features", "classes")
    type_number(qtbot, page.properties.lr_mult, 0)  # lr × 0 …
    page.properties.lr_mult.setValue(0.5)  # … then × 0.5: one merged edit per field is fine either way
    assert window.session.model["layers"][3]["lr_mult"] == 0.5
    settle(qtbot, page)
    assert "frozen" in page.canvas.cards["1"].weights.text() and "lr ×0.5" in page.canvas.cards["3"].weights.text()
    assert page.analysis.trainable == page.analysis.params - (64 * 256 + 256)

    weights = Weights()
    outcome = train(qtbot, window, callbacks=(weights,))
    end = checkpoint.load(Run(outcome.run_path).checkpoint("last"))["model"]
    assert torch.equal(end["1.weight"], weights.start["1.weight"])
    assert torch.equal(end["1.bias"], weights.start["1.bias"])
    assert not torch.equal(end["3.weight"], weights.start["3.weight"])
    assert weights.ids["1.weight"] not in weights.lr  # frozen: not even given to the optimizer
    assert weights.lr[weights.ids["3.weight"]] == window.session.train.lr * 0.5


def test_start_from_a_run_offers_a_new_head_and_fine_tunes_from_its_weights(qtbot, window, answers, source_run):
    window.show_page("model")
    page = window.model_page
    settle(qtbot, page)
    answers.yes = False
    page.load_run(source_run)  # 5 classes; the digits have 10
    qtbot.waitUntil(lambda: len(answers.asked) == 1, timeout=30_000)
    assert "Replace its head" in answers.asked[0] and "10" in answers.asked[0]
    assert page.editor.state.start is None and window.session.finetune is None  # declined: nothing loaded

    answers.yes = True
    page.load_run(source_run)
    qtbot.waitUntil(lambda: page.editor.state.start is not None, timeout=30_000)
    assert page.model_spec().layers[HEAD].params["out_features"] == "classes"
    assert "Starts from the weights of run" in page.source_note.text()
    settle(qtbot, page)
    assert not page.analysis.error and page.canvas.output_card.shape.text() == "10"
    click(qtbot, page.canvas.cards["0"].freeze)
    plan = window.session.finetune
    assert plan is not None and plan.source == str(source_run)
    assert {o.layer: o.freeze for o in plan.layers}["0"] is True

    outcome = train(qtbot, window)
    before = checkpoint.load(source_run / "checkpoints" / "best.pt")["model"]
    after = checkpoint.load(Run(outcome.run_path).checkpoint("last"))
    assert torch.equal(after["model"]["0.weight"], before["0.weight"])  # frozen here: kept from the run
    assert not torch.equal(after["model"]["3.body.0.weight"], before["3.body.0.weight"])  # fine-tuned
    assert after["lineage"]["source"] == str(source_run.resolve()) and len(after["classes"]) == 10

    page.editor.insert("ReLU", "1")  # another structure: the run's weights no longer fit
    assert window.session.finetune is None and "trains from scratch" in page.source_note.text()
    page.actions_["undo"].trigger()
    assert window.session.finetune == plan

    answers.file = str(source_run / "checkpoints" / "last.pt")  # Open… takes a checkpoint file too
    page.actions_["open"].trigger()
    qtbot.waitUntil(lambda: page.editor.state.start.source == answers.file, timeout=30_000)
    assert window.session.finetune.source == answers.file


def test_check_runs_one_batch_or_names_the_failing_layer(qtbot, window):
    window.show_page("model")
    page = window.model_page
    settle(qtbot, page)
    click(qtbot, tool(page, "check"))
    assert not page.actions_["check"].isEnabled()  # running in the background
    qtbot.waitUntil(lambda: page.check_report is not None, timeout=60_000)
    report = page.check_report
    assert report.ok and report.batch_size == 64 and report.peak_bytes > 2 * 19_210 * 4
    assert "forward + backward" in page.banner.text() and page.actions_["check"].isEnabled()

    page.set_model("lenet")  # the network takes 28×28: the batch is resized, and it runs
    page.editor.set_input_shape(("auto", 8, 8))  # … but at 8×8 the second convolution has nothing left
    settle(qtbot, page)
    page.actions_["check"].trigger()
    qtbot.waitUntil(lambda: page.check_report is not None, timeout=60_000)
    assert not page.check_report.ok and page.check_report.layer == "3"
    assert page.banner.text().startswith("Check failed: layer 3 (Conv2d)") and page.editor.selected == "3"


def test_closing_with_an_unsaved_architecture_asks_first(qtbot, window, answers):
    page = window.model_page
    page.editor.set_fields("1", freeze=True)
    assert window.isWindowModified() and page.dirty()
    answers.yes = False
    window.close()
    assert window.isVisible() and "unsaved changes" in answers.asked[-1]
    answers.yes = True
    window.close()
    assert not window.isVisible()


def test_the_model_page_screenshot_shows_a_composed_network(tmp_path):
    png = tmp_path / "model.png"
    out = cli("--screenshot", str(png), "--page", "model", env={"FTSTUDIO_HOME": str(tmp_path),
                                                                "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert "had not finished loading" not in out.stderr  # the cards show the analysed network
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1280, 800)


def test_a_superseded_analysis_never_leaves_the_page_busy(qtbot, window):
    page = window.model_page
    settle(qtbot, page)
    page.set_model("resnet18")  # slow enough to still be running when the next one starts
    page._analyse_now()
    page.set_model("cnn")
    page._analyse_now()  # the resnet analysis is cancelled: its result is dropped
    qtbot.waitUntil(lambda: not page.busy(), timeout=60_000)
    assert page.is_analysed() and any(i.type == "Residual" for i in page.analysis.layers)
    qtbot.waitUntil(window.settled, timeout=60_000)  # the cancelled job's thread is joined too
