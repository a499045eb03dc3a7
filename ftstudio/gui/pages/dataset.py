"""The Dataset page: make a dataset in the app — classes, images per class, health — and train on it.

New dataset → name classes → add images to the selected class by dropping files (on the
thumbnails, or on a class in the list), Open files…, Paste, or import a folder, a zip or a CSV
of ``path,label``. Thumbnails show the selected class; Move to / Delete / Rename change it, with
Undo and Redo (a QUndoStack over `core.datasets.builder` commands). The dataset is an ordinary
class-folder dataset of copies in the data folder; the Health panel runs `data check` on it in
the background after every change. "Train on this" makes it the Data page's dataset.

Nothing slow runs on the GUI thread: thumbnails are decoded in the background, a few dozen at a
time, and kept for the next redraw (a phone's 12-megapixel JPEG takes ~55 ms even at thumbnail
size, so 600 of them froze the window for half a minute at every edit); a large drop of files is
copied in the background too.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QIcon,
    QImage,
    QImageReader,
    QKeySequence,
    QPixmap,
    QShortcut,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftstudio.core.datasets.builder import (
    AddImages,
    BuilderDataset,
    Command,
    DeleteImages,
    ImportReport,
    MoveImages,
    RenameClass,
    list_datasets,
    relabel_target,
)
from ftstudio.core.errors import InputError
from ftstudio.gui import dialogs
from ftstudio.gui.pages.base import Page
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.drops import FileDrops, local_paths
from ftstudio.gui.workers import Tasks
from ftstudio.gui.widgets.images import thumbnail_list

THUMB = 88
MAX_THUMBS = 600  # per class shown at once; the rest are counted
THUMB_CHUNK = 24  # thumbnails decoded per background task: the first appear at once, the rest follow
THUMB_CACHE = 3000  # decoded thumbnails kept (≤ 88×88 pixels each, ~30 KB): a redraw decodes only new files
BACKGROUND_ADD = 64  # files: a larger drop is copied off the GUI thread
PATH_ROLE = Qt.ItemDataRole.UserRole
CLASS_ROLE = Qt.ItemDataRole.UserRole + 1  # a Health row about one class
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.gif *.tif *.tiff)"


TRASH_KEPT_S = 24 * 3600  # another window may still undo a delete of its own; older trash is freed on opening


class _Undoable(QUndoCommand):
    """A core command on the undo stack (already applied when pushed)."""

    def __init__(self, command: Command, page: DatasetPage) -> None:
        super().__init__(command.label)
        self.command, self.page, self.fresh = command, page, True

    def redo(self) -> None:
        if self.fresh:  # applied before it was pushed (so a failure never reaches the stack)
            self.fresh = False
        else:
            self.command.apply()
        self.page.refresh()
        self.page.edited.emit()

    def undo(self) -> None:
        self.command.revert()
        self.page.refresh()
        self.page.edited.emit()


class DatasetPage(Page, QWidget):
    """See the module docstring."""

    train_requested = Signal(str)  # the dataset folder
    edited = Signal()  # the current dataset's files changed: an edit, or its undo or redo

    def __init__(self, tasks: Tasks, parent=None, undo_stack: QUndoStack | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.dataset: BuilderDataset | None = None
        self.undo_stack = undo_stack if undo_stack is not None else QUndoStack(self)  # (shared: DeferredRelabeler)
        self.health: dict | None = None
        self._thumb_cache: OrderedDict[tuple, QImage] = OrderedDict()
        self._thumb_round = 0
        self._adds = 0  # background adds started (each task its own name: none cancels another)
        self._health_timer = QTimer(self, singleShot=True, interval=600)
        self._health_timer.timeout.connect(self.check_health)
        self._build()
        self.reload_datasets()

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.banner = Banner()
        self.header = header_label("")
        self.chooser = QComboBox()
        self.chooser.setMinimumContentsLength(14)
        self.chooser.setToolTip("Datasets you made here (in the ftstudio data folder)")
        self.chooser.currentIndexChanged.connect(self._chosen)
        self.new_button = QPushButton("New dataset…")
        self.new_button.clicked.connect(self._new_dataset)
        self.train_button = QPushButton("Train on this")
        self.train_button.setToolTip("Use this dataset on the Data page (then Start trains on it)")
        self.train_button.clicked.connect(lambda: self.dataset and self.train_requested.emit(str(self.dataset.root)))
        top = QHBoxLayout()
        top.addWidget(QLabel("Dataset"))
        top.addWidget(self.chooser, 1)
        top.addWidget(self.new_button)
        top.addWidget(self.train_button)

        self.classes = QListWidget()
        self.classes.setToolTip("Classes and their image counts; drop images on a class to add them to it")
        self.classes.setMaximumWidth(220)
        self.classes.setMinimumWidth(150)
        self.classes.currentRowChanged.connect(lambda _: self._show_images())
        FileDrops(self.classes.viewport()).dropped.connect(self._dropped_on_class)
        self.add_class_button = QPushButton("Add class…")
        self.add_class_button.clicked.connect(self._add_class)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self._rename_class)
        left = QVBoxLayout()
        left.addWidget(self.classes, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_class_button)
        row.addWidget(self.rename_button)
        left.addLayout(row)

        self.thumbs = thumbnail_list(THUMB, QSize(THUMB + 16, THUMB + 24))
        self.thumbs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.thumbs.setToolTip("The selected class's images; drop image files here to add them")
        FileDrops(self.thumbs.viewport()).dropped.connect(lambda paths, _pos: self.add_files(paths))
        self.open_button = QPushButton("Open files…")
        self.open_button.clicked.connect(self._open_files)
        self.paste_button = QPushButton("Paste")
        self.paste_button.setToolTip("Paste images or image files from the clipboard into the selected class (Ctrl+V)")
        self.paste_button.clicked.connect(self.paste)
        self.camera_button = QPushButton("Camera…")
        self.camera_button.setToolTip("Capture pictures with a camera into the selected class")
        self.camera_button.clicked.connect(self.open_camera)
        self.camera_button.hide()  # until a camera is found (gui.widgets.camera: Qt Multimedia, optional)
        self._cameras: list = []
        self._devices = None  # QMediaDevices watching cameras come and go; False: no Qt Multimedia
        self.camera_dialog = None
        self.import_button = QToolButton()
        self.import_button.setText("Import")
        self.import_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.import_button)
        menu.addAction("A folder of class folders…", self._import_folder)
        menu.addAction("A zip of class folders…", self._import_zip)
        menu.addAction("A CSV of path,label…", self._import_csv)
        self.import_button.setMenu(menu)
        self.move_target = QComboBox()
        self.move_target.setToolTip("The class to move the selected images to")
        self.move_button = QPushButton("Move to")
        self.move_button.clicked.connect(lambda: self.move_selected(self.move_target.currentText()))
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo_stack.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.undo_stack.redo)
        self.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        for keys, slot in ((QKeySequence.StandardKey.Paste, self.paste), (QKeySequence.StandardKey.Delete,
                                                                            self.delete_selected)):
            QShortcut(keys, self.thumbs, activated=slot, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        tools = QHBoxLayout()  # two short rows: the page fits a 1024-pixel-wide window
        for w in (self.open_button, self.paste_button, self.camera_button, self.import_button):
            tools.addWidget(w)
        tools.addStretch(1)
        for w in (self.undo_button, self.redo_button):
            tools.addWidget(w)
        edits = QHBoxLayout()
        for w in (self.move_button, self.move_target, self.delete_button):
            edits.addWidget(w)
        edits.addStretch(1)
        middle = QVBoxLayout()
        middle.addLayout(tools)
        middle.addLayout(edits)
        middle.addWidget(self.thumbs, 1)

        box = QGroupBox("Health")
        self.health_text = QLabel("")
        self.health_text.setWordWrap(True)
        self.health_text.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.health_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # each problem with its files: double-click one to select it among its class's thumbnails,
        # then Move to / Delete it there
        self.health_list = QTreeWidget()
        self.health_list.setHeaderHidden(True)
        self.health_list.setToolTip("Each problem with its files: double-click a file (or press Enter) to select it "
                                    "in its class, then move or delete it there")
        self.health_list.itemActivated.connect(self._health_item_activated)
        self.health_list.hide()
        self.dedupe_button = QPushButton("Remove extra copies")
        self.dedupe_button.setToolTip("Delete all but one file of each group of identical files within one class "
                                      "(Undo restores them). Copies under two classes are a label conflict: "
                                      "pick the right class yourself.")
        self.dedupe_button.clicked.connect(self.remove_extra_copies)
        self.dedupe_button.hide()
        v = QVBoxLayout(box)
        v.addWidget(self.health_text)
        v.addWidget(self.health_list, 1)
        v.addWidget(self.dedupe_button)
        box.setMaximumWidth(280)
        box.setMinimumWidth(180)

        body = QHBoxLayout()
        body.addLayout(left)
        body.addLayout(middle, 1)
        body.addWidget(box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.header)
        layout.addLayout(body, 1)

    # ------------------------------------------------------------------------------ state
    def reload_datasets(self, select: Path | None = None) -> None:
        self.chooser.blockSignals(True)
        self.chooser.clear()
        folders = list_datasets()
        for folder in folders:
            self.chooser.addItem(folder.name, str(folder))
        if select is not None:  # (a path from a gallery is resolved; the list's may hold a symlink)
            same = [i for i, f in enumerate(folders) if f.resolve() == Path(select).resolve()]
            self.chooser.setCurrentIndex(same[0] if same else 0)
        self.chooser.blockSignals(False)
        self._chosen()

    def _chosen(self, *_) -> None:
        self._forget_history()
        folder = self.chooser.currentData()
        self.dataset = BuilderDataset(folder) if folder else None
        if self.dataset is not None:  # what an earlier session deleted and can no longer undo
            self.dataset.empty_trash(older_than_s=TRASH_KEPT_S)
        self.refresh()

    def _forget_history(self) -> None:
        """Clear the undo history, and free the deleted images only it could bring back."""
        stashes = [self.undo_stack.command(i).command.stash for i in range(self.undo_stack.count())
                   if isinstance(getattr(self.undo_stack.command(i), "command", None), DeleteImages)]
        if self.dataset is not None and stashes:
            self.dataset.empty_trash(stashes)
        self.undo_stack.clear()

    def shutdown(self) -> None:
        self._forget_history()

    def current_class(self) -> str | None:
        item = self.classes.currentItem()
        return item.data(PATH_ROLE) if item is not None else None

    def refresh(self) -> None:
        """Redraw classes and thumbnails from the folder (the folder is the only state)."""
        has = self.dataset is not None and self.dataset.root.is_dir()
        for w in (self.add_class_button, self.rename_button, self.open_button, self.paste_button,
                  self.camera_button, self.import_button, self.move_button, self.delete_button, self.train_button,
                  self.thumbs):
            w.setEnabled(has)
        if not has:
            self.dataset = None
            self.classes.clear()
            self.thumbs.clear()
            self.header.setText("<b>Make a dataset</b>: New dataset…, name its classes, then drop images on "
                                "them (or Open files…, Paste, Import a folder, zip or CSV).")
            self._clear_health("")
            return
        current = self.current_class()
        counts = self.dataset.counts()
        self.classes.blockSignals(True)
        self.classes.clear()
        for name, n in counts.items():
            item = QListWidgetItem(f"{name}  ({n})")
            item.setData(PATH_ROLE, name)
            self.classes.addItem(item)
        names = list(counts)
        self.classes.setCurrentRow(names.index(current) if current in names else (0 if names else -1))
        self.classes.blockSignals(False)
        self.move_target.clear()
        self.move_target.addItems(names)
        total = sum(counts.values())
        images = f"{total:,} image{'' if total == 1 else 's'}"
        classes = f"{len(names)} class{'' if len(names) == 1 else 'es'}"
        self.header.setText(f"<b>{html.escape(self.dataset.name)}</b> — {images} · {classes} "
                            f"<span style='color:gray'>({html.escape(str(self.dataset.root))})</span>")
        self._show_images()
        self._health_timer.start()

    def _show_images(self) -> None:
        self.thumbs.clear()
        self._thumb_round += 1  # thumbnails still on their way belong to the old list
        label = self.current_class()
        if self.dataset is None or label is None:
            return
        images = self.dataset.images(label)
        missing = []
        for rel in images[:MAX_THUMBS]:
            path = self.dataset.path(rel)
            key = _thumb_key(path)
            image = self._thumb_cache.get(key) if key is not None else None
            item = QListWidgetItem(QIcon(QPixmap.fromImage(image)) if image is not None else QIcon(),
                                   Path(rel).name[:14])
            item.setData(PATH_ROLE, rel)
            item.setToolTip(rel)
            self.thumbs.addItem(item)
            if image is None and key is not None:
                missing.append((rel, path, key))
        self._load_thumbs(missing, self._thumb_round)
        if len(images) > MAX_THUMBS:
            self.banner.show_message("info", f"Showing the first {MAX_THUMBS} of {len(images)} images of {label}.")

    def _load_thumbs(self, missing: list[tuple[str, Path, tuple]], round_: int) -> None:
        """Decode the next few thumbnails in the background; each batch that arrives starts the next."""
        if not missing:
            return
        batch, rest = missing[:THUMB_CHUNK], missing[THUMB_CHUNK:]

        def decode(cancel) -> list[tuple[str, tuple, QImage]]:
            out = []
            for rel, path, key in batch:
                if cancel.is_set():
                    break
                out.append((rel, key, _read_thumbnail(path)))
            return out

        task = self.tasks.start("dataset-thumbnails", decode)
        task.done.connect(lambda got: self._thumbs_arrived(got, rest, round_))

    def _thumbs_arrived(self, got: list[tuple[str, tuple, QImage]], rest: list, round_: int) -> None:
        if round_ != self._thumb_round:  # the list was redrawn meanwhile: its own round asks again
            return
        rows = {self.thumbs.item(r).data(PATH_ROLE): self.thumbs.item(r) for r in range(self.thumbs.count())}
        for rel, key, image in got:
            self._thumb_cache[key] = image
            self._thumb_cache.move_to_end(key)
            if rel in rows and not image.isNull():
                rows[rel].setIcon(QIcon(QPixmap.fromImage(image)))
        while len(self._thumb_cache) > THUMB_CACHE:
            self._thumb_cache.popitem(last=False)
        self._load_thumbs(rest, round_)

    # ------------------------------------------------------------------------------ edits
    def run(self, command: Command) -> bool:
        """Apply a core command and put it on the undo stack; a refusal is shown, not raised."""
        try:
            command.apply()
        except (InputError, OSError) as exc:
            self.banner.show_message("warning", str(exc))
            return False
        self.undo_stack.push(_Undoable(command, self))
        return True

    def relabel_classes(self, path: str | None) -> list[str]:
        """The classes a gallery's image can move to (`gui.widgets.relabel.Relabeler`)."""
        ds, _rel = relabel_target(path)
        return ds.classes()

    def relabel_image(self, path: str, to_class: str) -> str:
        """Move a builder dataset's image (a mistake another page shows) to ``to_class`` on this page's
        undo stack, switching to its dataset; returns the new path. Raises InputError when refused."""
        ds, rel = relabel_target(path)
        if self.dataset is None or self.dataset.root.resolve() != ds.root.resolve():
            self.reload_datasets(select=ds.root)
        if self.dataset is None or self.dataset.root.resolve() != ds.root.resolve():
            raise InputError(f"{ds.root}: not a dataset of the Build data page")
        command = MoveImages(self.dataset, [rel], to_class)
        command.apply()
        self.undo_stack.push(_Undoable(command, self))
        return str(self.dataset.path(command.moved[0][1]))

    def create_dataset(self, name: str, classes: tuple[str, ...] = ()) -> bool:
        try:
            ds = BuilderDataset.create(name, classes)
        except (InputError, OSError) as exc:
            self.banner.show_message("warning", str(exc))
            return False
        self.banner.clear()
        self.reload_datasets(select=ds.root)
        return True

    def add_class(self, name: str) -> bool:
        try:
            self.dataset.add_class(name)
        except (InputError, OSError) as exc:
            self.banner.show_message("warning", str(exc))
            return False
        self.refresh()
        self.classes.setCurrentRow(list(self.dataset.counts()).index(name.strip()))
        return True

    def select_class(self, name: str) -> None:
        names = list(self.dataset.counts()) if self.dataset else []
        if name in names:
            self.classes.setCurrentRow(names.index(name))

    def add_files(self, paths: list[str], label: str | None = None) -> None:
        label = label or self.current_class()
        if self.dataset is None:
            return
        if label is None:
            self.banner.show_message("warning", "Add a class first (Add class…), then add its images.")
            return
        files = _expand(paths)
        command = AddImages(self.dataset, label, files)
        if len(files) <= BACKGROUND_ADD:
            if self.run(command):
                self._report(command.report)
                self.select_class(label)
            return
        dataset = self.dataset
        self.header.setText(f"Adding {len(files):,} images to {label}…")
        self._adds += 1
        task = self.tasks.start(f"dataset-add-{self._adds}", lambda cancel: command.apply())
        task.done.connect(lambda _none: self._added(command, dataset, label))
        task.failed.connect(lambda message: (self.refresh(), self.banner.show_message("warning", message)))

    def _added(self, command: AddImages, dataset: BuilderDataset, label: str) -> None:
        """A background add has copied its files: undoable like any edit, if its dataset still shows."""
        if self.dataset is not None and self.dataset.root == dataset.root:
            self.undo_stack.push(_Undoable(command, self))
            self.select_class(label)
        else:
            self.refresh()
        self._report(command.report)

    def move_selected(self, to_class: str) -> None:
        rels = [i.data(PATH_ROLE) for i in self.thumbs.selectedItems()]
        if rels and to_class and self.dataset is not None:
            self.run(MoveImages(self.dataset, rels, to_class))

    def delete_selected(self) -> None:
        rels = [i.data(PATH_ROLE) for i in self.thumbs.selectedItems()]
        if rels and self.dataset is not None:
            self.run(DeleteImages(self.dataset, rels))

    def rename_class(self, old: str, new: str) -> None:
        if self.dataset is not None and self.run(RenameClass(self.dataset, old, new)):
            self.select_class(new)

    def paste(self) -> None:
        data = QApplication.clipboard().mimeData()
        if local_paths(data):
            self.add_files(local_paths(data))
        elif data.hasImage():
            self.add_image(QApplication.clipboard().image(), "pasted")
        else:
            self.banner.show_message("info", "The clipboard holds no image or image file to paste.")

    def add_image(self, image: QImage, name: str, label: str | None = None) -> None:
        """An image in memory (pasted, or a camera frame) into the class, as a PNG copy (undoable)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / f"{name}.png")
            if not image.save(path, "PNG"):
                self.banner.show_message("warning", f"Could not store the {name} image (an empty picture?).")
                return
            self.add_files([path], label)

    # ------------------------------------------------------------------------------ camera
    def showEvent(self, event) -> None:  # noqa: N802 — Qt override
        super().showEvent(event)
        if self._devices is None:
            self.probe_cameras()

    def probe_cameras(self) -> None:
        """Show the Camera button when Qt Multimedia is importable and sees a camera; keep watching."""
        from ftstudio.gui.widgets import camera

        if self._devices is None:  # the first probe: watch for cameras plugged in later
            mm = camera.multimedia()
            self._devices = mm.QMediaDevices(self) if mm is not None else False
            if self._devices:
                self._devices.videoInputsChanged.connect(self.probe_cameras)
        self._cameras = camera.video_inputs()
        self.camera_button.setVisible(bool(self._cameras))

    def open_camera(self) -> None:
        label = self.current_class()
        if self.dataset is None or label is None:
            self.banner.show_message("warning", "Add a class first (Add class…), then capture its pictures.")
            return
        if not self._cameras:
            return
        self.camera_dialog = self.make_camera_dialog(self._cameras[0], label)
        self.camera_dialog.open()

    def make_camera_dialog(self, device, label: str):
        """A camera preview whose captures go to ``label`` (``device`` None: no camera started, frames
        come only from its sink)."""
        from ftstudio.gui.widgets.camera import CameraDialog

        dialog = CameraDialog(device, label, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.captured.connect(lambda image: self.add_image(image, "camera", label))
        return dialog

    def import_from(self, kind: str, path: str) -> None:
        """Import a folder, zip or CSV in the background (imports are additive: Delete undoes one)."""
        if self.dataset is None:
            return
        ds = self.dataset
        work = {"folder": ds.import_folder, "zip": ds.import_zip, "csv": ds.import_csv}[kind]
        self.header.setText(f"Importing {Path(path).name}…")
        task = self.tasks.start("dataset-import", lambda cancel: work(path))
        task.done.connect(lambda report: (self.refresh(), self._report(report)))
        task.failed.connect(lambda message: (self.refresh(), self.banner.show_message("warning", message)))

    def _report(self, report: ImportReport) -> None:
        added, refused = report.added, report.refused
        if report.stopped:  # the dataset's folder refused a write: the last entry says where and why
            (what, why), earlier = refused[-1], len(refused) - 1
            also = f"; {earlier} other file(s) refused" if earlier else ""
            self.banner.show_message("warning", f"Added {len(added)} image(s), then stopped: {why}. "
                                                f"Not copied: {what}{also}.")
            return
        if refused:
            shown = "; ".join(f"{Path(p).name}: {r}" for p, r in refused[:4])
            more = f" and {len(refused) - 4} more" if len(refused) > 4 else ""
            self.banner.show_message("warning", f"Added {len(added)} image(s); refused {len(refused)}: {shown}{more}")
        else:
            self.banner.clear()

    # ------------------------------------------------------------------------------ health
    def check_health(self) -> None:
        if self.dataset is None or not any(self.dataset.counts().values()):
            self._clear_health("Add images to see the dataset's health: duplicates, label conflicts, "
                               "unreadable files, tiny or imbalanced classes.")
            return
        from ftstudio.core.datasets.health import check_folder

        root = self.dataset.root
        task = self.tasks.start("dataset-health", lambda cancel: check_folder(root, cancel=cancel, workers=1))
        task.done.connect(self._show_health)
        task.failed.connect(lambda message: self.health_text.setText(message))

    def _clear_health(self, text: str) -> None:
        self.health = None
        self.health_text.setText(text)
        self.health_list.clear()
        self.health_list.hide()
        self.dedupe_button.hide()

    def _show_health(self, report: dict) -> None:
        self.health = report
        self.health_list.clear()
        lines = report["problems"]
        extra = _extra_copies(report)
        self.dedupe_button.setText(f"Remove {len(extra)} extra cop{'y' if len(extra) == 1 else 'ies'}")
        self.dedupe_button.setVisible(bool(extra))
        self.health_list.setVisible(bool(lines))
        if not lines:
            self.health_text.setText(f"✓ No problems found in {report['readable']} images.")
            return
        self.health_text.setText(f"In {report['images']} images (double-click a file or class to show it):")
        for title, tip, files, label in _health_items(report):
            top = QTreeWidgetItem([title])
            top.setToolTip(0, tip)
            top.setData(0, CLASS_ROLE, label)
            for rel, note in files:
                child = QTreeWidgetItem([f"{rel} ({note})" if note else rel])
                child.setData(0, PATH_ROLE, rel)
                child.setToolTip(0, "Double-click to select it in its class")
                top.addChild(child)
            self.health_list.addTopLevelItem(top)
        if self.health_list.topLevelItemCount() <= 3:
            self.health_list.expandAll()

    def _health_item_activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        rel, label = item.data(0, PATH_ROLE), item.data(0, CLASS_ROLE)
        if rel:
            self.show_image(rel)
        elif label:
            self.select_class(label)

    def show_image(self, rel: str) -> bool:
        """Select an image of this dataset (``CLASS/file``) among its class's thumbnails."""
        if self.dataset is None or "/" not in rel:
            return False
        label = rel.split("/", 1)[0]
        if label != self.current_class():
            self.select_class(label)
        for r in range(self.thumbs.count()):
            item = self.thumbs.item(r)
            if item.data(PATH_ROLE) == rel:
                self.thumbs.clearSelection()
                self.thumbs.setCurrentItem(item)
                item.setSelected(True)
                self.thumbs.scrollToItem(item)
                return True
        self.banner.show_message("info", f"{rel} is not among the thumbnails shown (gone, unreadable, or past the "
                                         f"first {MAX_THUMBS} of its class)")
        return False

    def remove_extra_copies(self) -> None:
        """Delete all but the first file of each group of identical files within one class (undoable)."""
        extra = _extra_copies(self.health or {})
        if extra and self.dataset is not None and self.run(DeleteImages(self.dataset, extra)):
            self.banner.show_message("info", f"Removed {len(extra)} extra cop{'y' if len(extra) == 1 else 'ies'}; "
                                             "Undo (Ctrl+Z) brings them back.")

    # ------------------------------------------------------------------------------ dialogs
    def _new_dataset(self) -> None:
        name = dialogs.ask_text(self, "New dataset", "Name of the new dataset:")
        if name and self.create_dataset(name):
            self._add_class()

    def _add_class(self) -> None:
        name = dialogs.ask_text(self, "Add class", "Name of the class (e.g. cat):")
        if name:
            self.add_class(name)

    def _rename_class(self) -> None:
        old = self.current_class()
        if old:
            new = dialogs.ask_text(self, "Rename class", f"New name for {old}:", old)
            if new and new != old:
                self.rename_class(old, new)

    def _open_files(self) -> None:
        files = dialogs.choose_files(self, "Add images", "", IMAGE_FILTER)
        if files:
            self.add_files(files)

    def _dropped_on_class(self, paths: list[str], pos) -> None:
        item = self.classes.itemAt(pos)
        label = item.data(PATH_ROLE) if item is not None else self.current_class()
        self.add_files(paths, label)

    def _import_folder(self) -> None:
        path = dialogs.choose_folder(self, "Import a folder of class folders")
        if path:
            self.import_from("folder", path)

    def _import_zip(self) -> None:
        path = dialogs.choose_file(self, "Import a zip of class folders", "", "Zip archives (*.zip)")
        if path:
            self.import_from("zip", path)

    def _import_csv(self) -> None:
        path = dialogs.choose_file(self, "Import a CSV of path,label", "", "CSV files (*.csv *.txt)")
        if path:
            self.import_from("csv", path)


def _expand(paths: list[str]) -> list[str]:
    """Files as given; a dropped folder contributes the files directly in it."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.iterdir()) if f.is_file() and not f.name.startswith("."))
        else:
            out.append(str(path))
    return out


def _extra_copies(report: dict) -> list[str]:
    """Every file of an exact-duplicate group within one class but the group's first."""
    return [rel for d in report.get("duplicates", []) if d["kind"] == "exact" and not d["conflict"]
            and not d["leakage"] for rel in d["files"][1:]]


def _health_items(report: dict) -> list[tuple[str, str, list[tuple[str, str]], str | None]]:
    """The health report as (title, tooltip, [(file, note)], class or None) rows for the Health panel."""
    rows = []
    for d in report["duplicates"]:
        n = len(d["files"])
        what = "identical files" if d["kind"] == "exact" else "near-duplicates"
        if d["conflict"]:
            title, tip = f"Label conflict: {', '.join(d['classes'])} ({n})", \
                f"The same picture ({what}) under {len(d['classes'])} classes: keep it in the right one"
        elif d["leakage"]:
            title, tip = f"Leakage across {', '.join(d['splits'])} ({n})", \
                f"The same picture ({what}) in {' and '.join(d['splits'])}: validation would test on training images"
        else:
            title, tip = f"{what.capitalize()} ({n})", "Copies add no information; the split keeps them together"
        rows.append((title, tip, [(f, "") for f in d["files"]], None))
    unusable = report["corrupt"] + report["skipped"]
    if unusable:
        rows.append((f"Not used by training ({len(unusable)})", "Files training skips, each with its reason",
                     [(c["path"], c["reason"]) for c in unusable], None))
    imbalance = report["imbalance"]
    for name in imbalance["tiny"]:
        rows.append((f"Tiny class: {name} ({imbalance['counts'][name]} images)",
                     "10 or more images per class learn and validate better", [], name))
    if imbalance["imbalanced"]:
        big, small = imbalance["largest"], imbalance["smallest"]
        rows.append((f"Imbalanced: {big} {imbalance['counts'][big]} vs {small} {imbalance['counts'][small]}",
                     "The largest class has over 3× the images of the smallest", [], small))
    outliers = report["outliers"]
    if outliers["size"]:
        rows.append((f"Unusual sizes ({len(outliers['size'])})",
                     f"Far from the typical {'×'.join(map(str, outliers['typical_size']))}",
                     [(o["path"], "×".join(map(str, o["size"]))) for o in outliers["size"]], None))
    if outliers["mode"]:
        rows.append((f"Unusual colour modes ({len(outliers['mode'])})", f"Most images are {outliers['typical_mode']}",
                     [(o["path"], o["mode"]) for o in outliers["mode"]], None))
    return rows


def _thumb_key(path: Path) -> tuple | None:
    """The cache key of a file's thumbnail: a file replaced under the same name gets a new one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(path), st.st_size, st.st_mtime_ns


# looked up here, on the GUI thread at import: PySide6 makes its types and enums when first touched, and
# making one on a worker while the GUI thread uses Qt is the race that crashed pyqtgraph's worker import
_KEEP_ASPECT = Qt.AspectRatioMode.KeepAspectRatio


def _read_thumbnail(path: Path) -> QImage:
    """An image read at thumbnail size (a 50-megapixel photo is never decoded whole); any thread, with
    only the Qt types this module has already touched."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and size.width() > 0 and size.height() > 0:
        reader.setScaledSize(size.scaled(THUMB, THUMB, _KEEP_ASPECT))
    return reader.read()  # null when unreadable: the cell keeps its name and no picture
