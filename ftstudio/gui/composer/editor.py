"""The composer's document: the architecture being edited, its undo stack, file and selection.

Every gesture (drop, key, menu, property edit) becomes one core command (`ftstudio.core.architecture.composer`)
wrapped in a thin `QUndoCommand`, so undo/redo restores exactly the same JSON. Loading a preset,
a file or a run is undoable too: a `Load` swaps the whole document state (network, file, preset,
run it starts from). The widgets only call methods here and redraw on ``changed``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import QApplication

from ftstudio.core.architecture import LAYERS, LayerSpec, ModelSpec, parse_layer
from ftstudio.core.architecture.composer import Change, Command, Insert, Move, Remove, get_layer, new_layer
from ftstudio.core.errors import InputError
from ftstudio.core.finetune.start_from import RunStart

INPUT = "input"  # the selection path of the input card


@dataclass(frozen=True)
class DocState:
    """Everything a load replaces: the network, where it came from, the run it starts from."""

    spec: ModelSpec
    path: Path | None = None  # the architecture file it was opened from / saved to
    preset: str | None = None  # the preset it was loaded from
    preset_spec: ModelSpec | None = None
    start: RunStart | None = None  # the trained run whose weights it starts from


def _split(path: str) -> list[int]:
    return [int(p) for p in path.split(".")]


def _join(parts: list[int]) -> str:
    return ".".join(map(str, parts))


def after_removal(src: str, slot: str) -> str | None:
    """Where ``slot`` (a position before ``src`` is removed) lies once it is; None inside ``src`` itself."""
    s, t = _split(src), _split(slot)
    if t[:len(s)] == s and len(t) > len(s):
        return None
    depth = len(s) - 1
    if len(t) > depth and t[:depth] == s[:depth] and t[depth] > s[depth]:
        t[depth] -= 1
    return _join(t)


class Edit(QUndoCommand):
    """One core command on the undo stack; consecutive changes of one parameter merge into one step."""

    def __init__(self, editor: Editor, command: Command, select: str | None) -> None:
        super().__init__(command.label)
        self.editor, self.command, self.select = editor, command, select
        self.before = editor.selected

    def redo(self) -> None:
        self.editor.apply_spec(self.command.apply(self.editor.state.spec), self.select)

    def undo(self) -> None:
        self.editor.apply_spec(self.command.revert(self.editor.state.spec), self.before)

    def id(self) -> int:  # noqa: A003 — Qt override
        return 1 if isinstance(self.command, Change) and self.command.label.startswith("Set ") else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 — Qt override
        mine, theirs = self.command, getattr(other, "command", None)
        if not (isinstance(theirs, Change) and theirs.path == mine.path and theirs.label == mine.label
                and theirs.old == mine.new):
            return False
        self.command = Change(mine.path, mine.old, theirs.new, mine.label)
        self.setObsolete(mine.old == theirs.new)
        return True


class Load(QUndoCommand):
    """Replace the whole document (new, open, preset, run)."""

    def __init__(self, editor: Editor, new: DocState, label: str) -> None:
        super().__init__(label)
        self.editor, self.old, self.new = editor, editor.state, new

    def redo(self) -> None:
        self.editor.apply_state(self.new)

    def undo(self) -> None:
        self.editor.apply_state(self.old)


class Editor(QObject):
    """See the module docstring. ``changed``: the network changed; ``selection_changed``: another
    layer is selected; ``state_changed``: the file, title or unsaved marker changed."""

    changed = Signal()
    selection_changed = Signal(str)
    state_changed = Signal()

    def __init__(self, spec: ModelSpec, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = DocState(spec)
        self.selected = ""
        self.stack = QUndoStack(self)
        self.stack.cleanChanged.connect(self._clean_changed)  # a bound slot: cut when the editor goes

    @Slot(bool)
    def _clean_changed(self, _clean: bool) -> None:
        self.state_changed.emit()

    # ----------------------------------------------------------------------- the document
    @property
    def spec(self) -> ModelSpec:
        return self.state.spec

    def value(self) -> str | dict:
        """What a recipe stores: the preset name while unchanged, else the architecture itself."""
        s = self.state
        return s.preset if s.preset and s.spec == s.preset_spec else s.spec.to_dict()

    def dirty(self) -> bool:
        return not self.stack.isClean()

    def title(self) -> str:
        s = self.state
        if s.path is not None:
            return s.path.name
        if s.preset and s.spec == s.preset_spec:
            return f"{s.preset} (preset)"
        return s.spec.name or "Untitled"

    def load(self, state: DocState, label: str, undoable: bool = True) -> None:
        """Show another document; undoable unless it is the first (nothing to go back to)."""
        if undoable:
            self.stack.push(Load(self, state, label))
        else:
            self.stack.clear()
            self.apply_state(state)
        self.stack.setClean()
        self.state_changed.emit()

    def mark_saved(self, path: Path) -> None:
        self.state = dataclasses.replace(self.state, path=path, preset=None, preset_spec=None)
        self.stack.setClean()
        self.state_changed.emit()

    def apply_state(self, state: DocState) -> None:
        """Show ``state`` (the undo commands above replay through this and `apply_spec`)."""
        self.state = state
        self.state_changed.emit()
        self.apply_spec(state.spec, self.selected)

    def apply_spec(self, spec: ModelSpec, select: str | None) -> None:
        self.state = dataclasses.replace(self.state, spec=spec)
        before, self.selected = self.selected, self._valid(select)  # valid before anyone looks
        self.changed.emit()
        if self.selected != before:
            self.selection_changed.emit(self.selected)

    def _valid(self, path: str | None) -> str:
        if not path or path == INPUT:
            return path or ""
        try:
            get_layer(self.spec, path)
            return path
        except InputError:
            parts = _split(path)
            while parts:  # the nearest layer before it, else its block
                if parts[-1] > 0:
                    parts[-1] -= 1
                    return self._valid(_join(parts))
                parts.pop()
            return ""

    # ---------------------------------------------------------------------------- selection
    def select(self, path: str) -> None:
        if path != self.selected:
            self.selected = path
            self.selection_changed.emit(path)

    def selected_layer(self) -> LayerSpec | None:
        if not self.selected or self.selected == INPUT:
            return None
        try:
            return get_layer(self.spec, self.selected)
        except InputError:
            return None

    def slot_after_selection(self) -> str:
        """Where a new layer goes: after the selected one, at the top under the input, else at the end."""
        if self.selected == INPUT:
            return "0"
        if not self.selected:
            return str(len(self.spec.layers))
        parts = _split(self.selected)
        parts[-1] += 1
        return _join(parts)

    # -------------------------------------------------------------------------------- edits
    def push(self, command: Command, select: str | None = None) -> None:
        """Apply ``command`` as one undoable step; InputError (nothing pushed) if it does not apply."""
        command.apply(self.spec)  # refused here, not inside Qt's push, so the history stays whole
        self.stack.push(Edit(self, command, select))

    def insert(self, kind: str, slot: str | None = None) -> None:
        self.insert_layers([new_layer(kind)], slot)

    def insert_layers(self, layers: list[LayerSpec], slot: str | None = None) -> None:
        slot = slot if slot is not None else self.slot_after_selection()
        parts = _split(slot)
        if len(layers) > 1:
            self.stack.beginMacro(f"Paste {len(layers)} layers")
        for i, layer in enumerate(layers):
            at = _join(parts[:-1] + [parts[-1] + i])
            self.push(Insert(at, layer), at)
        if len(layers) > 1:
            self.stack.endMacro()

    def remove(self, path: str | None = None) -> None:
        path = path or self.selected
        if path and path != INPUT:
            self.push(Remove.at(self.spec, path), path)

    def move(self, src: str, slot: str) -> bool:
        """Move the layer at ``src`` to the position ``slot`` names now; False when that is no move."""
        dst = after_removal(src, slot)
        if dst is None or dst == src:
            return False
        self.push(Move(src, dst), dst)
        return True

    def shift(self, path: str, step: int) -> bool:
        """Move a layer up (-1) or down (+1) among its neighbours."""
        parts = _split(path)
        siblings = get_layer(self.spec, _join(parts[:-1])).layers if len(parts) > 1 else self.spec.layers
        target = parts[-1] + step
        if not 0 <= target < len(siblings):
            return False
        return self.move(path, _join(parts[:-1] + [target + (1 if step > 0 else 0)]))

    def set_param(self, path: str, name: str, value) -> None:
        """Raises InputError for a value the schema refuses (the property editor shows it)."""
        if get_layer(self.spec, path).params.get(name) != value:
            self.push(Change.param(self.spec, path, name, value), path)

    def set_fields(self, path: str, **changes) -> None:
        layer = get_layer(self.spec, path)
        if any(getattr(layer, k) != v for k, v in changes.items()):
            self.push(Change.fields(self.spec, path, **changes), path)

    def set_input_shape(self, shape: tuple) -> None:
        from ftstudio.core.architecture.composer import ReplaceAll

        if tuple(shape) != tuple(self.spec.input_shape):
            self.push(ReplaceAll(self.spec, self.spec.replace(input_shape=tuple(shape)), "Set input size"), INPUT)

    def set_name(self, name: str) -> None:
        from ftstudio.core.architecture.composer import ReplaceAll

        if name != self.spec.name:
            self.push(ReplaceAll(self.spec, self.spec.replace(name=name), "Rename network"), self.selected)

    # --------------------------------------------------------------------------- wiring
    def wire(self, src: int, dst: int) -> None:
        """Wire layer ``src`` (-1: the input) into layer ``dst`` as one undoable step (InputError if refused)."""
        from ftstudio.core.architecture.graph import connect

        self._rewire(connect(self.spec, src, dst), "Wire", src, dst)

    def unwire(self, src: int, dst: int) -> None:
        from ftstudio.core.architecture.graph import disconnect

        self._rewire(disconnect(self.spec, src, dst), "Remove wire", src, dst)

    def _rewire(self, new: ModelSpec, verb: str, src: int, dst: int) -> None:
        from ftstudio.core.architecture.composer import ReplaceAll

        def name(i: int) -> str:
            return "input" if i < 0 else (new.layers[i].id or new.layers[i].type)

        if new != self.spec:
            self.push(ReplaceAll(self.spec, new, f"{verb} {name(src)} → {name(dst)}"), str(dst))

    def set_id(self, path: str, new_id: str) -> None:
        """Rename a top-level layer's id (wires follow); InputError for a bad or taken id."""
        from ftstudio.core.architecture.graph import rename
        from ftstudio.core.architecture.composer import ReplaceAll

        new = rename(self.spec, int(path), new_id)
        if new != self.spec:
            self.push(ReplaceAll(self.spec, new, "Rename id"), path)

    def expand_block(self, path: str, in_shape: tuple, out_shape: tuple) -> None:
        """Replace a Residual block by its layers and an Add (one undoable step)."""
        from ftstudio.core.architecture.graph import expand_residual
        from ftstudio.core.architecture.composer import ReplaceAll

        new = expand_residual(self.spec, int(path), in_shape, out_shape)
        self.push(ReplaceAll(self.spec, new, "Expand block into a graph"), path)

    def remove_many(self, paths: list[str]) -> None:
        """Delete several top-level layers as one undoable step (bottom first, so positions hold)."""
        paths = sorted({p for p in paths if p and p != INPUT}, key=_split, reverse=True)
        if not paths:
            return
        self.stack.beginMacro(f"Delete {len(paths)} layers" if len(paths) > 1 else "Delete layer")
        try:
            for path in paths:
                self.push(Remove.at(self.spec, path), path)
        finally:
            self.stack.endMacro()

    # ------------------------------------------------------------------------ clipboard
    def copy(self, path: str | None = None) -> bool:
        path = path or self.selected
        if not path or path == INPUT:
            return False
        # plain text (layer JSON): pastes here and into any editor; and a QMimeData handed to the
        # clipboard crashes PySide6 6.11 when the app exits
        QApplication.clipboard().setText(json.dumps([get_layer(self.spec, path).to_dict()], indent=2))
        return True

    def paste(self, slot: str | None = None) -> None:
        """Insert the layers on the clipboard (ours, or layer JSON as text); InputError if there are none."""
        raw = QApplication.clipboard().text()
        try:
            data = json.loads(raw)
        except ValueError:
            raise InputError("the clipboard holds no layers (copy a layer first, or layer JSON)") from None
        items = data if isinstance(data, list) else [data]
        self.insert_layers([parse_layer(item, f"clipboard[{i}]") for i, item in enumerate(items)], slot)

    def duplicate(self, path: str | None = None) -> None:
        path = path or self.selected
        if path and path != INPUT:
            parts = _split(path)
            parts[-1] += 1
            self.insert_layers([get_layer(self.spec, path)], _join(parts))


def is_container(layer: LayerSpec) -> bool:
    return LAYERS[layer.type].container
