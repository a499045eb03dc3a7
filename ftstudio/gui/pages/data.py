"""The Data page: pick a dataset (catalog, a folder, or a folder dropped on the window), see it.

Shows sample images with their labels, the class counts, and an augmentation preview; the
controls edit the session's `DatasetSpec` (split, classes, per-class cap, image size, channels,
augmentation). Data loads in the background; problems (a missing download, skipped files,
imbalance) appear in place.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ftstudio.core.datasets.catalog import CATALOG, find, is_available
from ftstudio.core.config.recipe import AugmentSpec, DatasetSpec
from ftstudio.gui.state import Session
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.charts import BarChart
from ftstudio.gui.widgets.form import DataclassForm, side_panel
from ftstudio.gui.widgets.images import GridItem, ImageGrid
from ftstudio.gui.workers import Tasks

SAMPLES = 40
AUGMENT_IMAGES, AUGMENT_VERSIONS = 4, 6
CHANNELS = (("Auto (as stored)", None), ("Grayscale", 1), ("Colour", 3))


def pick_samples(labels: np.ndarray, num_classes: int, total: int = SAMPLES) -> np.ndarray:
    """Indices of a few images of every class, class by class (at most ``total``)."""
    per = max(1, total // max(num_classes, 1))
    picks = [np.flatnonzero(labels == c)[:per] for c in range(num_classes)]
    return np.concatenate(picks)[:total] if picks else np.zeros(0, dtype=np.int64)


def augment_examples(images: np.ndarray, spec: AugmentSpec, versions: int, seed: int = 0) -> np.ndarray:
    """``versions`` random augmentations of each uint8 image, exactly as training applies them."""
    import torch

    from ftstudio.core.training.loader import augment_batch

    x = torch.from_numpy(np.repeat(images, versions, axis=0)).float().div_(255.0)
    gen = torch.Generator().manual_seed(seed)
    out = augment_batch(x, spec, gen)
    return out.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


class DataPage(QWidget):
    """See the module docstring."""

    open_folder_requested = Signal()

    def __init__(self, session: Session, tasks: Tasks, parent=None) -> None:
        super().__init__(parent)
        self.session, self.tasks = session, tasks
        self._folders: list[str] = []
        self._reload = QTimer(self, singleShot=True, interval=250)
        self._reload.timeout.connect(self.load)
        self._build()
        self.show_spec()
        session.data_spec_changed.connect(self._on_spec_changed)
        session.engine_ready.connect(self.load)
        session.data_loaded.connect(self._show_data)

    # ------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        controls = QWidget()
        col = QVBoxLayout(controls)
        box = QGroupBox("Dataset")
        form = QVBoxLayout(box)
        self.dataset = QComboBox()
        self.dataset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.dataset.setMinimumContentsLength(16)  # long names elide instead of widening the panel
        self.dataset.setToolTip("A dataset from the catalog, or an image folder you opened "
                                "(one subfolder of images per class)")
        self.open_button = QPushButton("Open folder…")
        self.open_button.setToolTip("Use a folder of images: one subfolder per class (Ctrl+O). "
                                    "You can also drop a folder onto the window.")
        self.open_button.clicked.connect(self.open_folder_requested)
        self.download = QCheckBox("Download if missing")
        self.download.setToolTip("Fetch a torchvision dataset into the data folder when it is not there yet")
        self.description = header_label("", "hint")
        form.addWidget(self.dataset)
        form.addWidget(self.open_button)
        form.addWidget(self.download)
        form.addWidget(self.description)
        col.addWidget(box)

        box = QGroupBox("Split and classes")
        v = QVBoxLayout(box)
        self.split_form = DataclassForm(DatasetSpec, ["val_split", "split_seed", "per_class"])
        v.addWidget(self.split_form)
        self.classes = QListWidget()
        self.classes.setToolTip("Train on the ticked classes only (at least two)")
        self.classes.setMaximumHeight(130)
        v.addWidget(QLabel("Classes"))
        v.addWidget(self.classes)
        self.all_classes = QPushButton("Use all classes")
        self.all_classes.setToolTip("Tick every class again")
        self.all_classes.clicked.connect(self._use_all_classes)
        v.addWidget(self.all_classes)
        col.addWidget(box)

        box = QGroupBox("Image")
        f = QFormLayout(box)
        self.size = QSpinBox()
        self.size.setRange(0, 1024)
        self.size.setSpecialValueText("Auto")
        self.size.setSuffix(" px")
        self.size.setToolTip("Resize every image to this many pixels square (Auto: as stored, or what the "
                             "model needs)")
        self.channels = QComboBox()
        for label, value in CHANNELS:
            self.channels.addItem(label, value)
        self.channels.setToolTip("1 = grayscale, 3 = colour; Auto keeps what the images have (or what the model needs)")
        f.addRow("Image size", self.size)
        f.addRow("Channels", self.channels)
        col.addWidget(box)

        box = QGroupBox("Augmentation (training only)")
        v = QVBoxLayout(box)
        self.augment_form = DataclassForm(AugmentSpec, ["crop", "flip", "rotation", "color", "blur", "noise", "erase"],
                                          float_steps={"rotation": 5.0, "color": 0.1, "blur": 0.5, "noise": 0.01,
                                                       "erase": 0.1})
        self.crop_area = QDoubleSpinBox()
        self.crop_area.setObjectName("field_scale")
        self.crop_area.setRange(0.05, 1.0)
        self.crop_area.setSingleStep(0.05)
        self.crop_area.setDecimals(2)
        self.crop_area.setToolTip("Random resized crop: each training image is a random part keeping at least "
                                  "this fraction of its area, stretched back to full size (1.00 = off)")
        self.augment_form.layout_.insertRow(3, "Random crop (min area)", self.crop_area)
        v.addWidget(self.augment_form)
        col.addWidget(box)
        col.addStretch(1)

        scroll = side_panel(controls)

        right = QVBoxLayout()
        self.banner = Banner()
        self.header = header_label("Loading the engine…")
        self.samples = ImageGrid("Sample images appear here once the data is loaded")
        self.samples.setToolTip("A few training images of each class with their labels")
        self.counts = BarChart("Class counts appear here")
        self.preview = ImageGrid("Augmentation examples appear here once the data is loaded",
                                 columns=2 * AUGMENT_VERSIONS)  # two images per row: fits the wide strip
        self.preview.setToolTip("Training images, each followed by random augmentations of it as training sees them")
        top = QHBoxLayout()
        top.addWidget(_group("Samples", self.samples), 3)
        top.addWidget(_group("Training images per class", self.counts), 2)
        right.addWidget(self.banner)
        right.addWidget(self.header)
        right.addLayout(top, 3)
        right.addWidget(_group("Augmentation preview", self.preview), 2)

        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addLayout(right, 1)

        self.dataset.currentIndexChanged.connect(self._edited)
        self.download.toggled.connect(self._edited)
        self.split_form.changed.connect(self._edited)
        self.classes.itemChanged.connect(self._classes_edited)
        self.size.valueChanged.connect(self._edited)
        self.channels.currentIndexChanged.connect(self._edited)
        self.augment_form.changed.connect(self._edited)
        self.crop_area.valueChanged.connect(self._edited)

    # ---------------------------------------------------------------------- spec <-> view
    def _fill_datasets(self, current: str) -> None:
        self.dataset.blockSignals(True)
        self.dataset.clear()
        for e in CATALOG:
            here = is_available(e)
            note = "bundled" if e.kind == "bundled" else ("downloaded" if here else f"download {e.size}")
            self.dataset.addItem(f"{e.title} — {note}", e.name)
            self.dataset.setItemData(self.dataset.count() - 1, e.description, Qt.ItemDataRole.ToolTipRole)
        if find(current) is None and current not in self._folders:
            self._folders.insert(0, current)
        for folder in self._folders:
            self.dataset.addItem(f"Folder: {Path(folder).name or folder}", folder)
            self.dataset.setItemData(self.dataset.count() - 1, folder, Qt.ItemDataRole.ToolTipRole)
        entry = find(current)
        self.dataset.setCurrentIndex(max(self.dataset.findData(entry.name if entry else current), 0))
        self.dataset.blockSignals(False)

    def show_spec(self) -> None:
        """Put the session's DatasetSpec into the controls (without echoing it back)."""
        spec = self.session.data_spec
        for w in (self.download, self.size, self.channels, self.crop_area):
            w.blockSignals(True)
        self._fill_datasets(spec.name)
        self.download.setChecked(spec.download)
        self.split_form.set_values(spec)
        self.size.setValue(spec.image_size[0] if spec.image_size else 0)
        self.channels.setCurrentIndex(max(self.channels.findData(spec.channels), 0))
        self.augment_form.set_values(spec.augment)
        self.crop_area.setValue(spec.augment.scale[0])
        for w in (self.download, self.size, self.channels, self.crop_area):
            w.blockSignals(False)
        entry = find(spec.name)
        self.description.setText(entry.description if entry else f"Image folder: {spec.name}")
        self.download.setEnabled(bool(entry and entry.kind == "torchvision"))
        self._fill_classes()

    def _fill_classes(self) -> None:
        spec = self.session.data_spec
        names = self.session.all_classes.get(spec.name, ())
        chosen = {c.lower() for c in spec.classes} if spec.classes else None
        self.classes.blockSignals(True)
        self.classes.clear()
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            ticked = chosen is None or name.lower() in chosen
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
            self.classes.addItem(item)
        self.classes.blockSignals(False)

    def spec_from_controls(self) -> DatasetSpec:
        old = self.session.data_spec
        name = self.dataset.currentData() or old.name
        same_data = name == old.name
        size = self.size.value()
        values = self.split_form.values()
        return dataclasses.replace(
            old, name=name, download=self.download.isChecked(), val_split=values["val_split"],
            split_seed=values["split_seed"], per_class=values["per_class"],
            classes=old.classes if same_data else None, image_size=(size, size) if size else None,
            channels=self.channels.currentData(), augment=self._augment_from_controls(old.augment))

    def _augment_from_controls(self, old: AugmentSpec) -> AugmentSpec:
        low = round(self.crop_area.value(), 4)
        return dataclasses.replace(old, **self.augment_form.values(), scale=(low, max(low, old.scale[1])))

    def _edited(self, *_) -> None:
        self.session.set_data_spec(self.spec_from_controls())

    def _classes_edited(self, *_) -> None:
        names = [self.classes.item(i).text() for i in range(self.classes.count())
                 if self.classes.item(i).checkState() == Qt.CheckState.Checked]
        if len(names) < 2:
            self.banner.show_message("warning", "Tick at least two classes: a classifier needs two or more.")
            return
        chosen = None if len(names) == self.classes.count() else tuple(names)
        self.session.set_data_spec(dataclasses.replace(self.session.data_spec, classes=chosen))

    def _use_all_classes(self) -> None:
        self.session.set_data_spec(dataclasses.replace(self.session.data_spec, classes=None))
        self._fill_classes()

    def use_folder(self, path: str) -> None:
        """Switch to an image folder (from Open folder… or a drop)."""
        path = str(Path(path).expanduser())
        if path not in self._folders:
            self._folders.insert(0, path)
        self.session.set_data_spec(dataclasses.replace(self.session.data_spec, name=path, classes=None,
                                                       download=False))

    def _on_spec_changed(self) -> None:
        self.show_spec()
        old_key = getattr(self, "_loaded_key", None)
        if _load_key(self.session.data_spec) != old_key:
            self.header.setText("Loading…")
            self._reload.start()
        else:
            self._show_augmentation()

    # ------------------------------------------------------------------------- loading
    def reload_pending(self) -> bool:
        """True while an edit's reload of the data is still scheduled (the window is not settled)."""
        return self._reload.isActive()

    def load(self) -> None:
        """Load the session's data in the background (a newer load supersedes an older one)."""
        if not self.session.ready:
            return
        from ftstudio.core.datasets import load_data

        spec = self.session.data_spec
        label = html.escape(Path(spec.name).name or spec.name)
        self.header.setText(f"Loading {label}…")

        def work(cancel, report):
            return load_data(spec, cancel=cancel, progress=lambda done, total: report(f"{done:,} / {total:,}"))

        task = self.tasks.start("data", work, reports=True)
        task.message.connect(lambda count: self.header.setText(f"Loading {label}… {count} images decoded"))
        task.done.connect(lambda bundle: self._loaded(spec, bundle, ""))
        task.failed.connect(lambda message: self._loaded(spec, None, message))

    def _loaded(self, spec: DatasetSpec, bundle, error: str) -> None:
        if _load_key(spec) != _load_key(self.session.data_spec):
            return  # the user has moved on; a newer load is coming
        self._loaded_key = _load_key(spec)
        self.session.set_bundle(bundle, error)

    def _show_data(self) -> None:
        bundle, error = self.session.bundle, self.session.data_error
        self._fill_classes()
        if bundle is None:
            self.header.setText("No data loaded")
            self.banner.show_message("error", error or "The data could not be loaded.")
            self.samples.clear("Nothing to show: the data could not be loaded (see the message above)")
            self.counts.set_data([], [])
            self.preview.clear("Augmentation examples appear here once the data is loaded")
            return
        c, h, w = bundle.input_shape
        test = f" · {len(bundle.test):,} test" if bundle.test is not None and len(bundle.test) else ""
        name = html.escape(Path(bundle.name).name or bundle.name)
        self.header.setText(f"<b>{name}</b> — {len(bundle.train):,} training · {len(bundle.val):,} validation{test} "
                            f"images · {bundle.num_classes} classes · {c}×{h}×{w} "
                            f"<span style='color:gray'>({html.escape(bundle.source)})</span>")
        if bundle.warnings:
            self.banner.show_message("warning", "\n".join(bundle.warnings))
        else:
            self.banner.clear()
        idx = pick_samples(bundle.train.y.numpy(), bundle.num_classes)
        images = bundle.train.images(idx)
        labels = bundle.train.y.numpy()[idx]
        self.samples.set_items([GridItem(img, bundle.classes[y]) for img, y in zip(images, labels)])
        self.counts.set_data(list(bundle.classes), bundle.class_counts("train"))
        self._show_augmentation()

    def _show_augmentation(self) -> None:
        bundle, spec = self.session.bundle, self.session.data_spec.augment
        if bundle is None or not len(bundle.train):
            self.preview.clear("")
            return
        if not spec.enabled:
            self.preview.clear("Augmentation is off. Turn on a random shift, flip, rotation, crop, colour, "
                               "blur, noise or erasing on the left to see here what training will see.")
            return
        labels = bundle.train.y.numpy()
        idx = pick_samples(labels, bundle.num_classes, AUGMENT_IMAGES)[:AUGMENT_IMAGES]
        originals = bundle.train.images(idx)
        augmented = augment_examples(originals, spec, AUGMENT_VERSIONS - 1)
        items = []
        for k, img in enumerate(originals):
            items.append(GridItem(img, "original"))
            for j in range(AUGMENT_VERSIONS - 1):
                items.append(GridItem(augmented[k * (AUGMENT_VERSIONS - 1) + j], "random", tooltip=
                                      "a random augmentation of the image on its left"))
        self.preview.set_items(items)


def _load_key(spec: DatasetSpec) -> DatasetSpec:
    """What decides the loaded data (augmentation does not: it only changes the preview)."""
    return dataclasses.replace(spec, augment=AugmentSpec())


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 6)
    layout.addWidget(widget)
    return box
