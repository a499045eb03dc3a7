"""The composer's two actions on real things: start from a trained run (its network, with a new
head when the classes differ, fine-tuned from its weights) and Check (one real batch forward and
backward, in the background).

A mixin of the Model page: it uses the page's ``editor``, ``banner``, ``_input``, ``_data`` and
its background runner ``_run``.
"""

from __future__ import annotations

import html
from pathlib import Path

from ftstudio.gui import dialogs
from ftstudio.gui.composer.editor import DocState


class RunActions:
    """See the module docstring."""

    def start_from_run(self) -> None:
        from ftstudio.core.paths import runs_dir

        if not self.confirm_discard("Load a run's network"):
            return
        folder = dialogs.choose_folder(self, "Start from a trained run (its folder)", str(runs_dir()))
        if folder:
            self.load_run(folder)

    def load_run(self, folder: str | Path, checkpoint: str = "best") -> None:
        """Read the run in the background, then show its network (offering a new head if needed)."""
        from ftstudio.core.finetune.start_from import open_run

        self.banner.show_message("info", f"Reading {folder}…")
        self._run("run", lambda: open_run(folder, checkpoint), self._use_run,
                  lambda message: self.banner.show_message("error", message))

    def _use_run(self, start) -> None:
        spec = start.architecture
        classes = self._input[1] if self._input is not None else 0
        if classes and not start.head_fits(classes):
            head = spec.layers[start.head]
            if not dialogs.confirm(self, "Replace the head?", f"Run {start.label} predicts "
                                   f"{head.params.get('out_features')} classes; your data has {classes}. Replace its "
                                   f"head (layer {start.head}, Linear) with a new one for {classes} classes? Rows of "
                                   "classes the run already knows keep their weights.", "Replace the head"):
                self.banner.show_message("info", f"Run {start.label} was not loaded")
                return
            spec = start.with_new_head()
        self._load(DocState(spec, start=start), f"Start from {start.label}")
        self.banner.show_message("info", f"Loaded the network of run {start.label} ({start.checkpoint} checkpoint). "
                                         "Start on the Train page fine-tunes it from the run's weights; freeze "
                                         "layers here to keep theirs.")

    def _show_source(self) -> None:
        start = self.editor.state.start
        if start is None:
            self.source_note.hide()
            return
        if self.finetune_plan() is not None:
            self.source_note.setText(f"⤷ Starts from the weights of run {html.escape(start.label)} "
                                     f"({start.checkpoint} checkpoint, {len(start.classes)} classes)")
        else:
            self.source_note.setText(f"⚠ The structure no longer matches run {html.escape(start.label)}: this "
                                     "network trains from scratch (Undo to use the run's weights again)")
        self.source_note.show()

    # --------------------------------------------------------------------------- check
    def check(self) -> None:
        """One real batch forward and backward, in the background; the result goes to the banner."""
        from ftstudio.core.dryrun import check_one_batch

        if self._data is None or self._input is None:
            self.banner.show_message("error", "Check runs one real batch: load data first (Data page)")
            return
        (bundle, device), shape = self._data, self._input[0]
        spec, batch_size = self.editor.spec, self._batch_size
        self.actions_["check"].setEnabled(False)
        self.check_report = None
        self.banner.show_message("info", f"Checking one batch of {batch_size}…")

        def done(report) -> None:
            self.actions_["check"].setEnabled(True)
            self.check_report = report
            self.banner.show_message("success" if report.ok else "error", report.summary())
            self.check_banner = self.banner.text()
            if report.layer:
                self.editor.select(report.layer)

        def failed(message: str) -> None:
            self.actions_["check"].setEnabled(True)
            self.banner.show_message("error", f"Check failed: {message}")
            self.check_banner = self.banner.text()

        self._run("check", lambda: check_one_batch(spec, bundle, batch_size, device, shape), done, failed)
