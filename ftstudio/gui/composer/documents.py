"""The composer's documents: New / Open / Save / Save As of architecture JSON (exactly the file
`ftstudio train --model PATH` takes), presets, and the prompt before unsaved changes are replaced.

A mixin of the Model page: it uses the page's ``editor``, ``banner`` and ``presets``. Loading is
undoable (the editor's `Load`), so even a discarded network is one Undo away.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem

from ftstudio.core.architecture import ModelSpec
from ftstudio.core.architecture.presets import load_preset, resolve_model
from ftstudio.core.errors import InputError
from ftstudio.gui import dialogs
from ftstudio.gui.composer.editor import DocState

JSON_FILTER = "Architecture JSON (*.json)"
CHECKPOINT_FILTER = "Checkpoint of a trained run (*.pt)"


class DocumentActions:
    """See the module docstring."""

    def confirm_discard(self, doing: str) -> bool:
        """Ask before replacing a network with unsaved changes (they stay reachable with Undo)."""
        if not self.dirty():
            return True
        return dialogs.confirm(self, "Unsaved architecture", f"“{self.title()}” has unsaved changes. {doing} "
                               "anyway? (Undo brings them back.)", "Discard changes")

    # ------------------------------------------------------------------------- documents
    def _load(self, state: DocState, label: str) -> None:
        self.editor.load(state, label)
        self.banner.clear()
        self.check_report = None

    def new_network(self) -> None:
        if self.confirm_discard("Start a new network"):
            self._load(DocState(ModelSpec(layers=(), name="")), "New network")
            self.editor.select("")

    def open_file(self) -> None:
        if not self.confirm_discard("Open another network"):
            return
        path = dialogs.choose_file(self, "Open an architecture, or a trained run's checkpoint", self._folder(),
                                   f"{JSON_FILTER};;{CHECKPOINT_FILTER}")
        if not path:
            return
        dialogs.remember_folder(path)
        if Path(path).suffix.lower() == ".pt":  # a checkpoint: its network, to fine-tune from its weights
            self.load_run(path)
            return
        try:
            spec = resolve_model(str(Path(path)))
        except InputError as exc:
            self.banner.show_message("error", str(exc))
            return
        self._load(DocState(spec, path=Path(path)), f"Open {Path(path).name}")

    def save(self) -> bool:
        path = self.editor.state.path
        return self.save_as() if path is None else self._write(path)

    def save_as(self) -> bool:
        start = str(Path(self._folder()) / f"{(self.editor.spec.name or 'network').replace(' ', '-')}.json")
        path = dialogs.choose_save_file(self, "Save the architecture", start, JSON_FILTER)
        if not path:
            return False
        path = Path(path)
        dialogs.remember_folder(path)
        return self._write(path if path.suffix else path.with_suffix(".json"))

    def _write(self, path: Path) -> bool:
        from ftstudio.core.config.recipe import save_json

        if not self.editor.spec.layers:
            self.banner.show_message("error", "The network is empty: add at least one layer before saving it")
            return False
        try:
            save_json(path, self.editor.spec.to_dict())
        except OSError as exc:
            self.banner.show_message("error", f"{path}: cannot save the architecture there "
                                              f"({exc.strerror or exc}); choose another file with Save As")
            return False
        self.editor.mark_saved(path)
        self.banner.show_message("success", f"Saved {path} — train it with: ftstudio train --model {path}")
        return True

    def document_path(self) -> str:
        """The file the network was opened from or saved to ("" if none): kept across a relaunch."""
        return str(self.editor.state.path or "")

    def restore_document_path(self, path: str) -> None:
        """After a relaunch the network comes back from the settings, not its file: name it after
        the file again (it said "Untitled") when the file still holds this very network."""
        if not path or self.editor.state.path is not None or not Path(path).is_file():
            return
        try:
            spec = resolve_model(path)
        except InputError:
            return
        if spec == self.editor.spec:
            self.editor.load(dataclasses.replace(self.editor.state, path=Path(path)), "", undoable=False)

    def _folder(self) -> str:
        path = self.editor.state.path
        return str(path.parent) if path is not None else str(dialogs.documents_folder())

    def _preset_clicked(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        if name == self.model_value():
            return
        if not self.confirm_discard(f"Load the {name} preset"):
            self._show_choice()
            return
        try:
            spec = load_preset(name)
        except InputError as exc:
            self.banner.show_message("error", str(exc))
            return
        self._load(DocState(spec, preset=name, preset_spec=spec), f"Preset {name}")
