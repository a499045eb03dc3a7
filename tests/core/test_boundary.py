"""The engine never loads Qt: import every ftstudio.core module in a fresh interpreter and check."""

import pkgutil
import subprocess
import sys

import ftstudio.core


def test_core_imports_no_qt():
    names = ["ftstudio.core"] + [m.name for m in pkgutil.walk_packages(ftstudio.core.__path__, "ftstudio.core.")]
    assert len(names) > 15
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')"
        " or m.startswith('ftstudio.gui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core pulled in Qt/GUI modules: {out.stdout}"


def test_import_ftstudio_is_light():
    code = "import sys, ftstudio, ftstudio.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"
