"""onnx-int8: quantized with onnxruntime, calibrated on training images, verified by its held-out accuracy."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from ftstudio.core.errors import InputError
from ftstudio.core.export import export_model, export_run
from ftstudio.core.inference.predict import load_predictor, predict
from tests.ft_helpers import recipe, source_run  # noqa: F401  (fixture)
from tests.helpers import digit_images

SMALL = {"name": "small cnn", "layers": [
    {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}}, {"type": "ReLU"},
    {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": "classes"}}]}


@pytest.mark.slow
def test_int8_export_is_verified_with_its_accuracy_drop_sizes_and_latency(tmp_path):
    from ftstudio.core.engine import train

    run = tmp_path / "run"  # a model that learned something (~97%), so an accuracy drop would show
    train(recipe({"name": "digits", "classes": ["0", "1", "2", "3", "4"], "per_class": 60},
                 {"epochs": 4, "lr": 0.01}, model=SMALL), run)
    from ftstudio.core.engine import quant_data

    report = export_run(run, ["onnx", "onnx-int8"], tmp_path / "out", quant_loader=quant_data)
    assert report.ok, [f.message for f in report.files]
    fp32, int8 = report.files
    assert int8.format == "onnx-int8" and int8.path.name == "model.int8.onnx" and int8.verified
    assert int8.float_accuracy > 0.8 and int8.float_accuracy - int8.accuracy <= 0.02
    assert f"{int8.accuracy:.4f}" in int8.message and "drop" in int8.message
    assert int8.size_bytes > 0 and fp32.size_bytes > 0
    assert all(f.latency_ms > 0 and math.isfinite(f.latency_ms) for f in report.files)
    card = report.card_path.read_text()
    assert "latency (1 image, this machine)" in card and "model.int8.onnx" in card and " KB" in card
    predictor = load_predictor(int8.path)  # the int8 file itself, not the folder's float default
    assert predictor.kind == "onnx-int8"
    assert load_predictor(report.out_dir).kind == "onnx"
    (tmp_path / "img").mkdir()
    pics, _ = digit_images(2, 8, seed=9)
    for i, pic in enumerate(pics):
        Image.fromarray(pic).save(tmp_path / "img" / f"{i}.png")
    a = predict(predictor, [tmp_path / "img"]).predictions
    b = predict(report.out_dir, [tmp_path / "img"]).predictions
    assert sum(x.label == y.label for x, y in zip(a, b)) >= 0.9 * len(a)


def test_int8_without_calibration_images_is_not_verified(source_run, tmp_path):  # noqa: F811
    from ftstudio.core.engine import load_run_model

    model, ckpt = load_run_model(source_run)
    report = export_model(model, ckpt, ["onnx-int8"], tmp_path)
    assert not report.ok and "needs the run's training images" in report.files[0].message
    report = export_run(source_run, ["onnx-int8"], tmp_path / "run")  # no quant_loader given
    assert not report.ok and "needs the run's training images" in report.files[0].message
    with pytest.raises(InputError, match="onnx-int9: unknown format; choose from .*onnx-int8"):
        export_run(source_run, ["onnx-int9"])
