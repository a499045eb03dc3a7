"""Per-class precision / recall / F1 of a run and a gallery of the held-out images it gets wrong.

Used by the Runs page and the wizard's results. Measuring runs `core.mistakes.assess` — the numbers
of `ftstudio evaluate` plus the misclassified images, most confident first — as a background task.
Activating a mistake (double-click, Enter) emits ``open_in_try(run, mistake)``. Given a
`gui.widgets.relabel.Relabeler` (`set_relabeler`: the Build data page), a mistake from a dataset
made in the app moves to its right class from the gallery's context menu, with Undo; a moved
image is marked as such (what the folder holds decides: an undo anywhere unmarks it).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ftstudio.gui.widgets.images import thumbnail_list, to_qimage
from ftstudio.gui.widgets.relabel import Relabeler, add_relabel_menu, is_moved, mark_moved
from ftstudio.gui.workers import Tasks

MISTAKE_ROLE = Qt.ItemDataRole.UserRole
METRIC_COLUMNS = ("Class", "Precision", "Recall", "F1", "Support")


class MistakesPanel(QWidget):
    """See the module docstring."""

    open_in_try = Signal(object, object)  # run folder (Path), core.mistakes.Mistake
    measured = Signal(object)  # core.mistakes.Assessment

    def __init__(self, tasks: Tasks, parent=None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.run: Path | None = None
        self.which = "best"
        self.assessment = None
        self.relabeler: Relabeler | None = None
        self._build()
        self.set_run(None)

    def _build(self) -> None:
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.measure = QPushButton("Measure")
        self.measure.setToolTip("Evaluate this run on its held-out images (as `ftstudio evaluate` does) and "
                                "collect the images it gets wrong")
        self.measure.clicked.connect(self.start)
        self.undo = QPushButton("Undo")
        self.undo.setToolTip("Undo the last edit of the dataset: a relabel from this gallery, or the Build data "
                             "page's")
        self.undo.hide()  # until a relabeler is set
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setObjectName("hint")
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.undo, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.measure, 0, Qt.AlignmentFlag.AlignTop)
        self.table = QTableWidget(0, len(METRIC_COLUMNS))
        self.table.setHorizontalHeaderLabels(METRIC_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.gallery = thumbnail_list(48, QSize(84, 84))
        self.gallery.setWordWrap(True)
        self.gallery.setToolTip("Misclassified held-out images, most confident first. Double-click one to open "
                                "it on the Try page with its explanation.")
        self.gallery.itemActivated.connect(self._activated)
        self.gallery.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.gallery.customContextMenuRequested.connect(self._menu)
        self.table.verticalHeader().setDefaultSectionSize(22)
        split = QSplitter(Qt.Orientation.Vertical)  # fits the narrow side panel of the Runs page
        split.addWidget(self.table)
        split.addWidget(self.gallery)
        split.setSizes([200, 200])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addWidget(split, 1)

    def set_relabeler(self, relabeler: Relabeler) -> None:
        """Offer "Move to class" for mistakes of datasets made in the app, on ``relabeler``'s undo stack."""
        self.relabeler = relabeler
        stack = relabeler.undo_stack
        self.undo.clicked.connect(stack.undo)
        stack.canUndoChanged.connect(self.undo.setEnabled)
        self.undo.setEnabled(stack.canUndo())
        self.undo.show()
        relabeler.edited.connect(self._mark_moved)

    def set_run(self, run: str | Path | None, which: str = "best", measure: bool = False) -> None:
        """Show ``run`` (nothing measured yet, unless ``measure``); None clears the panel."""
        self.run = Path(run) if run is not None else None
        self.which = which
        self.assessment = None
        self.table.setRowCount(0)
        self.gallery.clear()
        self.note.setText("")
        self.measure.setEnabled(self.run is not None)
        self.summary.setText("Select a run to see its precision and recall per class and the images it gets "
                             "wrong." if self.run is None else
                             "Per-class precision, recall and F1 on the held-out images, and the images the model "
                             "gets wrong: press Measure.")
        if measure and self.run is not None:
            self.start()

    def start(self) -> None:
        from ftstudio.core.inference.mistakes import assess

        if self.run is None:
            return
        run, which = self.run, self.which
        self.measure.setEnabled(False)
        self.summary.setText(f"Measuring {html.escape(run.name)} on its held-out images…")
        task = self.tasks.start(f"mistakes-{id(self)}", lambda cancel: assess(run, which, cancel=cancel))
        task.done.connect(self._done)
        task.failed.connect(self._failed)

    def _failed(self, message: str) -> None:
        self.measure.setEnabled(self.run is not None)
        self.summary.setText(f"<span style='color:#c0392b'>Could not measure: {html.escape(message)}</span>")

    def _done(self, assessment) -> None:
        if self.run is None or assessment.run != self.run:
            return  # another run was selected meanwhile
        self.assessment = assessment
        self.measure.setEnabled(True)
        r = assessment.report
        self.summary.setText(
            f"<b>{r['accuracy']:.1%}</b> accuracy on {r['count']} {html.escape(str(r['split']))} images "
            f"({html.escape(str(r['data']))}, {html.escape(str(r['checkpoint']))} checkpoint) · macro F1 "
            f"{r['macro']['f1']:.3f} · {assessment.total_mistakes} wrong"
            + (f", the {len(assessment.mistakes)} most confident shown" if assessment.total_mistakes > len(
                assessment.mistakes) else ""))
        rows = [(name, m) for name, m in r["per_class"].items()]
        rows += [("macro average", r["macro"]), ("weighted average", r["weighted"])]
        self.table.setRowCount(len(rows))
        for i, (name, m) in enumerate(rows):
            cells = (name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if i >= len(r["per_class"]):
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, j, item)
        self.gallery.clear()
        for m in assessment.mistakes:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(to_qimage(m.image))), _caption(m))
            item.setToolTip(f"true class {m.true}, predicted {m.predicted} with {m.confidence:.1%} confidence"
                            + (f"\n{m.path}" if m.path else f"\nheld-out image #{m.index}"))
            item.setData(MISTAKE_ROLE, m)
            self.gallery.addItem(item)
        self._mark_moved()
        self.measured.emit(assessment)

    def _mark_moved(self) -> None:
        """Mark the mistakes whose file has moved to another class (by a relabel), unmark the others."""
        for i in range(self.gallery.count()):
            item = self.gallery.item(i)
            m = item.data(MISTAKE_ROLE)
            mark_moved(item, _caption(m), is_moved(m.path), self.palette())

    def mistakes(self) -> list:
        return [self.gallery.item(i).data(MISTAKE_ROLE) for i in range(self.gallery.count())]

    def _activated(self, item: QListWidgetItem) -> None:
        if self.run is not None:
            self.open_in_try.emit(self.run, item.data(MISTAKE_ROLE))

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """The menu of one mistake: open it in Try; move it to its right class when it can be."""
        m = item.data(MISTAKE_ROLE)
        menu = QMenu(self)
        menu.addAction("Open in Try, with its explanation", lambda: self._activated(item))
        add_relabel_menu(menu, self.relabeler, m.path, m.true, m.predicted, self.note.setText)
        return menu

    def _menu(self, pos: QPoint) -> None:
        item = self.gallery.itemAt(pos)
        if item is not None:
            menu = self.context_menu(item)
            menu.exec(self.gallery.viewport().mapToGlobal(pos))
            menu.deleteLater()


def _caption(m) -> str:
    return f"{m.true} → {m.predicted}\n{m.confidence:.0%}"
