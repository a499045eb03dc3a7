"""The Try page: a trained run or an exported model on new images — answer, confidence, where it looked.

Choose a run (or open an export folder), then open, drop or paste images or a folder. Every image
becomes a thumbnail with its label and confidence; the selected one shows its top classes as bars
and, on request, a heat map of where the model looked (`core.explain`). A folder is a grid sortable
by confidence, filtered to the uncertain images or — when its subfolders are the model's classes —
the wrong ones. Loading, predicting and explaining run as background tasks (`gui.workers.Tasks`).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPen,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ftstudio.gui import dialogs
from ftstudio.gui.pages.base import Page
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.drops import FileDrops, local_paths
from ftstudio.gui.widgets.relabel import Relabeler, add_relabel_menu, is_moved, mark_moved
from ftstudio.gui.workers import Tasks
from ftstudio.gui.widgets.images import thumbnail_list

TOP_K = 5
FILTERS = (("all", "All images"), ("uncertain", "Uncertain (top class under 60%)"),
           ("wrong", "Wrong (subfolder ≠ label)"))
SORTS = (("order", "In order"), ("low", "Least confident first"), ("high", "Most confident first"))
ITEM_ROLE = Qt.ItemDataRole.UserRole
BIG_PICTURE = 2_000_000  # pixels: a larger image is shown from the background (a 12-MP JPEG: ~80 ms)
PICTURES_KEPT = 64  # shown images kept for going back and forth


class Picture(QWidget):
    """The selected image, scaled to fit (a QLabel's pixmap would grow the label it sits in)."""

    def __init__(self, placeholder: str, parent=None) -> None:
        super().__init__(parent)
        self._pixmap = QPixmap()
        self._text = placeholder
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def pixmap(self) -> QPixmap:
        return self._pixmap

    def setPixmap(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self.update()

    def setText(self, text: str) -> None:
        self._text = text
        self._pixmap = QPixmap()
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = self.rect().adjusted(1, 1, -1, -1)
        if self._pixmap.isNull():
            painter.setPen(QPen(self.palette().mid().color(), 1, Qt.PenStyle.DashLine))
            painter.drawRect(rect)
            painter.setPen(self.palette().text().color())
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._text)
            return
        scaled = self._pixmap.size().scaled(rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = rect.x() + (rect.width() - scaled.width()) // 2
        y = rect.y() + (rect.height() - scaled.height()) // 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(x, y, scaled.width(), scaled.height(), self._pixmap)


def _caption(r) -> str:
    """A grid item's text: the answer and its confidence, crossed when it is wrong."""
    text = f"{r.prediction.label} {r.prediction.probability:.0%}"
    return f"✗ {text}" if r.wrong else text


def _pixels(r) -> int:
    """The image's pixel count from its header (0 when it cannot be read: the fallback shows it)."""
    from ftstudio.core.datasets.decode import DecodeError, probe

    try:
        h, w, _ = probe(r.input.open())
    except (DecodeError, OSError):
        return 0
    return h * w


def _qimage(rgb: np.ndarray) -> QImage:
    data = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = data.shape[:2]
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class TryPage(Page, QWidget):
    """See the module docstring."""

    busy_changed = Signal(bool)

    def __init__(self, tasks: Tasks, parent=None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.predictor = None  # core.predict.Predictor, used only by background tasks
        self.relabeler: Relabeler | None = None  # moves a wrong answer's file to its class (set_relabeler)
        self.source: Path | None = None
        self.results: list = []  # core.trying.Tried
        self.has_truth = False
        self.bars: list[tuple[QLabel, QProgressBar]] = []
        self._explained: dict[int, QPixmap] = {}  # id(Tried) → overlay
        self._pictures: dict[int, QPixmap] = {}  # id(Tried) → the image itself, the last PICTURES_KEPT
        self._pending: list = []  # inputs waiting for the model to load
        FileDrops(self).dropped.connect(lambda paths, _pos: self.open_paths(paths))
        self._build()
        self.refresh()

    # ------------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.banner = Banner()
        self.header = header_label("Choose a model, then open, drop or paste images (Ctrl+V).")
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(18)
        self.model.setToolTip("A trained run, or a run's export folder (predicted through ONNX Runtime / "
                              "torch.export, as deployed)")
        self.model.activated.connect(lambda _: self._model_chosen())
        self.open_model = QPushButton("Open model folder…")
        self.open_model.setToolTip("A run folder, or an export folder with signature.json")
        self.open_model.clicked.connect(self._choose_model)
        self.open_images = QPushButton("Open images…")
        self.open_images.clicked.connect(self._choose_images)
        self.open_folder = QPushButton("Open folder…")
        self.open_folder.setToolTip("Every image in a folder and its subfolders; when the subfolders are named "
                                    "after the classes, the wrong answers can be filtered")
        self.open_folder.clicked.connect(self._choose_folder)
        paste = QShortcut(QKeySequence.StandardKey.Paste, self)
        paste.activated.connect(self.paste)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model"))
        top.addWidget(self.model, 1)
        top.addWidget(self.open_model)
        top.addSpacing(12)
        top.addWidget(self.open_images)
        top.addWidget(self.open_folder)

        self.filter = QComboBox()
        for key, text in FILTERS:
            self.filter.addItem(text, key)
        self.filter.currentIndexChanged.connect(lambda _: self._fill_grid())
        self.sort = QComboBox()
        for key, text in SORTS:
            self.sort.addItem(text, key)
        self.sort.currentIndexChanged.connect(lambda _: self._fill_grid())
        self.count = QLabel()
        tools = QHBoxLayout()
        tools.addWidget(QLabel("Show"))
        tools.addWidget(self.filter)
        tools.addWidget(QLabel("Sort"))
        tools.addWidget(self.sort)
        tools.addStretch(1)
        tools.addWidget(self.count)
        self.grid = thumbnail_list(88, QSize(120, 124))
        self.grid.setWordWrap(True)
        self.grid.setUniformItemSizes(True)
        self.grid.currentItemChanged.connect(lambda *_: self._show_selected())
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._menu)
        self.empty = QLabel("1. Choose a model above (a run, or its export folder)\n"
                            "2. Open, drop or paste (Ctrl+V) images — or a whole folder\n\n"
                            "Each image gets the model's answer and confidence; a folder whose subfolders are "
                            "named after the classes also shows which answers are wrong.")
        self.empty.setObjectName("hint")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.views = QStackedWidget()
        self.views.addWidget(self.empty)
        self.views.addWidget(self.grid)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addLayout(tools)
        lv.addWidget(self.views, 1)

        self.picture = Picture("Drop images here")
        self.explain = QCheckBox("Show where the model looked")
        self.explain.setToolTip("A heat map of the evidence for the predicted class: Grad-CAM on the last "
                                "convolution of a conv net, occlusion otherwise (and for exported files)")
        self.explain.toggled.connect(lambda _: self._show_selected())
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.bars_box = QGridLayout()
        self.method = QLabel()
        self.method.setObjectName("hint")
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.picture, 1)
        rv.addWidget(self.explain)
        rv.addWidget(self.answer)
        rv.addLayout(self.bars_box)
        rv.addWidget(self.method)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.header)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self._update_controls()

    # ------------------------------------------------------------------------------ the model
    def refresh(self) -> None:
        """List the runs (and their export folders) as model choices, keeping the current one."""
        from ftstudio.core.runs.folders import list_runs

        current = self.model.currentData()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem("Choose a model…", None)
        try:
            runs = list_runs()
        except OSError:
            runs = []
        for run in runs:
            if not (run.checkpoint("best").exists() or run.checkpoint("last").exists()):
                continue
            name = run.read_summary().get("name") or run.path.name
            self.model.addItem(f"{name} (run)", str(run.path))
            if (run.path / "export" / "signature.json").is_file():
                self.model.addItem(f"{name} (exported)", str(run.path / "export"))
        if self.source is not None and self.model.findData(str(self.source)) < 0:
            self.model.addItem(self.source.name, str(self.source))
        keep = str(self.source) if self.source is not None else current
        self.model.setCurrentIndex(max(0, self.model.findData(keep)))
        self.model.blockSignals(False)

    def _choose_model(self) -> None:
        folder = dialogs.choose_folder(self, "Open a run or export folder")
        if folder:
            self.set_source(folder)

    def _model_chosen(self) -> None:
        data = self.model.currentData()
        if data:
            self.set_source(data)

    def set_source(self, path: str | Path) -> None:
        """Load a run folder, checkpoint or export folder in the background."""
        from ftstudio.core.inference.predict import load_predictor

        self.source = Path(path)
        self.refresh()
        self.predictor = None
        self.banner.clear()
        self.header.setText(f"Loading {html.escape(str(self.source))}…")
        task = self.tasks.start("try-load", lambda cancel: load_predictor(self.source))
        task.done.connect(self._loaded)
        task.failed.connect(self._failed)
        self._update_controls(busy=True)

    def _loaded(self, predictor) -> None:
        self.predictor = predictor
        how = {"run": "PyTorch", "checkpoint": "PyTorch", "onnx": "ONNX Runtime", "onnx-int8": "ONNX Runtime (int8)",
               "pt2": "torch.export"}.get(predictor.kind, predictor.kind)
        c, h, w = predictor.input_shape
        self.header.setText(f"<b>{html.escape(predictor.source.name)}</b> through {how}: "
                            f"{len(predictor.classes)} classes, input {w}×{h}, "
                            f"{'grayscale' if c == 1 else 'colour'}. Open, drop or paste images (Ctrl+V).")
        self._explained.clear()
        self._pictures.clear()
        self._update_controls()
        pending = self._pending or [r.input for r in self.results]
        self._pending = []
        if pending:
            self.try_inputs(pending)

    def _failed(self, message: str) -> None:
        self.banner.show_message("error", message)
        self.header.setText("Choose a model, then open, drop or paste images (Ctrl+V).")
        self._update_controls()

    # ------------------------------------------------------------------------------ the images
    def _choose_images(self) -> None:
        from ftstudio.core.datasets.decode import IMAGE_SUFFIXES

        pattern = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "", f"Images ({pattern})")
        if files:
            self.open_paths(files)  # several files: the one dialog `gui.dialogs` has no helper for

    def _choose_folder(self) -> None:
        folder = dialogs.choose_folder(self, "Open a folder of images")
        if folder:
            self.open_paths([folder])

    def open_paths(self, paths: list[str | Path]) -> None:
        """Images or folders (recursive): predict them all. The folders are walked in the background: a
        big tree (a dropped /usr: 2.5 s here) froze the window, and a walk over a million images raised on
        the GUI thread, unseen."""
        from ftstudio.core.inference.trying import inputs_from_paths

        classes = self.predictor.classes if self.predictor is not None else ()
        shown = self.count.text()
        self.count.setText("Looking for images…")
        task = self.tasks.start("try-find", lambda cancel: inputs_from_paths(paths, classes, cancel))
        task.done.connect(lambda found: (self.count.setText(shown), self._found(*found)))
        task.failed.connect(lambda message: (self.count.setText(shown), self.banner.show_message("warning", message)))

    def _found(self, inputs: list, missing: list[tuple[str, str]]) -> None:
        if missing:
            self.banner.show_message("warning", "Not found: " + ", ".join(p for p, _ in missing[:5]))
        if not inputs:
            if not missing:
                self.banner.show_message("warning", "No images there (PNG, JPEG, BMP, WebP, GIF, TIFF)")
            return
        self.try_inputs(inputs)

    def open_image(self, image: np.ndarray, name: str, truth: str | None = None) -> None:
        """One in-memory image (uint8 [C, H, W] or [H, W, C]) — how a mistakes gallery opens one here."""
        from ftstudio.core.inference.trying import TryInput, png_bytes

        self.try_inputs([TryInput(name, data=png_bytes(image), truth=truth)])
        self.explain.setChecked(True)

    def open_mistake(self, run: str | Path, mistake) -> None:
        """A misclassified held-out image (`core.mistakes.Mistake`) of ``run``, with its explanation."""
        from ftstudio.core.inference.trying import TryInput, png_bytes

        if self.source is None or Path(run) != self.source or self.predictor is None:
            self.set_source(run)
        if mistake.path:
            item = TryInput(Path(mistake.path).name, path=mistake.path, truth=mistake.true)
        else:
            item = TryInput(f"held-out image #{mistake.index}", data=png_bytes(mistake.image), truth=mistake.true)
        self.try_inputs([item])
        self.explain.setChecked(True)

    def paste(self) -> None:
        from PySide6.QtGui import QGuiApplication

        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        if local_paths(mime):
            self.open_paths(local_paths(mime))
        elif mime.hasImage():
            image = QImage(mime.imageData()).convertToFormat(QImage.Format.Format_RGB888)
            ptr = image.constBits()
            arr = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
            rgb = arr[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()
            from ftstudio.core.inference.trying import TryInput, png_bytes

            self.try_inputs([TryInput("pasted image", data=png_bytes(rgb))])

    def try_inputs(self, inputs: list) -> None:
        if self.predictor is None:
            self._pending = list(inputs)
            if self.source is None:
                self.banner.show_message("info", "Choose a model first (above); the images will be predicted "
                                                 "as soon as it has loaded")
            return
        from ftstudio.core.inference.trying import try_inputs

        predictor = self.predictor
        self.banner.clear()
        task = self.tasks.start("try", lambda cancel, report: try_inputs(predictor, inputs, TOP_K, cancel=cancel,
                                                                           report=report), reports=True)
        task.message.connect(self.count.setText)
        task.done.connect(self._predicted)
        task.failed.connect(self._failed)
        self._update_controls(busy=True)

    def _predicted(self, batch) -> None:
        self.results = list(batch.results)
        self.has_truth = batch.has_truth
        self._explained.clear()
        self._pictures.clear()
        if batch.skipped:
            names = ", ".join(f"{Path(p).name} ({why})" for p, why in batch.skipped[:3])
            more = f" and {len(batch.skipped) - 3} more" if len(batch.skipped) > 3 else ""
            self.banner.show_message("warning", f"{len(batch.skipped)} file(s) skipped as unreadable: {names}{more}")
        if batch.total > len(batch.results):
            self.banner.show_message("info",
                                     f"{batch.total} images predicted; the first {len(batch.results)} are shown")
        self._update_controls()
        self._fill_grid()

    # ---------------------------------------------------------------------------- relabelling
    def set_relabeler(self, relabeler: Relabeler) -> None:
        """Offer "Move to class" on images of datasets made in the app (`gui.widgets.relabel`)."""
        self.relabeler = relabeler
        relabeler.edited.connect(self._mark_moved)

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        r = item.data(ITEM_ROLE)
        path = r.input.path
        menu = QMenu(self)
        add_relabel_menu(menu, self.relabeler, path, Path(path).parent.name if path else None, r.prediction.label,
                         lambda text: self.banner.show_message("info", text))
        return menu

    def _menu(self, pos) -> None:
        item = self.grid.itemAt(pos)
        if item is not None and self.relabeler is not None:
            menu = self.context_menu(item)
            menu.exec(self.grid.viewport().mapToGlobal(pos))
            menu.deleteLater()

    def _mark_moved(self) -> None:
        for i in range(self.grid.count()):
            item = self.grid.item(i)
            r = item.data(ITEM_ROLE)
            mark_moved(item, _caption(r), is_moved(r.input.path), self.palette(),
                       QBrush(Qt.GlobalColor.red) if r.wrong else None)

    # ------------------------------------------------------------------------------- the views
    def shown(self) -> list:
        """The results the grid shows, filtered and sorted as chosen."""
        key = self.filter.currentData()
        rows = [r for r in self.results
                if key == "all" or (key == "uncertain" and r.uncertain) or (key == "wrong" and r.wrong)]
        order = self.sort.currentData()
        if order != "order":
            rows.sort(key=lambda r: r.prediction.probability, reverse=order == "high")
        return rows

    def _fill_grid(self) -> None:
        self.grid.blockSignals(True)
        self.grid.clear()
        for r in self.shown():
            text = f"{r.prediction.label} {r.prediction.probability:.0%}"
            item = QListWidgetItem(QIcon(QPixmap.fromImage(_qimage(r.thumbnail))), _caption(r))
            tip = f"{r.input.path or r.input.name}\n{text}"
            if r.truth is not None:
                tip += f"\ntrue class: {r.truth}"
                if r.wrong:
                    item.setForeground(Qt.GlobalColor.red)
            item.setToolTip(tip)
            item.setData(ITEM_ROLE, r)
            self.grid.addItem(item)
        self.grid.blockSignals(False)
        if self.relabeler is not None:
            self._mark_moved()
        self.views.setCurrentWidget(self.grid if self.results else self.empty)
        n = self.grid.count()
        wrong = sum(r.wrong for r in self.results)
        parts = [f"{n} of {len(self.results)} shown"]
        if self.has_truth:
            parts.append(f"{wrong} wrong")
        parts.append(f"{sum(r.uncertain for r in self.results)} uncertain")
        self.count.setText(" · ".join(parts) if self.results else "")
        if n:
            self.grid.setCurrentRow(0)
        self._show_selected()

    def selected(self):
        item = self.grid.currentItem()
        return item.data(ITEM_ROLE) if item is not None else None

    def _show_selected(self) -> None:
        r = self.selected()
        self._set_bars(r)
        if r is None:
            self.picture.setText("Drop images here" if not self.results else "No image matches the filter")
            self.answer.setText("")
            self.method.setText("")
            return
        p = r.prediction
        verdict = ""
        if r.truth is not None:
            verdict = " — right" if not r.wrong else f" — wrong, it is <b>{html.escape(r.truth)}</b>"
        self.answer.setText(f"<b>{html.escape(p.label)}</b>, {p.probability:.1%} sure{verdict}"
                            f"<br><small>{html.escape(r.input.path or r.input.name)}</small>")
        if self.explain.isChecked():
            cached = self._explained.get(id(r))
            if cached is not None:
                self._set_picture(cached)
            else:
                self._explain(r)
        else:
            self.method.setText("")
            self._plain(r)

    def _plain(self, r) -> None:
        """The image itself: at once when small; a large photo (~80 ms to decode even scaled, at every
        arrow key) is decoded in the background, its thumbnail standing in meanwhile."""
        from ftstudio.core.inference.trying import picture

        cached = self._pictures.get(id(r))
        if cached is not None:
            self._set_picture(cached)
            return
        if _pixels(r) > BIG_PICTURE:
            self._set_picture(QPixmap.fromImage(_qimage(r.thumbnail)))
            task = self.tasks.start("try-picture", lambda cancel: (r, picture(r)))
            task.done.connect(lambda result: self._picture_arrived(*result))
            return  # failed: the file changed since it was predicted; the thumbnail stays
        try:
            self._picture_arrived(r, picture(r))
        except Exception:  # noqa: BLE001 — the file changed since it was predicted: show the thumbnail
            self._set_picture(QPixmap.fromImage(_qimage(r.thumbnail)))

    def _picture_arrived(self, r, rgb: np.ndarray) -> None:
        pixmap = QPixmap.fromImage(_qimage(rgb))
        self._pictures[id(r)] = pixmap
        while len(self._pictures) > PICTURES_KEPT:
            del self._pictures[next(iter(self._pictures))]  # the oldest
        if self.selected() is r and not self.explain.isChecked():
            self._set_picture(pixmap)

    def _explain(self, r) -> None:
        from ftstudio.core.inference.trying import explain_one

        predictor = self.predictor
        if predictor is None:
            return
        self.method.setText("Computing where the model looked…")
        task = self.tasks.start("try-explain", lambda cancel: (r, *explain_one(predictor, r)))
        task.done.connect(self._explained_one)
        task.failed.connect(lambda message: self.method.setText(f"No explanation: {message}"))

    def _explained_one(self, result) -> None:
        r, rgb, method = result
        pixmap = QPixmap.fromImage(_qimage(rgb))
        self._explained[id(r)] = pixmap
        if self.selected() is r and self.explain.isChecked():
            self._set_picture(pixmap)
            self.method.setText(f"Heat map: {method} for “{r.prediction.label}” (red = strongest evidence)")

    def _set_picture(self, pixmap: QPixmap) -> None:
        self.picture.setPixmap(pixmap)

    def _set_bars(self, r) -> None:
        while self.bars_box.count():
            widget = self.bars_box.takeAt(0).widget()
            if widget is not None:
                widget.hide()  # it stays a child (and visible) until deleteLater runs
                widget.deleteLater()
        self.bars = []
        if r is None:
            return
        for row, (label, prob) in enumerate(r.prediction.top):
            name = QLabel(label)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(prob * 1000))
            bar.setFormat(f"{prob:.1%}")
            bar.setTextVisible(True)
            self.bars_box.addWidget(name, row, 0)
            self.bars_box.addWidget(bar, row, 1)
            self.bars.append((name, bar))

    def bar_values(self) -> list[tuple[str, float]]:
        """(class, probability) as the bars show them, top first (for tests and accessibility)."""
        return [(name.text(), bar.value() / 1000) for name, bar in self.bars]

    def _update_controls(self, busy: bool = False) -> None:
        ready = self.predictor is not None and not busy
        for w in (self.open_images, self.open_folder):
            w.setEnabled(self.source is not None)
        wrong_index = self.filter.findData("wrong")
        self.filter.model().item(wrong_index).setEnabled(self.has_truth)
        if not self.has_truth and self.filter.currentData() == "wrong":
            self.filter.setCurrentIndex(0)
        self.explain.setEnabled(ready or self.predictor is not None)
        self.busy_changed.emit(busy)
