"""The README's promises: its test command is what CI runs, its commands and flags exist, its
recipe examples load, and its inference snippets are the exporter's own and run without ftstudio."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from ftstudio.core.export import export_run
from tests.e2e.test_exports_reload import NO_FTSTUDIO
from tests.ft_helpers import source_run  # noqa: F401  (fixture)
from tests.helpers import ROOT, cli, digit_images

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.+?)\n```", README, flags=re.S)


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.+?)(?=^## )", README, flags=re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def readme_test_command() -> str:
    """The README's "Install and test" line: the first bash block that installs the test extra."""
    return next(c.strip() for c in blocks("bash") if "pip install -e '.[test]'" in c)


def test_ci_runs_the_readme_test_command():
    test_command = readme_test_command()
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [step.strip() for step in test_command.split("&&")]  # CI may run checks between them (lint)
    assert all(step in ci for step in steps), [step for step in steps if step not in ci]


def test_readme_first_command_installs_like_ci_and_opens_the_app():
    install_and_run, install_and_test = blocks("bash")[0].strip(), readme_test_command()
    cpu_only = next(c for c in blocks("bash") if "download.pytorch.org/whl/cpu" in c)  # no 5.9 GB CUDA build
    assert blocks("bash").index(cpu_only) < 3 and "torch torchvision --index-url" in cpu_only
    assert install_and_run.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert install_and_run.endswith("&& .venv/bin/ftstudio")  # no subcommand: the desktop app
    assert install_and_test.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && ")


def test_readme_headless_command_trains_on_the_bundled_data(tmp_path):
    main_command = next(c for c in blocks("bash") if "ftstudio train" in c)
    match = re.search(r"ftstudio (train [^#\n]+)", main_command)
    assert match, main_command
    args = match.group(1).split() + ["--out", str(tmp_path / "run")]
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout and (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def test_command_line_reference_names_real_commands_and_flags():
    reference = section("Command-line reference")
    rows = re.findall(r"^\| `ftstudio ?([a-z]*)[^`]*` \|[^|]*\|(.+)\|$", reference, flags=re.M)
    commands = {name for name, _ in rows}
    assert commands >= {"datasets", "presets", "train", "finetune", "evaluate", "runs", "run", "export", "demo", ""}
    helps = {name: cli(*([name] if name else []), "--help") for name in commands}
    for out in helps.values():
        assert out.returncode == 0, out.stderr
    for name, flags in rows:
        for flag in re.findall(r"--[a-z][a-z-]*", flags):
            assert re.search(rf"{flag}\b", helps[name].stdout), f"ftstudio {name}: README names {flag}"
    for flag in set(re.findall(r"`(--[a-z][a-z-]*)", reference.split("Data flags", 1)[1])):
        assert re.search(rf"{flag}\b", helps["train"].stdout), f"ftstudio train: README names {flag}"


def test_readme_recipe_and_pipeline_examples_load():
    from ftstudio.core.workflow.pipeline import Pipeline
    from ftstudio.core.config.recipe import Recipe

    docs = [json.loads(b) for b in blocks("json")]
    recipes = [d for d in docs if "format" not in d]
    pipelines = [d for d in docs if d.get("format") == "ftstudio.pipeline"]
    assert recipes and pipelines
    for doc in recipes:
        assert Recipe.from_dict(doc).to_dict()["train"]["epochs"] == doc["train"]["epochs"]
    for doc in pipelines:
        p = Pipeline.from_dict(doc)
        assert p.finetune.finetune.source == "@pretrain" and p.scratch.model == "@finetune"


def test_readme_inference_snippets_are_the_model_cards_and_run_without_ftstudio(source_run, tmp_path):
    report = export_run(source_run, formats=["onnx", "pt2"], out_dir=tmp_path / "export")
    assert report.ok
    card = report.card_path.read_text(encoding="utf-8")
    snippets = blocks("python")
    assert snippets == re.findall(r"```python\n(.+?)\n```", card, flags=re.S), "README snippets drifted from the card"
    images, labels = digit_images(n_per_class=1, size=8)
    Image.fromarray(images[3]).save(report.out_dir / "image.png")
    classes = json.loads(report.signature_path.read_text())["classes"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the snippets must not need ftstudio
    for code in snippets:
        out = subprocess.run([sys.executable, "-c", NO_FTSTUDIO + code], cwd=report.out_dir, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.strip() in classes


def _slugs(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces → hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


def test_readme_links_lead_somewhere():
    slugs = _slugs(README)
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    assert len(links) > 10
    for link in links:
        if link.startswith("#"):
            assert link[1:] in slugs, f"README links to a missing heading: {link}"
        elif not link.startswith("http"):
            path, _, anchor = link.partition("#")
            assert (ROOT / path).exists(), f"README links to a missing file: {link}"
            if anchor:
                assert anchor in _slugs((ROOT / path).read_text(encoding="utf-8")), \
                    f"README links to a missing heading in {path}: {link}"


@pytest.mark.parametrize("name", ["data", "dataset", "model", "train", "runs", "export", "wizard-results"])
def test_readme_screenshots_exist_and_are_small(name):
    path = ROOT / "docs" / "screenshots" / f"{name}.png"
    assert f"](docs/screenshots/{name}.png)" in README
    with Image.open(path) as image:
        assert image.size == (1280, 800)
    assert path.stat().st_size < 300_000


def test_readme_architecture_example_is_the_two_branch_graph():
    from ftstudio.core.architecture import analyze, parse_model

    text = section("Composing a network")
    (doc,) = [json.loads(b) for b in blocks("json") if b in text]
    a = analyze(parse_model(doc), (1, 8, 8), 10)
    assert a.ok and a.params == 5538  # the hand count of tests/core/test_graph.py
    bad = dict(doc, layers=[*doc["layers"][:4], {"id": "skip", "type": "Add", "inputs": ["cat", "b1"]},
                            *doc["layers"][5:]])
    assert analyze(parse_model(bad), (1, 8, 8), 10).error.startswith(
        "layer 'skip' (Add): Add needs inputs of the same shape but gets [8, 8, 8] from layer 'cat', [4, 8, 8] from "
        "layer 'b1'")
    assert "layer 'skip' (Add): Add needs inputs of the same shape but gets [8, 8, 8] from layer 'cat', " \
           "[4, 8, 8] from layer 'b1'" in " ".join(text.split())
