"""Pipeline recipes: validation that names the field, stage references, a headless replay that repeats itself."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftstudio.core.errors import InputError
from ftstudio.core.workflow.demo import default_pipeline
from ftstudio.core.workflow.pipeline import (FINETUNE_REF, PRETRAIN_REF, Pipeline, is_pipeline_document,
                                             load_pipeline, resolve_finetune, resolve_scratch, save_pipeline)
from ftstudio.core.workflow.runner import COMPARISON_FILE, run_pipeline
from tests.helpers import cli


def tiny(pipeline: Pipeline | None = None, steps: int = 3) -> Pipeline:
    """The default story shrunk to seconds: 1 pretraining epoch, ``steps`` fine-tuning steps."""
    p = pipeline or default_pipeline("test")
    ft = p.finetune
    return p.replace(pretrain=p.pretrain.replace(train=dataclasses.replace(p.pretrain.train, epochs=1)),
                     finetune=ft.replace(train=dataclasses.replace(ft.train, epochs=1),
                                         finetune=dataclasses.replace(ft.finetune, min_steps=steps)),
                     export=dataclasses.replace(p.export, formats=("state-dict",)))


def test_the_default_pipeline_is_the_demo_and_round_trips(tmp_path):
    from ftstudio.core.workflow import demo

    p = default_pipeline()
    assert p.pretrain.data == demo.pretrain_recipe().data and p.pretrain.model == "cnn"
    assert p.finetune.data == demo.finetune_recipe("x").data and p.finetune.finetune.source == PRETRAIN_REF
    assert p.finetune.finetune.checkpoint == "last" and p.compare.checkpoint == "last"
    assert p.scratch.model == FINETUNE_REF and p.scratch.data == p.finetune.data and p.match_steps
    save_pipeline(tmp_path / "p.json", p)
    data = json.loads((tmp_path / "p.json").read_text())
    assert is_pipeline_document(data) and not is_pipeline_document(p.finetune.to_dict())
    assert load_pipeline(tmp_path / "p.json") == p


def _bad(change) -> dict:
    data = default_pipeline().to_dict()
    change(data)
    return data


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(format="ftstudio.recipe"), "format: must be 'ftstudio.pipeline'"),
    (lambda d: d.update(pretrian={}), "unknown field 'pretrian'"),
    (lambda d: d.pop("finetune"), "finetune: missing (required)"),
    (lambda d: d["finetune"].update(finetune=None), "finetune.finetune: missing"),
    (lambda d: d.update(pretrain=None), "finetune.finetune.source: '@pretrain' refers to the pretrain stage"),
    (lambda d: d["finetune"]["finetune"].update(source="torchvision:resnet18"), "finetune.finetune.source: is"),
    (lambda d: d["finetune"]["train"].update(lr=-1), "finetune.train.lr: must be > 0"),
    (lambda d: d["scratch"].update(finetune={"source": "x"}), "scratch.finetune: must be null"),
    (lambda d: d["scratch"]["data"].update(per_class=9), "scratch.data: must equal finetune.data"),
    (lambda d: d["pretrain"].update(model=FINETUNE_REF), "'@finetune' is only meaningful in the scratch stage"),
    (lambda d: d["export"].update(formats=["gif"]), "export.formats: --format gif: unknown format"),
    (lambda d: d.update(scratch=None, export={"run": "scratch"}), "export.run: 'scratch' needs a scratch stage"),
    (lambda d: d.update(cpu_threads=0), "cpu_threads: must be ≥ 1"),
])
def test_bad_documents_name_the_field(tmp_path, change, words):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_bad(change)))
    with pytest.raises(InputError) as err:
        load_pipeline(path)
    assert str(err.value).startswith(f"{path}: ") and words in str(err.value), str(err.value)


def test_stage_references_resolve_to_the_runs(tmp_path):
    from ftstudio.core.engine import train

    p = tiny()
    pre = train(p.pretrain, tmp_path / "pre").run.path
    ft_recipe = resolve_finetune(p, pre)
    assert ft_recipe.finetune.source == str(pre) and ft_recipe.data == p.finetune.data
    ft = train(ft_recipe, tmp_path / "ft").run.path
    scratch = resolve_scratch(p, ft)
    ran = json.loads((ft / "recipe.json").read_text())
    assert scratch.train.epochs == ran["train"]["epochs"] == 3  # min_steps 3 on 50 images: 3 epochs of 1 step
    assert scratch.finetune is None and scratch.model["layers"] == ran["model"]["layers"]
    with pytest.raises(InputError, match="needs the pretrain stage"):
        resolve_finetune(p, None)


def test_headless_replay_repeats_the_same_numbers(tmp_path):
    from ftstudio.core.engine import evaluate_run

    p = tiny()
    first = run_pipeline(p, tmp_path / "a", say=lambda line: None)
    second = run_pipeline(p, tmp_path / "b", say=lambda line: None)
    assert set(first.runs) == {"pretrain", "finetune", "scratch"}
    for a, b in zip(first.comparison.rows, second.comparison.rows):
        assert (a.stage, a.accuracy, a.loss) == (b.stage, b.accuracy, b.loss)
    row = first.comparison.row("finetune")
    ev = evaluate_run(first.runs["finetune"], which="last")  # what `ftstudio evaluate --checkpoint last` says
    assert (row.accuracy, row.loss, row.count) == (ev["accuracy"], ev["loss"], ev["count"]) and row.count == 359
    lineage = json.loads((first.runs["finetune"] / "summary.json").read_text())["lineage"]
    assert lineage["source"] == str(first.runs["pretrain"].resolve())
    saved = json.loads((tmp_path / "a" / COMPARISON_FILE).read_text())
    assert [r["accuracy"] for r in saved["rows"]] == [r.accuracy for r in first.comparison.rows]
    assert first.export.ok and (tmp_path / "a" / "export" / "model.pt").is_file()


def test_cli_run_takes_a_pipeline_and_refuses_bad_ones(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_bad(lambda d: d.update(pretrain=None))))
    out = cli("run", str(bad))
    assert out.returncode == 2 and "finetune.finetune.source" in out.stderr and "Traceback" not in out.stderr
    good = tmp_path / "good.json"
    save_pipeline(good, tiny(steps=2).replace(scratch=None, export=None))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    out = cli("run", str(good), "--out", str(tmp_path / "full"))
    assert out.returncode == 2 and "not an empty folder" in out.stderr
    out = cli("run", str(good), "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "fine-tuned" in out.stdout and (tmp_path / "out" / "finetune" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "out" / "scratch").exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), json_values)
def test_any_mangled_pipeline_only_raises_input_error(data, value):
    doc = default_pipeline().to_dict()
    path = data.draw(st.sampled_from(list(_paths(doc))[1:]))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        Pipeline.from_dict(doc)
    except InputError:
        pass


def test_the_verdict_reads_in_the_tables_unit():
    """The wizard's headline said "+0.251" while its table said 74.7 % and 49.6 %."""
    from pathlib import Path

    from ftstudio.core.workflow.runner import Comparison, ComparisonRow

    rows = [ComparisonRow("finetune", "fine-tuned", Path("a"), 0.747, 0.8, 359, 10, 10, 1.0),
            ComparisonRow("scratch", "from scratch", Path("b"), 0.496, 1.5, 359, 10, 10, 1.0)]
    comparison = Comparison(rows)
    assert comparison.verdict() == ("fine-tuning beats training from scratch by 25.1 points "
                                    "(74.7% vs 49.6% held-out accuracy)")
    assert "74.7%" in comparison.table() and "49.6%" in comparison.table()
