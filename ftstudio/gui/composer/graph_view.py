"""The graph canvas: the network as nodes and wires, laid out from the input at the top down.

Every top-level layer is a node (a Residual block is one node, its layers in the outline below);
a wire runs from a node's output port (bottom) to the input port (top) of each layer that takes its
output, labelled with the shape that flows along it. Drag from an output port onto another node to
wire it; click, Ctrl+click or drag a rubber band to select; Delete removes the selected nodes or
wires; Ctrl+wheel or +/− zoom, 0 fits the view, the middle button drags the view. Every gesture is
one `Editor` call (one undoable command); the view redraws from the document and shows the engine's
analysis, invalid nodes in red with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QKeyEvent, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import (QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem, QGraphicsScene,
                               QGraphicsSimpleTextItem, QGraphicsView, QMenu)

from ftstudio.core.architecture.graph import ranks, wiring
from ftstudio.core.errors import InputError
from ftstudio.gui import theme
from ftstudio.gui.composer.cards import key_params, shape_text
from ftstudio.gui.composer.editor import INPUT, Editor
from ftstudio.gui.composer.palette import dropped_layer, has_layer

NODE_W, NODE_H, GAP_X, ROW = 168, 46, 28, 84
PORT = 5.0
MIN_FIT = 0.6  # automatic fitting stops here: smaller text is not readable


class Port(QGraphicsEllipseItem):
    """A node's input (top) or output (bottom) port."""

    def __init__(self, node: Node, output: bool) -> None:
        x, y = NODE_W / 2, NODE_H if output else 0.0
        super().__init__(x - PORT, y - PORT, 2 * PORT, 2 * PORT, node)
        self.node, self.output = node, output
        self.setBrush(QBrush(QColor("#0072B2") if output else QColor("#888888")))
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setToolTip("Drag from here onto a layer below to wire this output into it" if output
                        else "Input: drop a wire here")
        self.setCursor(Qt.CursorShape.CrossCursor if output else Qt.CursorShape.ArrowCursor)


class Node(QGraphicsItem):
    """One layer (``index`` -1 is the network's input) with its title, shape or error."""

    def __init__(self, index: int, title: str, detail: str, error: str, frozen: bool) -> None:
        super().__init__()
        self.index, self.error, self.frozen = index, error, frozen
        self.path = INPUT if index < 0 else str(index)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setToolTip(f"{title}\n{error}" if error else title)
        metrics = QFontMetrics(QGraphicsSimpleTextItem().font())
        for row, (text, bold) in enumerate(((title, True), (detail, False))):
            item = QGraphicsSimpleTextItem(metrics.elidedText(text, Qt.TextElideMode.ElideRight, NODE_W - 14), self)
            font = item.font()
            font.setBold(bold)
            item.setFont(font)
            item.setBrush(QBrush(QColor(theme.banner_colors("error")[1]) if error and row else theme.text()))
            item.setPos(7, 5 + row * 18)
        self.in_port = Port(self, False) if index >= 0 else None
        self.out_port = Port(self, True)

    def boundingRect(self) -> QRectF:  # noqa: N802 — Qt override
        return QRectF(-2, -2, NODE_W + 4, NODE_H + 4)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        error_bg, error_border = theme.banner_colors("error")
        fill = QColor(error_bg) if self.error else QColor(theme.banner_colors("info")[0]) if self.frozen else \
            theme.base()
        border = QColor(error_border) if self.error else theme.text() if self.index < 0 else QColor("#8a8a8a")
        pen = QPen(QColor("#0072B2") if self.isSelected() else border, 2.5 if self.isSelected() else 1.2)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(QBrush(fill))
        painter.drawRoundedRect(QRectF(0, 0, NODE_W, NODE_H), 6, 6)


class Wire(QGraphicsPathItem):
    """``src`` → ``dst`` (indices; -1 is the input), with the shape it carries."""

    def __init__(self, src: Node, dst: Node, label: str) -> None:
        super().__init__()
        self.src, self.dst = src.index, dst.index
        a = src.pos() + QPointF(NODE_W / 2, NODE_H)
        b = dst.pos() + QPointF(NODE_W / 2, 0)
        bend = max(30.0, (b.y() - a.y()) / 2)
        path = QPainterPath(a)
        if b.y() - a.y() > ROW * 1.5 and abs(b.x() - a.x()) < NODE_W / 2:  # a skip over the nodes between:
            side = QPointF(NODE_W * 0.75, 0)  # bow out to the right instead of running under them
            path.cubicTo(a + QPointF(0, ROW * 0.4) + side, b - QPointF(0, ROW * 0.4) + side, b)
        else:
            path.cubicTo(a + QPointF(0, bend), b - QPointF(0, bend), b)
        self.setPath(path)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(-1)
        self.setToolTip(f"{label} — select and press Delete to remove this wire")
        self._pen()
        text = QGraphicsSimpleTextItem(label, self)
        text.setBrush(QBrush(theme.text()))
        mid = path.pointAtPercent(0.5 if b.y() - a.y() <= ROW * 1.5 else 0.3)
        text.setPos(mid + QPointF(6, -8))

    def _pen(self) -> None:
        selected = self.isSelected()
        self.setPen(QPen(QColor("#0072B2") if selected else QColor("#8a8a8a"), 2.5 if selected else 1.5))

    def itemChange(self, change, value):  # noqa: N802 — Qt override
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self._pen()
        return super().itemChange(change, value)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())


class GraphView(QGraphicsView):
    """See the module docstring. ``report(text)`` shows a refused gesture's reason."""

    zoomed = Signal(float)

    def __init__(self, editor: Editor, report: Callable[[str], None] = lambda text: None, parent=None) -> None:
        super().__init__(parent)
        self.editor, self.report = editor, report
        self.analysis = None
        self.analysed_spec = None
        self.nodes: dict[int, Node] = {}
        self.infos: dict = {}  # path → LayerInfo of the current analysis
        self.wires: list[Wire] = []
        self._drag: tuple[Node, QGraphicsPathItem] | None = None
        self._pan: QPointF | None = None
        self._syncing = False
        self.autofit = True  # fit the graph to the view until the user zooms
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("")
        self.scene().selectionChanged.connect(self._selection_from_scene)
        editor.changed.connect(self.rebuild)
        editor.selection_changed.connect(self._selection_from_editor)
        self.rebuild()

    # ------------------------------------------------------------------------- drawing
    def show_analysis(self, analysis, spec) -> None:
        """The engine's analysis of ``spec``; shown while the document is that spec."""
        self.analysis, self.analysed_spec = analysis, spec
        self.rebuild()

    def rebuild(self) -> None:
        spec = self.editor.spec
        current = self.analysis is not None and self.analysed_spec == spec
        infos = self.infos = {i.path: i for i in self.analysis.layers} if current else {}
        self._syncing = True
        self.scene().clear()
        self.nodes, self.wires, self._drag = {}, [], None
        wired = wiring(spec.layers)
        rows = ranks(spec.layers)
        shape = self.analysis.input_shape if current else spec.input_shape
        self._add(Node(-1, "Input", f"{shape_text(shape)} per image", "", False), 0, 0, 1)
        by_row: dict[int, list[int]] = {}
        for i, r in enumerate(rows):
            by_row.setdefault(r, []).append(i)
        for r, members in by_row.items():
            for col, i in enumerate(members):
                layer, info = spec.layers[i], infos.get(str(i))
                head = f"{layer.id}: {layer.type}" if layer.id else f"{i} {layer.type}"
                params = key_params(layer, info.resolved if info else None)
                if layer.layers:
                    params = f"{len(layer.layers)} layers inside" + (f" · {params}" if params else "")
                error = info.error if info else ""
                out = shape_text(info.out_shape) if info else "…"
                detail = f"⚠ {error}" if error else f"→ {out}" + (f" · {params}" if params else "")
                self._add(Node(i, head, detail, error, layer.freeze), r, col, len(members))
        for i, src in enumerate(wired.sources):
            for s in src:
                if s in self.nodes:
                    out = (self.analysis.input_shape if s < 0 else infos[str(s)].out_shape) if infos else None
                    wire = Wire(self.nodes[s], self.nodes[i], shape_text(out) if out else "")
                    self.scene().addItem(wire)
                    self.wires.append(wire)
        rect = self.scene().itemsBoundingRect().adjusted(-40, -30, 40, 40)
        self.scene().setSceneRect(rect)
        self._syncing = False
        self._selection_from_editor(self.editor.selected)
        self._autofit()

    def _autofit(self) -> None:
        if not self.autofit or self.viewport().width() < 50:
            return
        rect = self.scene().sceneRect()
        view = self.viewport().rect()
        scale = max(MIN_FIT, min(1.0, view.width() / rect.width(), view.height() / rect.height()))
        self.resetTransform()
        self.scale(scale, scale)
        self.ensureVisible(QRectF(rect.center().x() - 1, rect.top(), 2, 2), 0, 0)

    def resizeEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().resizeEvent(event)
        self._autofit()

    def _add(self, node: Node, row: int, col: int, count: int) -> None:
        node.setPos((col - (count - 1) / 2) * (NODE_W + GAP_X) - NODE_W / 2, row * ROW)
        self.scene().addItem(node)
        self.nodes[node.index] = node

    # ----------------------------------------------------------------------- selection
    def selected_nodes(self) -> list[Node]:
        return [item for item in self.scene().selectedItems() if isinstance(item, Node)]

    def _selection_from_scene(self) -> None:
        if self._syncing:
            return
        nodes = self.selected_nodes()
        if len(nodes) == 1:
            self.editor.select(nodes[0].path)

    def _selection_from_editor(self, path: str) -> None:
        node = next((n for n in self.nodes.values() if n.path == path), None)
        if node is None or node.isSelected():
            return
        self._syncing = True
        self.scene().clearSelection()
        node.setSelected(True)
        self._syncing = False
        self.ensureVisible(node, 20, 20)

    # -------------------------------------------------------------------------- gestures
    def _port_at(self, pos) -> Port | None:
        return next((item for item in self.items(pos) if isinstance(item, Port)), None)

    def _node_at(self, pos) -> Node | None:
        for item in self.items(pos):
            parent = item.parentItem()
            node = item if isinstance(item, Node) else parent if isinstance(parent, Node) else None
            if node is not None:
                return node
        return None

    def mousePressEvent(self, event) -> None:  # noqa: N802 — Qt override
        pos = event.position().toPoint()
        if event.button() == Qt.MouseButton.MiddleButton:
            self._pan = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        port = self._port_at(pos) if event.button() == Qt.MouseButton.LeftButton else None
        if port is not None and port.output:
            line = QGraphicsPathItem()
            line.setPen(QPen(QColor("#0072B2"), 2, Qt.PenStyle.DashLine))
            self.scene().addItem(line)
            self._drag = (port.node, line)
            self._drag_to(self.mapToScene(pos))
            return
        super().mousePressEvent(event)

    def _drag_to(self, point: QPointF) -> None:
        node, line = self._drag
        a = node.pos() + QPointF(NODE_W / 2, NODE_H)
        path = QPainterPath(a)
        path.lineTo(point)
        line.setPath(path)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 — Qt override
        if self._pan is not None:
            delta = event.position() - self._pan
            self._pan = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            return
        if self._drag is not None:
            self._drag_to(self.mapToScene(event.position().toPoint()))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 — Qt override
        if self._pan is not None:
            self._pan = None
            self.unsetCursor()
            return
        if self._drag is not None:
            src, line = self._drag
            self._drag = None
            self.scene().removeItem(line)
            target = self._node_at(event.position().toPoint())
            if target is not None and target is not src:
                self._guard(lambda: self.editor.wire(src.index, target.index))
            return
        super().mouseReleaseEvent(event)

    def _guard(self, fn) -> None:
        try:
            fn()
        except InputError as exc:
            self.report(str(exc))

    def delete_selected(self) -> None:
        """Remove the selected wires (as one step each) or else the selected layers (one step)."""
        wires = [(w.src, w.dst) for w in self.scene().selectedItems() if isinstance(w, Wire)]
        nodes = [n.path for n in self.selected_nodes() if n.index >= 0]
        if wires and not nodes:
            self.editor.stack.beginMacro("Remove wires" if len(wires) > 1 else "Remove wire")
            try:
                for src, dst in sorted(wires, key=lambda w: (-w[1], -w[0])):
                    self._guard(lambda s=src, d=dst: self.editor.unwire(s, d))
            finally:
                self.editor.stack.endMacro()
        elif nodes:
            self._guard(lambda: self.editor.remove_many(nodes))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 — Qt override
        key = event.key()
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom(0.8)
        elif key == Qt.Key.Key_0:
            self.fit()
        else:
            super().keyPressEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802 — Qt override
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)
        else:
            super().wheelEvent(event)

    def zoom(self, factor: float) -> None:
        self.autofit = False
        scale = self.transform().m11() * factor
        if 0.2 <= scale <= 3.0:
            self.scale(factor, factor)
            self.zoomed.emit(scale)

    def fit(self) -> None:
        """Fit the graph to the view again (never past 100 %, never below a readable size)."""
        self.autofit = True
        self._autofit()

    def contextMenuEvent(self, event) -> None:  # noqa: N802 — Qt override
        item = self.itemAt(event.pos())
        menu = QMenu(self)
        if isinstance(item, Wire):
            menu.addAction("Remove wire", lambda: self._guard(lambda: self.editor.unwire(item.src, item.dst)))
        node = self._node_at(event.pos())
        if node is not None and node.index >= 0:
            if not node.isSelected():
                self.scene().clearSelection()
                node.setSelected(True)
            menu.addAction("Delete", self.delete_selected)
            info = self.infos.get(node.path)
            if self.editor.spec.layers[node.index].type == "Residual":
                expand = menu.addAction("Expand block into a graph (its layers and an Add)",
                                        lambda: self._guard(lambda: self.editor.expand_block(
                                            node.path, info.in_shape, info.out_shape)))
                expand.setEnabled(info is not None and not info.error)
        menu.addAction("Fit to view (0)", self.fit)
        menu.exec(event.globalPos())

    # ---------------------------------------------------------------- palette drops
    def dragEnterEvent(self, event) -> None:  # noqa: N802 — Qt override
        if has_layer(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 — Qt override
        if has_layer(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 — Qt override
        if not has_layer(event.mimeData()):
            return
        node = self._node_at(event.position().toPoint())
        slot = str(node.index + 1) if node is not None else str(len(self.editor.spec.layers))
        self._guard(lambda: self.editor.insert_layers([dropped_layer(event.mimeData())], slot))
        event.acceptProposedAction()
