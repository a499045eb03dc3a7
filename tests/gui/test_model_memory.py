"""The Model page's memory line (does the network fit the chosen device, and what to change) and the palette's
search through the backbone catalogue — driven like a user: typing, Enter, double-clicks, drops."""

from __future__ import annotations

from PySide6.QtCore import Qt

from ftstudio.core.config.recipe import TrainConfig
from ftstudio.gui.composer.palette import NAME
from tests.gui.composer_helpers import below, drop, open_page, settle

IMAGES = ((3, 224, 224), 10)


def _type(qtbot, page, text: str) -> None:
    page.palette.search.clear()
    qtbot.keyClicks(page.palette.search, text)


def test_a_large_backbone_does_not_fit_a_small_gpu_and_the_page_says_what_to_do(qtbot, monkeypatch):
    from ftstudio.core.planning import memory

    pretend = memory.DeviceBudget("cuda:0", "GPU 0 (pretend)", free=6_000_000_000, total=8_000_000_000, gpus=1)
    monkeypatch.setattr(memory, "device_budget", lambda device: pretend)
    page = open_page(qtbot, data=IMAGES)
    assert page.memory.isVisible() and "fits GPU 0 (pretend) (6.0 GB free)" in page.memory.text()  # the MLP

    page.actions_["new"].trigger()
    _type(qtbot, page, "resnet50")  # a pretrained ResNet-50 from the palette's search, then a head
    qtbot.keyClick(page.palette.search, Qt.Key.Key_Return)
    _type(qtbot, page, "linear")
    qtbot.keyClick(page.palette.search, Qt.Key.Key_Return)
    settle(qtbot, page)
    assert [(layer.type, layer.params.get("name")) for layer in page.model_spec().layers] == [
        ("Backbone", "resnet50"), ("Linear", None)]
    text, tip = page.memory.text(), page.memory.toolTip()
    # 23.5 M parameters (headless) with Adam (0.4 GB) and ~100 MB of activations per 224×224 image at batch 64
    assert "to train at batch size 64 — more than the 6.0 GB free on GPU 0 (pretend)" in text
    assert "Try gradient checkpointing (--grad-checkpoint)" in text and not page.memory_fit.fits
    for suggestion in ("--distributed fsdp on 2 GPUs (this machine has 1)", "batch size 32", "bf16 mixed precision"):
        assert suggestion in tip, suggestion
    assert "Optimizer state: 188 MB" in tip  # Adam: 2 × 4 bytes × 23.5 M trainable parameters

    page.set_train(TrainConfig(grad_checkpoint=True))  # on already: counted, and no longer suggested
    assert page.memory_fit.fits and page.memory_fit.suggestions == () and "about 4." in page.memory.text()
    page.set_train(TrainConfig(batch_size=16, optimizer="sgd"))
    assert page.memory_fit.fits and "about 1.9 GB" in page.memory.text() and "fits GPU 0" in page.memory.text()
    assert "Optimizer state: 94 MB" in page.memory.toolTip()  # SGD's momentum: one tensor per parameter


def test_the_memory_line_is_for_the_chosen_device(qtbot):
    page = open_page(qtbot)
    assert "fits this computer's RAM" in page.memory.text()
    page.set_data(None, "cuda:99")
    settle(qtbot, page)
    assert "<b>Memory:</b> unknown" in page.memory.text() and "cuda:99" in page.memory.text()


def test_the_palette_searches_the_backbone_catalogue(qtbot):
    page = open_page(qtbot, data=((3, 64, 64), 5))
    page.actions_["new"].trigger()
    palette = page.palette
    assert palette.found_backbones() == []  # nothing listed (nor timm imported) before a search
    _type(qtbot, page, "resnet5")
    found = palette.found_backbones()
    assert found[0] == "torchvision:resnet50" and "timm:resnet50" in found and "timm:resnet50d" in found
    assert all("resnet5" in name for name in found) and palette.visible_kinds() == []
    _type(qtbot, page, "vit_small_patch16")
    found = palette.found_backbones()
    assert "timm:vit_small_patch16_224" in found and all("vit_small_patch16" in n for n in found)
    item = next(i for i in palette.found if i.data(0, NAME) == "timm:vit_small_patch16_224")
    palette.tree.scrollToItem(item)
    where = palette.tree.visualItemRect(item).center()
    assert palette.tree.itemAt(where) is item
    qtbot.mouseClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=where)  # Qt's double click: press,
    qtbot.mouseDClick(palette.tree.viewport(), Qt.MouseButton.LeftButton, pos=where)  # release, then the second
    assert [(x.type, x.params["name"]) for x in page.model_spec().layers] == [("TimmBackbone", "vit_small_patch16_224")]

    _type(qtbot, page, "conv")  # a layer type and backbones alike: both listed, Enter adds the layer type
    assert "Conv2d" in palette.visible_kinds() and any("convnext" in n for n in palette.found_backbones())
    _type(qtbot, page, "e")  # timm's catalogue is large: a short search lists 50 and says how many more
    heads = palette.groups["Pretrained backbones"]
    assert len(palette.found_backbones()) == 50 and "more: type more of the name" in heads.child(
        heads.childCount() - 1).text(0)

    _type(qtbot, page, "mobilenet_v3_small")  # dragged onto the network like a layer type
    item = next(i for i in palette.found if i.data(0, NAME) == "torchvision:mobilenet_v3_small")
    drop(page, palette.tree.mimeData([item]), below(page, "0"))
    layers = page.model_spec().layers
    assert [(x.type, x.params["name"]) for x in layers] == [("TimmBackbone", "vit_small_patch16_224"),
                                                            ("Backbone", "mobilenet_v3_small")]
    palette.search.clear()
    assert palette.found_backbones() == [] and palette.visible_kinds()[:2] == ["Linear", "Flatten"]
