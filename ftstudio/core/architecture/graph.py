"""Networks as graphs (architecture format version 2): ids, inputs, merge shapes and wiring edits.

A top-level layer may carry an ``id`` and ``inputs`` (ids of layers above it, or ``"input"`` for the
network's input); without ``inputs`` it takes the previous layer, so a version-1 chain is the special
case and builds exactly as before. Inputs may only name layers *above* (the list order is the
topological order), which makes cycles impossible by construction. Wiring problems are reported per
layer, not raised, so the composer can draw a half-wired graph with its invalid nodes in red; building
refuses them. This module imports no torch: the composer's canvas uses it to draw the wires.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ftstudio.core.architecture.spec import ID_PATTERN, INPUT, LayerSpec, ModelSpec, is_merge

Shape = tuple[int, ...]
MAX_JOINED = 1_048_576  # the largest size a Concat may produce along its axis


def label(path: str, layer: LayerSpec) -> str:
    """How messages name a layer: by its id when it has one, else by position."""
    return f"layer {layer.id!r}" if layer.id else f"layer {path}"


@dataclass(frozen=True)
class Wiring:
    """Where each top-level layer takes its inputs from (-1: the network input), and the wiring errors."""

    sources: tuple[tuple[int, ...], ...]
    errors: dict[int, str]

    def consumers(self, index: int) -> list[int]:
        return [i for i, src in enumerate(self.sources) if index in src]


def wiring(layers: tuple[LayerSpec, ...]) -> Wiring:
    """Resolve every layer's inputs to positions; unknown ids, forward references, duplicate ids and
    outputs that go nowhere are errors on the layer concerned."""
    first: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer.id and layer.id not in first:
            first[layer.id] = i
    sources: list[tuple[int, ...]] = []
    errors: dict[int, str] = {}
    for i, layer in enumerate(layers):
        if layer.id and first[layer.id] != i:
            errors[i] = f"the id {layer.id!r} is already used by layer {first[layer.id]}; ids must be unique"
        if not layer.inputs:
            sources.append((i - 1,))
            continue
        found: list[int] = []
        for name in layer.inputs:
            if name == INPUT:
                found.append(-1)
            elif name not in first:
                known = ", ".join(repr(k) for k in first) or "none yet"
                errors.setdefault(i, f"input {name!r} is not the id of any layer (ids: {known}, or 'input')")
            elif first[name] >= i:
                what = "its own output" if first[name] == i else "a layer below it"
                errors.setdefault(i, f"input {name!r} is {what}; a layer can only take the outputs of layers "
                                     "above it (move it below, or wire it differently)")
            else:
                found.append(first[name])
        if len(set(found)) != len(found):
            errors.setdefault(i, "the same input is listed twice")
        sources.append(tuple(found))
    last = len(layers) - 1
    used = {s for src in sources for s in src}
    for i in range(last):
        if i not in used:
            errors.setdefault(i, "its output goes nowhere; wire it into a layer below or delete it")
    return Wiring(tuple(sources), errors)


def merge_shape(layer: LayerSpec, shapes: list[Shape], names: list[str]) -> Shape:
    """The output shape of a merge layer on per-sample input ``shapes`` (raises ValueError with the reason)."""
    if len(shapes) < 2:
        raise ValueError(f"{layer.type} joins two or more inputs but has {len(shapes)}; "
                         "wire more layers into it (drag from their output ports)")
    if layer.type == "Concat":
        dim = int(layer.params.get("dim", 1))
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or not 1 <= dim <= rank:
            raise ValueError(f"cannot concatenate {_listing(shapes, names)} along dim {dim}; "
                             f"inputs need the same rank and dim between 1 and {rank} (1: channels)")
        axis = dim - 1
        rest = [s[:axis] + s[axis + 1:] for s in shapes]
        if any(r != rest[0] for r in rest):
            raise ValueError(f"cannot concatenate {_listing(shapes, names)} along dim {dim}: every other "
                             "size must match (pad or pool the branches to the same height and width)")
        out = shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]
        if out[axis] > MAX_JOINED:  # chains of Concats grow fast; refuse before torch overflows
            raise ValueError(f"concatenating gives {out[axis]:,} along dim {dim}, over {MAX_JOINED:,}; "
                             "reduce the branches first (a 1×1 Conv2d) or concatenate fewer")
        return out
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"{layer.type} needs inputs of the same shape but gets {_listing(shapes, names)}; "
                         "match them (a 1×1 Conv2d changes the channels) or use Concat")
    return shapes[0]


def _listing(shapes: list[Shape], names: list[str]) -> str:
    return ", ".join(f"{list(s)} from {n}" for s, n in zip(shapes, names))


def source_name(layers: tuple[LayerSpec, ...], index: int) -> str:
    return "the input" if index < 0 else label(str(index), layers[index])


# --- wiring edits (pure functions; the composer wraps them in undoable commands) ---------------------

def fresh_id(layers: tuple[LayerSpec, ...], kind: str) -> str:
    taken = {layer.id for layer in layers}
    base = re.sub(r"[^a-z0-9]", "", kind.lower()) or "layer"
    n = 1
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


def _named(layers: list[LayerSpec], index: int) -> str:
    """The id of layer ``index`` (giving it one if it has none); 'input' for -1."""
    if index < 0:
        return INPUT
    if not layers[index].id:
        layers[index] = dataclasses.replace(layers[index], id=fresh_id(tuple(layers), layers[index].type))
    return layers[index].id


def connect(spec: ModelSpec, src: int, dst: int) -> ModelSpec:
    """Wire the output of layer ``src`` (-1: the input) into layer ``dst``.

    A merge layer gains an input; any other layer takes ``src`` instead of what it took. Layers are
    given ids where a wire needs one. Refuses wires that point upwards (they would make a cycle)."""
    from ftstudio.core.errors import InputError

    layers = list(spec.layers)
    if not 0 <= dst < len(layers) or not -1 <= src < len(layers):
        raise InputError("no such layer to wire")
    if src >= dst:
        raise InputError("a wire goes from a layer to one below it; move the layer first")
    current = list(wiring(spec.layers).sources[dst])
    if src in current:
        raise InputError("these layers are already wired")
    target = layers[dst]
    if is_merge(target):
        wanted = [*current, src]
    else:
        wanted = [src]
    for i in sorted(wanted):  # name new ids top to bottom
        _named(layers, i)
    names = [_named(layers, i) for i in wanted]
    layers[dst] = dataclasses.replace(layers[dst], inputs=tuple(names) if wanted != [dst - 1] else ())
    return spec.replace(layers=tuple(layers))


def disconnect(spec: ModelSpec, src: int, dst: int) -> ModelSpec:
    """Remove the wire ``src → dst`` (a layer left without inputs takes the previous layer again)."""
    from ftstudio.core.errors import InputError

    layers = list(spec.layers)
    current = list(wiring(spec.layers).sources[dst])
    if src not in current:
        raise InputError("these layers are not wired")
    rest = [i for i in current if i != src]
    names = [_named(layers, i) for i in rest]
    layers[dst] = dataclasses.replace(layers[dst], inputs=tuple(names) if rest and rest != [dst - 1] else ())
    return spec.replace(layers=tuple(layers))


def ranks(layers: tuple[LayerSpec, ...]) -> list[int]:
    """Each layer's row in a top-to-bottom drawing: one below the lowest of its inputs (the input is row 0)."""
    sources = wiring(layers).sources
    rank: list[int] = []
    for src in sources:
        rank.append(1 + max((rank[s] if s >= 0 else 0 for s in src), default=0))
    return rank


def expand_residual(spec: ModelSpec, index: int, in_shape: Shape, out_shape: Shape) -> ModelSpec:
    """Replace the Residual block at ``index`` by its layers and an Add around them (the same function,
    and the same parameter count: a 1×1 projection without bias joins the skip when the shape changes).

    ``in_shape`` / ``out_shape`` are the block's, from the analysis. The Add takes the block's id, so
    wires to the block still hold. Weights get new names: a trained block's weights do not carry over."""
    from ftstudio.core.errors import InputError

    layers = list(spec.layers)
    block = layers[index] if 0 <= index < len(layers) else None
    if block is None or block.type != "Residual" or not block.layers:
        raise InputError("only a Residual block with layers inside expands into a graph")
    (src,) = wiring(spec.layers).sources[index] or (index - 1,)
    src_name = _named(layers, src)
    inner = [dataclasses.replace(c, freeze=c.freeze or block.freeze,
                                 lr_mult=c.lr_mult if c.lr_mult != 1.0 else block.lr_mult) for c in block.layers]
    inner[0] = dataclasses.replace(inner[0], inputs=(src_name,))
    extra: list[LayerSpec] = []
    if tuple(in_shape) != tuple(out_shape):
        if not block.params.get("projection", True):
            raise InputError("the block changes the shape and its projection is off; turn it on first")
        from ftstudio.core.architecture.composer import new_layer

        if len(in_shape) == 1:
            proj = new_layer("Linear", out_features=out_shape[0], bias=False)
        else:
            proj = new_layer("Conv2d", out_channels=out_shape[0], kernel_size=1, bias=False,
                             stride=max(1, in_shape[1] // out_shape[1]))
        extra = [dataclasses.replace(proj, inputs=(src_name,), freeze=block.freeze, lr_mult=block.lr_mult)]
    merged = layers[:index] + inner + extra + layers[index + 1:]
    last = index + len(inner) - 1
    names = (_named(merged, last), _named(merged, last + 1) if extra else src_name)
    merged[index + len(inner) + len(extra):index + len(inner) + len(extra)] = [LayerSpec(
        "Add", params={}, id=block.id or fresh_id(tuple(merged), "Add"), inputs=names)]
    return spec.replace(layers=tuple(merged))


def rename(spec: ModelSpec, index: int, new_id: str) -> ModelSpec:
    """Give layer ``index`` the id ``new_id`` ("" removes it); wires that name the old id follow."""
    from ftstudio.core.errors import InputError

    layers = list(spec.layers)
    old = layers[index].id
    if new_id and (not ID_PATTERN.fullmatch(new_id) or new_id == INPUT):
        raise InputError(f"id {new_id!r}: use letters, digits, _ or -, starting with a letter (not {INPUT!r})")
    if new_id and any(layer.id == new_id for j, layer in enumerate(layers) if j != index):
        raise InputError(f"id {new_id!r} is already used by another layer")
    if not new_id and old and any(old in layer.inputs for layer in layers):
        raise InputError(f"layers below take {old!r} by its id; give it another id instead of none")
    layers[index] = dataclasses.replace(layers[index], id=new_id)
    if old:
        layers = [dataclasses.replace(layer, inputs=tuple(new_id if x == old else x for x in layer.inputs))
                  if old in layer.inputs else layer for layer in layers]
    return spec.replace(layers=tuple(layers))
