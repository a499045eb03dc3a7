#!/usr/bin/env bash
# Build the one-folder app with PyInstaller into dist/ftstudio and check that it starts.
# Usage: packaging/build.sh [PYTHON]   (default: the python of the active environment)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python}
"$PY" -m pip install -q pyinstaller
QT_QPA_PLATFORM=offscreen "$PY" packaging/make_icons.py
"$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/ftstudio.spec
echo "built dist/ftstudio ($(du -sh dist/ftstudio | cut -f1)); checking that it starts…"
dist/ftstudio/ftstudio --version
QT_QPA_PLATFORM=offscreen dist/ftstudio/ftstudio --screenshot dist/frozen-screenshot.png --page data
dist/ftstudio/ftstudio train --data digits --model mlp --epochs 2 --out "$(mktemp -d)/run"
echo "ok: dist/ftstudio/ftstudio runs; screenshot in dist/frozen-screenshot.png"
