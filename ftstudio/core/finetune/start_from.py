"""Starting an architecture from a trained run: its network as trained, a new head when the classes
differ, and the fine-tune plan that trains the edited network from the run's weights.

The composer edits freeze flags and learning-rate multipliers on the run's architecture; `plan_for`
turns those edits into a `FinetunePlan` (strategy ``none`` plus per-layer overrides), so training
goes through the same `prepare_finetune` path as `ftstudio finetune`. Once the structure itself is
edited the weights no longer fit: `plan_for` returns None and the network trains from scratch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ftstudio.core.architecture import CLASSES, LayerSpec, ModelSpec, iter_layers
from ftstudio.core.config.recipe import FinetunePlan, LayerOverride

# layers that hold weights (a Residual may hold a projection shortcut itself)
WEIGHTED = {"Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Backbone", "TimmBackbone", "Residual"}


@dataclass(frozen=True)
class RunStart:
    """A trained network to start from: where it is and what it was."""

    source: str  # the run folder or checkpoint file
    checkpoint: str  # "best" or "last" (for run folders)
    architecture: ModelSpec  # as trained: every "auto" resolved
    head: int  # index of the top-level Linear that predicts the classes
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int] | None

    @property
    def label(self) -> str:
        return Path(self.source).name or self.source

    def head_fits(self, num_classes: int) -> bool:
        return self.architecture.layers[self.head].params.get("out_features") in (num_classes, CLASSES)

    def with_new_head(self) -> ModelSpec:
        """The run's architecture whose head predicts the data's classes ("classes")."""
        layers = list(self.architecture.layers)
        layers[self.head] = layers[self.head].with_params(out_features=CLASSES)
        return self.architecture.replace(layers=tuple(layers))


def open_run(path: str | Path, checkpoint: str = "best") -> RunStart:
    """Read a run folder's (or checkpoint file's) architecture, head and classes; safe loading only."""
    from ftstudio.core.finetune.sources import load_source

    source = str(Path(path).expanduser())
    found = load_source(FinetunePlan(source=source, checkpoint=checkpoint))
    return RunStart(source, checkpoint, found.architecture, found.head, found.classes, found.input_shape)


def _bare(layer: LayerSpec) -> LayerSpec:
    return dataclasses.replace(layer, freeze=False, lr_mult=1.0, name="", layers=tuple(_bare(c) for c in layer.layers))


def structure(spec: ModelSpec, head: int) -> tuple[LayerSpec, ...]:
    """The layers without fine-tuning controls or names, the head's class count left open."""
    layers = [_bare(layer) for layer in spec.layers]
    if 0 <= head < len(layers):
        layers[head] = layers[head].with_params(out_features=CLASSES)
    return tuple(layers)


def _effective(spec: ModelSpec) -> dict[str, tuple[bool, float]]:
    """path → (frozen, lr multiplier) as `build_model` and `layer_multipliers` apply them."""
    out: dict[str, tuple[bool, float]] = {}
    for path, layer in iter_layers(spec.layers):
        parent = out.get(path.rpartition(".")[0], (False, 1.0))
        lr = layer.lr_mult if layer.lr_mult != 1.0 else parent[1]
        out[path] = (layer.freeze or parent[0], lr)
    return out


def plan_for(start: RunStart, spec: ModelSpec) -> FinetunePlan | None:
    """The plan that trains ``spec`` from ``start``'s weights, or None when ``spec`` is another network."""
    if len(spec.layers) != len(start.architecture.layers) or \
            structure(spec, start.head) != structure(start.architecture, start.head):
        return None
    wanted, trained = _effective(spec), _effective(start.architecture)
    overrides: tuple[LayerOverride, ...] = ()
    if wanted != trained:  # restate every weighted layer, parents first, so children win as in the spec
        overrides = tuple(LayerOverride(layer=path, freeze=wanted[path][0], lr_mult=wanted[path][1])
                          for path, layer in iter_layers(spec.layers) if layer.type in WEIGHTED)
    return FinetunePlan(source=start.source, checkpoint=start.checkpoint, strategy="none", layers=overrides,
                        min_steps=0)
