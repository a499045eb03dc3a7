"""The Runs page: the history in the runs folder, overlaid curves, and what to do with a run.

Lists every run folder (name, date, data, model, accuracy, duration, status), newest first.
Selecting runs overlays their curves; the current one's summary (and, for a failed run, why)
shows beside them. Resume continues a stopped or failed run from its last checkpoint; Delete asks
first; Reveal opens the folder in the file manager. The list follows the disk while it is shown:
a run started from a terminal appears, and a running one's row moves on at each epoch.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QItemSelection, QItemSelectionModel, Qt, QTimer, QUrl, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QPushButton, QSplitter,
                               QTabWidget, QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget)

from ftstudio.core.errors import InputError
from ftstudio.core.runs.records import RunSummary
from ftstudio.core.runs.folders import Run, list_runs
from ftstudio.gui import dialogs
from ftstudio.gui.live import format_duration
from ftstudio.gui.pages.base import Page
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.widgets.plots import OverlayPlots

# one number, one meaning: a run's accuracy is its best epoch's (the checkpoint Export takes by default)
COLUMNS = ("Name", "Created", "Data", "Model", "Best val acc", "Epochs", "Duration", "Status")
RESUMABLE = ("stopped", "failed", "interrupted", "starting")  # "running": a live process holds it
MAX_OVERLAY = 8
PATH_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class _Item(QTableWidgetItem):
    """A cell that sorts by a hidden key (numbers as numbers, dates as timestamps)."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if a is None or b is None or type(a) is not type(b):
            return str(a) < str(b)
        return a < b


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class RunsPage(Page, QWidget):
    """See the module docstring."""

    resume_requested = Signal(object)  # Path of the run folder
    reuse_requested = Signal(object)  # Path: put the run's settings into the editors
    renamed = Signal(object)  # Path of a run whose name changed (other pages list it too)

    def __init__(self, tasks=None, parent=None) -> None:
        super().__init__(parent)
        self.tasks = tasks  # gui.workers.Tasks: measuring per class runs in the background
        self.busy_run: Path | None = None
        self._filling = False  # refresh() is writing cells: not a rename
        # the runs folder (a run made or deleted elsewhere) and each running run's folder (its
        # summary.json is replaced at every epoch): the changes of 0.7 s make one refresh, and a run
        # whose epochs take less still moves on (a pending refresh is not pushed back)
        self.watcher = QFileSystemWatcher(self)
        self._changed = QTimer(self, singleShot=True, interval=700)
        self._changed.timeout.connect(self._disk_changed)
        self.watcher.directoryChanged.connect(lambda _path: self._changed.isActive() or self._changed.start())
        self._build()

    def _build(self) -> None:
        self.banner = Banner()
        self.header = header_label()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        # only the Name cell is editable (double-click, F2 or Rename): renaming a run is one click
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.itemChanged.connect(self._item_changed)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # newest first
        self.table.setToolTip("Past runs, newest first. Select several (Ctrl/Shift+click) to compare their curves.")
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)

        self.buttons = {}
        row = QHBoxLayout()
        for key, text, tip, slot in (
                ("refresh", "Refresh", "Read the runs folder again", self.refresh),
                ("rename", "Rename", "Give the selected run a name that says what it was (F2)", self.rename),
                ("reuse", "Use settings", "Put this run's data, model and hyper-parameters into the editors",
                 self.reuse),
                ("resume", "Resume", "Continue this stopped or failed run from its last checkpoint", self.resume),
                ("reveal", "Reveal folder", "Open the run's folder in the file manager", self.reveal),
                ("delete", "Delete…", "Delete the selected runs' folders (asks first)", self.delete)):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            self.buttons[key] = b
            row.addWidget(b)
        row.addStretch(1)

        self.plots = OverlayPlots()
        self.details = QTextBrowser()
        self.details.setToolTip("The selected run's summary")
        self.details.setOpenLinks(False)
        self.details.anchorClicked.connect(lambda url: dialogs.reveal(url.toLocalFile()))
        self.side = QTabWidget()
        self.side.addTab(self.details, "Summary")
        self.mistakes = None
        if self.tasks is not None:
            from ftstudio.gui.widgets.mistakes import MistakesPanel

            self.mistakes = MistakesPanel(self.tasks)
            self.side.addTab(self.mistakes, "Per class && mistakes")
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self.plots)
        lower.addWidget(self.side)
        lower.setSizes([640, 400])
        top = QWidget()
        tv = QVBoxLayout(top)
        tv.setContentsMargins(0, 0, 0, 0)
        tv.addWidget(self.header)
        tv.addWidget(self.table, 1)
        tv.addLayout(row)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(lower)
        split.setSizes([330, 400])
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)
        self._selection_changed()

    # ------------------------------------------------------------------------- listing
    def restyle(self) -> None:
        self.plots.restyle()

    def refresh(self) -> None:
        """Re-read the runs folder, keeping the selection."""
        from ftstudio.core.paths import runs_dir

        keep = set(self.selected_paths())
        self.table.setSortingEnabled(False)
        runs = list_runs()
        self._filling = True
        self.table.setRowCount(len(runs))
        running = [run.path for r, run in enumerate(runs) if self._fill_row(r, run, run.summary()) == "running"]
        self._filling = False
        self.table.setSortingEnabled(True)
        rows = [r for r in range(self.table.rowCount()) if self.path_at(r) in keep]
        self._select_rows(rows or [0][:self.table.rowCount()])  # nothing kept: the top run's curves
        self.header.setText(f"{len(runs)} run(s) in {runs_dir()}" if runs else
                            f"No runs yet in {runs_dir()}. Train one on the Train page (Ctrl+R).")
        self._selection_changed()
        self._watch(runs_dir(), running)

    def _watch(self, folder: Path, running: list[Path]) -> None:
        """Watch the runs folder (or, before the first run, the folder it will appear in) and the runs
        in progress; nothing else, so a thousand finished runs cost no watches."""
        top = folder if folder.is_dir() else next((p for p in folder.parents if p.is_dir()), None)
        wanted = {str(p) for p in [top, *running] if p is not None}
        old = set(self.watcher.directories())
        if old - wanted:
            self.watcher.removePaths(sorted(old - wanted))
        if wanted - old:
            self.watcher.addPaths(sorted(wanted - old))

    def _disk_changed(self) -> None:
        """Refresh for a change on disk, when it shows and nobody is typing a run's new name;
        a hidden page is refreshed when it is shown."""
        if not self.isVisible():
            return
        if self.table.state() == QAbstractItemView.State.EditingState:
            self._changed.start()  # after the rename
            return
        self.refresh()

    def _fill_row(self, r: int, run: Run, s: RunSummary) -> str:
        """Write row ``r`` for ``run``; returns the status it shows (the folder's lock decides "running")."""
        acc, best = _num(s.get("val_accuracy")), _num(s.get("best_val_accuracy"))
        duration = _num(s.get("duration_s"))
        status = "running" if run.path == self.busy_run else run.status()
        cells = [
            (s.get("name") or run.id, (s.get("name") or run.id).lower()),
            (str(s.get("created") or "").replace("T", " "), float(s.get("created_ts") or 0.0)),
            (Path(str(s.get("data") or "")).name, str(s.get("data") or "")),
            (str(s.get("model") or ""), str(s.get("model") or "")),
            (f"{best:.1%}" if best is not None else "–", best if best is not None else -1.0),
            (f"{s.get('epochs', 0)}/{s.get('epochs_planned', '?')}", float(s.get("epochs") or 0)),
            (format_duration(duration), duration if duration is not None else -1.0),
            (status, status),
        ]
        for c, (text, key) in enumerate(cells):
            item = _Item(text)
            item.setData(SORT_ROLE, key)
            item.setData(PATH_ROLE, str(run.path))
            if c != 0:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if c == 4 and best is not None:
                item.setToolTip(f"best validation accuracy {best:.2%} at epoch {s.get('best_epoch')}"
                                + (f"; last epoch {acc:.2%}" if acc is not None else ""))
            if c == 7 and s.error:
                item.setToolTip(s.error)
            if c == 0 and s.problems:  # junk in summary.json: shown, not fatal
                item.setToolTip("summary.json: " + "; ".join(s.problems))
                item.setText(f"{text} ⚠")
            self.table.setItem(r, c, item)
        return status

    def path_at(self, row: int) -> Path:
        return Path(self.table.item(row, 0).data(PATH_ROLE))

    def run_paths(self) -> list[Path]:
        return [self.path_at(r) for r in range(self.table.rowCount())]

    def row_texts(self, path: Path) -> dict[str, str]:
        """The visible cells of one run's row, by column name (what a user reads)."""
        for r in range(self.table.rowCount()):
            if self.path_at(r) == Path(path):
                return {name: self.table.item(r, c).text() for c, name in enumerate(COLUMNS)}
        raise KeyError(path)

    def selected_paths(self) -> list[Path]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        return [self.path_at(r) for r in rows]

    def select(self, path: Path) -> None:
        self._select_rows([r for r in range(self.table.rowCount()) if self.path_at(r) == Path(path)])

    def _select_rows(self, rows: list[int]) -> None:
        model, selection = self.table.model(), QItemSelection()
        for r in rows:
            selection.select(model.index(r, 0), model.index(r, model.columnCount() - 1))
        self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def set_busy_run(self, path: Path | None) -> None:
        self.busy_run = Path(path) if path else None
        self._selection_changed()

    # ------------------------------------------------------------------------- actions
    def _selection_changed(self) -> None:
        paths = self.selected_paths()
        one = paths[0] if len(paths) == 1 else None
        # the status as the table shows it: a killed trainer's "running" is "interrupted" here too
        summary = {**Run(one).read_summary(), "status": Run(one).status()} if one else {}
        busy = self.busy_run is not None
        resumable = bool(one) and not busy and (one / "checkpoints" / "last.pt").exists() and \
            summary["status"] in RESUMABLE
        self.buttons["resume"].setEnabled(resumable)
        self.buttons["reuse"].setEnabled(bool(one))
        self.buttons["rename"].setEnabled(bool(one) and one != self.busy_run)
        self.buttons["reveal"].setEnabled(bool(one))
        self.buttons["delete"].setEnabled(bool(paths) and self.busy_run not in paths)
        self.plots.set_runs([(Run(p).read_summary().get("name") or p.name, Run(p).epochs())
                             for p in paths[:MAX_OVERLAY]])
        if self.mistakes is not None and one != self.mistakes.run:
            busy_here = one is not None and one == self.busy_run
            self.mistakes.set_run(None if busy_here else one)
        self.details.setHtml(_details_html(one, summary) if one else
                             "<p style='color:gray'>Select a run to see its summary; select several to compare "
                             "their curves.</p>" if not paths else f"<p>{len(paths)} runs selected.</p>")

    def rename(self) -> None:
        """Start editing the selected run's name in place (Enter keeps it, Esc cancels)."""
        paths = self.selected_paths()
        if len(paths) != 1 or paths[0] == self.busy_run:
            return
        row = next(r for r in range(self.table.rowCount()) if self.path_at(r) == paths[0])
        self.table.setCurrentCell(row, 0)
        self.table.editItem(self.table.item(row, 0))

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        from ftstudio.core.errors import InputError
        from ftstudio.core.runs.names import rename_run

        path = Path(item.data(PATH_ROLE))
        old = Run(path).read_summary().get("name") or path.name
        if item.text() == old:
            return
        try:
            if path == self.busy_run:
                raise InputError("this run is training: rename it when it has finished")
            name = rename_run(Run(path), item.text())
        except (InputError, OSError) as exc:
            self.banner.show_message("error", f"Cannot rename {old}: {exc}")
            name = old
        else:
            self.banner.clear()
            self.renamed.emit(path)
        self._filling = True
        item.setText(name)
        item.setData(SORT_ROLE, name.lower())
        self._filling = False
        self._selection_changed()  # the overlay legend and the details name it anew

    def reuse(self) -> None:
        paths = self.selected_paths()
        if len(paths) == 1:
            self.reuse_requested.emit(paths[0])

    def resume(self) -> None:
        paths = self.selected_paths()
        if len(paths) == 1:
            self.resume_requested.emit(paths[0])

    def reveal(self) -> None:
        for path in self.selected_paths()[:1]:
            dialogs.reveal(path)

    def delete(self) -> None:
        paths = [p for p in self.selected_paths() if p != self.busy_run]
        if not paths:
            return
        names = ", ".join(p.name for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        if not dialogs.confirm(self, "Delete runs", f"Delete {len(paths)} run folder(s) ({names}) with their "
                               "checkpoints and exports? This cannot be undone.", "Delete"):
            return
        failed = []
        for path in paths:
            try:
                Run(path).delete()
            except InputError as exc:  # another process trains it
                failed.append(str(exc))
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror or exc}")
        if failed:
            self.banner.show_message("error", "Could not delete: " + "; ".join(failed))
        self.refresh()


def _details_html(path: Path, s: dict) -> str:
    def row(label: str, value) -> str:
        return f"<tr><td style='color:gray;padding-right:8px'>{label}</td><td>{html.escape(str(value))}</td></tr>"

    acc, best = _num(s.get("val_accuracy")), _num(s.get("best_val_accuracy"))
    ckpts = [n for n in ("best", "last") if (path / "checkpoints" / f"{n}.pt").exists()]
    rows = [row("Status", s.get("status", "unknown")),
            row("Data", f"{s.get('data', '?')} ({s.get('train_size', '?')} train / {s.get('val_size', '?')} val)"),
            row("Classes", ", ".join(map(str, s.get("classes", [])))[:200]),
            row("Model", f"{s.get('model', '?')} — {s.get('params', 0):,} parameters"),
            row("Epochs", f"{s.get('epochs', 0)} of {s.get('epochs_planned', '?')}"),
            row("Best val acc", f"{best:.2%} at epoch {s.get('best_epoch')}" if best is not None else "–"),
            row("Last epoch", f"{acc:.2%} val acc" if acc is not None else "–"),
            row("Duration", format_duration(_num(s.get("duration_s")))),
            row("Device", s.get("device", "–")),
            row("Created", str(s.get("created", "")).replace("T", " ")),
            row("Checkpoints", ", ".join(ckpts) or "none")]
    lineage = s.get("lineage")
    if isinstance(lineage, dict):  # a fine-tuned run: where its weights came from
        source = lineage.get("run_id") or lineage.get("source") or "?"
        rows.insert(4, row("Fine-tuned from", f"{source} ({lineage.get('strategy', '?')} strategy)"))
        from ftstudio.core.finetune.baseline import describe

        if describe(s):
            rows.insert(5, row("Before training", describe(s)))
    error = f"<p style='color:#d62728'><b>Why it failed:</b> {html.escape(str(s['error']))}</p>" \
        if s.get("error") else ""
    link = QUrl.fromLocalFile(str(path)).toString()
    return (f"<h3>{html.escape(str(s.get('name') or path.name))}</h3>{error}<table>{''.join(rows)}</table>"
            f"<p><a href='{link}'>{html.escape(str(path))}</a></p>")
