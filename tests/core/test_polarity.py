"""Input polarity: new images that are the negative of the source's are found, inverted through the
normalisation (a negative std), and the inversion reaches every consumer of the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ftstudio.core.finetune.polarity import above_chance, clearly_lower, inverted
from tests.core.test_transfer import BN_CNN, bn_source, scanner_folder  # noqa: F401  (fixture)
from tests.ft_helpers import recipe


def inverted_folder(out: Path, every: int = 3, names: str = "0123456789", invert: bool = True) -> Path:
    """The bundled digits, dark strokes on a light ground (the source learned light on dark), as PNGs;
    ``names``: the class folders' names, digit by digit."""
    from PIL import Image

    from ftstudio.core.datasets.sources import load_digits

    raw = load_digits()
    for i in range(0, len(raw.images), every):
        folder = out / names[raw.labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - raw.images[i, 0] if invert else raw.images[i, 0]).save(folder / f"{i}.png")
    return out


def _finetune(source: Path, folder: Path, out: Path, **plan):
    from ftstudio.core.engine import train

    r = recipe({"name": str(folder), "per_class": 5, "val_split": 0.5}, {"epochs": 1, "lr": 0.01},
               {"source": str(source), "checkpoint": "last", "strategy": "head", "min_steps": 40, **plan})
    return train(r, out)


def test_inverted_digits_are_found_and_head_only_learns_them_and_keep_does_not(bn_source, tmp_path):  # noqa: F811
    """Measured: auto 0.99 (the source itself 0.98 on the inverted images once they are inverted back),
    --polarity keep 0.63 (the old behaviour: a frozen backbone whose features changed sign)."""
    from ftstudio.core.finetune.baseline import describe
    from ftstudio.core.training import checkpoint

    folder = inverted_folder(tmp_path / "inverted")
    auto = _finetune(bn_source, folder, tmp_path / "auto").summary
    keep = _finetune(bn_source, folder, tmp_path / "keep", polarity="keep").summary
    found = auto["polarity"]
    assert found["mode"] == "auto" and found["applied"] == "invert" and found["images"] == 50
    assert found["inverted"] > 0.8 and found["as_is"] < 0.4  # measured on the training images, both ways
    assert keep["polarity"] == {"mode": "keep", "applied": "keep", "as_is": None, "inverted": None, "images": 0,
                                "measure": None}
    assert found["measure"] == "head"
    assert auto["baseline"]["val_accuracy"] > 0.8 and keep["baseline"]["val_accuracy"] < 0.3
    assert auto["val_accuracy"] > 0.9 and auto["val_accuracy"] > keep["val_accuracy"] + 0.2
    # the inversion is the normalisation: mean 1 − m and a negative std, in the checkpoint and summary.json
    source = checkpoint.load(bn_source / "checkpoints" / "last.pt")["preprocess"]
    pre = checkpoint.load(tmp_path / "auto" / "checkpoints" / "last.pt")["preprocess"]
    assert pre["std"] == pytest.approx([-s for s in source["std"]]) and all(s < 0 for s in pre["std"])
    assert pre["mean"] == pytest.approx([1 - m for m in source["mean"]])
    written = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert written["polarity"]["applied"] == "invert"
    assert "inputs inverted" in describe(written) and "inputs inverted" not in describe(keep)  # the Runs page
    (note,) = [n for n in written["notes"] if n.startswith("input polarity:")]
    assert "the new images are the negative of the source's" in note and "0.960" in note


def test_an_inverted_run_predicts_and_exports_with_its_inversion(bn_source, tmp_path):  # noqa: F811
    """predict on the run folder and on its ONNX export (reloaded by onnxruntime) both invert the images:
    the same labels, and right on the inverted digits; signature.json and the card say so."""
    from ftstudio.core.export import export_run
    from ftstudio.core.inference.predict import folder_truth, load_predictor, predict

    folder = inverted_folder(tmp_path / "inverted")
    run = tmp_path / "run"
    _finetune(bn_source, folder, run, polarity="invert")
    files = sorted(folder.glob("*/*.png"))[::4]
    by_run = predict(run, files)
    classes = load_predictor(run).classes
    hits = [p.label == folder_truth(p.path, classes) for p in by_run.predictions]
    assert sum(hits) / len(hits) > 0.85
    out = tmp_path / "export"
    assert export_run(run, ["onnx"], out).ok
    sig = json.loads((out / "signature.json").read_text())
    assert all(s < 0 for s in sig["preprocessing"]["std"]) and "inverted images" in sig["preprocessing"]["inverted"]
    assert "the model takes inverted images" in (out / "model_card.md").read_text()
    by_onnx = predict(load_predictor(out / "model.onnx"), files)
    assert [p.label for p in by_onnx.predictions] == [p.label for p in by_run.predictions]


def test_images_that_are_not_inverted_keep_their_polarity(bn_source, tmp_path):  # noqa: F811
    """A shifted scanner (low contrast, noise) and the source's own kind of digits: measured, not inverted."""
    from ftstudio.core.finetune.strategies import prepare_finetune

    for data in ({"name": str(scanner_folder(tmp_path / "scanner")), "per_class": 5, "val_split": 0.5},
                 {"name": "digits", "per_class": 2}):
        prepared = prepare_finetune(recipe(data, {}, {"source": str(bn_source), "checkpoint": "last",
                                                      "strategy": "head"}))
        found = prepared.summary["polarity"]
        assert found["applied"] == "keep" and found["as_is"] > found["inverted"] and found["images"] >= 10
        assert all(s > 0 for s in prepared.data.std)
        assert any(n.startswith("input polarity: kept (the source scores") for n in prepared.notes)


def test_the_sign_test_needs_clear_evidence():
    """One-sided sign test at p < 0.01: 10 of 10 images decide, 9 do not; 35 of 50 do, 32 do not; ties are no vote."""
    def votes(wins: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([0.0] * wins + [2.0] * (n - wins)), torch.ones(n)
    assert clearly_lower(*votes(10, 10)) and not clearly_lower(*votes(9, 10))
    assert clearly_lower(*votes(35, 50)) and not clearly_lower(*votes(32, 50))
    assert not clearly_lower(*votes(9, 9))  # too few images to judge at all
    assert not clearly_lower(torch.ones(40), torch.ones(40))  # all ties


def test_above_chance_is_against_the_best_constant_answer():
    """An untrained network's 8 of 50 (10 classes) is luck, 18 of 50 is not; 9 of 10 images of one class
    is what always answering that class gives."""
    balanced = torch.arange(50) % 10
    def hits(k: int, n: int = 50) -> torch.Tensor:
        return torch.arange(n) < k
    assert not above_chance(hits(8), balanced) and above_chance(hits(18), balanced)
    skewed = torch.tensor([3] * 45 + [1, 2, 4, 5, 6])
    assert not above_chance(hits(45), skewed) and above_chance(hits(50), skewed)
    assert not above_chance(hits(9, 9), torch.zeros(9, dtype=torch.int64) + torch.arange(9))  # too few


def test_inverting_through_the_normalisation_is_exactly_one_minus_the_pixel():
    """(x − m′)/s′ with m′ = 1 − m, s′ = −s is ((1 − x) − m)/s; with the data's own statistics, −(x − m)/s.
    Inverting twice (a fine-tune of an inverted run) gives the original back."""
    from ftstudio.core.datasets.bundle import DataBundle, Split
    from ftstudio.core.training.loader import normalize

    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    data = DataBundle("d", Split(x, torch.zeros(4, dtype=torch.int64)), Split(x[:0], torch.zeros(0)), ("a",),
                      (3, 5, 5), (0.2, 0.5, 0.7), (0.3, 0.25, 0.1))
    view = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    flipped = inverted(data, source_stats=True)
    got = normalize(x, torch.tensor(flipped.mean).view(1, -1, 1, 1), torch.tensor(flipped.std).view(1, -1, 1, 1))
    assert torch.allclose(got, (1 - x.float() / 255 - view[0]) / view[1], atol=1e-5)
    own = inverted(data, source_stats=False)
    got = normalize(x, torch.tensor(own.mean).view(1, -1, 1, 1), torch.tensor(own.std).view(1, -1, 1, 1))
    assert torch.allclose(got, -(x.float() / 255 - view[0]) / view[1], atol=1e-5)
    twice = inverted(flipped, source_stats=True)
    assert np.allclose(twice.mean, data.mean) and np.allclose(twice.std, data.std)


def test_the_check_looks_at_a_capped_draw_of_a_large_training_split(bn_source, tmp_path, monkeypatch):  # noqa: F811
    """Above PROBE_IMAGES training images the check scores a fixed random draw of them (four passes before
    training, not four over the whole split), still inverts, and trains on every image, inverted."""
    from ftstudio.core.finetune import polarity
    from ftstudio.core.finetune.strategies import prepare_finetune

    monkeypatch.setattr(polarity, "PROBE_IMAGES", 30)
    folder = inverted_folder(tmp_path / "inverted")
    prepared = prepare_finetune(recipe({"name": str(folder), "val_split": 0.5}, {},
                                       {"source": str(bn_source), "checkpoint": "last", "strategy": "head"}))
    found = prepared.summary["polarity"]
    assert found["applied"] == "invert" and found["images"] == 30 and len(prepared.data.train) > 250
    assert all(s < 0 for s in prepared.data.std)


def test_a_wholly_new_class_set_is_judged_on_the_source_features(bn_source, tmp_path):  # noqa: F811
    """The source knows none of the classes (the digits under the letters a–j): its head cannot score them,
    so the nearest class mean on its features does, leave-one-out; inverted images are found, plain ones kept."""
    from ftstudio.core.finetune.polarity import nearest_mean_scores
    from ftstudio.core.finetune.strategies import prepare_finetune

    def prepared(folder: Path):
        return prepare_finetune(recipe({"name": str(folder), "per_class": 5, "val_split": 0.5}, {},
                                       {"source": str(bn_source), "checkpoint": "last", "strategy": "head"}))
    flipped = prepared(inverted_folder(tmp_path / "inv", names="abcdefghij"))
    found = flipped.summary["polarity"]
    assert found["measure"] == "features" and found["applied"] == "invert" and found["images"] == 50
    assert found["inverted"] > 0.8 and found["inverted"] > found["as_is"] + 0.1  # measured 0.88 vs 0.68
    assert any("the nearest class mean on the source's features scores" in n for n in flipped.notes)
    plain = prepared(inverted_folder(tmp_path / "plain", names="abcdefghij", invert=False)).summary["polarity"]
    assert plain["measure"] == "features" and plain["applied"] == "keep" and plain["as_is"] > plain["inverted"]
    # leave-one-out by hand on three images: each is scored against the other member of its class
    body = torch.nn.Flatten()
    from ftstudio.core.datasets.bundle import DataBundle, Split
    x = torch.tensor([[[[255, 0]]], [[[250, 10]]], [[[0, 255]]], [[[5, 240]]], [[[9, 0]]]], dtype=torch.uint8)
    y = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one image: no mean to compare it with
    data = DataBundle("d", Split(x, y), Split(x[:0], y[:0]), ("a", "b", "c"), (1, 1, 2), (0.0,), (1.0,))
    losses, hits, labels = nearest_mean_scores(body, data, "cpu")
    assert labels.tolist() == [0, 0, 1, 1] and hits.all() and (losses < 0.01).all()
