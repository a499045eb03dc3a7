"""Where the fine-tune starts: the Start page (the choice), torchvision weights, or an earlier run.

Start branches in ``nextId``; the pretrained page searches the backbone catalogue live (torchvision's
networks at once, timm's ~1,400 once they are listed in the background), checks this computer's caches in
the background and, offline, says so plainly with the random-initialisation way out; the earlier-run page
lists the runs folder. Mandatory fields are registered with ``*`` so Next waits for them.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QRadioButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWizardPage)

from ftstudio.gui import dialogs
from ftstudio.gui.widgets.banner import Banner, header_label
from ftstudio.gui.wizard import texts
from ftstudio.gui.wizard.model import PageId, WizardModel
from ftstudio.gui.workers import Tasks
from ftstudio.gui.widgets.images import search_field

NEXT = {"pretrain": PageId.PRETRAIN_DATA, "torchvision": PageId.TORCHVISION, "earlier": PageId.EARLIER_RUN}
SHOWN = 200  # matches listed at once; more say how many
NAME = Qt.ItemDataRole.UserRole


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("hint")
    return label


def choice_box(title: str, choices: dict[str, tuple[str, str]], chosen: str,
               on_choice: Callable[[str], None]) -> tuple[QGroupBox, dict[str, QRadioButton]]:
    """Radio buttons, each with its sentence beneath it; ``on_choice(key)`` when one is picked."""
    box = QGroupBox(title)
    v = QVBoxLayout(box)
    group = QButtonGroup(box)
    radios: dict[str, QRadioButton] = {}
    for key, (text, sentence) in choices.items():
        radio = QRadioButton(text)
        radio.setToolTip(sentence)
        radio.setChecked(key == chosen)
        radio.toggled.connect(lambda on, k=key: on and on_choice(k))
        group.addButton(radio)
        radios[key] = radio
        v.addWidget(radio)
        note = _hint(sentence)
        note.setContentsMargins(24, 0, 0, 6)
        v.addWidget(note)
    return box, radios


class StartPage(QWizardPage):
    """What pretraining and fine-tuning are, a name, and where to start."""

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Pretrain a model, then fine-tune it")
        self.setSubTitle("Learn general features first, then adapt them to a small task — and check it paid off.")
        intro = QLabel(texts.INTRO)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        self.name = QLineEdit()
        self.name.setToolTip("A label for this pipeline (saved in the recipe)")
        self.name.setPlaceholderText("a name is needed")
        self.registerField("name*", self.name)  # filled = changed from its value when the wizard took the page
        self.name.textChanged.connect(lambda text: model.set(name=text.strip()))
        form = QFormLayout()
        form.addRow("Name", self.name)
        box, self.radios = choice_box("Where does the base model come from?", texts.START_CHOICES, model.start,
                                      lambda key: model.set(start=key))
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(box)
        layout.addWidget(_hint(texts.DEFAULTS_NOTE))
        seed = QHBoxLayout()
        self.seed_button = QPushButton(texts.SEED_EXAMPLE)
        self.seed_button.setToolTip(texts.SEED_EXAMPLE_TIP)
        self.seed_button.clicked.connect(self.open_seed_example)
        seed.addWidget(self.seed_button)
        seed.addStretch(1)
        layout.addLayout(seed)
        layout.addStretch(1)

    def open_seed_example(self) -> None:
        """Fill the wizard with the bundled seed pipeline (resources/pipelines/seed.json, `ftstudio run seed`)."""
        from ftstudio.core.workflow.pipeline import bundled_pipeline, load_pipeline

        self.model.load_pipeline(load_pipeline(bundled_pipeline("seed")))
        self.name.setText(self.model.name)
        self.radios[self.model.start].setChecked(True)

    def initializePage(self) -> None:  # noqa: N802 — the default name goes in after registration (see above)
        if not self.name.text():
            self.name.setText(self.model.name)

    def nextId(self) -> int:  # noqa: N802 — Qt override
        return int(NEXT[self.model.start])

    def cleanupPage(self) -> None:  # noqa: N802 — keep what the user chose when they come back
        pass


class TorchvisionPage(QWizardPage):
    """A pretrained backbone (torchvision or timm, from the one catalogue) and where its weights come from:
    this computer's cache, a file, random init — or a download the user agrees to, with its size and source."""

    def __init__(self, model: WizardModel, tasks: Tasks) -> None:
        super().__init__()
        self.model, self.tasks = model, tasks
        self.found: dict[str, tuple[bool, str, str, str]] = {}  # name → (here, path, url, size for people)
        self.setTitle("Start from a pretrained model")
        self.setSubTitle("A torchvision or timm network trained on ImageNet, with a new head for your classes. "
                         "Search by name (timm lists ~1,400 models).")
        self.names: list[str] = []  # the catalogue's names (timm's join once listed)
        self.search = search_field("Search: resnet, vit_small, convnext, efficientnet…",
                                   "Type part of a name; the list shows every backbone whose name contains it. "
                                   "Enter picks the first", self._filter, self._pick_first)
        self.matches = QListWidget()
        self.matches.setToolTip("Click a network to start from it")
        self.matches.setMinimumHeight(140)
        self.matches.currentItemChanged.connect(self._picked)
        self.backbone = QLineEdit()
        self.backbone.setToolTip("The network whose features you start from: torchvision:NAME or timm:NAME (pick it "
                                 "in the list, or type an exact name, e.g. a timm tag like resnet50.a1_in1k)")
        self.registerField("backbone*", self.backbone)  # registered empty: filled once chosen
        self.backbone.textChanged.connect(self._backbone_changed)
        self.backbone.editingFinished.connect(lambda: self._backbone_changed(self.backbone.text(), typed=True))
        box = QGroupBox("Pretrained weights")
        v = QVBoxLayout(box)
        self.weight_radios: dict[str, QRadioButton] = {}
        group = QButtonGroup(self)
        for key, text in (("cache", "Pretrained weights on this computer (torch's / Hugging Face's cache)"),
                          ("file", "Pretrained weights from a file (.pth or .safetensors)"),
                          ("none", "Random initialisation (no pretrained knowledge)")):
            radio = QRadioButton(text)
            radio.setChecked(key == model.weights)
            radio.toggled.connect(lambda on, k=key: on and self._weights_changed(k))
            group.addButton(radio)
            self.weight_radios[key] = radio
            v.addWidget(radio)
        row = QHBoxLayout()
        self.file_button = QPushButton("Choose file…")
        self.file_button.clicked.connect(self._choose_file)
        self.file_label = header_label("", "hint")
        row.addWidget(self.file_button)
        row.addWidget(self.file_label, 1)
        v.addLayout(row)
        self.download_button = QPushButton("Download weights…")
        self.download_button.setToolTip("Asks first; the file is checked against its published hash")
        self.download_button.clicked.connect(self._download)
        self.download_button.setVisible(False)  # shown once the check finds no weights here
        self.banner = Banner()
        self.status = header_label("Checking this computer's caches…", "hint")
        form = QFormLayout()
        form.addRow("Search", self.search)
        form.addRow("", self.matches)
        form.addRow("Network", self.backbone)
        layout = QVBoxLayout(self)
        layout.addLayout(form, 1)
        layout.addWidget(box)
        layout.addWidget(self.status)
        down = QHBoxLayout()
        down.addWidget(self.download_button)
        down.addStretch(1)
        layout.addLayout(down)
        layout.addWidget(self.banner)

    def initializePage(self) -> None:  # noqa: N802
        if not self.names:
            from ftstudio.core.architecture.torchvision_names import TORCHVISION_BACKBONES

            self.names = [f"torchvision:{n}" for n in TORCHVISION_BACKBONES]  # at once; timm's after listing
            current = self.model.backbone
            self.backbone.blockSignals(True)
            self.backbone.setText(current if ":" in current else f"torchvision:{current}")
            self.backbone.blockSignals(False)
            self._filter(self.search.text())
            task = self.tasks.start("catalogue", lambda cancel: _catalogue_names())
            task.done.connect(self._add_names)
        self._backbone_changed(self.backbone.text())

    def _add_names(self, names: list[str]) -> None:
        self.names = names
        self._filter(self.search.text())

    def listed(self) -> list[str]:
        """The names the list shows now."""
        return [n for n in (self.matches.item(i).data(NAME) for i in range(self.matches.count())) if n]

    def _filter(self, text: str) -> None:
        """List the names containing every word of ``text``; keep the chosen one selected when it is listed."""
        from ftstudio.core.architecture.catalogue import search_names

        found = search_names(self.names, text)
        chosen = self.backbone.text().strip()
        self.matches.blockSignals(True)
        self.matches.clear()
        for name in found[:SHOWN]:
            item = QListWidgetItem(name)
            item.setData(NAME, name)
            self.matches.addItem(item)
            if name == chosen:
                self.matches.setCurrentItem(item)
        if len(found) > SHOWN:
            more = QListWidgetItem(f"… {len(found) - SHOWN:,} more: type more of the name")
            more.setFlags(Qt.ItemFlag.NoItemFlags)
            self.matches.addItem(more)
        elif not found:
            none = QListWidgetItem(f"No backbone's name contains “{text.strip()}”")
            none.setFlags(Qt.ItemFlag.NoItemFlags)
            self.matches.addItem(none)
        self.matches.blockSignals(False)

    def _picked(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is not None and item.data(NAME):
            self.backbone.setText(item.data(NAME))

    def _pick_first(self) -> None:
        listed = self.listed()
        if listed:
            self.matches.setCurrentRow(0)
            self._picked(self.matches.item(0))

    def cleanupPage(self) -> None:  # noqa: N802
        pass

    def nextId(self) -> int:  # noqa: N802
        return int(PageId.FINETUNE_DATA)

    def _backbone_changed(self, name: str, typed: bool = False) -> None:
        """A name picked from the list is checked at once; one typed into the field once it is finished."""
        name = name.strip()
        self.model.set(backbone=name)
        if name in self.found:
            self._show()
            return
        if not name.startswith(("torchvision:", "timm:")) or name.endswith(":"):
            self.banner.show_message("info", "Name a network as torchvision:NAME or timm:NAME (search for it above).")
            self.completeChanged.emit()
            return
        if name not in self.names and not typed:
            self.banner.show_message("info", f"{name}: not in the catalogue's list; press Enter to look it up as typed "
                                             "(a timm tag such as resnet50.a1_in1k is fine).")
            self.completeChanged.emit()
            return
        self.status.setText(f"Checking this computer for {html.escape(name)} weights…")
        self.download_button.setVisible(False)

        def work(cancel):
            from ftstudio.core.architecture.weights import locate

            src = locate(name)
            here = src.local_file()
            return name, bool(here), here or str(src.path or src.repo_id), src.url, _size_text(name, src.size)

        task = self.tasks.start("weights", work)
        task.done.connect(self._checked)
        task.failed.connect(lambda message: (self.banner.show_message("error", message), self.completeChanged.emit()))

    def _checked(self, result) -> None:
        name, found, path, url, size = result
        self.found[name] = (found, path, url, size)
        if name == self.backbone.text().strip():
            self._show()

    def _weights_changed(self, key: str) -> None:
        self.model.set(weights=key)
        self._show()

    def _choose_file(self) -> None:
        path = dialogs.choose_file(self, "Pretrained weights", "", "Weights (*.pth *.pt *.bin *.safetensors)")
        if path:
            self.model.set(weights_file=path)
            self.weight_radios["file"].setChecked(True)
            self._show()

    def _download(self) -> None:
        name = self.backbone.text().strip()
        cached = self.found.get(name)
        if cached is None or cached[0]:
            return
        size = cached[3]
        if not dialogs.confirm(self, "Download pretrained weights",
                               texts.DOWNLOAD_ASK.format(name=name, size=size, url=cached[2]), yes="Download"):
            return
        self.download_button.setEnabled(False)

        def work(cancel, report):
            from ftstudio.core.architecture.weights import download, locate

            def progress(done: int, total: int) -> None:
                report(f"Downloading {name}: {done / 1e6:.0f} of {total / 1e6:.0f} MB" if total
                       else f"Downloading {name}: {done / 1e6:.0f} MB")

            return name, download(locate(name), progress, cancel)

        task = self.tasks.start("download", work, reports=True)
        task.message.connect(self.status.setText)
        task.done.connect(self._downloaded)
        task.failed.connect(self._download_failed)

    def _downloaded(self, result) -> None:
        name, path = result
        old = self.found.get(name)
        self.found[name] = (True, path, old[2] if old else "", old[3] if old else "")
        self.weight_radios["cache"].setChecked(True)
        self._show()

    def _download_failed(self, message: str) -> None:
        self.status.setText("")
        self.banner.show_message("error", message)
        self.download_button.setEnabled(True)

    def _show(self) -> None:
        name, m = self.backbone.text().strip(), self.model
        self.file_label.setText(html.escape(m.weights_file) or "no file chosen")
        self.file_button.setEnabled(m.weights == "file")
        cached = self.found.get(name)
        self.download_button.setVisible(bool(cached and not cached[0]))
        self.download_button.setEnabled(True)
        if cached is None:
            self.banner.clear()
        elif cached[0]:
            self.status.setText(f"Found pretrained weights for {html.escape(name)} on this computer: "
                                f"{html.escape(cached[1])}")
            self.banner.clear()
        else:
            self.status.setText("")
            kind = "warning" if m.weights == "cache" else "info"
            self.banner.show_message(kind, texts.OFFLINE.format(name=name, url=cached[2]))
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802
        m = self.model
        if not super().isComplete():
            return False
        if m.weights == "none":
            return ":" in self.backbone.text()
        if m.weights == "file":
            return bool(m.weights_file) and Path(m.weights_file).is_file()
        cached = self.found.get(self.backbone.text().strip())
        return bool(cached and cached[0])


def _size_text(name: str, published: int | None) -> str:
    """The size the download question names: torchvision's published one, else estimated from the parameter
    count (float32) — the Hub's metadata would say exactly, but nothing is asked of the network before the
    user agrees."""
    if published:
        return f"{published / 1e6:,.0f} MB"
    from ftstudio.core.architecture.catalogue import params_of

    try:
        params = params_of(name)
    except Exception:  # noqa: BLE001 — a model that will not build on the meta device: no estimate
        params = None
    return f"about {params * 4 / 1e6:,.0f} MB, estimated from its parameter count" if params else "size not published"


def _catalogue_names() -> list[str]:
    """Every backbone's name for the search (timm's only with the optional timm extra)."""
    from ftstudio.core.architecture.catalogue import backbone_names

    return backbone_names()


class EarlierRunPage(QWizardPage):
    """Pick a run from the history (one with a checkpoint) to fine-tune."""

    COLUMNS = ("Name", "Data", "Model", "Best val acc", "Status", "Created")

    def __init__(self, model: WizardModel) -> None:
        super().__init__()
        self.model = model
        self.setTitle("Start from an earlier run")
        self.setSubTitle("Fine-tune a model you trained before; its weights are the starting point.")
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selected)
        self.path = QLineEdit()
        self.path.setReadOnly(True)
        self.path.setToolTip("The run folder the fine-tune starts from")
        self.registerField("earlier_run*", self.path)
        self.checkpoint = QComboBox()
        self.checkpoint.addItem("best (highest validation accuracy)", "best")
        self.checkpoint.addItem("last (end of training)", "last")
        self.checkpoint.currentIndexChanged.connect(
            lambda: model.set(earlier_checkpoint=self.checkpoint.currentData()))
        self.empty = Banner()
        self.pick = header_label("Pick the run to start from; it must have a checkpoint (every run listed has "
                                 "one).", "hint")
        form = QFormLayout()
        form.addRow("Run folder", self.path)
        form.addRow("Checkpoint", self.checkpoint)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(self.pick)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)

    def initializePage(self) -> None:  # noqa: N802
        from ftstudio.core.runs.folders import list_runs

        runs = [r for r in list_runs() if r.checkpoint("last").exists()]
        self.table.setRowCount(len(runs))
        for r, run in enumerate(runs):
            s = run.read_summary()
            acc = s.get("best_val_accuracy")
            cells = (s.get("name") or run.id, Path(str(s.get("data") or "")).name, str(s.get("model") or ""),
                     f"{acc:.1%}" if isinstance(acc, (int, float)) else "–", str(s.get("status") or ""),
                     str(s.get("created") or "").replace("T", " "))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, str(run.path))
                self.table.setItem(r, c, item)
        chosen = [r for r, run in enumerate(runs) if str(run.path) == self.model.earlier_run]
        if runs:
            self.table.selectRow(chosen[0] if chosen else 0)  # the newest run unless one was chosen before
        if runs:
            self.empty.clear()
        else:
            self.empty.show_message("info", texts.NO_EARLIER_RUNS)

    def cleanupPage(self) -> None:  # noqa: N802
        pass

    def nextId(self) -> int:  # noqa: N802
        return int(PageId.FINETUNE_DATA)

    def select(self, path: str | Path) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == str(path):
                self.table.selectRow(r)

    def _selected(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        path = self.table.item(min(rows), 0).data(Qt.ItemDataRole.UserRole) if rows else ""
        self.path.setText(path)
        self.model.set(earlier_run=path)
