"""Recipe → data, model, run folder and trainer: the one path every front door takes.

`train` (a new run) and `resume` (a stopped one) are what `ftstudio train`, `ftstudio run`, the
desktop app's Start button and torchrun all call, steered by one `RunControls`; `evaluate_run` is
`ftstudio evaluate`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftstudio.core import messages
from ftstudio.core.architecture import AUTO, ModelSpec
from ftstudio.core.architecture.presets import resolve_model
from ftstudio.core.datasets import DataBundle, Progress, absolute_paths, load_data
from ftstudio.core.errors import Cancelled, InputError
from ftstudio.core.config.recipe import DatasetSpec, Recipe, load_validated, read_json
from ftstudio.core.runs.folders import (RUN_FILES, RUN_FOLDER_NAMES, Run, RunLogger, load_run_model, new_run_dir,
                                         resolve_checkpoint)
from ftstudio.core.training.callbacks import Callback, Checkpoint, EarlyStopping
from ftstudio.core.training.events import FitFinished
from ftstudio.core.training.prepared import Prepared, seed_everything

if TYPE_CHECKING:
    from ftstudio.core.distributed.torchrun import DistContext


@dataclass
class RunResult:
    run: Run
    summary: dict[str, Any]
    finished: FitFinished


def input_wishes(spec: ModelSpec) -> tuple[tuple[int, int] | None, int | None]:
    """The image size and channels an architecture fixes (None where it says "auto")."""
    c, h, w = spec.input_shape
    size = (h, w) if h != AUTO and w != AUTO else None
    return size, (c if c != AUTO else None)


def prepare(recipe: Recipe, *, progress=None, cancel: threading.Event | None = None) -> Prepared:
    """Load the data and build the model a recipe describes (fine-tune plans included)."""
    if recipe.finetune is not None:
        from ftstudio.core.finetune.strategies import prepare_finetune

        return prepare_finetune(recipe, progress=progress, cancel=cancel)
    spec = resolve_model(recipe.model)
    size, channels = input_wishes(spec)
    data = load_data(recipe.data, image_size=size, channels=channels, progress=progress, cancel=cancel)
    from ftstudio.core.architecture import build_model, layer_multipliers

    seed_everything(recipe.train.seed)
    model, concrete = build_model(spec, data.input_shape, data.num_classes)
    return Prepared(recipe, data, model, concrete, layer_multipliers(model, concrete))


def preprocess_info(data: DataBundle) -> dict[str, Any]:
    """The numbers another runtime needs to feed the model (pixels/255, then per-channel mean/std)."""
    return {"input_shape": list(data.input_shape), "mean": list(data.mean), "std": list(data.std), "scale": 255.0}


@dataclass(frozen=True)
class RunControls:
    """How a front door steers and watches a run, handed down as one object.

    ``stop`` and ``pause`` are checked between batches (and while data decodes); ``callbacks`` join
    the run's own (a progress bar, the app's signal bridge); ``progress(done, total)`` hears of data
    loading; ``on_prepared(prepared)`` is told when data and model are ready, before training."""

    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    callbacks: Sequence[Callback] = ()
    progress: Progress | None = None
    on_prepared: Callable[[Prepared], None] | None = None


def train(recipe: Recipe | Prepared, out: str | Path | None = None, controls: RunControls | None = None, *,
          dist: DistContext | None = None) -> RunResult:
    """Train a recipe (or what `prepare` already made of one) into a new run folder: ``out``, or a
    new folder in the runs folder."""
    controls = controls or RunControls()
    if out is not None and (dist is None or dist.is_main):
        _check_out_is_free(Path(out))  # before the lock, which would leave its file among the user's
    with _writing(out, dist) as locks:
        if out is not None and Run(Path(out)).exists():
            raise InputError(messages.RUN_EXISTS.format(path=out))
        if isinstance(recipe, Prepared):
            prepared = recipe
        else:  # recipe.json names the files this run used
            recipe = recipe.replace(data=absolute_paths(recipe.data))
            prepared = prepare(recipe, progress=controls.progress, cancel=controls.stop)
        return _fit(prepared, None, out, None, controls, dist, locks)


def resume(run_dir: str | Path, controls: RunControls | None = None, *, epochs: int | None = None,
           dist: DistContext | None = None) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint with its own ``recipe.json``;
    ``epochs`` changes its length. Bit-exact: the result is the uninterrupted run's."""
    from ftstudio.core.training import checkpoint

    controls = controls or RunControls()
    with _writing(run_dir, dist) as locks:
        run = Run(Path(run_dir))
        if not run.exists():
            raise InputError(f"{run_dir}: not a run folder (recipe.json is missing)")
        last = run.checkpoint("last")
        if not last.exists():
            raise InputError(messages.RESUME_NOTHING.format(path=run_dir, recipe=run.recipe_path))
        try:
            ckpt = checkpoint.load(last)
        except InputError as exc:  # damaged on disk (ftstudio itself writes it atomically)
            raise InputError(messages.RESUME_DAMAGED.format(detail=exc, recipe=run.recipe_path,
                                                            best=_best_still_good(run))) from None
        recipe = load_validated(run.recipe_path, "recipe", Recipe.from_dict)
        if epochs is not None:
            if epochs < int(ckpt["epoch"]):
                raise InputError(f"--epochs {epochs}: this run has already finished {ckpt['epoch']} epochs")
            recipe = recipe.replace(train=_with(recipe.train, epochs=epochs))
        try:
            prepared = prepare(recipe, progress=controls.progress, cancel=controls.stop)
        except Cancelled:
            raise
        except InputError as exc:
            raise InputError(messages.RESUME_RECIPE.format(path=run.recipe_path, detail=exc)) from None
        return _fit(prepared, run, run_dir, ckpt, controls, dist, locks)


def _check_out_is_free(out: Path) -> None:
    """Refuse ``--out`` on a folder of the user's own files, as export and pipelines do: the run's
    files would be mixed into it, and deleting the run later would take them along. A folder left
    by a start that failed before recipe.json was written holds only a run's names, and is taken."""
    try:
        names = os.listdir(out)
    except OSError:  # not there yet (a new folder), or unreadable: the first write says why
        return
    foreign = sorted(name for name in names if name not in RUN_FOLDER_NAMES)
    if foreign and "recipe.json" not in names:  # a run already: RUN_EXISTS says so, under the lock
        shown = ", ".join(foreign[:3]) + ("…" if len(foreign) > 3 else "")
        raise InputError(messages.RUN_OUT_NOT_EMPTY.format(path=out, names=shown))


def _best_still_good(run: Run) -> str:
    """The note that a damaged run's best checkpoint still predicts and exports, when it loads."""
    from ftstudio.core.training import checkpoint

    try:
        best = checkpoint.load(run.checkpoint("best"))
    except (InputError, OSError):
        return ""
    return f"; its best checkpoint (epoch {best.get('epoch', '?')}) is intact and still predicts and exports"


@contextlib.contextmanager
def _writing(out: str | Path | None, dist: DistContext | None) -> Iterator[contextlib.ExitStack]:
    """Hold the run folder's lock (a second writer is refused, never mixed in); the stack takes the
    lock of a folder made later, when there was no ``out``."""
    from ftstudio.core.runs.lock import RunLock

    with contextlib.ExitStack() as locks:
        if out is not None and (dist is None or dist.is_main):
            locks.enter_context(RunLock(Path(out)))
        yield locks


def _fit(prepared: Prepared, run: Run | None, out: str | Path | None, ckpt: dict[str, Any] | None,
         controls: RunControls, dist: DistContext | None, locks: contextlib.ExitStack) -> RunResult:
    """Write the run folder (new) or rewind it (resume), then train; ``ckpt`` is the checkpoint resumed."""
    from ftstudio.core.devices import resolve_device
    from ftstudio.core.runs.lock import RunLock

    recipe = prepared.recipe  # a fine-tune plan may have settled details (its architecture, enough epochs)
    if dist is not None:
        dist = dist.for_recipe(recipe)  # ddp or fsdp, as the recipe (a resumed run's own) says
    if controls.on_prepared is not None:
        controls.on_prepared(prepared)
    resolve_device(recipe.train.device)  # before any file is written: `--device tpu` leaves no folder
    if ckpt is not None:
        _check_resumable(run, prepared, ckpt)
    main = dist is None or dist.is_main  # under torchrun, rank 0 alone writes the run folder
    fresh = run is None
    if main:
        run = _open_run(run, out, recipe, prepared, ckpt, dist.summary() if dist else _ONE_PROCESS)
        if fresh and out is None:
            locks.enter_context(RunLock(run.path))
    state = {"recipe": recipe.replace(model=prepared.architecture.to_dict()).to_dict(),
             "architecture": prepared.architecture.to_dict(), "classes": list(prepared.data.classes),
             "preprocess": preprocess_info(prepared.data), "lineage": prepared.lineage}
    if prepared.lora:
        state["lora"] = prepared.lora
    if main:
        logger = RunLogger(run, after_checkpoint=True)
        cbs: list[Callback] = [logger, Checkpoint(run.checkpoints, on_saved=logger.checkpoint_saved),
                               *controls.callbacks]
    else:
        cbs = dist.follower_callbacks()  # fsdp: every rank writes its part of a checkpoint
    if recipe.train.early_stopping:
        cbs.append(EarlyStopping(recipe.train.early_stopping))
    cbs.extend(prepared.callbacks)
    from ftstudio.core.training.trainer import Trainer  # (torch: imported while data decodes, see prepare)

    try:
        trainer = Trainer(prepared.model, prepared.data, recipe.train, cbs, stop_event=controls.stop,
                          pause_event=controls.pause, lr_multipliers=prepared.lr_multipliers, state=state,
                          augment=recipe.data.augment if recipe.data.augment.enabled else None, dist=dist)
    except BaseException:
        if main and fresh:
            _discard_unstarted(run)  # nothing trained: leave no run "starting" forever
        raise
    finished = trainer.fit(resume=ckpt)
    if not main:
        return RunResult(Run(Path(out or ".")), {}, finished)
    return RunResult(run, run.read_summary(), finished)


def _discard_unstarted(run: Run) -> None:
    """Remove the files a new run wrote before its trainer could start (the folder and lock stay)."""
    import shutil

    for name in RUN_FILES:
        (run.path / name).unlink(missing_ok=True)
    shutil.rmtree(run.checkpoints, ignore_errors=True)


def _check_resumable(run: Run | None, prepared: Prepared, ckpt: dict[str, Any]) -> None:
    """An edited recipe.json that no longer fits the checkpoint is named, before anything is touched.

    (It used to surface as a RuntimeError from load_state_dict, exit 1, and the run marked failed.)"""
    import torch

    from ftstudio.core.training import progress

    problem = progress.problem(ckpt)
    if problem:
        raise InputError(messages.CHECKPOINT_INVALID.format(path=run.checkpoint("last") if run else "last.pt",
                                                            detail=problem))
    if ckpt.get("sharded_path"):  # an fsdp run's optimizer lives in a folder beside last.pt
        from ftstudio.core.training.sharded_checkpoint import check_complete

        check_complete(ckpt["sharded_path"])
    where = run.recipe_path if run is not None else "recipe.json"
    if list(ckpt["classes"]) != list(prepared.data.classes):
        raise InputError(messages.RESUME_RECIPE.format(
            path=where, detail=f"the data now has classes {', '.join(prepared.data.classes)[:80]}, the checkpoint "
                               f"{', '.join(map(str, ckpt['classes']))[:80]}"))
    own = prepared.model.state_dict()
    theirs = ckpt["model"]
    bad = [k for k, t in own.items() if k not in theirs or not isinstance(theirs[k], torch.Tensor)
           or tuple(theirs[k].shape) != tuple(t.shape)]
    if not prepared.lora and (bad or set(theirs) - set(own)):
        name = (bad or sorted(set(theirs) - set(own)))[0]
        raise InputError(messages.RESUME_RECIPE.format(
            path=where, detail=f"the model's weights differ from the checkpoint's, first at {name}"))


_ONE_PROCESS = {"world_size": 1, "distributed": None}


def _open_run(run: Run | None, out, recipe: Recipe, prepared: Prepared, ckpt, spread: dict[str, Any]) -> Run:
    """Create the run folder's files (a new run) or rewind its metrics to the checkpoint (resume)."""
    if run is None:
        path = Path(out) if out is not None else new_run_dir(None, recipe.name or _default_name(recipe))
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise InputError(f"cannot create the run folder {path}: {exc.strerror or exc}; "
                             "choose another --out") from None
        run = Run(path)
        run.write_json("model.json", prepared.architecture.to_dict())
        run.write_json("summary.json", {**_initial_summary(run, recipe, prepared), **spread})
        run.write_json("recipe.json", recipe.replace(model=prepared.architecture.to_dict()).to_dict())
        return run
    run.truncate_metrics(int(ckpt["epoch"]), int(ckpt["step"]))
    run.update_summary(status="running", epochs_planned=recipe.train.epochs, **spread)
    if recipe.train.epochs != Recipe.from_dict(read_json(run.recipe_path, "recipe")).train.epochs:
        run.write_json("recipe.json", recipe.replace(model=prepared.architecture.to_dict()).to_dict())
    return run


def _with(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _default_name(recipe: Recipe) -> str:
    model = recipe.model if isinstance(recipe.model, str) else (recipe.model.get("name") or "model")
    data = Path(recipe.data.name).name or recipe.data.name
    return f"{Path(str(model)).stem}-{data}"


def _initial_summary(run: Run, recipe: Recipe, prepared: Prepared) -> dict[str, Any]:
    import time

    data = prepared.data
    model_label = recipe.model if isinstance(recipe.model, str) else prepared.architecture.name
    return {
        "id": run.id, "name": recipe.name or _default_name(recipe), "status": "starting",
        "created": datetime.now().isoformat(timespec="seconds"), "created_ts": time.time(),
        "data": recipe.data.name, "data_source": data.source,
        "model": Path(str(model_label)).stem if model_label else "custom",
        "classes": list(data.classes), "input_shape": list(data.input_shape),
        "mean": list(data.mean), "std": list(data.std),
        "train_size": len(data.train), "val_size": len(data.val),
        "skipped_files": [{"path": p, "reason": r} for p, r in data.skipped],
        "warnings": list(data.warnings), "split": data.extra.get("split"), "epochs": 0,
        "epochs_planned": recipe.train.epochs,
        "val_accuracy": None, "best_val_accuracy": None, "world_size": 1,
        "grad_checkpoint": recipe.train.grad_checkpoint,
        "lineage": prepared.lineage, "finetune": recipe.finetune is not None, "notes": list(prepared.notes),
        **prepared.summary,
    }


def evaluate_run(run_dir: str | Path, data: str | DatasetSpec | None = None, *, which: str = "best",
                 split: str = "auto", device: str = "cpu", loaded: tuple | None = None) -> dict[str, Any]:
    """Accuracy, loss, per-class precision / recall / F1 (macro and weighted too) and confusion of a run
    on held-out data (``loaded``: what `held_out` returned for these arguments, to load the data once)."""
    from ftstudio.core.devices import resolve_device
    from ftstudio.core.training.loader import DeviceBatches
    from ftstudio.core.training.metrics import averages, evaluate

    model, ckpt, spec, bundle, part = loaded or held_out(run_dir, data, which=which, split=split)
    classes = tuple(ckpt["classes"])
    pre = ckpt["preprocess"]
    dev = resolve_device(device)
    model.to(dev)
    batches = DeviceBatches(part, tuple(pre["mean"]), tuple(pre["std"]), dev, 512)
    ev = evaluate(model, batches, len(classes))
    per_class = ev.per_class(classes)
    used = resolve_checkpoint(run_dir, which)  # best falls back to last: say which one really ran
    return {"run": str(run_dir), "checkpoint": used.stem, "checkpoint_file": str(used),
            "data": spec.name, "split": _split_name(bundle, split),
            "count": ev.count, "accuracy": ev.accuracy, "loss": ev.loss, "classes": list(classes),
            "per_class": per_class, **averages(per_class), "confusion": ev.confusion.tolist()}


def held_out(run_dir: str | Path, data: str | DatasetSpec | None = None, *, which: str = "best",
             split: str = "auto"):
    """(model, checkpoint, data spec, bundle, split relabelled to the model's classes) that `evaluate_run`
    measures — also what the mistakes gallery looks through."""
    model, ckpt = load_run_model(run_dir, which)
    classes = tuple(ckpt["classes"])
    pre = ckpt["preprocess"]
    c, h, w = pre["input_shape"]
    run_spec = DatasetSpec(**{**_recipe_data(ckpt)})
    if data is None:
        spec = run_spec
    elif isinstance(data, DatasetSpec):
        spec = data
    else:
        same = data == run_spec.name
        spec = run_spec if same else DatasetSpec(name=data, val_split=0.0)
    spec = _with(spec, image_size=(h, w), channels=c, augment=_with(spec.augment, crop=0, flip=False, rotation=0.0))
    bundle = load_data(spec)
    mapping = _class_mapping(bundle.classes, classes, spec.name)
    part = _pick_split(bundle, split)
    part = part.relabel(mapping[part.y])
    return model, ckpt, spec, bundle, part


def _recipe_data(ckpt: dict[str, Any]) -> dict[str, Any]:
    from ftstudio.core.config.schema import from_dict

    data = (ckpt.get("recipe") or {}).get("data") or {}
    spec = from_dict(DatasetSpec, data, "checkpoint recipe.data")
    return {f: getattr(spec, f) for f in DatasetSpec.__dataclass_fields__}


def _class_mapping(data_classes: tuple[str, ...], model_classes: tuple[str, ...], name: str):
    import torch

    index = {c: i for i, c in enumerate(model_classes)}
    unknown = [c for c in data_classes if c not in index]
    if unknown:
        raise InputError(f"{name}: class(es) {', '.join(unknown[:5])} are not among the model's classes "
                         f"({', '.join(model_classes)}); evaluate on data with the same class names")
    return torch.tensor([index[c] for c in data_classes], dtype=torch.int64)


def _pick_split(bundle: DataBundle, split: str):
    if split == "auto":
        if bundle.test is not None and len(bundle.test):
            return bundle.test
        return bundle.val if len(bundle.val) else bundle.train
    part = {"val": bundle.val, "test": bundle.test, "train": bundle.train}.get(split)
    if part is None or not len(part):
        raise InputError(f"--split {split}: this data has no {split} split")
    return part


def _split_name(bundle: DataBundle, split: str) -> str:
    if split != "auto":
        return split
    if bundle.test is not None and len(bundle.test):
        return "test"
    return "val" if len(bundle.val) else "all"


def quant_data(run_dir: str | Path, which: str = "best"):
    """`export.quantize.QuantData` of a run: training images to calibrate onnx-int8 and held-out images
    to measure it, preprocessed as its checkpoint says."""
    import numpy as np

    from ftstudio.core.export.quantize import CALIBRATION_IMAGES, EVAL_IMAGES, QuantData

    _model, ckpt, _spec, bundle, part = held_out(run_dir, which=which)
    pre = ckpt["preprocess"]
    mean = np.asarray(pre["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(pre["std"], np.float32).reshape(1, -1, 1, 1)
    rng = np.random.default_rng(0)

    def take(split, n):
        idx = np.sort(rng.permutation(len(split))[:n])
        return (split.images(idx).astype(np.float32) / np.float32(255.0) - mean) / std, idx

    calibration, _ = take(bundle.train, CALIBRATION_IMAGES)
    x, idx = take(part, EVAL_IMAGES)
    return QuantData(calibration, x, part.y.numpy()[idx])
