"""Render every page (and the wizard) at the sizes a newcomer's screen has, into PNGs to look at.

    python scripts/render_pages.py OUT_DIR [--sizes 1024x640,1280x800]

Uses the current platform and theme: run it under a desktop (or Xvfb) with
``QT_QPA_PLATFORMTHEME=gtk3`` and ``GTK_THEME=Adwaita:dark`` for GNOME's dark look, or with
``QT_QPA_PLATFORM=offscreen``. Works in a temporary FTSTUDIO_HOME: trains one short run first so
the Train, Runs and Export pages show a real run. Prints each file with the window's real size
(a window that cannot shrink to the screen shows up here).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--sizes", default="1024x640,1280x800")
    parser.add_argument("--tag", default="", help="added to each file name (e.g. light, dark)")
    args = parser.parse_args()
    os.environ.setdefault("FTSTUDIO_HOME", tempfile.mkdtemp(prefix="ftstudio-render-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from ftstudio.gui.app import PAGES, make_app, settle
    from ftstudio.gui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.persist = False
    window.resize(1280, 800)
    window.show()
    settle(app, window.settled)
    outcomes: list = []
    window.controller.finished.connect(outcomes.append)
    window.controller.failed.connect(outcomes.append)
    import dataclasses

    window.session.set_train(dataclasses.replace(window.session.train, epochs=3))
    window.start_training()
    deadline = time.monotonic() + 300
    while not outcomes and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    settle(app, window.settled)
    tag = f"-{args.tag}" if args.tag else ""
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        window.resize(w, h)
        for page in PAGES:
            window.show_page(page)
            settle(app, window.settled)
            path = out / f"{page}-{size}{tag}.png"
            window.grab().save(str(path), "PNG")
            print(path, f"{window.width()}x{window.height()}")
        wizard = window.open_wizard()
        if wizard is not None:
            wizard.resize(w, h)
            settle(app, wizard.settled)
            path = out / f"wizard-{size}{tag}.png"
            wizard.grab().save(str(path), "PNG")
            print(path, f"{wizard.width()}x{wizard.height()}")
            wizard.reject()
            settle(app, lambda: window.wizard is None)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
