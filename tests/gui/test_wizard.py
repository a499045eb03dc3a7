"""The pretrain → fine-tune wizard, clicked through with real widgets, real (tiny) training and real files.

Each test drives the wizard as a user would — Next, Back, Cancel, radio buttons, spin boxes — and
waits on the wizard's own state (never sleeps). Training is shrunk to seconds: 1 pretraining
epoch and a few fine-tuning steps on the bundled digits.
"""

from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from ftstudio.core.engine import evaluate_run
from ftstudio.core.workflow.pipeline import PRETRAIN_REF, load_pipeline
from ftstudio.core.workflow.runner import COMPARISON_FILE
from ftstudio.core.fileio import file_sha256
from ftstudio.core.runs.folders import Run
from ftstudio.gui import dialogs
from ftstudio.gui.wizard import PageId, PipelineWizard, texts
from tests.helpers import cli

NEXT, BACK, CANCEL, FINISH = (QWizard.WizardButton.NextButton, QWizard.WizardButton.BackButton,
                              QWizard.WizardButton.CancelButton, QWizard.WizardButton.FinishButton)
TRAINING = 120_000  # ms: generous for a loaded 2-core machine; the runs themselves take seconds


def click(qtbot, wizard, which) -> None:
    button = wizard.button(which)
    qtbot.waitUntil(button.isEnabled, timeout=TRAINING)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def go_next(qtbot, wizard, expected: PageId) -> None:
    click(qtbot, wizard, NEXT)
    qtbot.waitUntil(lambda: wizard.currentId() == expected)


@pytest.fixture
def saved_as(monkeypatch, tmp_path):
    """Where "Save recipe…" writes (the file dialog answered)."""
    path = tmp_path / "saved.json"
    monkeypatch.setattr(dialogs, "choose_save_file", lambda *args, **kw: str(path))
    return path


@pytest.fixture
def make_wizard(qtbot):
    made = []

    def make() -> PipelineWizard:
        from PySide6.QtWidgets import QApplication

        from ftstudio.gui.app import configure

        configure(QApplication.instance())
        w = PipelineWizard()
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        qtbot.waitUntil(w.settled, timeout=60_000)
        return w

    yield make
    for w in made:
        w.shutdown()
        assert not w.running(), "a run was left running"
        assert not w.tasks.busy(), "a background task was left running"


def weights(run, which="last") -> dict:
    from ftstudio.core.training.checkpoint import load

    return load(Run(run).checkpoint(which))["model"]


def test_defaults_are_the_demo_and_the_start_page_branches(make_wizard):
    w = make_wizard()
    m = w.model
    assert w.currentId() == PageId.START and not w.button(BACK).isVisible()
    assert w.page_(PageId.START).radios["pretrain"].isChecked() and w.field("name") == m.name
    p = m.pipeline()
    assert (p.pretrain.data.name, p.pretrain.model, p.finetune.data.name, p.finetune.data.per_class) == \
        ("digits", "cnn", "digits-shifted", 5)
    assert p.finetune.finetune.source == PRETRAIN_REF and p.scratch is not None
    start = w.page_(PageId.START)
    for key, page in (("torchvision", PageId.TORCHVISION), ("earlier", PageId.EARLIER_RUN),
                      ("pretrain", PageId.PRETRAIN_DATA)):
        start.radios[key].setChecked(True)
        assert start.nextId() == page
    start.name.clear()  # a mandatory field: Next waits for a name
    assert not w.button(NEXT).isEnabled()
    start.name.setText("mine")
    assert w.button(NEXT).isEnabled() and m.name == "mine"


def test_base_model_memory_fit_follows_the_pretraining_settings(make_wizard):
    """The wizard's Model page estimates memory with the pretraining's optimizer, AMP and checkpointing,
    not just its batch size (it assumed Adam whatever the user chose)."""
    import dataclasses

    w = make_wizard()
    session, page = w.model.pretrain, w.page_(PageId.BASE_MODEL).model_page
    session.set_train(dataclasses.replace(session.train, optimizer="sgd", momentum=0.0, batch_size=16,
                                          grad_checkpoint=True))
    assert page.train_settings == ("sgd", 0.0, session.train.amp, True) and page._batch_size == 16


@pytest.mark.slow
def test_click_through_pretrain_finetune_scratch_results_export_and_replay(qtbot, make_window, saved_as, tmp_path):
    window = make_window()
    assert window.wizard_offer is not None and window.wizard_offer.isVisible()  # first launch offers it
    window.wizard_offer.open_button.click()
    w = window.wizard
    assert w is not None and w.isVisible() and w.windowModality() == Qt.WindowModality.WindowModal
    qtbot.waitUntil(w.settled, timeout=60_000)
    m = w.model

    go_next(qtbot, w, PageId.PRETRAIN_DATA)
    data = w.page_(PageId.PRETRAIN_DATA)
    qtbot.waitUntil(data.isComplete, timeout=60_000)
    assert m.pretrain.bundle.name == "digits" and m.pretrain.data_spec.augment.rotation == 40

    go_next(qtbot, w, PageId.BASE_MODEL)
    base = w.page_(PageId.BASE_MODEL)
    assert base.model_page.model_value() == "cnn"
    base.form.widgets["epochs"].setValue(1)
    assert m.pretrain_recipe().train.epochs == 1

    go_next(qtbot, w, PageId.PRETRAIN)
    pretrain = w.page_(PageId.PRETRAIN)
    assert pretrain.runner.running and not w.button(NEXT).isEnabled()  # Next only once done
    qtbot.waitUntil(pretrain.isComplete, timeout=TRAINING)
    pre_run = m.runs["pretrain"]
    assert Run(pre_run).read_summary()["status"] == "completed"
    qtbot.waitUntil(lambda: pretrain.plots.point_counts()["val_acc"] == 1)

    go_next(qtbot, w, PageId.FINETUNE_DATA)
    qtbot.waitUntil(w.page_(PageId.FINETUNE_DATA).isComplete, timeout=60_000)
    assert (m.finetune.bundle.name, len(m.finetune.bundle.train)) == ("digits-shifted", 50)

    go_next(qtbot, w, PageId.STRATEGY)
    strategy = w.page_(PageId.STRATEGY)
    qtbot.waitUntil(lambda: strategy.counted is not None, timeout=60_000)
    trainable, total, _, norm = strategy.counted
    assert trainable == total > 100_000  # full: everything trains
    assert "no frozen BatchNorm" in norm
    strategy.radios["head"].setChecked(True)
    qtbot.waitUntil(lambda: strategy.counted is not None and strategy.counted[0] == 128 * 10 + 10, timeout=60_000)
    assert "1,290" in strategy.count.text()
    assert "re-estimated their running statistics" in strategy.norm.text()  # frozen BN under a shift: AdaBN
    assert "Input polarity: kept (the source scores" in strategy.norm.text()  # measured: not the negative
    strategy.plan_form.widgets["polarity"].setCurrentText("invert")
    assert m.plan.polarity == "invert"
    qtbot.waitUntil(lambda: "every image is inverted" in strategy.norm.text(), timeout=60_000)
    strategy.plan_form.widgets["polarity"].setCurrentText("auto")
    strategy.radios["full"].setChecked(True)
    strategy.recount()  # preparing seeds torch's generator: Next waits, so it cannot race the fine-tune run
    assert not strategy.isComplete() and not w.button(NEXT).isEnabled()
    strategy.plan_form.widgets["min_steps"].setValue(3)
    assert strategy.scratch.isChecked() and w.field("scratch") is True
    assert m.finetune_recipe(pre_run).finetune.strategy == "full"

    go_next(qtbot, w, PageId.FINETUNE)
    tune = w.page_(PageId.FINETUNE)
    qtbot.waitUntil(tune.isComplete, timeout=TRAINING)
    ft_run, scratch_run = m.runs["finetune"], m.runs["scratch"]
    qtbot.waitUntil(lambda: tune.plots.point_counts(0)["val_acc"] == 3 and tune.plots.point_counts(1)["val_acc"] == 3)
    lineage = Run(ft_run).read_summary()["lineage"]
    assert lineage["source"] == str(pre_run.resolve()) and lineage["strategy"] == "full"
    assert lineage["checkpoint_sha256"] == file_sha256(Run(pre_run).checkpoint("last"))
    assert Run(scratch_run).read_summary()["lineage"] is None
    # started from the pretrained weights: 3 gentle steps stay close to them; random weights are far away
    pre, ft, scratch = (weights(r)["0.weight"] for r in (pre_run, ft_run, scratch_run))
    assert (ft - pre).abs().max() < 0.01 < (scratch - pre).abs().max()

    go_next(qtbot, w, PageId.RESULTS)
    results = w.page_(PageId.RESULTS)
    qtbot.waitUntil(lambda: results.comparison is not None, timeout=60_000)
    rows = results.comparison.rows
    assert [r.stage for r in rows] == ["finetune", "scratch"] and results.table.rowCount() == 2
    base = Run(ft_run).read_summary()["baseline"]  # what fine-tuning bought: the source before any step
    assert f"the base model scored {base['val_accuracy']:.1%} val acc" in results.lineage.text()
    for r, row in enumerate(rows):
        ev = evaluate_run(row.run, which="last")
        assert (row.accuracy, row.loss, row.count) == (ev["accuracy"], ev["loss"], 359)
        assert results.table.item(r, 1).text() == f"{ev['accuracy']:.1%}"
    out = cli("evaluate", str(ft_run), "--checkpoint", "last", "--json")  # the command line says the same
    said = json.loads(out.stdout)
    assert said["accuracy"] == rows[0].accuracy and said["loss"] == pytest.approx(rows[0].loss, rel=1e-5)
    assert results.bars.values["accuracy"] == [r.accuracy for r in rows]
    assert results.confusion.matrix.sum() == 359
    assert json.loads((ft_run / COMPARISON_FILE).read_text())["rows"][0]["accuracy"] == rows[0].accuracy

    for name, check in results.formats.items():
        check.setChecked(name == "onnx")
    qtbot.mouseClick(results.buttons["finetune"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: results.export_report is not None, timeout=TRAINING)
    report = results.export_report
    assert report.ok and [f.format for f in report.files] == ["onnx"] and report.files[0].path.is_file()
    assert report.out_dir == ft_run / "export"

    qtbot.mouseClick(results.buttons["save"], Qt.MouseButton.LeftButton)
    saved = load_pipeline(saved_as)
    assert saved.pretrain.train.epochs == 1 and saved.finetune.finetune.source == PRETRAIN_REF
    assert saved.cpu_threads == torch.get_num_threads() and saved.export.formats == ("onnx",)
    assert "ftstudio run" in results.banner.text()

    replay = cli("run", str(saved_as), "--out", str(tmp_path / "replay"))
    assert replay.returncode == 0, replay.stderr
    again = json.loads((tmp_path / "replay" / COMPARISON_FILE).read_text())["rows"]
    assert [(r["stage"], r["accuracy"], r["loss"]) for r in again] == [(r.stage, r.accuracy, r.loss) for r in rows]
    assert (tmp_path / "replay" / "export" / "model.onnx").is_file()

    click(qtbot, w, FINISH)
    qtbot.waitUntil(lambda: window.wizard is None)
    assert not w.running()
    assert window.current_page() == "runs"  # the wizard's runs are ordinary runs, the fine-tuned one selected
    assert {pre_run, ft_run, scratch_run} <= set(window.runs_page.run_paths())
    assert window.runs_page.selected_paths() == [ft_run]
    assert "Fine-tuned from" in window.runs_page.details.toPlainText() and pre_run.name in \
        window.runs_page.details.toPlainText()


def test_cancel_and_back_during_training_stop_and_join(qtbot, make_wizard, answers):
    w = make_wizard()
    go_next(qtbot, w, PageId.PRETRAIN_DATA)
    go_next(qtbot, w, PageId.BASE_MODEL)
    w.page_(PageId.BASE_MODEL).form.widgets["epochs"].setValue(500)  # cannot finish during the test
    go_next(qtbot, w, PageId.PRETRAIN)
    page = w.page_(PageId.PRETRAIN)
    qtbot.waitUntil(lambda: page.runner.lives["pretrain"].val_acc.n >= 1, timeout=TRAINING)

    click(qtbot, w, BACK)  # Back stops the run (checkpoint kept) and joins its thread
    assert w.currentId() == PageId.BASE_MODEL and not page.runner.running
    first = page.runner.run_path("pretrain")
    assert Run(first).read_summary()["status"] == "stopped" and Run(first).checkpoint("last").exists()

    go_next(qtbot, w, PageId.PRETRAIN)  # forward again: it trains again
    qtbot.waitUntil(lambda: page.runner.lives["pretrain"].val_acc.n >= 1, timeout=TRAINING)
    answers.yes = False
    click(qtbot, w, CANCEL)  # "keep training" keeps the wizard and the run
    assert answers.asked == [texts.CANCEL_RUNNING] and w.isVisible() and page.runner.running
    answers.yes = True
    click(qtbot, w, CANCEL)
    assert not w.isVisible() and not w.running() and page.runner.controller._thread is None
    second = page.runner.run_path("pretrain")
    assert second != first and Run(second).read_summary()["status"] == "stopped"


def test_a_base_at_chance_on_the_new_images_is_said_on_the_strategy_page(qtbot, make_wizard):
    """A base that learned nothing scores chance on the fine-tune images: the page warns, and says the
    backbone trains at 1× instead of 0.1× (finetune.chance_backbone_lr_mult), and with LoRA that the
    adapters are scaled by alpha 32 instead of 8 (finetune.chance_lora_alpha)."""
    import dataclasses

    from ftstudio.core.engine import train
    from ftstudio.core.workflow.demo import pretrain_recipe

    blank = pretrain_recipe(1)
    train(blank.replace(train=dataclasses.replace(blank.train, lr=1e-9)))  # the newest run: weights as initialised
    w = make_wizard()
    w.page_(PageId.START).radios["earlier"].setChecked(True)
    go_next(qtbot, w, PageId.EARLIER_RUN)
    go_next(qtbot, w, PageId.FINETUNE_DATA)
    go_next(qtbot, w, PageId.STRATEGY)
    strategy = w.page_(PageId.STRATEGY)
    qtbot.waitUntil(lambda: strategy.counted is not None, timeout=60_000)
    assert strategy.banner.kind == "warning" and "about chance" in strategy.banner.text()
    assert "at 0.1× and the head at 1× the learning rate; but as the base scores about chance on these images, " \
           "the backbone trains at 1× instead" in strategy.note.text()
    assert strategy.isComplete()  # a warning, not an error
    assert not strategy.plan_form.widgets["chance_lora_alpha"].isEnabled()
    strategy.radios["lora"].click()  # LoRA: its adapters are scaled up instead (finetune.chance_lora_alpha)
    assert strategy.plan_form.widgets["chance_lora_alpha"].isEnabled()
    qtbot.waitUntil(lambda: "the adapters are scaled by alpha 32 instead" in strategy.note.text(), timeout=60_000)
    assert "LoRA adapters (rank 4, alpha 8) on 4 layer(s)" in strategy.note.text()
    assert strategy.banner.kind == "warning"


def test_earlier_run_branch_fine_tunes_that_run(qtbot, make_wizard, saved_as):
    from ftstudio.core.workflow.demo import pretrain_recipe
    from ftstudio.core.engine import train

    earlier = train(pretrain_recipe(1)).run.path  # an ordinary run in the history
    w = make_wizard()
    w.page_(PageId.START).radios["earlier"].setChecked(True)
    go_next(qtbot, w, PageId.EARLIER_RUN)
    page = w.page_(PageId.EARLIER_RUN)
    assert page.table.rowCount() == 1 and w.field("earlier_run") == str(earlier)  # the newest run, preselected
    page.checkpoint.setCurrentIndex(page.checkpoint.findData("last"))
    go_next(qtbot, w, PageId.FINETUNE_DATA)
    go_next(qtbot, w, PageId.STRATEGY)
    strategy = w.page_(PageId.STRATEGY)
    strategy.radios["head"].setChecked(True)
    strategy.plan_form.widgets["min_steps"].setValue(2)
    strategy.scratch.setChecked(False)
    qtbot.waitUntil(lambda: strategy.counted is not None and strategy.counted[0] == 1290, timeout=60_000)
    go_next(qtbot, w, PageId.FINETUNE)
    tune = w.page_(PageId.FINETUNE)
    qtbot.waitUntil(tune.isComplete, timeout=TRAINING)
    assert tune.order == ["finetune"] and "scratch" not in w.model.runs
    ft_run = w.model.runs["finetune"]
    assert Run(ft_run).read_summary()["lineage"]["source"] == str(earlier.resolve())
    before, after = weights(earlier), weights(ft_run)  # head strategy: the backbone is the earlier run's, exactly
    buffers = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm statistics still follow the data
    backbone = [k for k in before if not k.startswith("15.") and not k.endswith(buffers)]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(before["15.weight"], after["15.weight"])

    go_next(qtbot, w, PageId.RESULTS)
    results = w.page_(PageId.RESULTS)
    qtbot.waitUntil(lambda: results.comparison is not None, timeout=60_000)
    assert [r.stage for r in results.comparison.rows] == ["finetune"] and not results.buttons["scratch"].isEnabled()
    click(qtbot, w, BACK)  # back and forth with the same settings: nothing trains again
    assert w.currentId() == PageId.FINETUNE and tune.isComplete() and not tune.runner.running
    go_next(qtbot, w, PageId.RESULTS)
    qtbot.waitUntil(lambda: results.comparison is not None, timeout=60_000)
    assert w.model.runs["finetune"] == ft_run and results.comparison.rows[0].run == ft_run
    qtbot.mouseClick(results.buttons["save"], Qt.MouseButton.LeftButton)
    saved = load_pipeline(saved_as)
    assert saved.pretrain is None and saved.scratch is None
    assert (saved.finetune.finetune.source, saved.finetune.finetune.checkpoint) == (str(earlier), "last")


def pick_backbone(qtbot, page, search: str, name: str) -> None:
    """Search the pretrained page's catalogue like a user (typing), then click ``name`` in the list."""
    page.search.clear()
    qtbot.keyClicks(page.search, search)
    qtbot.waitUntil(lambda: name in page.listed(), timeout=60_000)  # timm's names join once listed
    row = page.listed().index(name)
    item = page.matches.item(row)
    page.matches.scrollToItem(item)
    qtbot.mouseClick(page.matches.viewport(), Qt.MouseButton.LeftButton, pos=page.matches.visualItemRect(item).center())
    assert page.backbone.text() == name


def open_pretrained_page(qtbot, make_wizard, search: str = "", name: str = ""):
    """A wizard on its pretrained page, with ``name`` picked (found by typing ``search``) and its weights looked
    for on this computer."""
    w = make_wizard()
    w.page_(PageId.START).radios["torchvision"].setChecked(True)
    go_next(qtbot, w, PageId.TORCHVISION)
    page = w.page_(PageId.TORCHVISION)
    if name:
        pick_backbone(qtbot, page, search, name)
        qtbot.waitUntil(lambda: name in page.found, timeout=60_000)
    return w, page


def test_torchvision_branch_offline_says_so_and_offers_random_init(qtbot, make_wizard, answers, tmp_path):
    w, page = open_pretrained_page(qtbot, make_wizard, "mobilenet_v3_s", "torchvision:mobilenet_v3_small")
    assert page.found["torchvision:mobilenet_v3_small"][0] is False  # TORCH_HOME is empty in tests: nothing cached
    text = page.banner.text()
    assert "Download them" in text and "random initialisation" in text and ".pth" in text
    assert not w.button(NEXT).isEnabled() and page.download_button.isVisible()
    answers.yes = False  # asked first; declining fetches nothing
    page.download_button.click()
    assert "mobilenet_v3_small" in answers.asked[-1] and "download.pytorch.org" in answers.asked[-1]
    assert "MB" in answers.asked[-1] and not page.found["torchvision:mobilenet_v3_small"][0]
    answers.file = str(tmp_path / "missing.pth")
    page.weight_radios["file"].setChecked(True)
    page.file_button.click()
    assert not w.button(NEXT).isEnabled()  # a file that does not exist is no way forward
    page.weight_radios["none"].setChecked(True)
    assert w.button(NEXT).isEnabled()
    go_next(qtbot, w, PageId.FINETUNE_DATA)
    go_next(qtbot, w, PageId.STRATEGY)
    strategy = w.page_(PageId.STRATEGY)
    qtbot.waitUntil(lambda: strategy.counted is not None, timeout=60_000)
    assert strategy.counted[0] == strategy.counted[1] > 900_000 and not strategy.error  # MobileNetV3-small
    plan = w.model.pipeline().finetune.finetune
    assert (plan.source, plan.weights) == ("torchvision:mobilenet_v3_small", "none")
    page_back = w.model.pipeline()
    assert page_back.pretrain is None
    w.model.set(weights="cache")  # the plan the user could not follow: the count says why, Next waits
    strategy.recount()
    qtbot.waitUntil(lambda: bool(strategy.error), timeout=60_000)
    assert "not on this machine" in strategy.error
    assert not w.button(NEXT).isEnabled()


def test_menu_entry_and_the_offer_only_on_first_launch(qtbot, make_window):
    first = make_window()
    actions = {a.text(): a for a in first.menuBar().actions()}
    run_menu = actions["&Run"].menu()
    assert "Pretrain && fine-tune wizard…" in [a.text() for a in run_menu.actions()]
    assert first.wizard_offer.isVisible()
    first.actions_["wizard"].trigger()
    w = first.wizard
    assert w is not None and not first.wizard_offer.isVisible()
    qtbot.waitUntil(w.settled, timeout=60_000)
    click(qtbot, w, CANCEL)  # nothing running: closes without asking
    qtbot.waitUntil(lambda: first.wizard is None)
    first.close()
    second = make_window()
    assert second.wizard_offer is None


def test_start_page_opens_the_seed_example(qtbot, make_wizard):
    """The seed's fine-tune is offered: one click fills the wizard with resources/pipelines/seed.json."""
    w = make_wizard()
    start = w.page_(PageId.START)
    qtbot.mouseClick(start.seed_button, Qt.MouseButton.LeftButton)
    m = w.model
    assert start.name.text() == m.name and m.name.startswith("seed")
    assert m.pretrain.data_spec.name == "mnist5k" and m.pretrain.data_spec.classes == tuple("01234")
    assert (m.pretrain.train.optimizer, m.pretrain.train.lr, m.pretrain.train.momentum) == ("sgd", 0.01, 0.0)
    assert m.strategy_choice() == "head" and m.finetune.data_spec.classes is None
    assert m.pipeline().finetune.finetune.strategy == "head" and start.radios["pretrain"].isChecked()


def test_pretrained_page_searches_timm_and_refuses_a_corrupted_download(qtbot, make_wizard, answers, monkeypatch):
    import http.server
    import threading

    from ftstudio.core.paths import torch_hub_dir

    class Corrupted(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"not resnet18" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Corrupted)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("FTSTUDIO_WEIGHTS_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        w, page = open_pretrained_page(qtbot, make_wizard)
        qtbot.keyClicks(page.search, "vit_tiny_patch16")  # the list narrows as you type, timm's names included
        qtbot.waitUntil(lambda: "timm:vit_tiny_patch16_224" in page.listed(), timeout=60_000)
        assert all("vit_tiny_patch16" in n for n in page.listed())
        page.search.clear()
        assert len(page.listed()) == 200 and "more: type more of the name" in page.matches.item(200).text()
        qtbot.keyClicks(page.search, "resnet18")
        assert page.listed()[:2] == ["torchvision:resnet18", "timm:resnet18"]  # the exact model first
        assert all("resnet18" in n for n in page.listed())
        pick_backbone(qtbot, page, "resnet18", "timm:resnet18")
        qtbot.waitUntil(lambda: "timm:resnet18" in page.found, timeout=60_000)
        assert not page.found["timm:resnet18"][0] and "huggingface.co/timm/resnet18" in page.banner.text()
        answers.yes = False  # the question names the source and a size (estimated: nothing asked of the Hub yet)
        page.download_button.click()
        assert "huggingface.co/timm/resnet18" in answers.asked[-1]
        assert "about 47 MB, estimated from its parameter count" in answers.asked[-1]  # 11.7 M float32 parameters
        pick_backbone(qtbot, page, "resnet18", "torchvision:resnet18")
        qtbot.waitUntil(lambda: "torchvision:resnet18" in page.found, timeout=60_000)
        answers.yes = True
        page.download_button.click()
        qtbot.waitUntil(lambda: "the check failed" in page.banner.text(), timeout=60_000)
        cache = torch_hub_dir() / "checkpoints"
        assert not cache.exists() or not any(cache.iterdir())
        assert not w.button(NEXT).isEnabled()
        page.weight_radios["none"].setChecked(True)
        go_next(qtbot, w, PageId.FINETUNE_DATA)
        assert w.model.pipeline().finetune.finetune.source == "torchvision:resnet18"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_pretrained_page_downloads_timm_weights_from_the_hub_with_consent(qtbot, make_wizard, answers, monkeypatch,
                                                                          tmp_path):
    """The Download button on a timm model: asked first, fetched from the Hub (a stand-in on 127.0.0.1),
    checked against its published sha256, found in the Hugging Face cache — and Next opens."""
    from safetensors.torch import save_file

    from tests.local_hub import serving_hub

    save_file({"w": torch.ones(3)}, str(tmp_path / "w.safetensors"))
    weights_file = (tmp_path / "w.safetensors").read_bytes()
    with serving_hub() as (hub, endpoint):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        resolve = "/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
        hub.published = {resolve: weights_file}
        hub.served = {resolve: weights_file[:-1] + b"!"}
        w, page = open_pretrained_page(qtbot, make_wizard, "resnet18", "timm:resnet18")
        assert page.download_button.isVisible() and endpoint in page.banner.text()  # the mirror is the source
        page.download_button.click()  # a corrupted file: refused, and the way forward stays closed
        qtbot.waitUntil(lambda: "the check failed" in page.banner.text(), timeout=60_000)
        assert endpoint in answers.asked[-1] and not w.button(NEXT).isEnabled()
        hub.served = {resolve: weights_file}
        page.download_button.click()
        qtbot.waitUntil(lambda: page.found["timm:resnet18"][0], timeout=60_000)
        assert "Found pretrained weights for timm:resnet18" in page.status.text() and w.button(NEXT).isEnabled()
        assert page.weight_radios["cache"].isChecked()
