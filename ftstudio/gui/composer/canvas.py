"""The canvas: the network as a vertical stack of cards from input to output.

Drop a palette type between cards (or into a block) to insert it, drag a card to reorder,
right-click for the full menu; the keyboard does the same (arrows select, Alt+arrows move, Delete
removes, Ctrl+C / Ctrl+V / Ctrl+D copy, paste and duplicate, F freezes). Every gesture goes to the
`Editor`; the canvas redraws from it and shows the engine's analysis on the cards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QFrame, QMenu, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from ftstudio.core.architecture import GROUPS, LAYERS, iter_layers
from ftstudio.core.errors import InputError
from ftstudio.gui import theme
from ftstudio.gui.composer.cards import PATH_MIME, Card, LayerCard, shape_text
from ftstudio.gui.composer.editor import INPUT, Editor
from ftstudio.gui.composer.palette import dropped_layer, has_layer


@dataclass(frozen=True)
class Slot:
    """A place a dropped layer can go: ``path`` in the spec, drawn at ``y`` from ``left`` to ``right``."""

    path: str
    y: int
    left: int
    right: int
    depth: int


def style_sheet() -> str:
    error_bg, error_border = theme.banner_colors("error")
    frozen_bg, _ = theme.banner_colors("info")
    return f"""
        QFrame#layerCard {{ border: 1px solid palette(mid); border-radius: 6px; background: palette(base); }}
        QFrame#layerCard[frozen="true"] {{ background: {frozen_bg}; }}
        QFrame#layerCard[error="true"] {{ border: 1px solid {error_border}; background: {error_bg}; }}
        QFrame#layerCard[selected="true"] {{ border: 2px solid palette(highlight); }}
        QFrame#cardBody {{ border: none; border-left: 2px dashed palette(mid); background: transparent; }}
        QLabel#cardIndex, QLabel#cardDetail, QLabel#stageRow {{ color: palette(placeholder-text); }}
        QLabel#cardShape {{ font-weight: bold; }}
        QLabel#cardError {{ color: {error_border}; }}
        QToolButton#freezeButton {{ color: palette(placeholder-text); border: none; padding: 0 2px; }}
        QToolButton#freezeButton:checked {{ color: #0072B2; font-weight: bold; }}
        QFrame#dropLine {{ background: palette(highlight); border: none; }}
    """


class Canvas(QWidget):
    """See the module docstring. ``report(text)`` shows a refused gesture's reason."""

    def __init__(self, editor: Editor, report: Callable[[str], None] = lambda text: None, parent=None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.report = report
        self.scroll: QScrollArea | None = None
        self.cards: dict[str, Card] = {}
        self._retired: list[QWidget] = []
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("")
        self.setStyleSheet(style_sheet())
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(12, 10, 12, 10)
        self.column.setSpacing(6)
        self.drop_line = QFrame(self)
        self.drop_line.setObjectName("dropLine")
        self.drop_line.hide()
        self.analysis = None
        self.stages: dict[str, tuple] = {}
        self.input_note = ""
        editor.changed.connect(self.rebuild)
        editor.selection_changed.connect(self._show_selection)
        self.rebuild()

    # ------------------------------------------------------------------------------- cards
    def rebuild(self) -> None:
        """New cards for the editor's network (shapes follow when the analysis arrives)."""
        for widget in self._retired:
            widget.deleteLater()
        self._retired = []
        while self.column.count():  # old cards are kept (hidden) one more round: a card being dragged
            item = self.column.takeAt(0)  # must outlive the drop that rebuilt the canvas under it
            if item.widget() is not None:
                item.widget().hide()
                self._retired.append(item.widget())
        self.cards = {}
        spec = self.editor.spec
        self.input_card = self._card(Card(INPUT, "Input"))
        self.column.addWidget(self.input_card)
        for i, layer in enumerate(spec.layers):
            self.column.addWidget(self._layer_card(str(i), layer))
        if not spec.layers:
            self.empty = Card("", "Empty network")
            self.empty.detail.setText("Drag layers here from the palette, or double-click them")
            self.column.addWidget(self.empty)
        self.output_card = Card("", "Output")
        self.output_card.setObjectName("layerCard")
        self.column.addWidget(self.output_card)
        self.column.addStretch(1)
        for i in range(self.column.count()):  # shown and laid out now, not after the next event loop turn:
            widget = self.column.itemAt(i).widget()  # a gesture that follows at once sees real geometry
            if widget is not None:
                widget.show()
        self.column.activate()
        self.analysis = None
        self.show_analysis(None, {})
        self._show_selection(self.editor.selected)

    def _card(self, card: Card) -> Card:
        card.clicked.connect(self._clicked)
        self.cards[card.path] = card
        return card

    def _layer_card(self, path: str, layer) -> LayerCard:
        card = LayerCard(path, layer)
        card.freeze_toggled.connect(lambda p, on: self.editor.set_fields(p, freeze=on))
        self._card(card)
        for j, child in enumerate(layer.layers):
            card.children_box.addWidget(self._layer_card(f"{path}.{j}", child))
        return card

    def layer_cards(self) -> dict[str, LayerCard]:
        return {p: c for p, c in self.cards.items() if isinstance(c, LayerCard)}

    def show_analysis(self, analysis, stages: dict[str, tuple], input_note: str = "") -> None:
        """Put the engine's shapes, counts and errors on the cards (None: not known yet)."""
        self.analysis, self.stages, self.input_note = analysis, stages, input_note or self.input_note
        infos = {i.path: i for i in analysis.layers} if analysis is not None else {}
        frozen = {p for p, layer in iter_layers(self.editor.spec.layers) if layer.freeze}
        for path, card in self.layer_cards().items():
            inherited = any(path.startswith(f + ".") for f in frozen)
            card.show_info(infos.get(path) if analysis is not None else None, inherited)
            if path in stages:
                card.show_stages(stages[path])
        if analysis is None:
            self.input_card.shape.setText("")
            self.input_card.detail.setText(self.input_note or "Load data to see every layer's output shape")
            self.output_card.shape.setText("")
            self.output_card.detail.setText("")
            self.output_card.set_error("")
            return
        self.input_card.shape.setText(shape_text(analysis.input_shape))
        self.input_card.detail.setText(self.input_note)
        self.output_card.shape.setText(shape_text(analysis.output_shape) if analysis.output_shape else "?")
        layer_error = any(i.error for i in analysis.layers)
        self.output_card.detail.setText("scores, one per class" if not analysis.error else "")
        self.output_card.set_error(analysis.error if analysis.error and not layer_error else "")

    # --------------------------------------------------------------------------- selection
    def _clicked(self, path: str) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if path:
            self.editor.select(path)

    def _show_selection(self, path: str) -> None:
        for p, card in self.cards.items():
            card.set_flag("selected", p == path)
        card = self.cards.get(path)
        if card is not None and self.scroll is not None:
            self.scroll.ensureWidgetVisible(card, 10, 10)

    def order(self) -> list[str]:
        return [INPUT, *(p for p, _ in iter_layers(self.editor.spec.layers))]

    # ----------------------------------------------------------------------------- keyboard
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 — Qt override
        ed, key, mods = self.editor, event.key(), event.modifiers()
        path = ed.selected
        alt = bool(mods & Qt.KeyboardModifier.AltModifier)
        try:
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and alt and path and path != INPUT:
                ed.shift(path, -1 if key == Qt.Key.Key_Up else 1)
            elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                order = self.order()
                i = order.index(path) if path in order else -1
                i = max(0, i - 1) if key == Qt.Key.Key_Up else min(len(order) - 1, i + 1)
                ed.select(order[i])
            elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
                ed.remove()
            elif event.matches(QKeySequence.StandardKey.Copy):
                ed.copy()
            elif event.matches(QKeySequence.StandardKey.Cut):
                if ed.copy():
                    ed.remove()
            elif event.matches(QKeySequence.StandardKey.Paste):
                ed.paste()
            elif key == Qt.Key.Key_D and mods & Qt.KeyboardModifier.ControlModifier:
                ed.duplicate()
            elif key == Qt.Key.Key_F and not mods and ed.selected_layer() is not None:
                ed.set_fields(path, freeze=not ed.selected_layer().freeze)
            elif key == Qt.Key.Key_Menu or (key == Qt.Key.Key_F10 and mods & Qt.KeyboardModifier.ShiftModifier):
                card = self.cards.get(path)
                if card is not None:
                    menu = self.context_menu(path)
                    menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
                    menu.popup(card.mapToGlobal(QPoint(20, card.height() // 2)))
            else:
                super().keyPressEvent(event)
                return
        except InputError as exc:
            self.report(str(exc))
        event.accept()

    # ---------------------------------------------------------------------------- context menu
    def context_menu(self, path: str) -> QMenu:
        """Everything that can be done at ``path`` (built apart from showing it, for tests)."""
        ed = self.editor
        menu = QMenu(self)
        layer = None if path in ("", INPUT) else self._layer(path)
        after = ed.slot_after_selection() if path == ed.selected else self._after(path)
        add = menu.addMenu("Add layer after" if layer is not None else "Add layer")
        self._type_menu(add, after)
        if layer is not None and LAYERS[layer.type].container:
            self._type_menu(menu.addMenu("Add layer inside block"), f"{path}.{len(layer.layers)}")
        menu.addSeparator()
        actions = [("Cut", QKeySequence.StandardKey.Cut, lambda: ed.copy(path) and ed.remove(path), layer),
                   ("Copy", QKeySequence.StandardKey.Copy, lambda: ed.copy(path), layer),
                   ("Paste after", QKeySequence.StandardKey.Paste, lambda: ed.paste(after), True),
                   ("Duplicate", "Ctrl+D", lambda: ed.duplicate(path), layer),
                   (None, None, None, None),
                   ("Move up", "Alt+Up", lambda: ed.shift(path, -1), layer),
                   ("Move down", "Alt+Down", lambda: ed.shift(path, 1), layer),
                   ("Unfreeze" if layer is not None and layer.freeze else "Freeze", "F",
                    lambda: ed.set_fields(path, freeze=not layer.freeze), layer),
                   (None, None, None, None),
                   ("Delete", QKeySequence.StandardKey.Delete, lambda: ed.remove(path), layer)]
        for text, keys, fn, enabled in actions:
            if text is None:
                menu.addSeparator()
                continue
            shown = QKeySequence(keys).toString(QKeySequence.SequenceFormat.NativeText)
            action = menu.addAction(f"{text}\t{shown}")  # the key is shown, not registered twice
            action.setEnabled(enabled is not None)
            action.triggered.connect(lambda _=False, fn=fn: self._guarded(fn))
        return menu

    def _type_menu(self, menu: QMenu, slot: str) -> None:
        for group in GROUPS:
            sub = menu.addMenu(group)
            for t in LAYERS.values():
                if t.group == group:
                    action: QAction = sub.addAction(t.name)
                    action.setToolTip(t.help)
                    action.triggered.connect(
                        lambda _=False, k=t.name: self._guarded(lambda: self.editor.insert(k, slot)))

    def _guarded(self, fn) -> None:
        try:
            fn()
        except InputError as exc:
            self.report(str(exc))

    def _layer(self, path: str):
        from ftstudio.core.architecture.composer import get_layer

        return get_layer(self.editor.spec, path)

    @staticmethod
    def _after(path: str) -> str:
        if path in ("", INPUT):
            return "0"
        head, _, last = path.rpartition(".")
        return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        path = self._card_at(event.pos())
        if path:
            self.editor.select(path)
        menu = self.context_menu(path or "")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(event.globalPos())

    def _card_at(self, pos: QPoint) -> str:
        """The innermost card under ``pos`` (canvas coordinates)."""
        best, depth = "", -1
        for path, card in self.cards.items():
            if card.isVisible() and card.geometry().isValid():
                top_left = card.mapTo(self, QPoint(0, 0))
                if top_left.y() <= pos.y() <= top_left.y() + card.height() and \
                        top_left.x() <= pos.x() <= top_left.x() + card.width():
                    d = path.count(".") if path != INPUT else -1
                    if d > depth or not best:
                        best, depth = path, d
        return best

    # --------------------------------------------------------------------------- dropping
    def compute_slots(self) -> list[Slot]:
        """Every insertion place, at the gaps between cards of each list (top level and blocks)."""
        slots: list[Slot] = []

        def rect(card: QWidget) -> tuple[int, int, int, int]:
            p = card.mapTo(self, QPoint(0, 0))
            return p.x(), p.y(), p.x() + card.width(), p.y() + card.height()

        def add(prefix: str, cards: list[Card], box_rect: tuple[int, int, int, int], depth: int) -> None:
            gap = self.column.spacing() // 2
            for i, card in enumerate(cards):
                x0, y0, x1, _ = rect(card)
                slots.append(Slot(f"{prefix}{i}", y0 - gap, x0, x1, depth))
            if cards:
                x0, _, x1, y1 = rect(cards[-1])
                slots.append(Slot(f"{prefix}{len(cards)}", y1 + gap, x0, x1, depth))
            else:
                x0, y0, x1, y1 = box_rect
                slots.append(Slot(f"{prefix}0", (y0 + y1) // 2, x0, x1, depth))
            for card in cards:
                if isinstance(card, LayerCard) and LAYERS[card.layer.type].container:
                    inner = [self.cards[f"{card.path}.{j}"] for j in range(len(card.layer.layers))]
                    add(f"{card.path}.", inner, rect(card.body), depth + 1)

        top = [self.cards[str(i)] for i in range(len(self.editor.spec.layers))]
        empty = rect(self.empty) if not top else (0, 0, 0, 0)
        add("", top, empty, 0)
        return slots

    def slot_at(self, pos: QPoint) -> Slot | None:
        slots = self.compute_slots()
        inside = [s for s in slots if s.left <= pos.x() <= s.right] or slots
        return min(inside, key=lambda s: (abs(s.y - pos.y()), -s.depth)) if inside else None

    def _accepts(self, event) -> bool:
        mime = event.mimeData()
        return has_layer(mime) or mime.hasFormat(PATH_MIME)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 — Qt override
        if self._accepts(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if not self._accepts(event):
            event.ignore()
            return
        pos = event.position().toPoint()
        slot = self.slot_at(pos)
        if slot is not None:
            self.drop_line.setGeometry(slot.left, slot.y - 1, slot.right - slot.left, 3)
            self.drop_line.show()
            self.drop_line.raise_()
        if self.scroll is not None:
            self.scroll.ensureVisible(pos.x(), pos.y(), 10, 40)
        event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.drop_line.hide()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.drop_line.hide()
        mime = event.mimeData()
        slot = self.slot_at(event.position().toPoint())
        if slot is None or not self._accepts(event):
            event.ignore()
            return
        try:
            if has_layer(mime):
                self.editor.insert_layers([dropped_layer(mime)], slot.path)
            else:
                self.editor.move(bytes(mime.data(PATH_MIME)).decode("utf-8"), slot.path)
        except InputError as exc:
            self.report(str(exc))
        event.acceptProposedAction()
        self.setFocus(Qt.FocusReason.OtherFocusReason)


def scrolling(canvas: Canvas) -> QScrollArea:
    """The canvas in a scroll area that fits its width."""
    area = QScrollArea()
    area.setWidget(canvas)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    canvas.scroll = area
    return area
