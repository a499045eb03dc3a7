"""Per-class precision / recall / F1 with averages, and the gallery of a run's misclassified images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ftstudio.cli import main
from ftstudio.core.inference.mistakes import assess
from ftstudio.core.training.metrics import averages, class_metrics
from tests.ft_helpers import SOURCE_CLASSES, source_run  # noqa: F401  (fixture)


def test_class_metrics_and_averages_by_hand():
    # true a: 3 right, 1 called b · true b: 1 right, 1 called a · true c: 0 images, 1 image called c (from b)
    confusion = np.array([[3, 1, 0], [1, 1, 1], [0, 0, 0]])
    m = class_metrics(confusion, ("a", "b", "c"))
    assert m["a"] == pytest.approx({"support": 4, "accuracy": 0.75, "precision": 0.75, "recall": 0.75, "f1": 0.75})
    assert m["b"]["precision"] == 0.5 and m["b"]["recall"] == pytest.approx(1 / 3)
    assert m["b"]["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert m["c"] == {"support": 0, "accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    avg = averages(m)
    assert avg["macro"]["recall"] == pytest.approx((0.75 + 1 / 3 + 0) / 3)
    assert avg["weighted"]["recall"] == pytest.approx((4 * 0.75 + 3 * (1 / 3)) / 7)  # = accuracy 4/7
    assert avg["weighted"]["support"] == 7


def test_evaluate_prints_and_reports_per_class_metrics(source_run, capsys):  # noqa: F811
    assert main(["evaluate", str(source_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["per_class"]) == set(SOURCE_CLASSES)
    assert {"precision", "recall", "f1", "support"} <= set(report["per_class"]["0"])
    assert report["weighted"]["recall"] == pytest.approx(report["accuracy"])
    assert main(["evaluate", str(source_run)]) == 0
    out = capsys.readouterr().out
    assert "precision  recall      f1  support" in out and "macro avg" in out and "weighted avg" in out


def test_mistakes_are_the_misclassified_held_out_images_most_confident_first(source_run):  # noqa: F811
    a = assess(source_run, limit=5)
    confusion = np.array(a.report["confusion"])
    assert a.total_mistakes == confusion.sum() - np.trace(confusion) > 0
    assert 0 < len(a.mistakes) <= 5
    confidences = [m.confidence for m in a.mistakes]
    assert confidences == sorted(confidences, reverse=True)
    for m in a.mistakes:
        assert m.true != m.predicted and m.true in SOURCE_CLASSES and m.image.shape == (1, 8, 8)
        assert m.image.dtype == np.uint8
