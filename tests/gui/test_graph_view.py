"""The graph canvas: nodes and wires from the document, wiring with the mouse, undo/redo, red nodes."""

from __future__ import annotations

import json

import pytest

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

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


def held_move(view, pos: QPoint, button=Qt.MouseButton.LeftButton) -> None:
    """A mouse move with ``button`` held (QTest's moves carry no buttons, and the rubber band needs one)."""
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), view.viewport().mapToGlobal(QPointF(pos)), button,
                        button, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), event)


def test_select_with_clicks_and_a_rubber_band_delete_in_one_step_zoom_and_pan(qtbot):
    page = make_page(qtbot, "mlp")
    view = page.graph
    n = len(page.model_spec().layers)
    first, second = view.nodes[1], view.nodes[2]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre(view, first))
    assert page.editor.selected == "1" and first.isSelected()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     pos=centre(view, second))
    assert {x.index for x in view.selected_nodes()} == {1, 2}
    # a rubber band from left of node 1 to right of node 2 selects both (and nothing else)
    a = view.mapFromScene(first.sceneBoundingRect().topLeft()) - QPoint(30, 8)
    b = view.mapFromScene(second.sceneBoundingRect().bottomRight()) + QPoint(30, 8)
    view.scene().clearSelection()
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=a)
    held_move(view, (a + b) / 2)
    held_move(view, b)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=b)
    assert {x.index for x in view.selected_nodes()} == {1, 2}
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    settle(qtbot, page)
    assert len(page.model_spec().layers) == n - 2
    page.editor.stack.undo()  # one step brings both back
    settle(qtbot, page)
    assert len(page.model_spec().layers) == n
    scale = page.graph.transform().m11()
    page.graph.zoom(1.25)
    assert abs(page.graph.transform().m11() - scale * 1.25) < 1e-6 and not page.graph.autofit
    for _ in range(4):
        page.graph.zoom(1.25)
    bar = page.graph.verticalScrollBar()
    before = bar.value()
    start = QPoint(100, 200)
    qtbot.mousePress(page.graph.viewport(), Qt.MouseButton.MiddleButton, pos=start)
    held_move(page.graph, start - QPoint(0, 60), Qt.MouseButton.MiddleButton)
    qtbot.mouseRelease(page.graph.viewport(), Qt.MouseButton.MiddleButton, pos=start - QPoint(0, 60))
    assert bar.value() == min(before + 60, bar.maximum()) and bar.value() != before  # dragged up: view moves down
    assert all(isinstance(w, Wire) for w in page.graph.wires) and isinstance(page.graph.nodes[-1], Node)


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


def test_a_palette_drop_on_the_graph_inserts_after_the_node_under_it(qtbot):
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
    from PySide6.QtWidgets import QLabel

    from tests.gui.composer_helpers import palette_mime

    page = make_page(qtbot, "inception")
    view = page.graph
    pos, mime = centre(view, view.nodes[9]), palette_mime(page, "Dropout")  # onto mixed_relu
    action = Qt.DropAction.CopyAction
    for kind in (QDragEnterEvent, QDragMoveEvent):
        event = kind(pos, action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view.viewport(), event)
        assert event.isAccepted()
    QApplication.sendEvent(view.viewport(), QDropEvent(QPointF(pos), action, mime, Qt.MouseButton.LeftButton,
                                                        Qt.KeyboardModifier.NoModifier))
    settle(qtbot, page)
    assert [layer.type for layer in page.model_spec().layers][9:11] == ["ReLU", "Dropout"] and page.analysis.ok
    assert page.graph.nodes[10].error == "" and (9, 10) in edges(page.graph)
    # the card outline names the same wiring
    wiring_text = [w.text() for w in page.canvas.cards["8"].findChildren(QLabel) if w.objectName() == "cardWiring"]
    assert wiring_text == ["<b>mixed</b> ← b1x1, b3x3, pool_proj"]
