"""Datasets: the catalog, image folders and torchvision sets, turned into a DataBundle.

`load_data(spec)` is the one entry point: it picks the source, selects classes, resizes to the
model's input, makes a seeded stratified validation split, caps classes for few-shot work and
computes normalisation from the training split.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ftstudio.core import messages, paths
from ftstudio.core.datasets.bundle import DataBundle, Split, StreamSplit, channel_stats
from ftstudio.core.datasets.catalog import CATALOG, CatalogEntry, find, is_available
from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import DatasetSpec

__all__ = ["CATALOG", "CatalogEntry", "DataBundle", "Split", "StreamSplit", "load_data", "find", "absolute_paths",
           "is_available", "stratified_split", "grouped_split"]

TINY_CLASS = 10  # training images: fewer are named as under-represented
IN_MEMORY_LIMIT = 2_000_000_000  # decoded bytes; above this a folder streams from disk
Progress = Callable[[int, int], None]


def load_data(spec: DatasetSpec, *, image_size: tuple[int, int] | None = None, channels: int | None = None,
              progress: Progress | None = None, cancel: threading.Event | None = None,
              in_memory_limit: int | None = None) -> DataBundle:
    """Load ``spec`` as a DataBundle. ``image_size``/``channels`` are the model's wishes;
    the spec's own values win when both are given."""
    size = tuple(spec.image_size) if spec.image_size else image_size
    chans = spec.channels or channels
    entry = find(spec.name)
    if entry is not None:
        raw = _load_catalog(entry, spec)
        return _from_arrays(spec, raw, entry.name, size, chans)
    folder = Path(spec.name).expanduser()
    if not folder.exists() and not any(sep in spec.name for sep in ("/", "\\")) and not spec.name.startswith("."):
        known = ", ".join(e.name for e in CATALOG)
        raise InputError(messages.UNKNOWN_DATASET.format(name=spec.name, known=known))
    limit = IN_MEMORY_LIMIT if in_memory_limit is None else in_memory_limit
    return _load_folder(spec, folder, size, chans, progress, cancel, limit)


def absolute_paths(spec: DatasetSpec) -> DatasetSpec:
    """The spec with its folder (and torchvision root) as absolute paths.

    A run trained on ``--data ds/x`` and resumed from another working directory once trained on
    whatever ``ds/x`` was there: a run remembers the folder it used."""
    changes = {}
    if find(spec.name) is None and Path(spec.name).expanduser().exists():
        changes["name"] = str(Path(spec.name).expanduser().resolve())
    if spec.root and not Path(spec.root).expanduser().is_absolute():
        changes["root"] = str(Path(spec.root).expanduser().resolve())
    return dataclasses.replace(spec, **changes) if changes else spec


def _load_catalog(entry: CatalogEntry, spec: DatasetSpec):
    from ftstudio.core.datasets import sources

    if entry.name == "digits":
        return sources.load_digits()
    if entry.name == "digits-shifted":
        return sources.load_digits_shifted()
    if entry.name == "mnist5k":
        return sources.load_mnist5k()
    return sources.load_torchvision(entry, spec.root, spec.download)


def _select_classes(classes: tuple[str, ...], wanted: tuple[str, ...] | None) -> list[int]:
    if not wanted:
        return list(range(len(classes)))
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    missing = [w for w in wanted if w.lower() not in lookup]
    if missing:
        raise InputError(messages.UNKNOWN_CLASSES.format(names=", ".join(missing), known=", ".join(classes)))
    if len(set(wanted)) < 2:
        raise InputError(messages.TOO_FEW_CLASSES.format(count=len(set(wanted))))
    return list(dict.fromkeys(lookup[w.lower()] for w in wanted))


def _remap(labels: np.ndarray, keep: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mask of samples in the kept classes and their new labels (in ``keep`` order)."""
    table = np.full(max(int(labels.max(initial=0)), max(keep)) + 1, -1, dtype=np.int64)
    table[keep] = np.arange(len(keep))
    new = table[labels]
    return new >= 0, new


def stratified_split(labels: np.ndarray, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``val_split`` of every class held out, seeded."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_split))
        if val_split > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def grouped_split(labels: np.ndarray, groups: np.ndarray, val_split: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The stratified split, then every near-duplicate group moved whole to the side most of it
    is on (ties: training), so no picture is validated on a copy of itself. Without duplicates
    it is exactly `stratified_split`. Returns (train, val, facts for the summary)."""
    tr, va = stratified_split(labels, val_split, seed)
    side = np.zeros(len(labels), dtype=bool)  # True = validation
    side[va] = True
    _, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    in_group = sizes[inverse] > 1
    facts = {"grouped": True, "duplicate_groups": int((sizes > 1).sum()), "images_in_groups": int(in_group.sum()),
             "moved": 0}
    if not in_group.any():
        return tr, va, facts
    val_share = np.bincount(inverse, weights=side.astype(np.float64)) / sizes
    wanted = val_share[inverse] > 0.5
    moved = in_group & (wanted != side)
    side[moved] = wanted[moved]
    facts["moved"] = int(moved.sum())
    return np.flatnonzero(~side), np.flatnonzero(side), facts


def cap_per_class(labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Indices keeping at most ``cap`` samples of each class (a seeded choice)."""
    if not cap:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed + 1)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(np.sort(rng.permutation(idx)[:cap]))
    return np.sort(np.concatenate(keep))


def _resize(images: np.ndarray, size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images)
    if channels and channels != x.shape[1]:
        if channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            x = x.expand(-1, 3, -1, -1).contiguous()
    if size and tuple(x.shape[2:]) != tuple(size):
        out = []
        for start in range(0, x.shape[0], 4096):  # bounded float memory
            chunk = x[start:start + 4096].float()
            chunk = F.interpolate(chunk, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
            out.append(chunk.round().clamp(0, 255).to(torch.uint8))
        x = torch.cat(out)
    return x.numpy()


def _from_arrays(spec: DatasetSpec, raw, name: str, size, chans) -> DataBundle:
    keep = _select_classes(raw.classes, spec.classes)
    mask, labels = _remap(raw.labels, keep)
    images = _resize(raw.images[mask], size, chans)
    labels = labels[mask]
    test = None
    if raw.test_images is not None:
        tmask, tlabels = _remap(raw.test_labels, keep)
        test = (_resize(raw.test_images[tmask], size, chans), tlabels[tmask])
    classes = tuple(raw.classes[i] for i in keep)
    return _assemble(spec, name, images, labels, classes, raw.source, test, raw.skipped, raw.warnings,
                     raw.augment_default)


def _assemble(spec, name, images, labels, classes, source, test, skipped, warnings, augment_default,
              grouped: bool = False, files: list[str] | None = None) -> DataBundle:
    import torch

    _check_enough(labels, classes, spec.val_split)
    split_facts = None
    if grouped and spec.val_split > 0:  # user folders: near-duplicates stay on one side
        from ftstudio.core.datasets.hashing import near_duplicate_groups

        tr, va, split_facts = grouped_split(labels, near_duplicate_groups(images), spec.val_split, spec.split_seed)
    else:
        tr, va = stratified_split(labels, spec.val_split, spec.split_seed)
    tr = tr[cap_per_class(labels[tr], spec.per_class, spec.split_seed)]
    as_split = lambda idx: Split(torch.from_numpy(np.ascontiguousarray(images[idx])),  # noqa: E731
                                 torch.from_numpy(labels[idx].astype(np.int64)),
                                 [files[i] for i in idx] if files is not None else None)
    train, val = as_split(tr), as_split(va)
    test_split = Split(torch.from_numpy(test[0]), torch.from_numpy(test[1].astype(np.int64))) if test else None
    mean, std = channel_stats(train.x)
    bundle = DataBundle(name, train, val, classes, tuple(images.shape[1:]), mean, std, test_split,
                        source, tuple(skipped), (), augment_default)
    notes = []
    if split_facts is not None:
        bundle.extra["split"] = split_facts
        if split_facts["duplicate_groups"]:
            notes.append(messages.GROUPED_SPLIT.format(**split_facts, folder=name))
    bundle.warnings = tuple(list(warnings) + _warnings(bundle) + notes)
    return bundle


def _check_enough(labels: np.ndarray, classes: tuple[str, ...], val_split: float) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    present = [i for i, n in enumerate(counts) if n > 0]
    if len(present) < 2:
        raise InputError(messages.FOLDER_ONE_CLASS.format(path="data", name=classes[present[0]] if present else "?"))
    if val_split > 0:
        for i, n in enumerate(counts):
            if 0 < n < 2:
                raise InputError(messages.NOT_ENOUGH_FOR_SPLIT.format(name=classes[i], count=int(n)))


def _warnings(bundle: DataBundle) -> list[str]:
    out = []
    if bundle.skipped:
        examples = ", ".join(f"{p} ({r})" for p, r in bundle.skipped[:3])
        more = f" and {len(bundle.skipped) - 3} more" if len(bundle.skipped) > 3 else ""
        out.append(messages.SKIPPED_FILES.format(count=len(bundle.skipped), examples=examples + more))
    counts = bundle.class_counts("train")
    if counts and min(counts) > 0 and max(counts) > 3 * min(counts):
        big, small = int(np.argmax(counts)), int(np.argmin(counts))
        out.append(messages.IMBALANCED.format(big=bundle.classes[big], most=counts[big],
                                              small=bundle.classes[small], least=counts[small]))
    few = [f"{name} ({n})" for name, n in zip(bundle.classes, counts) if 0 < n < TINY_CLASS]
    if few:
        out.append(messages.UNDER_REPRESENTED.format(classes=", ".join(few), least=TINY_CLASS))
    return out


def _warm_up_torch() -> None:
    """Import torch (and the compiler stack its optimizers and meta tensors load) while worker
    processes decode images: seconds that would otherwise come one after the other."""
    import torch
    import torch._dynamo  # noqa: F401


def _load_folder(spec, folder: Path, size, chans, progress, cancel, in_memory_limit) -> DataBundle:
    from ftstudio.core.datasets.folder import decode_folder, detect_shape, scan_folder

    scan = scan_folder(folder)
    keep = _select_classes(scan.classes, spec.classes)
    mask, labels = _remap(scan.labels, keep)
    scan.paths = [p for p, m in zip(scan.paths, mask) if m]
    scan.stats = [st for st, m in zip(scan.stats, mask) if m]
    scan.labels = labels[mask]
    scan.classes = tuple(scan.classes[i] for i in keep)
    detected_c, detected_size = detect_shape(scan.paths)
    chans = chans or detected_c
    size = tuple(size) if size else detected_size
    source = f"image folder {folder}"
    if len(scan.paths) * chans * size[0] * size[1] <= in_memory_limit:
        images, labels, bad = decode_folder(scan, size, chans, progress=progress, cancel=cancel,
                                            cache=paths.cache_dir() / "decoded", meanwhile=_warm_up_torch)
        failed = {p for p, _ in bad}
        files = [p for p in scan.paths if os.path.relpath(p, scan.root) not in failed]
        return _assemble(spec, str(folder), images, labels, scan.classes, source, None,
                         scan.skipped + bad, scan.warnings, True, grouped=True,
                         files=files if len(files) == len(images) else None)
    # too large for memory: keep paths, decode per batch
    import torch

    _check_enough(scan.labels, scan.classes, spec.val_split)
    tr, va = stratified_split(scan.labels, spec.val_split, spec.split_seed)
    tr = tr[cap_per_class(scan.labels[tr], spec.per_class, spec.split_seed)]
    y = torch.from_numpy(scan.labels)
    full = StreamSplit(scan.paths, y, size, chans)
    train, val = full.subset(tr), full.subset(va)
    sample = train.images(np.linspace(0, len(train) - 1, min(len(train), 2000)).astype(int))
    mean, std = channel_stats(torch.from_numpy(sample))
    bundle = DataBundle(str(folder), train, val, scan.classes, (chans, *size), mean, std, None,
                        source + " (streamed from disk)", tuple(scan.skipped), (), True)
    bundle.warnings = tuple(scan.warnings + _warnings(bundle))
    return bundle
