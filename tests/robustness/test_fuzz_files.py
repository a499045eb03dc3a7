"""Fuzz every file the app reads with random and hostile content.

Recipes, architecture files, checkpoints and caches are untrusted input: only our InputError
may escape (a clear message, exit 2). The run's own records (summary.json, metrics.jsonl) and
the settings are read by tolerant readers: nothing may escape at all.
"""

from __future__ import annotations

import io
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftstudio.core.errors import InputError

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["auto", "classes", "/dev/zero", "..", "best", "", "\udce9"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
KEYS = {
    "recipe": ["version", "name", "data", "model", "train", "finetune"],
    "summary": ["name", "status", "created_ts", "epochs", "best_val_accuracy", "classes", "duration_s", "lineage"],
    "metrics": ["kind", "epoch", "step", "steps", "losses", "val_accuracy", "train_loss", "best", "time"],
    "architecture": ["format", "version", "input_shape", "layers", "name"],
}


def documents(kind: str):
    """Dicts with the file's real keys and hostile values, any JSON, and raw bytes."""
    keyed = st.dictionaries(st.sampled_from(KEYS[kind]), json_values, max_size=6)
    as_json = (keyed | json_values).map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8", "surrogatepass"))
    hostile = st.sampled_from([b"", b"\xff\xfe", b"[" * 50_000, b'{"a": ' + b"9" * 5000 + b"}", b"\x00" * 64,
                               b'{"train": {"seed": 1e400}}', b"PK\x03\x04garbage"])
    return as_json | hostile | st.binary(max_size=200)


@SETTINGS
@given(raw=documents("recipe"))
def test_recipe_files(tmp_path, raw):
    from ftstudio.core.config.recipe import load_recipe

    (tmp_path / "r.json").write_bytes(raw)
    try:
        load_recipe(tmp_path / "r.json")
    except InputError:
        pass


@SETTINGS
@given(raw=documents("architecture"))
def test_architecture_files(tmp_path, raw):
    from ftstudio.core.architecture.presets import resolve_model

    (tmp_path / "model.json").write_bytes(raw)
    try:
        resolve_model(str(tmp_path / "model.json"))
    except InputError:
        pass


@SETTINGS
@given(raw=documents("summary"))
def test_summary_files(tmp_path, raw):
    from ftstudio.core.runs.folders import Run, list_runs

    run = Run(tmp_path / "run")
    run.path.mkdir(exist_ok=True)
    (run.path / "recipe.json").write_text("{}")
    run.summary_path.write_bytes(raw)
    s = run.summary()
    assert s.created_ts is None or math.isfinite(s.created_ts)
    assert s.epochs is None or isinstance(s.epochs, int)
    assert [r.path for r in list_runs(tmp_path)] == [run.path]
    run.update_summary(status="stopped")  # the writer always produces a file the reader takes
    assert run.summary().status == "stopped" and not run.summary().problems


@SETTINGS
@given(lines=st.lists(documents("metrics"), max_size=6))
def test_metrics_files(tmp_path, lines):
    from ftstudio.core.runs.folders import Run

    run = Run(tmp_path / "run")
    run.path.mkdir(exist_ok=True)
    run.metrics_path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    for row in run.epochs():
        assert isinstance(row["epoch"], int) and row["epoch"] >= 1
    run.truncate_metrics(epoch=2, step=5)


tensors = st.builds(lambda n, v: __import__("torch").full((n,), v), st.integers(0, 3),
                    st.floats(allow_nan=True, allow_infinity=True, width=32))
checkpoint_values = st.recursive(scalars | tensors, lambda inner: st.lists(inner, max_size=3)
                                 | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


@SETTINGS
@given(fields=st.dictionaries(st.sampled_from(["model", "epoch", "step", "architecture", "classes", "preprocess",
                                               "lora", "recipe", "batch"]), checkpoint_values, max_size=9),
       forged=st.booleans(), raw=st.binary(max_size=200))
def test_checkpoint_files(tmp_path, fields, forged, raw):
    import torch

    from ftstudio.core.training import checkpoint

    path = tmp_path / "c.pt"
    if forged:
        buf = io.BytesIO()
        torch.save({"format": "ftstudio.checkpoint", "version": 1, **fields}, buf)
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(raw)
    try:
        data = checkpoint.load(path)
    except InputError:
        return
    assert checkpoint.field_problem(data) is None


@SETTINGS
@given(raw=st.binary(max_size=300) | st.sampled_from([b"PK\x03\x04" + b"\x00" * 40, b""]))
def test_decode_caches(tmp_path, raw):
    from ftstudio.core.datasets.folder import _read_cache

    (tmp_path / "k.npz").write_bytes(raw)
    assert _read_cache(tmp_path, "k", (1, 8, 8), 10, 2) is None
    assert not (tmp_path / "k.npz").exists()  # discarded, so the next run rebuilds it


@SETTINGS
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
       recipe=documents("recipe").map(lambda b: b.decode("utf-8", "replace")))
def test_settings(tmp_path, monkeypatch, raw, recipe):
    from ftstudio.gui.settings import read_json, settings as app_settings, write_json
    from ftstudio.gui.state import Session

    monkeypatch.setenv("FTSTUDIO_HOME", str(tmp_path))
    ini = tmp_path / "config" / "ftstudio.ini"
    ini.parent.mkdir(exist_ok=True)
    ini.write_bytes(raw)  # whatever the INI file holds
    store = app_settings()
    read_json(store, "session/recipe")
    store.setValue("session/recipe", recipe)  # whatever the saved recipe is
    Session().restore(store)
    write_json(store, "session/recipe", {"model": "/dev/zero"})
    Session().restore(store)
