"""The app under stress: a second run, closing mid-export or mid-decode — refused clearly or
stopped cleanly, threads joined, nothing half-written."""

from __future__ import annotations

import json
import re

from PySide6.QtCore import Qt

from ftstudio.core.engine import train
from ftstudio.core.config.recipe import Recipe
from tests.gui.test_training import start_long_run
from tests.helpers import make_digit_folder


def test_a_second_run_or_the_wizard_is_refused_while_one_trains(qtbot, window):
    start_long_run(qtbot, window)
    first = window.controller.run_path
    window.show_page("runs")
    window.start_training()
    assert window.current_page() == "train"
    assert "already in progress" in window.train_page.banner.text()
    assert window.open_wizard() is None and window.wizard is None
    window.resume_run(first)
    assert window.controller.run_path == first  # still the one run
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.running, timeout=60_000)


def test_closing_during_an_export_leaves_only_complete_files(qtbot, window, tmp_path):
    result = train(Recipe.from_dict({"train": {"epochs": 1}}), None)
    page = window.export_page
    window.show_page("export")
    page.refresh(select=result.run.path)
    qtbot.waitUntil(lambda: bool(page.formats), timeout=60_000)
    for name, box in page.formats.items():
        box.setChecked(name in ("onnx", "safetensors"))
    page.export_button.click()
    assert page.exporting
    window.close()  # waits for the exporter (it cannot be cut short), then closes
    assert not window.isVisible() and not window.tasks.busy()
    folder = result.run.path / "export"
    leftovers = [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"] \
        if folder.exists() else []
    assert leftovers == []
    if (folder / "model.onnx").exists():
        signature = json.loads((folder / "signature.json").read_text())
        assert signature["classes"] == [str(i) for i in range(10)]


def test_closing_while_a_folder_decodes_cancels_it(qtbot, window, tmp_path, _isolated_home):
    folder = make_digit_folder(tmp_path / "many", n_per_class=400, size=64)
    data = window.data_page
    data.use_folder(str(folder))

    def partly_decoded() -> bool:
        found = re.search(r"([\d,]+) / ([\d,]+) images decoded", data.header.text())
        return bool(found) and int(found.group(1).replace(",", "")) < int(found.group(2).replace(",", ""))

    qtbot.waitUntil(partly_decoded, timeout=60_000)
    window.close()
    assert not window.isVisible() and not window.tasks.busy()
    assert not list((_isolated_home / "cache" / "decoded").glob("*.npz"))  # cancelled: nothing cached


def test_out_of_memory_offers_a_batch_size_search(qtbot, window, answers, outcomes):
    from ftstudio.core.training.callbacks import Callback
    from tests.gui.conftest import set_train
    from tests.gui.test_training import wait_outcome

    class Exhaust(Callback):  # what CUDA does when a batch does not fit
        def on_epoch_started(self, event):
            import torch

            def boom(*args):
                raise torch.OutOfMemoryError("CUDA out of memory")
            self.trainer.model.register_forward_hook(boom)

    set_train(window, epochs=2, batch_size=256)
    window.start_training(callbacks=(Exhaust(),))
    outcome = wait_outcome(qtbot, outcomes)
    assert outcome.status == "failed" and "at batch size 256" in outcome.message
    assert any("ran out of memory at batch size 256" in q for q in answers.asked)
    qtbot.waitUntil(lambda: "Batch size set to" in window.train_page.banner.text(), timeout=60_000)
    assert window.session.train.batch_size <= 128
    assert window.train_page.form.widgets["batch_size"].value() == window.session.train.batch_size


def test_the_app_starts_when_it_remembers_a_model_file_that_is_a_device(qtbot, make_window):
    from ftstudio.gui.settings import settings, write_json

    store = settings()
    write_json(store, "session/recipe", {"model": "/dev/zero", "train": {"epochs": 3}})
    store.sync()
    window = make_window()  # once read /dev/zero until the memory ran out
    assert window.isVisible() and window.session.model == "mlp"


def test_runs_page_shows_runs_with_junk_files_and_flags_them(qtbot, make_window):
    from ftstudio.core.paths import runs_dir
    from tests.robustness.test_run_records import JUNK_SUMMARIES, make_junk_runs

    runs = make_junk_runs(runs_dir())
    window = make_window()  # once: the app did not start ("created_ts": "yesterday")
    window.show_page("runs")
    page = window.runs_page
    assert set(page.run_paths()) == {r.path for r in runs} and len(runs) == len(JUNK_SUMMARIES) + 1
    flagged = [p for p in page.run_paths() if "⚠" in page.row_texts(p)["Name"]]
    assert runs_dir() / "yesterday" in flagged and runs_dir() / "dict-epochs" in flagged
    for run in runs:  # every row's details and curves draw
        page.select(run.path)
    page.table.selectAll()


def test_runs_page_tells_a_killed_run_from_a_live_one(qtbot, make_window, answers):
    """A trainer killed with -9 leaves "running" in its summary; only a live one holds the folder."""
    import json

    from ftstudio.core.paths import runs_dir
    from ftstudio.core.runs.lock import RunLock

    for name in ("killed", "live"):
        folder = runs_dir() / name
        folder.mkdir(parents=True)
        (folder / "recipe.json").write_text(json.dumps({"version": 1}))
        (folder / "summary.json").write_text(json.dumps({"status": "running", "name": name, "epochs": 2}))
    with RunLock(runs_dir() / "live"):
        window = make_window()
        window.show_page("runs")
        page = window.runs_page
        assert page.row_texts(runs_dir() / "killed")["Status"] == "interrupted"
        assert page.row_texts(runs_dir() / "live")["Status"] == "running"
        page.select(runs_dir() / "killed")
        assert "interrupted" in page.details.toPlainText()  # the summary beside says what the table says
        page.table.selectAll()
        qtbot.mouseClick(page.buttons["delete"], Qt.MouseButton.LeftButton)
        assert (runs_dir() / "live" / "summary.json").exists()  # not pulled from under its trainer
        assert not (runs_dir() / "killed").exists()
        assert "live: a process is training into it" in page.banner.text()


def test_runs_page_follows_runs_made_elsewhere(qtbot, make_window):
    """A run trained from a terminal while the Runs page is open appears without Refresh; a running
    run's row moves on when its summary is rewritten, and Resume stays off while it is alive."""
    import json

    from ftstudio.core.fileio import write_json_file
    from ftstudio.core.paths import runs_dir
    from ftstudio.core.runs.lock import RunLock
    from tests.helpers import cli

    window = make_window()
    window.show_page("runs")
    page = window.runs_page
    assert page.run_paths() == []
    done = cli("train", "--epochs", "1", "--out", str(runs_dir() / "from-terminal"))
    assert done.returncode == 0, done.stderr
    qtbot.waitUntil(lambda: runs_dir() / "from-terminal" in page.run_paths(), timeout=10_000)
    qtbot.waitUntil(lambda: page.row_texts(runs_dir() / "from-terminal")["Status"] == "completed", timeout=10_000)

    live = runs_dir() / "live"
    with RunLock(live):
        (live / "recipe.json").write_text(json.dumps({"version": 1}))
        (live / "checkpoints").mkdir()
        (live / "checkpoints" / "last.pt").write_bytes(b"")
        write_json_file(live / "summary.json", {"status": "running", "name": "live", "epochs": 1, "epochs_planned": 5})
        qtbot.waitUntil(lambda: live in page.run_paths(), timeout=10_000)
        page.select(live)
        assert page.row_texts(live)["Epochs"] == "1/5" and not page.buttons["resume"].isEnabled()
        write_json_file(live / "summary.json", {"status": "running", "name": "live", "epochs": 2, "epochs_planned": 5})
        qtbot.waitUntil(lambda: page.row_texts(live)["Epochs"] == "2/5", timeout=10_000)
        seen = set()
        for epoch in range(3, 40):  # epochs of 0.1 s: the row still moves on while they keep coming
            write_json_file(live / "summary.json", {"status": "running", "name": "live", "epochs": epoch,
                                                    "epochs_planned": 40})
            qtbot.wait(100)
            seen.add(page.row_texts(live)["Epochs"])
        assert len(seen - {"2/5", "39/40"}) >= 2, seen
    # the holder is gone without a word (as after kill -9): the page shows it at the next look
    page.refresh()
    assert page.row_texts(live)["Status"] == "interrupted" and page.buttons["resume"].isEnabled()
