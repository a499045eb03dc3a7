"""How long the pretrain → fine-tune wizard takes with its default choices, clicked straight through.

    QT_QPA_PLATFORM=offscreen python bench/wizard_defaults.py

Opens the main window (which sets torch's CPU threads as the app does), opens the wizard, presses
Next as soon as it is enabled, and stops once the Results page shows the comparison. Runs go to a
temporary FTSTUDIO_HOME. Target (issue 6): under five minutes on a 2-core CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["FTSTUDIO_HOME"] = tempfile.mkdtemp(prefix="ftstudio-bench-")
    from PySide6.QtWidgets import QWizard

    from ftstudio.gui.app import make_app
    from ftstudio.gui.main_window import MainWindow
    from ftstudio.gui.wizard import PageId

    app = make_app()

    def wait(ready, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        if not ready():
            raise SystemExit("timed out")

    window = MainWindow()
    window.persist = False
    window.show()
    wait(window.settled)
    start = time.monotonic()
    wizard = window.open_wizard()
    pressed = {}
    while wizard.currentId() != PageId.RESULTS:
        wait(wizard.button(QWizard.WizardButton.NextButton).isEnabled)
        pressed[PageId(wizard.currentId()).name] = round(time.monotonic() - start, 1)
        wizard.next()
    results = wizard.page_(PageId.RESULTS)
    wait(lambda: results.comparison is not None)
    import torch

    print(f"Next pressed at (s): {pressed}")
    print(f"default choices, wizard opened → comparison shown: {time.monotonic() - start:.1f} s "
          f"(torch CPU threads: {torch.get_num_threads()})\n")
    print(results.comparison.table())
    wizard.reject()
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
