"""The graph canvas: nodes and wires from the document, wiring with the mouse, undo/redo, red nodes."""

from __future__ import annotations

import json

import pytest

from PySide6.QtCore import QPoint, Qt

from ftstudio.core.architecture import analyze, parse_model
from ftstudio.core.architecture.graph import wiring
from ftstudio.gui.composer.graph_view import Node, Wire
from tests.gui.composer_helpers import open_page, settle

DIGITS = ((1, 8, 8), 10)
# two branches from the first convolution: the Add still lacks its second input
UNWIRED = {"layers": [
    {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
    {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 1}},
    {"type": "Add"}, {"type": "ReLU"}, {"type": "Flatten"}, {"type": "Linear"}]}


def make_page(qtbot, value):
    return open_page(qtbot, value, DIGITS)


def centre(view, item) -> QPoint:
    return view.mapFromScene(item.sceneBoundingRect().center())


def drag_wire(qtbot, view, src: int, dst: int) -> None:
    """Press on ``src``'s output port, move over ``dst``, release: as a user wires two layers."""
    start, end = centre(view, view.nodes[src].out_port), centre(view, view.nodes[dst])
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), pos=(start + end) / 2)
    qtbot.mouseMove(view.viewport(), pos=end)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)


def edges(view) -> set[tuple[int, int]]:
    return {(w.src, w.dst) for w in view.wires}


@pytest.mark.slow  # trains one epoch
def test_wire_a_branch_with_the_mouse_undo_redo_and_save_json_that_trains(qtbot, tmp_path, answers):
    page = make_page(qtbot, UNWIRED)
    view = page.graph
    add = view.nodes[2]
    assert add.error and "joins two or more inputs" in add.error and add.toolTip().endswith(add.error)
    assert edges(view) == {(-1, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5)}
    drag_wire(qtbot, view, 0, 2)
    settle(qtbot, page)
    assert edges(page.graph) == {(-1, 0), (0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5)}
    assert not any(n.error for n in page.graph.nodes.values()) and page.analysis.ok
    wired = page.model_spec()
    assert wiring(wired.layers).sources[2] == (1, 0)
    labels = {w.toolTip().split(" —")[0] for w in page.graph.wires if w.dst == 2}
    assert labels == {"8×8×8"}  # the shape flowing along each wire
    page.editor.stack.undo()
    settle(qtbot, page)
    assert (0, 2) not in edges(page.graph) and page.graph.nodes[2].error
    page.editor.stack.redo()
    settle(qtbot, page)
    assert page.model_spec() == wired and (0, 2) in edges(page.graph)
    answers.save_file = str(tmp_path / "branch.json")
    page.actions_["save_as"].trigger()
    saved = parse_model(json.loads((tmp_path / "branch.json").read_text()))
    assert saved == wired and json.loads((tmp_path / "branch.json").read_text())["version"] == 2
    model_ok = analyze(saved, *DIGITS)
    assert model_ok.ok and model_ok.params == (1 * 9 * 8 + 8) + (8 * 8 + 8) + (8 * 64 * 10 + 10)
    from ftstudio.cli import main

    assert main(["train", "--data", "digits", "--per-class", "6", "--model", str(tmp_path / "branch.json"),
                 "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def test_upward_wires_are_refused_and_wires_delete_with_the_keyboard(qtbot):
    page = make_page(qtbot, "inception")
    view = page.graph
    before = page.model_spec()
    drag_wire(qtbot, view, 5, 3)  # from b3x3 up into b1x1: a cycle
    assert page.model_spec() == before and "below" in page.banner.text()
    concat = next(n for n in view.nodes.values() if n.index >= 0 and page.model_spec().layers[n.index].id == "mixed")
    wire = next(w for w in view.wires if w.dst == concat.index and w.src == 7)  # pool_proj → mixed
    view.scene().clearSelection()
    wire.setSelected(True)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    settle(qtbot, page)
    assert page.model_spec().layers[concat.index].inputs == ("b1x1", "b3x3")
    assert "goes nowhere" in page.graph.nodes[7].error  # the cut branch is red, with the reason
    page.editor.stack.undo()
    settle(qtbot, page)
    assert page.model_spec() == before


def test_rubber_band_multi_select_deletes_as_one_step_and_selection_follows(qtbot):
    page = make_page(qtbot, "mlp")
    view = page.graph
    n = len(page.model_spec().layers)
    view.autofit = False
    view.resetTransform()
    first, second = view.nodes[1], view.nodes[2]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre(view, first))
    assert page.editor.selected == "1" and first.isSelected()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     pos=centre(view, second))
    assert {x.index for x in view.selected_nodes()} == {1, 2}
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    settle(qtbot, page)
    assert len(page.model_spec().layers) == n - 2
    page.editor.stack.undo()  # one step brings both back
    settle(qtbot, page)
    assert len(page.model_spec().layers) == n
    scale = view.transform().m11()
    view.zoom(1.25)
    assert abs(view.transform().m11() - scale * 1.25) < 1e-6 and not view.autofit
    assert all(isinstance(view.nodes[i], Node) for i in range(-1, n))
    assert all(isinstance(w, Wire) for w in view.wires)


def test_the_property_editor_shows_and_renames_a_nodes_id(qtbot):
    page = make_page(qtbot, "inception")
    view = page.graph
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre(view, view.nodes[8]))  # mixed
    props = page.properties
    assert page.editor.selected == "8" and props.node_id.text() == "mixed"
    assert props.inputs.text() == "b1x1, b3x3, pool_proj"
    click = centre(view, view.nodes[3])
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=click)
    props.node_id.setText("one_by_one")
    props.node_id.editingFinished.emit()
    settle(qtbot, page)
    assert page.model_spec().layers[8].inputs == ("one_by_one", "b3x3", "pool_proj") and page.analysis.ok
    page.editor.stack.undo()
    assert page.model_spec().layers[8].inputs == ("b1x1", "b3x3", "pool_proj")


def test_a_residual_node_expands_into_an_add(qtbot):
    page = make_page(qtbot, "cnn")
    params = page.analysis.params
    info = page.graph.infos["3"]
    page.editor.expand_block("3", info.in_shape, info.out_shape)
    settle(qtbot, page)
    types = [layer.type for layer in page.model_spec().layers]
    assert "Residual" not in types and "Add" in types and page.analysis.ok and page.analysis.params == params
    add = types.index("Add")
    assert {w.src for w in page.graph.wires if w.dst == add} == {add - 1, 2}  # the block's last layer + the skip
