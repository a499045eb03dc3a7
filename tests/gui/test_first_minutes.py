"""A newcomer's first minutes in the window (issue #20): no crash at start, no stale state."""

from __future__ import annotations

import sys
import types


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
    from ftstudio.core.engine import train_recipe
    from ftstudio.core.config.recipe import DatasetSpec, Recipe, TrainConfig

    recipe = Recipe(data=DatasetSpec(per_class=10), train=TrainConfig(epochs=1, batch_size=32))
    return [train_recipe(recipe.replace(name=name)).run for name in names]


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
