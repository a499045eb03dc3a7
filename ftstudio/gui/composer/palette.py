"""The palette: every layer type of the engine's registry, grouped as the registry groups them,
with a search box. Drag a type onto the canvas, or double-click / press Enter to add it after the
selected layer (Enter in the search box adds the first match)."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ftstudio.core.architecture import GROUPS, LAYERS

TYPE_MIME = "application/x-ftstudio-layer-type"  # the dragged layer type's name
KIND = Qt.ItemDataRole.UserRole


def type_mime(kind: str) -> QMimeData:
    """What a palette drag carries (tests deliver the same to the canvas)."""
    mime = QMimeData()
    mime.setData(TYPE_MIME, kind.encode("utf-8"))
    return mime


class _Tree(QTreeWidget):
    activated_kind = Signal(str)

    def mimeTypes(self) -> list[str]:  # noqa: N802 — Qt override
        return [TYPE_MIME]

    def mimeData(self, items) -> QMimeData:  # noqa: N802
        kind = items[0].data(0, KIND) if items else None
        return type_mime(kind) if kind else QMimeData()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None and item.data(0, KIND):
            self.activated_kind.emit(item.data(0, KIND))
            return
        super().keyPressEvent(event)


class Palette(QWidget):
    """See the module docstring; ``insert_requested(kind)`` asks for a layer after the selection."""

    insert_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search layers…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Type to filter the layers; Enter adds the first match after the selected layer")
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._add_first)
        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setToolTip("Drag a layer onto the network, or double-click it (Enter) to add it after the "
                             "selected layer")
        self.tree.itemDoubleClicked.connect(lambda item, _col: self._activate(item))
        self.tree.activated_kind.connect(self.insert_requested)
        self.groups: dict[str, QTreeWidgetItem] = {}
        for group in GROUPS:
            kinds = [t for t in LAYERS.values() if t.group == group]
            if not kinds:
                continue
            head = QTreeWidgetItem([group])
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = head.font(0)
            font.setBold(True)
            head.setFont(0, font)
            for t in kinds:
                item = QTreeWidgetItem([t.name])
                item.setData(0, KIND, t.name)
                item.setToolTip(0, f"<b>{t.name}</b><br>{t.help}")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
                head.addChild(item)
            self.tree.addTopLevelItem(head)
            self.groups[group] = head
        self.tree.expandAll()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)

    def items(self) -> dict[str, QTreeWidgetItem]:
        return {head.child(i).data(0, KIND): head.child(i) for head in self.groups.values()
                for i in range(head.childCount())}

    def visible_kinds(self) -> list[str]:
        return [kind for kind, item in self.items().items() if not item.isHidden() and not item.parent().isHidden()]

    def filter(self, text: str) -> None:
        """Show the types whose name, group or help mentions ``text``."""
        words = text.lower().split()
        for group, head in self.groups.items():
            shown = 0
            for i in range(head.childCount()):
                item = head.child(i)
                t = LAYERS[item.data(0, KIND)]
                hay = f"{t.name} {group} {t.help}".lower()
                item.setHidden(not all(w in hay for w in words))
                shown += not item.isHidden()
            head.setHidden(shown == 0)
        best = self.best_match()
        if best and words:
            self.tree.setCurrentItem(self.items()[best])

    def _activate(self, item: QTreeWidgetItem) -> None:
        if item.data(0, KIND):
            self.insert_requested.emit(item.data(0, KIND))

    def best_match(self) -> str | None:
        """The visible type the search means most: one whose name contains it, else the first shown."""
        visible, text = self.visible_kinds(), self.search.text().strip().lower()
        named = [k for k in visible if text and text.replace(" ", "") in k.lower()]
        return (named or visible or [None])[0]

    def _add_first(self) -> None:
        kind = self.best_match()
        if kind and self.search.text().strip():
            self.insert_requested.emit(kind)
