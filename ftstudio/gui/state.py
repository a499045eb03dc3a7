"""The recipe being edited and the data loaded for it: the one copy the pages observe.

Pages change it through setters and listen to its signals; Start turns it into a validated
`Recipe`. It is saved to and restored from QSettings as the recipe's own JSON.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from ftstudio.core.allocator import collector_paused
from ftstudio.core.architecture import ModelSpec
from ftstudio.core.architecture.presets import resolve_model
from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import DatasetSpec, FinetunePlan, Recipe, TrainConfig
from ftstudio.gui.settings import read_json, write_json


def load_engine() -> list:
    """Import torch (slow: call it off the GUI thread) and list the devices it can train on.

    Leaves a core to the window: CPU training that takes every core (spinning OpenMP threads)
    starves the event loop and, under load, itself."""
    from ftstudio.core import native_libs

    native_libs.install()  # triton must never bind to an LLVM the GTK theme loaded (idempotent)
    # no cycle collection while torch imports: three full collections ran during it (the window's
    # objects make each one longer), 150 ms on the path to ready for 10 objects found; then the
    # modules, the window and everything else made so far are frozen, so later full collections
    # (another 115 ms one came just after ready, or during a first run) skip them
    with collector_paused(freeze_after=True):
        import torch

    from ftstudio.core.devices import list_devices

    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1)))
    return list_devices()


def warm_up_training() -> None:
    """Import what a run's first optimizer imports: ``torch.optim`` wraps its methods to disable
    torch._dynamo, and the first call imports torch._dynamo with sympy and triton — 1.1 s here, which
    Start used to wait for (Start → first step 1.37 s, 0.07 s with it imported; +150 MB RSS that a
    run then needs anyway). Off the GUI thread, after `load_engine` (triton's libraries load safely),
    with the collector paused: its full collections during this import held the GIL, and so the
    window, for 100–130 ms each."""
    with collector_paused(freeze_after=True):
        import torch._dynamo  # noqa: F401


class Session(QObject):
    """Data spec, model, training config, device and run name — plus the loaded DataBundle."""

    data_spec_changed = Signal()
    model_changed = Signal()
    train_changed = Signal()
    data_loaded = Signal()  # ``bundle`` or ``data_error`` changed
    engine_ready = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data_spec = DatasetSpec()
        self.model: str | dict[str, Any] = "mlp"
        self.model_spec: ModelSpec = resolve_model("mlp")
        self.train = TrainConfig()
        self.finetune: FinetunePlan | None = None  # start from a trained run's weights (the composer sets it)
        self.device = "auto"
        self.run_name = ""
        self.bundle = None  # DataBundle of data_spec, once loaded
        self.data_error = ""
        self.all_classes: dict[str, tuple[str, ...]] = {}  # dataset → every class it has
        self.devices: list = []  # DeviceInfo, once the engine is loaded
        self.ready = False

    # ------------------------------------------------------------------------ setters
    def set_engine_ready(self, devices: list) -> None:
        self.devices, self.ready = list(devices), True
        self.engine_ready.emit()

    def set_data_spec(self, spec: DatasetSpec) -> None:
        if spec != self.data_spec:
            self.data_spec = spec
            self.data_spec_changed.emit()

    def set_model(self, value: str | dict[str, Any], spec: ModelSpec | None = None) -> None:
        spec = spec or resolve_model(value)
        if value != self.model or spec != self.model_spec:
            self.model, self.model_spec = value, spec
            self.model_changed.emit()

    def set_finetune(self, plan: FinetunePlan | None) -> None:
        """Train from a run's weights with ``plan`` (None: from scratch); not kept across restarts."""
        self.finetune = plan

    def set_train(self, config: TrainConfig) -> None:
        if config != self.train:
            self.train = config
            self.train_changed.emit()

    def set_bundle(self, bundle, error: str = "") -> None:
        self.bundle, self.data_error = bundle, error
        if bundle is not None and not self.data_spec.classes:
            self.all_classes[self.data_spec.name] = tuple(bundle.classes)
        self.data_loaded.emit()

    # ------------------------------------------------------------------------- derived
    def data_label(self) -> str:
        return Path(self.data_spec.name).name or self.data_spec.name

    def model_label(self) -> str:
        if isinstance(self.model, str):
            return Path(self.model).stem
        return self.model_spec.name or "custom"

    def default_run_name(self) -> str:
        """model-data, plus what differs from the last such run (or a count): runs stay distinguishable."""
        from ftstudio.core.runs.names import distinct_name

        base = f"{self.model_label()}-{self.data_label()}"
        try:
            return distinct_name(base, Recipe(name=base, data=self.data_spec, model=self.model, train=self.train))
        except (InputError, OSError, ValueError):
            return base

    def model_input(self) -> tuple[tuple[int, int, int], int] | None:
        """(input shape, number of classes) the model will see, once the data is loaded."""
        from ftstudio.core.engine import input_wishes

        if self.bundle is None:
            return None
        c, h, w = self.bundle.input_shape
        size, channels = input_wishes(self.model_spec)
        if not self.data_spec.channels and channels:
            c = channels
        if not self.data_spec.image_size and size:
            h, w = size
        return (c, h, w), self.bundle.num_classes

    def recipe(self) -> Recipe:
        """The validated recipe Start will run (raises InputError naming the bad field)."""
        train = dataclasses.replace(self.train, device=self.device)
        recipe = Recipe(name=self.run_name.strip() or self.default_run_name(), data=self.data_spec,
                        model=self.model, train=train, finetune=self.finetune)
        return Recipe.from_dict(recipe.to_dict())

    # ------------------------------------------------------------------------ settings
    def save(self, store: QSettings) -> None:
        write_json(store, "session/recipe", Recipe(name=self.run_name, data=self.data_spec, model=self.model,
                                                   train=self.train).to_dict())
        store.setValue("session/device", self.device)

    def restore(self, store: QSettings) -> None:
        """Take the last choices back; anything unreadable is left at its default."""
        data = read_json(store, "session/recipe")
        device = store.value("session/device")
        if isinstance(device, str) and device:
            self.device = device
        if not isinstance(data, dict):
            return
        try:
            recipe = Recipe.from_dict(data)
            spec = resolve_model(recipe.model)
        except InputError:
            return
        self.run_name = recipe.name
        self.data_spec, self.train = recipe.data, recipe.train
        self.model, self.model_spec = recipe.model, spec
