"""`predict`: labels on unlabelled images agree with `evaluate`, with the exported files, and bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ftstudio.cli import main
from ftstudio.core.errors import InputError
from ftstudio.core.inference.predict import folder_truth, load_predictor, predict
from tests.ft_helpers import SOURCE_CLASSES, source_run  # noqa: F401  (fixture)
from tests.helpers import digit_images


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Digits 0–4 the source run never saw, one subfolder per class, plus a file that is no image."""
    root = tmp_path_factory.mktemp("labelled")
    images, labels = digit_images(8, 28, seed=7)
    for i, (img, label) in enumerate(zip(images, labels)):
        if str(label) in SOURCE_CLASSES:
            (root / str(label)).mkdir(exist_ok=True)
            Image.fromarray(img).save(root / str(label) / f"{i:03d}.png")
    (root / "0" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def exported(source_run, tmp_path_factory) -> Path:  # noqa: F811
    from ftstudio.core.export import export_run

    out = tmp_path_factory.mktemp("export")
    assert export_run(source_run, ["onnx", "pt2"], out).ok
    return out


def _accuracy(result, classes) -> float:
    hits = [p.label == folder_truth(p.path, classes) for p in result.predictions]
    return sum(hits) / len(hits)


def test_predicting_a_labelled_folder_reproduces_evaluate(source_run, labelled):  # noqa: F811
    from ftstudio.core.engine import evaluate_run

    report = evaluate_run(source_run, str(labelled))
    result = predict(source_run, [labelled], batch_size=7)  # batches that do not divide the folder
    assert len(result.predictions) == report["count"] == 40
    assert _accuracy(result, tuple(SOURCE_CLASSES)) == pytest.approx(report["accuracy"], abs=1e-9)
    assert result.skipped == [(str(labelled / "0" / "broken.png"), "not an image Pillow can read")]
    for p in result.predictions:
        assert p.top[0] == (p.label, p.probability) and len(p.top) == 3
        assert [q for _, q in p.top] == sorted((q for _, q in p.top), reverse=True)


def test_run_folder_and_its_exports_give_the_same_labels(source_run, labelled, exported):  # noqa: F811
    run = predict(source_run, [labelled])
    for fmt, file in (("onnx", "model.onnx"), ("pt2", "model.pt2")):
        source = exported / file  # a model file names its export folder; pt2 alone when onnx is gone
        if fmt == "pt2":
            source = exported.parent / "pt2-only"
            source.mkdir(exist_ok=True)
            sig = json.loads((exported / "signature.json").read_text())
            sig["files"] = {"pt2": "model.pt2"}
            (source / "signature.json").write_text(json.dumps(sig))
            (source / "model.pt2").write_bytes((exported / "model.pt2").read_bytes())
        predictor = load_predictor(source)
        assert predictor.kind == fmt and predictor.module is None  # no ftstudio model code on this path
        other = predict(predictor, [labelled])
        assert [p.label for p in other.predictions] == [p.label for p in run.predictions]
        for a, b in zip(run.predictions, other.predictions):
            assert a.probability == pytest.approx(b.probability, abs=1e-4)


def test_cli_plain_and_json_lines(source_run, labelled, capsys):  # noqa: F811
    assert main(["predict", str(source_run), str(labelled / "1")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8
    path, label, prob = lines[0].split("\t")
    assert Path(path).parent.name == "1" and label in SOURCE_CLASSES and 0 < float(prob) <= 1
    assert main(["predict", str(source_run), str(labelled / "1"), "--top-k", "2"]) == 0  # two pairs after the path
    ranked = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert ranked[0][:3] == [path, label, prob] and len(ranked[0]) == 5 and ranked[0][3] != label
    assert all(float(r[2]) >= float(r[4]) for r in ranked)
    assert main(["predict", str(source_run), str(labelled), "--json", "--top-k", "9"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert len(rows) == 40 and set(rows[0]) == {"path", "label", "probability", "top"}
    assert all(r["top"][0]["label"] == r["label"] and len(r["top"]) == 5 for r in rows)  # k capped at 5 classes
    assert "broken.png: not an image Pillow can read" in captured.err


@pytest.mark.parametrize("args, expected", [
    (["{tmp}/nowhere", "{labelled}"], "nowhere: not found; give a run folder"),
    (["{run}", "{tmp}/missing.png"], "no image files found"),
    (["{run}", "{labelled}/0/broken.png"], "none of the 1 file(s) could be read"),
    (["{run}", "{labelled}", "--top-k", "0"], "--top-k must be at least 1"),
    (["{tmp}", "{labelled}"], "not a run folder"),
])
def test_bad_paths_are_named_without_traceback(source_run, labelled, tmp_path, capsys, args, expected):  # noqa: F811
    argv = [a.format(tmp=tmp_path, labelled=labelled, run=source_run) for a in args]
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_a_damaged_signature_names_its_field(exported, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    sig = json.loads((exported / "signature.json").read_text())
    (folder / "signature.json").write_text(json.dumps({**sig, "preprocessing": {**sig["preprocessing"], "std": [0]}}))
    with pytest.raises(InputError, match="field 'preprocessing.std'"):
        load_predictor(folder)
    (folder / "signature.json").write_text(json.dumps(sig))  # lists model.onnx, which is not here
    with pytest.raises(InputError, match="lists no model.onnx or model.pt2"):
        load_predictor(folder)
    (folder / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot load this onnx model"):
        load_predictor(folder)


def test_a_signature_that_does_not_match_its_model_is_named_not_a_crash(exported, labelled, tmp_path, capsys):
    """An edited signature.json (fewer classes, another image size) crashed predict with an
    IndexError or onnxruntime's InvalidArgument: "unexpected failure"."""
    import shutil

    sig = json.loads((exported / "signature.json").read_text())
    image = str(labelled / "1")

    def folder(name: str, files: dict, **changes) -> Path:
        out = tmp_path / name
        out.mkdir()
        for file in files.values():
            shutil.copy(exported / file, out / file)
        (out / "signature.json").write_text(json.dumps({**sig, "files": files, **changes}))
        return out

    fewer = folder("fewer", {"onnx": "model.onnx"}, classes=sig["classes"][:3])
    bigger = folder("bigger", {"onnx": "model.onnx"}, input_shape=[1, 16, 16],
                    preprocessing={**sig["preprocessing"], "image_size": [16, 16]})
    pt2 = folder("pt2", {"pt2": "model.pt2"}, input_shape=[1, 16, 16],
                 preprocessing={**sig["preprocessing"], "image_size": [16, 16]})
    pt2_fewer = folder("pt2-fewer", {"pt2": "model.pt2"}, classes=sig["classes"][:3])
    for source, words in ((fewer, "gives 5 scores, but signature.json says 1×8×8 and 3 classes"),
                          (bigger, "takes 1×8×8 images and gives 5 scores, but signature.json says 1×16×16"),
                          (pt2, "model.pt2: the model refused a batch of 1×16×16 images"),
                          (pt2_fewer, "the model gives 5 scores per image but names 3 classes")):
        assert main(["predict", str(source), image]) == 2
        err = capsys.readouterr().err
        assert words in err and "unexpected" not in err, err


@pytest.mark.timeout(120)
def test_a_pipe_or_device_among_the_images_is_skipped_not_waited_on(source_run, labelled, tmp_path):  # noqa: F811
    """A named pipe in a folder once hung `predict` (and the Try page) for good: open blocked on it."""
    import os

    from ftstudio.core.inference.trying import inputs_from_paths, try_inputs

    folder = tmp_path / "mixed"
    folder.mkdir()
    for src in sorted((labelled / "1").glob("*.png"))[:3]:
        (folder / src.name).write_bytes(src.read_bytes())
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    refused = {str(folder / "pipe.png"), str(folder / "zero.png")}
    result = predict(source_run, [folder])
    assert len(result.predictions) == 3
    assert {p for p, why in result.skipped if "not a regular file" in why} == refused
    predictor = load_predictor(source_run)
    inputs, missing = inputs_from_paths([folder, folder / "pipe.png"], predictor.classes)
    tried = try_inputs(predictor, inputs)
    assert not missing and tried.total == 3 and {p for p, _ in tried.skipped} == refused
