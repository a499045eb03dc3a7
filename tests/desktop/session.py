"""A newcomer's first minute in the real window, as a script: run by `test_gtk_desktop.py` in its
own process under a real X server, so that a crash (SIGSEGV) shows as the exit code.

Opens the main window, lets the engine load, analyses the composer's network (the meta-device
path), checks one batch, trains the bundled digits for one epoch, and — what any meta-device op
may do in torch 2.14 — imports torch._dynamo, which loads triton's LLVM next to the one GTK's GL
driver brought. Prints one JSON line of what it saw; exit 0 only when the run completed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time


def wait(app, ready, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    return bool(ready())


def loaded(fragment: str) -> bool:
    with open("/proc/self/maps") as maps:
        return fragment in maps.read()


def main() -> int:
    from ftstudio.gui.app import make_app
    from ftstudio.gui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.persist = False
    window.resize(1024, 640)
    window.show()
    seen = {"platform": app.platformName(), "gtk": False, "system_llvm": False, "triton": False}
    outcomes: list = []
    window.controller.finished.connect(outcomes.append)
    window.controller.failed.connect(outcomes.append)
    try:
        if not wait(app, window.settled):
            raise SystemExit("the window did not settle")
        seen["gtk"] = loaded("libgtk-3.so")
        seen["system_llvm"] = loaded("libLLVM")
        page = window.model_page
        window.show_page("model")
        if not wait(app, page.is_analysed):
            raise SystemExit("the composer did not analyse its network")
        page.check()
        if not wait(app, lambda: page.check_report is not None):
            raise SystemExit("Check did not finish")
        import torch._dynamo  # noqa: F401 — what torch 2.14 does on many meta-device ops

        seen["triton"] = "triton._C.libtriton" in sys.modules
        window.session.set_train(dataclasses.replace(window.session.train, epochs=1))
        window.start_training()
        if not wait(app, lambda: bool(outcomes)):
            raise SystemExit("training did not finish")
        seen["status"] = outcomes[0].status
        seen["check_ok"] = page.check_report.ok
    finally:
        window.close()
    print(json.dumps(seen), flush=True)
    return 0 if seen.get("status") == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
