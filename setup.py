"""Only what pyproject.toml cannot say: ship the top-level resources/ as `ftstudio.resources`
(every file in every subfolder: the bundled dataset, presets, icons, styles)."""

from pathlib import Path

from setuptools import find_packages, setup

resource_dirs = [Path("resources")] + sorted(p for p in Path("resources").rglob("*")
                                             if p.is_dir() and "__pycache__" not in p.parts)
names = {d: ".".join(("ftstudio",) + d.parts) for d in resource_dirs}

setup(
    packages=find_packages(include=["ftstudio", "ftstudio.*"]) + list(names.values()),
    package_dir={name: str(d) for d, name in names.items()},
    package_data={name: ["*"] for name in names.values()},
)
