"""The wheel carries its resources: `pip install .` then ftstudio works from any folder."""

import subprocess
import sys
import zipfile

from tests.helpers import ROOT


def test_wheel_contains_dataset_presets_and_license(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next(tmp_path.glob("ftstudio-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("ftstudio/resources/datasets/digits.npz", "ftstudio/resources/datasets/DIGITS_ATTRIBUTION.md",
                   "ftstudio/resources/datasets/mnist5k.npz", "ftstudio/resources/pipelines/seed.json",
                   "ftstudio/resources/presets/mlp.json", "ftstudio/resources/presets/resnet18.json",
                   "ftstudio/cli.py", "ftstudio/core/training/trainer.py"):
        assert needed in names, needed
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any("__pycache__" in n for n in names)
