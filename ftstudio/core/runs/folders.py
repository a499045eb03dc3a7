"""Run folders: recipe.json, model.json, metrics.jsonl, summary.json and checkpoints/.

Every write is atomic or an append of whole lines, so a crash never leaves a half-written file
and two processes creating runs at once get distinct folders.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ftstudio.core import messages, paths
from ftstudio.core.errors import InputError
from ftstudio.core.fileio import MAX_JSON_BYTES, atomic_write_text, open_regular, read_bounded, write_json_file
from ftstudio.core.runs.lock import LOCK_NAME, RunBusy, RunLock, is_locked
from ftstudio.core.runs.records import RunSummary, clean_metrics_row
from ftstudio.core.training.callbacks import Callback
from ftstudio.core.training.events import BatchFinished, EpochFinished, FitFailed, FitFinished, FitStarted

RUN_FILES = ("recipe.json", "model.json", "summary.json", "metrics.jsonl")  # a run's own, beside checkpoints/
# everything a run folder may hold: its files, checkpoints, an export inside it, the lock, a write probe
RUN_FOLDER_NAMES = frozenset({*RUN_FILES, "checkpoints", "export", LOCK_NAME, ".write-test"})
MAX_METRICS_LINE = 16 * 2**20  # bytes; a row of step losses is ~20 bytes a step, so a longer line is junk
MAX_CACHED_SUMMARIES = 20_000
MAX_CACHED_METRICS = 16  # files whose parsed rows are kept (the runs shown; a long run's are a few MB)
METRICS_CHECK_BYTES = 4096  # the parsed part's last bytes, compared before its rows are reused
# metrics.jsonl → ((device, inode), offset after its last complete line, the rows up to there, lines
# skipped, the bytes before that offset)
_METRICS: dict[tuple[Path, bool], tuple[tuple[int, int], int, list[dict[str, Any]], int, bytes]] = {}
STEP_ROW = json.dumps({"kind": "steps"})[:-1].encode()  # how append_metrics begins a row of step losses
_SUMMARIES: dict[Path, tuple[tuple[int, int, int], RunSummary]] = {}  # summary.json → (its version, parsed)


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in out:
        out = out.replace("--", "-")
    return out[:40] or "run"


def new_run_dir(parent: str | Path | None = None, name: str = "run") -> Path:
    """A fresh, unique run folder (timestamp + name + random suffix), created exclusively."""
    parent = Path(parent) if parent else paths.runs_dir()
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. FTSTUDIO_HOME on a read-only file system
        raise InputError(messages.RUNS_DIR_UNWRITABLE.format(path=parent, detail=exc.strerror or exc)) from None
    for _ in range(100):
        path = parent / f"{datetime.now():%Y%m%d-%H%M%S}-{_slug(name)}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(messages.RUNS_DIR_UNWRITABLE.format(path=parent, detail=exc.strerror or exc)) from None
    raise InputError(f"{parent}: cannot create a new run folder")


@dataclass
class Run:
    """A run folder and its files."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def recipe_path(self) -> Path:
        return self.path / "recipe.json"

    @property
    def model_path(self) -> Path:
        return self.path / "model.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str = "best") -> Path:
        return self.checkpoints / f"{which}.pt"

    def exists(self) -> bool:
        return self.recipe_path.is_file()

    def write_json(self, name: str, data: Any) -> None:
        write_json_file(self.path / name, data)

    def summary(self) -> RunSummary:
        """summary.json through the one tolerant reader: junk fields are dropped and listed in
        ``problems``, an unreadable file is an empty summary with one problem.

        Parsed once per version of the file (its inode, size and mtime: every write replaces it):
        listing 3,000 runs read and validated each summary twice, 2 s on the GUI thread."""
        path = self.summary_path
        try:
            st = os.stat(path)
        except OSError:
            return _read_summary(path)
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = _SUMMARIES.get(path)
        if known is not None and known[0] == version:
            return known[1]
        summary = _read_summary(path)
        if len(_SUMMARIES) >= MAX_CACHED_SUMMARIES:
            _SUMMARIES.clear()
        _SUMMARIES[path] = (version, summary)
        return summary

    def status(self) -> str:
        """The recorded status, except that a "running" run whose folder no live process holds
        (the trainer was killed, or the machine went down) is "interrupted": resume it."""
        status = str(self.summary().get("status") or "unknown")
        return "interrupted" if status == "running" and not is_locked(self.path) else status

    def read_summary(self) -> dict[str, Any]:
        """The summary as a plain dict whose known fields have their documented types."""
        return self.summary().to_dict()

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        summary = self.summary().updated(**fields)
        self.write_json("summary.json", summary.to_dict())
        return summary.to_dict()

    def append_metrics(self, row: dict[str, Any], sync: bool = False) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")  # ASCII: a lone surrogate cannot break it
            if sync:
                f.flush()
                os.fsync(f.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete row (a torn last line from a crash is ignored)."""
        return self.metrics_with_problems()[0]

    def metrics_with_problems(self, fresh: bool = False, epochs_only: bool = False
                              ) -> tuple[list[dict[str, Any]], int]:
        """(every readable row, how many lines were skipped): torn, not JSON, or fields of the wrong type.
        ``epochs_only``: the rows of step losses, ftstudio's own, are passed over unparsed (`epochs`).

        A live run only appends whole lines, and the Runs page re-reads it at each epoch (a 100,000-step
        run's file took 70 ms to parse): the complete lines already parsed are kept per file and only
        what was appended since is read, if the same file (device, inode) still ends its parsed part
        with the same bytes. Otherwise — replaced by a resume, shrunk, edited — or ``fresh``, it is
        read whole (what rewriting it takes)."""
        rows: list[dict[str, Any]] = []
        skipped, offset, tail = 0, 0, b""
        try:
            with open_regular(self.metrics_path, "metrics file") as f:  # a pipe here once froze the Runs page
                st = os.fstat(f.fileno())
                identity = (st.st_dev, st.st_ino)
                key = (self.metrics_path, epochs_only)
                known = None if fresh else _METRICS.get(key)
                if known is not None and known[0] == identity and known[1] <= st.st_size:
                    end = known[4]
                    f.seek(known[1] - len(end))
                    if f.read(len(end)) == end:
                        _, offset, cached, skipped, _ = known
                        rows = list(cached)
                    else:
                        f.seek(0)
                while line := f.readline(MAX_METRICS_LINE):
                    if not line.endswith(b"\n"):
                        if len(line) < MAX_METRICS_LINE:
                            tail = line  # the last line: still being written, or cut short by a crash
                            break
                        while line and not line.endswith(b"\n"):  # an overlong line: pass over all of it
                            line = f.readline(MAX_METRICS_LINE)
                        skipped += 1
                    elif epochs_only and line.startswith(STEP_ROW):
                        pass
                    else:
                        row = clean_row(line)
                        if row is not None:
                            rows.append(row)
                        else:
                            skipped += line.strip() != b""
                    offset = f.tell()
                f.seek(max(0, offset - METRICS_CHECK_BYTES))
                end = f.read(offset - f.tell())
            if len(_METRICS) >= MAX_CACHED_METRICS:
                _METRICS.clear()
            _METRICS[key] = (identity, offset, list(rows), skipped, end)
        except OSError:  # missing, a pipe or device (ReadRefused), unreadable
            return [], 0
        last = clean_row(tail) if tail.strip() else None  # a whole row written without its newline counts
        if last is not None:
            rows.append(last)
        return rows, skipped + (tail.strip() != b"" and last is None)

    def epochs(self) -> list[dict[str, Any]]:
        """The per-epoch rows, without parsing the step losses between them: a 10-million-step run's file
        (190 MB) took 6.8 s and 870 MB to read whole, at every selection on the Runs page."""
        return [r for r in self.metrics_with_problems(epochs_only=True)[0] if r.get("kind") == "epoch"]

    def truncate_metrics(self, epoch: int, step: int) -> None:
        """Drop rows beyond a checkpoint before resuming, so every epoch is logged exactly once."""
        keep = []
        for row in self.metrics_with_problems(fresh=True)[0]:
            if row.get("kind") == "epoch" and row.get("epoch", 0) > epoch:
                continue
            if row.get("kind") == "steps":
                pairs = [(s, v) for s, v in zip(row.get("steps", []), row.get("losses", [])) if s <= step]
                if not pairs:
                    continue
                row = {**row, "steps": [s for s, _ in pairs], "losses": [v for _, v in pairs]}
            keep.append(row)
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in keep))

    def delete(self) -> None:
        """Remove the run folder, under its lock: a run another process still trains is refused
        (InputError), not pulled from under it."""
        try:
            with RunLock(self.path):
                for entry in os.scandir(self.path):  # all but the held lock file (Windows keeps it open)
                    if entry.name == LOCK_NAME:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
        except RunBusy:
            raise InputError(messages.RUN_DELETE_BUSY.format(path=self.path)) from None
        shutil.rmtree(self.path)  # the lock file and the folder


def clean_row(line: bytes) -> dict[str, Any] | None:
    """One metrics line as a row, or None when it is not one."""
    try:
        return clean_metrics_row(json.loads(line.decode("utf-8")))
    except (ValueError, RecursionError):
        return None


def _read_summary(path: Path) -> RunSummary:
    try:
        raw = read_bounded(path, MAX_JSON_BYTES, "summary")
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return RunSummary()
    except (OSError, ValueError, RecursionError) as exc:  # ReadRefused, bad UTF-8/JSON, huge numbers
        return RunSummary(problems=(f"unreadable ({str(exc)[:100]}); ignored",))
    return RunSummary.parse(data)


def list_runs(parent: str | Path | None = None) -> list[Run]:
    """Runs under ``parent`` (default: the user's runs folder), newest first."""
    parent = Path(parent) if parent else paths.runs_dir()
    if not parent.is_dir():
        return []
    runs = [Run(p) for p in parent.iterdir() if p.is_dir() and (p / "recipe.json").is_file()]

    def created(run: Run) -> float:
        try:
            return float(run.summary().created_ts or run.recipe_path.stat().st_mtime)
        except OSError:
            return 0.0

    return sorted(runs, key=created, reverse=True)


# ------------------------------------------------------------------ checkpoints and models of a run
def load_run_model(run_dir: str | Path, which: str = "best"):
    """(model on the CPU in eval mode, checkpoint dict) of a run folder or a checkpoint file."""
    from ftstudio.core.training import checkpoint

    ckpt_path = resolve_checkpoint(run_dir, which)
    ckpt = checkpoint.load(ckpt_path)
    return model_from_checkpoint(ckpt, ckpt_path), ckpt


def resolve_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint file a run folder (``which``; best falls back to last) or a file path names."""
    path = Path(run_dir).expanduser()
    if not path.exists():
        raise InputError(f"{path}: not a run folder or checkpoint file (it does not exist)")
    ckpt_path = Run(path).checkpoint(which) if path.is_dir() else path  # a device or FIFO: refused on load
    if path.is_dir() and not ckpt_path.exists() and which == "best":
        ckpt_path = Run(path).checkpoint("last")
    if path.is_dir() and not ckpt_path.exists():
        run = Run(path)
        if not run.exists():
            raise InputError(f"{path}: not a run folder (no recipe.json, no checkpoints)")
        missing = "neither checkpoints/best.pt nor last.pt exists" if which == "best" else \
            f"checkpoints/{which}.pt is missing"
        if not run.checkpoint("best").exists() and not run.checkpoint("last").exists():
            raise InputError(messages.RUN_NO_CHECKPOINT.format(path=path, missing=missing, recipe=run.recipe_path))
    return ckpt_path


def model_from_checkpoint(ckpt: dict[str, Any], where: str | Path = "checkpoint"):
    """Rebuild the network from a checkpoint's architecture and load its weights (no downloads)."""
    from ftstudio.core.architecture import build_model, parse_model, strip_pretrained

    spec = strip_pretrained(parse_model(ckpt["architecture"], f"{where}: architecture"))
    shape = tuple(ckpt["preprocess"]["input_shape"])
    model, _ = build_model(spec, shape, len(ckpt["classes"]))
    try:
        state = ckpt["model"]
        if ckpt.get("lora"):  # a LoRA run: fold the adapters into plain weights
            from ftstudio.core.architecture.lora import merge_state_dict

            state = merge_state_dict(state, ckpt["lora"])
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{where}: weights do not match the architecture "
                         f"({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
    model.eval()
    return model


class RunLogger(Callback):
    """Writes metrics.jsonl rows and keeps summary.json current as events arrive.

    With ``after_checkpoint`` an epoch's summary is written once its checkpoint has landed (the
    `Checkpoint` callback calls `checkpoint_saved`), so that summary.json never names as the best an
    epoch whose best.pt a full disk refused; the metrics row is written at once either way."""

    order = 50

    def __init__(self, run: Run, after_checkpoint: bool = False) -> None:
        super().__init__()
        self.run = run
        self.started = time.time()
        self.after_checkpoint = after_checkpoint
        self._pending: dict[str, Any] | None = None

    def on_fit_started(self, event: FitStarted) -> None:
        self.started = time.time()
        self.run.update_summary(status="running", device=event.device, params=event.params,
                                trainable_params=event.trainable_params, epochs_planned=event.epochs,
                                train_size=event.train_size, val_size=event.val_size, pid=os.getpid())

    def on_batch_finished(self, event: BatchFinished) -> None:
        self.run.append_metrics({"kind": "steps", "epoch": event.epoch, "steps": list(event.steps),
                                 "losses": [round(v, 6) for v in event.losses], "lr": event.lr,
                                 "samples_per_s": round(event.samples_per_s, 1)})

    def on_epoch_finished(self, event: EpochFinished) -> None:
        row = {"kind": "epoch", "epoch": event.epoch, "step": event.step,
               "train_loss": event.train_loss, "train_accuracy": event.train_accuracy,
               "val_loss": event.val_loss, "val_accuracy": event.val_accuracy, "lr": event.lr,
               "seconds": round(event.seconds, 4), "samples_per_s": round(event.samples_per_s, 1),
               "best": event.best, "time": time.time()}
        self.run.append_metrics(row, sync=True)
        summary = self.run.summary()
        fields = {"epochs": event.epoch, "val_accuracy": event.val_accuracy, "val_loss": event.val_loss,
                  "train_loss": event.train_loss, "train_accuracy": event.train_accuracy,
                  "samples_per_s": round(event.samples_per_s, 1),
                  "duration_s": round(float(summary.duration_s_before or 0.0) + time.time() - self.started, 2)}
        if event.best:
            fields.update(best_val_accuracy=event.val_accuracy, best_val_loss=event.val_loss, best_epoch=event.epoch)
        if self.after_checkpoint:
            self._pending = fields
        else:
            self.run.update_summary(**fields)

    def checkpoint_saved(self, event: EpochFinished) -> None:
        """The epoch's checkpoint has landed (`Checkpoint`'s ``on_saved``): its summary can say so."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.run.update_summary(**pending)

    def on_fit_finished(self, event: FitFinished) -> None:
        summary = self.run.summary()
        duration = float(summary.duration_s_before or 0.0) + time.time() - self.started
        self.run.update_summary(status=event.reason if event.reason != "completed" else "completed",
                                finished=datetime.now().isoformat(timespec="seconds"),
                                duration_s=round(duration, 2), duration_s_before=round(duration, 2), error=None)

    def on_fit_failed(self, event: FitFailed) -> None:
        summary = self.run.summary()
        duration = float(summary.duration_s_before or 0.0) + time.time() - self.started
        self.run.update_summary(status="failed", error=event.message, failed_kind=event.kind,
                                finished=datetime.now().isoformat(timespec="seconds"),
                                duration_s=round(duration, 2), duration_s_before=round(duration, 2))
