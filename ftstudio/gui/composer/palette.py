"""The palette: every layer type of the engine's registry, grouped as the registry groups them,
with a search box. Drag a type onto the canvas, or double-click / press Enter to add it after the
selected layer (Enter in the search box adds the first match).

The search also looks through the backbone catalogue (torchvision's networks and timm's ~1,400): matches
appear under "Pretrained backbones" as ready-named layers (``torchvision:resnet50``), added like any type.
The names are asked for (``backbones_wanted``) the first time a search is typed, so timm is not imported
at start; a search shows at most ``SHOWN`` of them."""

from __future__ import annotations

import json

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ftstudio.core.architecture import GROUPS, LAYERS
from ftstudio.gui.widgets.images import search_field

TYPE_MIME = "application/x-ftstudio-layer-type"  # the dragged layer type's name
LAYER_MIME = "application/x-ftstudio-layer"  # a dragged catalogue backbone: {"type": …, "params": {"name": …}}
KIND = Qt.ItemDataRole.UserRole
BACKBONE = Qt.ItemDataRole.UserRole + 1  # a catalogue entry's (layer type, params)
NAME = Qt.ItemDataRole.UserRole + 2  # … and its catalogue name
SHOWN = 50
BACKBONES_GROUP = "Pretrained backbones"


def type_mime(kind: str) -> QMimeData:
    """What a palette drag carries (tests deliver the same to the canvas)."""
    mime = QMimeData()
    mime.setData(TYPE_MIME, kind.encode("utf-8"))
    return mime


def backbone_entry(name: str) -> tuple[str, dict]:
    """(layer type, params) of a catalogue name: ``timm:vit_small_patch16_224`` → a TimmBackbone layer."""
    kind, _, bare = name.partition(":")
    return ("TimmBackbone" if kind == "timm" else "Backbone"), {"name": bare}


def layer_mime(kind: str, params: dict) -> QMimeData:
    mime = QMimeData()
    mime.setData(LAYER_MIME, json.dumps({"type": kind, "params": params}).encode("utf-8"))
    return mime


def has_layer(mime: QMimeData) -> bool:
    """A palette drag: a layer type, or a catalogue backbone."""
    return mime.hasFormat(TYPE_MIME) or mime.hasFormat(LAYER_MIME)


def dropped_layer(mime: QMimeData):
    """The layer a palette drag carries (a `LayerSpec`); InputError for anything else."""
    from ftstudio.core.architecture.composer import new_layer
    from ftstudio.core.errors import InputError

    if mime.hasFormat(LAYER_MIME):
        try:
            data = json.loads(bytes(mime.data(LAYER_MIME))[:10_000].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("type"), str) and isinstance(data.get("params"), dict)):
            raise InputError("the dragged backbone could not be read")
        return new_layer(data["type"], **data["params"])
    return new_layer(bytes(mime.data(TYPE_MIME)).decode("utf-8", "replace"))


def _addable(item: QTreeWidgetItem | None) -> bool:
    return item is not None and bool(item.data(0, KIND) or item.data(0, BACKBONE))


class _Tree(QTreeWidget):
    activated_item = Signal(object)

    def mimeTypes(self) -> list[str]:  # noqa: N802 — Qt override
        return [TYPE_MIME, LAYER_MIME]

    def mimeData(self, items) -> QMimeData:  # noqa: N802
        item = items[0] if items else None
        if item is not None and item.data(0, BACKBONE):
            return layer_mime(*item.data(0, BACKBONE))
        kind = item.data(0, KIND) if item is not None else None
        return type_mime(kind) if kind else QMimeData()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and _addable(item):
            self.activated_item.emit(item)
            return
        super().keyPressEvent(event)


class Palette(QWidget):
    """See the module docstring; ``insert_requested(kind)`` asks for a layer after the selection,
    ``insert_layer_requested(kind, params)`` for a catalogue backbone."""

    insert_requested = Signal(str)
    insert_layer_requested = Signal(str, dict)
    backbones_wanted = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.search = search_field("Search layers and backbones…",
                                   "Type to filter the layers and search the pretrained backbones (torchvision, "
                                   "timm); Enter adds the first match after the selected layer",
                                   self.filter, self._add_first)
        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setToolTip("Drag a layer onto the network, or double-click it (Enter) to add it after the "
                             "selected layer")
        self.tree.itemDoubleClicked.connect(lambda item, _col: self._activate(item))
        self.tree.activated_item.connect(self._activate)
        self.backbones: list[str] | None = None  # the catalogue's names, once loaded
        self.backbones_note = ""  # why there are none (timm missing, a failure)
        self._asked = False
        self.found: list[QTreeWidgetItem] = []  # the catalogue matches shown now
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
                for i in range(head.childCount()) if head.child(i).data(0, KIND)}

    def set_backbones(self, names: list[str], note: str = "") -> None:
        """The catalogue's names (`catalogue.backbone_names`); the current search is run again on them."""
        self.backbones, self.backbones_note = list(names), note
        self.filter(self.search.text())

    def found_backbones(self) -> list[str]:
        """The catalogue names the search lists now."""
        return [item.data(0, NAME) for item in self.found if item.data(0, BACKBONE)]

    def visible_kinds(self) -> list[str]:
        return [kind for kind, item in self.items().items() if not item.isHidden() and not item.parent().isHidden()]

    def filter(self, text: str) -> None:
        """Show the types whose name, group or help mentions ``text``, and the backbones whose name does."""
        words = text.lower().split()
        self._show_backbones(text)
        for group, head in self.groups.items():
            shown = 0
            for i in range(head.childCount()):
                item = head.child(i)
                if not item.data(0, KIND):
                    shown += 1  # a catalogue match or its note
                    continue
                t = LAYERS[item.data(0, KIND)]
                hay = f"{t.name} {group} {t.help}".lower()
                item.setHidden(not all(w in hay for w in words))
                shown += not item.isHidden()
            head.setHidden(shown == 0)
        best = self.best_match()
        if best and words:
            self.tree.setCurrentItem(self.items()[best])
        elif words and self.found_backbones():
            self.tree.setCurrentItem(self.found[0])

    def _show_backbones(self, text: str) -> None:
        head = self.groups.get(BACKBONES_GROUP)
        if head is None:
            return
        for item in self.found:
            head.removeChild(item)
        self.found = []
        if not text.strip():
            return
        if self.backbones is None:
            if not self._asked:
                self._asked = True
                self.backbones_wanted.emit()  # may set them at once (no task runner): that filter showed them
                if self.backbones is not None:
                    return
            self._note(head, "searching the backbone catalogue…")
            return
        from ftstudio.core.architecture.catalogue import search_names

        matches = search_names(self.backbones, text)
        for name in matches[:SHOWN]:
            source, _, bare = name.partition(":")
            item = QTreeWidgetItem([f"{bare} · {source}"])  # the name first: the column is narrow
            item.setData(0, BACKBONE, backbone_entry(name))
            item.setData(0, NAME, name)
            item.setToolTip(0, f"<b>{name}</b><br>Drag it onto the network, or double-click it (Enter) to add it "
                               "after the selected layer; choose its pretrained weights in its properties")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
            head.addChild(item)
            self.found.append(item)
        if len(matches) > SHOWN:
            self._note(head, f"… {len(matches) - SHOWN:,} more: type more of the name")
        elif self.backbones_note and not matches:
            self._note(head, self.backbones_note)

    def _note(self, head: QTreeWidgetItem, text: str) -> None:
        item = QTreeWidgetItem([text])
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        font = item.font(0)
        font.setItalic(True)
        item.setFont(0, font)
        head.addChild(item)
        self.found.append(item)

    def _activate(self, item: QTreeWidgetItem) -> None:
        if item.data(0, BACKBONE):
            self.insert_layer_requested.emit(*item.data(0, BACKBONE))
        elif item.data(0, KIND):
            self.insert_requested.emit(item.data(0, KIND))

    def best_match(self) -> str | None:
        """The visible type the search means most: one whose name contains it, else the first shown."""
        visible, text = self.visible_kinds(), self.search.text().strip().lower()
        named = [k for k in visible if text and text.replace(" ", "") in k.lower()]
        return (named or visible or [None])[0]

    def _add_first(self) -> None:
        if not self.search.text().strip():
            return
        kind = self.best_match()
        if kind:
            self.insert_requested.emit(kind)
        elif self.found_backbones():
            self._activate(self.found[0])
