"""The composer on its own (as the wizard embeds it): palette drops and keys, reorder, live shapes,
red cards, the property editor, undo/redo, files, presets."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from ftstudio.core.architecture import analyze, parse_model
from ftstudio.core.architecture.presets import load_preset, preset_names
from ftstudio.core.errors import InputError
from ftstudio.gui.composer.cards import PATH_MIME, Card
from ftstudio.gui.composer.palette import type_mime
from tests.gui.composer_helpers import (above, below, card_shapes, click_card, drop, dump, engine_shapes, open_page,
                                        palette_mime, set_param, settle)

DIGITS = ((1, 8, 8), 10)
MNIST = ((1, 28, 28), 10)


@pytest.fixture
def page(qtbot):
    return open_page(qtbot, data=DIGITS)


def types(page) -> list[str]:
    return [layer.type for layer in page.model_spec().layers]


def test_a_palette_drop_inserts_where_it_lands(qtbot, page):
    assert types(page) == ["Flatten", "Linear", "ReLU", "Linear"]
    drop(page, palette_mime(page, "Dropout"), below(page, "1"))  # between the Linear and the ReLU
    assert types(page) == ["Flatten", "Linear", "Dropout", "ReLU", "Linear"]
    assert page.editor.selected == "2"
    drop(page, palette_mime(page, "BatchNorm2d"), above(page, "0"))  # at the very top
    assert types(page)[0] == "BatchNorm2d"
    settle(qtbot, page)
    assert card_shapes(page) == engine_shapes(page.model_spec(), *DIGITS)

    page.set_model("cnn")  # a Residual block at 3: drops land inside it or around it
    settle(qtbot, page)
    block = page.canvas.cards["3"]
    inner_gap = below(page, "3.0")
    drop(page, type_mime("Dropout"), inner_gap)
    assert [layer.type for layer in page.model_spec().layers[3].layers] == ["Conv2d", "Dropout", "BatchNorm2d", "ReLU"]
    drop(page, type_mime("GELU"), below(page, "3"))
    assert page.model_spec().layers[4].type == "GELU" and block.path == "3"
    settle(qtbot, page)
    assert card_shapes(page) == engine_shapes(page.model_spec(), *DIGITS)


def test_the_keyboard_adds_moves_copies_and_deletes(qtbot, page):
    canvas = page.canvas
    click_card(qtbot, page, "0")
    qtbot.keyClick(canvas, Qt.Key.Key_Down)
    assert page.editor.selected == "1"
    # the palette: type in its search box, Enter adds the best match after the selected layer
    qtbot.keyClicks(page.palette.search, "drop")
    assert page.palette.visible_kinds() == ["Dropout"]
    qtbot.keyClick(page.palette.search, Qt.Key.Key_Return)
    assert types(page) == ["Flatten", "Linear", "Dropout", "ReLU", "Linear"] and page.editor.selected == "2"
    page.palette.search.clear()
    tree = page.palette.tree
    tree.setCurrentItem(page.palette.items()["GELU"])
    qtbot.keyClick(tree, Qt.Key.Key_Return)  # Enter on a palette entry adds it too
    assert types(page)[3] == "GELU"

    qtbot.keyClick(canvas, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # move GELU above the Dropout
    assert types(page)[1:4] == ["Linear", "GELU", "Dropout"] and page.editor.selected == "2"
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert types(page) == ["Flatten", "Linear", "Dropout", "ReLU", "Linear"]
    click_card(qtbot, page, "1")
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert json.loads(QApplication.clipboard().text())[0]["type"] == "Linear"
    click_card(qtbot, page, "3")
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)  # pasted after the ReLU
    assert types(page) == ["Flatten", "Linear", "Dropout", "ReLU", "Linear", "Linear"]
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert types(page).count("Linear") == 4
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert page.model_spec().layers[5].freeze
    QApplication.clipboard().setText("not layers")
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert "clipboard holds no layers" in page.banner.text()


def test_double_click_and_context_menu_insert(qtbot, page):
    item = page.palette.items()["Tanh"]
    click_card(qtbot, page, "2")
    page.palette.tree.itemDoubleClicked.emit(item, 0)
    assert types(page)[3] == "Tanh"
    menu = page.canvas.context_menu("0")
    add = next(a.menu() for a in menu.actions() if a.text() == "Add layer after")
    dense = next(a.menu() for a in add.actions() if a.text() == "Dense")
    next(a for a in dense.actions() if a.text() == "Linear").trigger()
    assert types(page)[:2] == ["Flatten", "Linear"] and len(types(page)) == 6
    delete = next(a for a in page.canvas.context_menu("1").actions() if a.text().startswith("Delete"))
    delete.trigger()
    assert len(types(page)) == 5


def test_dragging_a_card_reorders_and_a_block_cannot_swallow_itself(qtbot, page):
    mime = page.canvas.cards["0"].mime()
    assert bytes(mime.data(PATH_MIME)) == b"0"
    drop(page, mime, below(page, "2"))  # Flatten after the ReLU
    assert types(page) == ["Linear", "ReLU", "Flatten", "Linear"]
    settle(qtbot, page)
    assert page.canvas.cards["0"].error_text()  # a Linear on an image: the engine says why
    page.editor.stack.undo()
    assert types(page) == ["Flatten", "Linear", "ReLU", "Linear"]

    page.set_model("cnn")
    settle(qtbot, page)
    before = dump(page.model_spec())
    drop(page, page.canvas.cards["3"].mime(), below(page, "3.0"))  # into its own body: refused
    assert dump(page.model_spec()) == before
    drop(page, page.canvas.cards["3.2"].mime(), below(page, "4"))  # out of the block
    assert len(page.model_spec().layers[3].layers) == 2 and page.model_spec().layers[5].type == "ReLU"


def test_a_parameter_edit_updates_every_downstream_shape(qtbot, page):
    page.set_model("lenet")
    page.set_input(*MNIST)
    settle(qtbot, page)
    assert card_shapes(page) == engine_shapes(load_preset("lenet"), *MNIST)
    old = card_shapes(page)
    set_param(qtbot, page, "0", "out_channels", 8)
    set_param(qtbot, page, "0", "padding", 0)
    settle(qtbot, page)
    new = card_shapes(page)
    assert new == engine_shapes(page.model_spec(), *MNIST)
    assert new["0"] == "8×24×24" and new["2"] == "8×12×12" and new["3"] == "16×8×8" and new["6"] == "256"
    assert all(new[p] != old[p] for p in ("0", "1", "2", "3", "4", "5", "6"))
    conv = page.canvas.cards["3"]
    assert conv.weights.text().startswith(f"{16 * 8 * 25 + 16:,} params")
    assert page.properties.widgets["in_channels"].text() == "auto (1)"  # what auto means now
    click_card(qtbot, page, "3")
    assert page.properties.widgets["in_channels"].text() == "auto (8)"
    assert f"{page.analysis.params:,}" in page.header.text() and "•" in page.header.text()


def test_an_impossible_layer_turns_red_with_the_engines_message(qtbot, page):
    page.set_model("lenet")  # 28×28 LeNet on 8×8 digits: the second 5×5 conv has nothing left
    settle(qtbot, page)
    message = analyze(load_preset("lenet"), *DIGITS).layers[3].error
    card = page.canvas.cards["3"]
    assert "too small" in message and card.error_text() == message and card.property("error")
    assert card.shape.text() == "" and page.canvas.cards["4"].shape.text() == "?"
    assert not page.canvas.cards["2"].property("error")
    set_param(qtbot, page, "3", "kernel_size", 3)
    settle(qtbot, page)
    assert not page.canvas.cards["3"].error_text() and page.canvas.output_card.shape.text() == "10"

    # typing is validated as it happens, before anything is committed
    spin = page.properties.widgets["kernel_size"]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "99")
    assert "must be ≤ 31" in page.properties.message.text() and page.properties.message.isVisible()
    assert spin.styleSheet()  # the row is marked
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)  # refused: the last good value comes back
    assert page.model_spec().layers[3].params["kernel_size"] == 3 and not page.properties.message.isVisible()

    page.set_model({"layers": [{"type": "Linear", "params": {"out_features": 5}}], "input_shape": [1, 8, 8]})
    settle(qtbot, page)
    assert "add a Flatten layer" in page.canvas.cards["0"].error_text()
    page.set_model({"layers": [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 5}}]})
    settle(qtbot, page)
    assert "10 classes" in page.canvas.output_card.error_text()  # the last layer's size, named on the output


def test_undo_redo_sequences_restore_exactly_the_same_json(qtbot, page):
    ed = page.editor
    seen = [dump(page.model_spec())]
    steps = [lambda: drop(page, palette_mime(page, "Dropout"), below(page, "1")),
             lambda: set_param(qtbot, page, "2", "p", 0.25),
             lambda: set_param(qtbot, page, "2", "p", 0.3),  # merges with the previous edit of p
             lambda: ed.set_fields("1", freeze=True),
             lambda: ed.set_fields("1", lr_mult=0.5),
             lambda: drop(page, page.canvas.cards["0"].mime(), below(page, "1")),
             lambda: ed.remove("3"),
             lambda: (ed.copy("0"), ed.paste("0")),
             lambda: page.presets.setCurrentRow(preset_names().index("cnn")),
             lambda: drop(page, palette_mime(page, "SiLU"), below(page, "3.1")),
             lambda: page.actions_["new"].trigger()]
    for step in steps:
        step()
        seen.append(dump(page.model_spec()))
    assert len(set(seen)) == len(seen)
    # the two edits of p merged into one step (0.25 → 0.3): undo skips the 0.25 state
    history = [seen[0], *seen[1:2], *seen[3:]]
    assert ed.stack.count() == len(history) - 1
    for expected in reversed(history[:-1]):
        page.actions_["undo"].trigger()
        assert dump(page.model_spec()) == expected
    assert not page.actions_["undo"].isEnabled()
    for expected in history[1:]:
        page.actions_["redo"].trigger()
        assert dump(page.model_spec()) == expected
    for _ in range(4):
        page.actions_["undo"].trigger()
    assert dump(page.model_spec()) == history[-5]

    page.setFocus()
    qtbot.keyClick(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert dump(page.model_spec()) == history[-6]
    qtbot.keyClick(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert dump(page.model_spec()) == history[-5]


def test_save_open_round_trip_and_the_unsaved_marker(qtbot, page, answers, tmp_path):
    page.set_model("lenet")
    assert not page.dirty() and page.title() == "lenet (preset)"
    page.editor.set_fields("0", freeze=True, name="first conv")
    set_param(qtbot, page, "7", "out_features", 100)
    assert page.dirty() and page.model_value() != "lenet"
    settle(qtbot, page)
    assert "•" in page.header.text()

    answers.save_file = str(tmp_path / "mine")  # no suffix: .json is added
    assert page.actions_["save"].isEnabled()
    page.actions_["save"].trigger()
    saved = tmp_path / "mine.json"
    assert saved.exists() and not page.dirty() and page.title() == "mine.json"
    assert parse_model(json.loads(saved.read_text())) == page.model_spec()
    assert "ftstudio train --model" in page.banner.text()

    answers.yes = False
    page.editor.set_fields("1", lr_mult=2.0)
    page.actions_["new"].trigger()  # unsaved changes: asked, and refused
    assert "unsaved changes" in answers.asked[-1] and len(page.model_spec().layers) == 12
    answers.yes = True
    page.actions_["new"].trigger()
    assert page.model_spec().layers == () and len(answers.asked) == 2
    answers.file = str(saved)
    page.actions_["open"].trigger()
    assert page.model_spec() == parse_model(json.loads(saved.read_text())) and not page.dirty()
    assert page.model_spec().layers[0].name == "first conv" and page.model_spec().layers[0].freeze

    page.actions_["new"].trigger()
    answers.save_file = str(tmp_path / "empty.json")
    page.actions_["save_as"].trigger()
    assert "empty" in page.banner.text() and not (tmp_path / "empty.json").exists()
    (tmp_path / "bad.json").write_text("{\"layers\": [{\"type\": \"Nope\"}]}")
    answers.file = str(tmp_path / "bad.json")
    page.actions_["open"].trigger()
    assert "unknown layer type 'Nope'" in page.banner.text() and page.model_spec().layers == ()


def test_every_preset_loads_and_the_cards_show_the_engines_shapes(qtbot, page):
    for name in preset_names():
        page.presets.setCurrentRow(preset_names().index(name))
        assert page.model_value() == name
        shape = (3, 32, 32) if name == "resnet18" else MNIST[0]
        page.set_input(shape, 10)
        settle(qtbot, page)
        spec = load_preset(name)
        assert card_shapes(page) == engine_shapes(spec, shape, 10), name
        assert not any(c.error_text() for c in page.canvas.layer_cards().values()), name
        assert page.canvas.output_card.shape.text() == "10"
    page.presets.setCurrentRow(preset_names().index("resnet18"))
    page.set_input((3, 32, 32), 10)
    settle(qtbot, page)
    stages = page.canvas.cards["0"].children_box  # the backbone's stages are nested in its card
    rows = [stages.itemAt(i).widget().text() for i in range(stages.count())]
    assert any(r.startswith("layer4") and "512×1×1" in r for r in rows)


def test_the_input_card_sets_the_size_the_network_takes(qtbot, page):
    page.actions_["new"].trigger()
    assert isinstance(page.canvas.cards["input"], Card)
    qtbot.waitUntil(page.canvas.empty.isVisible)
    click_card(qtbot, page, "input")
    for name in ("1", "2"):
        page.properties.widgets[name].setValue(28)
    assert page.model_spec().input_shape == ("auto", 28, 28)
    page.properties.name.setText("Mine")
    page.properties.name.editingFinished.emit()
    assert page.model_spec().name == "Mine"
    page.editor.stack.undo()
    assert page.model_spec().name == "" and page.editor.selected == "input"


def test_a_refused_edit_leaves_the_history_whole(qtbot, page):
    count = page.editor.stack.count()
    with pytest.raises(InputError, match="not inside a block"):
        page.editor.insert("ReLU", "1.0")  # layer 1 is a Linear, not a block
    assert page.editor.stack.count() == count and types(page) == ["Flatten", "Linear", "ReLU", "Linear"]
    page.editor.copy("2")
    menu = page.canvas.context_menu("0")
    next(a for a in menu.actions() if a.text().startswith("Paste after")).trigger()
    assert types(page) == ["Flatten", "ReLU", "Linear", "ReLU", "Linear"]
