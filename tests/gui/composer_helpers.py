"""Driving the composer like a user: drops from the palette, clicks on cards, typing into the editor."""

from __future__ import annotations

import json

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ftstudio.core.architecture import analyze
from ftstudio.gui.composer.cards import shape_text


def dump(spec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def settle(qtbot, page, timeout: int = 60_000) -> None:
    """Wait until the cards show the engine's analysis of the current network."""
    qtbot.waitUntil(page.is_analysed, timeout=timeout)


def open_page(qtbot, value=None, data=((1, 8, 8), 10)):
    """A shown Model page analysed on ``data`` (8×8 digits), showing ``value`` (a preset, dict…) if given."""
    from ftstudio.gui.pages.model import ModelPage

    page = ModelPage()
    qtbot.addWidget(page)
    page.resize(1150, 760)
    page.show()
    page.set_input(*data)
    settle(qtbot, page)  # first: the page settles its preset list before a model is set
    if value is not None:
        page.set_model(value)
        settle(qtbot, page)
    return page


def palette_mime(page, kind: str):
    """The mime data the palette itself hands to a drag of ``kind``."""
    item = page.palette.items()[kind]
    return page.palette.tree.mimeData([item])


def drop(page, mime, pos: QPoint) -> None:
    """Deliver a drag (enter, move) and its drop at ``pos`` on the canvas, as Qt would."""
    canvas = page.canvas
    action = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    for event in (QDragEnterEvent(pos, action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
                  QDragMoveEvent(pos, action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)):
        QApplication.sendEvent(canvas, event)
        assert event.isAccepted()
    assert canvas.drop_line.isVisible()
    QApplication.sendEvent(canvas, QDropEvent(pos.toPointF(), action, mime, Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))
    assert not canvas.drop_line.isVisible()


def below(page, path: str) -> QPoint:
    """A point just under the card at ``path`` (the gap where a drop lands after it)."""
    card = page.canvas.cards[path]
    top_left = card.mapTo(page.canvas, QPoint(0, 0))
    return QPoint(top_left.x() + card.width() // 2, top_left.y() + card.height() + 2)


def above(page, path: str) -> QPoint:
    card = page.canvas.cards[path]
    top_left = card.mapTo(page.canvas, QPoint(0, 0))
    return QPoint(top_left.x() + card.width() // 2, top_left.y() - 2)


def drop_at_end(qtbot, page, kind: str) -> None:
    """Drag ``kind`` from the palette to the bottom of the network."""
    qtbot.waitUntil(lambda: page.canvas.output_card.isVisible())
    layers = page.model_spec().layers
    pos = below(page, str(len(layers) - 1)) if layers else page.canvas.empty.mapTo(
        page.canvas, page.canvas.empty.rect().center())
    drop(page, palette_mime(page, kind), pos)


def click_card(qtbot, page, path: str) -> None:
    card = page.canvas.cards[path]
    qtbot.waitUntil(card.isVisible)
    qtbot.mouseClick(card, Qt.MouseButton.LeftButton, pos=QPoint(card.width() - 60, 8))
    assert page.editor.selected == path


def set_param(qtbot, page, path: str, name: str, value) -> None:
    """Select the card and set a parameter in the property editor, as typing + Enter would."""
    click_card(qtbot, page, path)
    widget = page.properties.widgets[name]
    if hasattr(widget, "setValue"):
        widget.setValue(widget.minimum() if isinstance(value, str) else value)
    elif hasattr(widget, "setChecked"):
        widget.setChecked(value)
    else:
        widget.setCurrentIndex(widget.findData(value))


def card_shapes(page) -> dict[str, str]:
    return {path: card.shape.text() for path, card in page.canvas.layer_cards().items()}


def engine_shapes(spec, shape, classes) -> dict[str, str]:
    """What the cards must show: the engine's output shape of every layer."""
    return {i.path: shape_text(i.out_shape) for i in analyze(spec, shape, classes).layers}
