"""Image folders with one subfolder per class: scan, decode in parallel, cache decoded arrays.

Decoding a folder of 20,000 PNGs every epoch is what makes a hand-written ImageFolder loop slow;
here a folder is decoded once, on every core, into a uint8 array cached under the user cache
folder and keyed by the files' names, sizes and modification times.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftstudio.core import messages
from ftstudio.core.datasets.decode import IMAGE_SUFFIXES, DecodeError, probe
from ftstudio.core.errors import Cancelled, InputError
from ftstudio.core.fileio import NOT_REGULAR, atomic_write

CACHE_VERSION = 1
# decoded folders kept beside the newest one written (least recently used go first): two of the largest
# that are kept in memory (IN_MEMORY_LIMIT, 2 GB), or many small ones
CACHE_BUDGET = 4 * 2**30
PROCESS_DECODE_MIN = 2000  # files; fewer decode faster in this process than a worker pool starts
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
Progress = Callable[[int, int], None]


@dataclass
class FolderScan:
    """The files of an image folder, before decoding."""

    root: Path
    classes: tuple[str, ...]
    paths: list[str]
    labels: np.ndarray
    skipped: list[tuple[str, str]]
    warnings: list[str]
    stats: list[tuple[int, int]]  # (size, mtime_ns) per path: the decoded cache's key


def scan_folder(root: str | Path) -> FolderScan:
    """List image files per class subfolder; name what is skipped and why."""
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(messages.FOLDER_MISSING.format(path=root))
    if not root.is_dir():
        raise InputError(messages.FOLDER_NOT_DIR.format(path=root))
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"{root}: cannot read folder ({exc.strerror})") from None
    class_dirs = [e for e in entries if _is_dir(e) and not e.name.startswith(".")]
    loose = [e for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)]
    if not class_dirs:
        if loose:
            raise InputError(messages.FOLDER_NO_CLASSES.format(path=root))
        raise InputError(messages.FOLDER_EMPTY.format(path=root))
    classes, paths, stats, labels, skipped, warnings = [], [], [], [], [], []
    for entry in class_dirs:
        files, file_stats, bad = _class_files(Path(entry.path), root)
        skipped.extend((printable(p), r) for p, r in bad)
        if not files:
            warnings.append(messages.CLASS_EMPTY.format(name=printable(entry.name)))
            continue
        label = len(classes)
        classes.append(printable(entry.name))
        paths.extend(files)
        stats.extend(file_stats)
        labels.extend([label] * len(files))
    if not classes:
        raise InputError(messages.FOLDER_EMPTY.format(path=root))
    if len(classes) < 2:
        raise InputError(messages.FOLDER_ONE_CLASS.format(path=root, name=classes[0]))
    return FolderScan(root, tuple(classes), paths, np.asarray(labels, dtype=np.int64), skipped, warnings, stats)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _class_files(folder: Path, root: Path) -> tuple[list[str], list[tuple[int, int]], list[tuple[str, str]]]:
    """Image files under one class folder with their (size, mtime), and what was skipped."""
    files, stats, bad = [], [], []
    seen: set[tuple[int, int]] = set()
    dataset, own = os.path.realpath(root), os.path.realpath(folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=None):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop: walk each real folder once
            dirnames[:] = []
            continue
        seen.add(key)
        real = os.path.realpath(dirpath)
        if not _within(real, own) and (_within(real, dataset) or _within(dataset, real)):
            # a link to another class, another split or a folder above the dataset: its images
            # would be learnt under this class's name (links to folders elsewhere are followed)
            bad.append((os.path.relpath(dirpath, root), messages.LINK_INTO_DATASET))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.lower() in IGNORED_NAMES:
                continue
            path = os.path.join(dirpath, name)
            if not name.lower().endswith(IMAGE_SUFFIXES):
                bad.append((os.path.relpath(path, root), "not an image file type"))
                continue
            try:
                st = os.stat(path)
            except OSError as exc:
                bad.append((os.path.relpath(path, root), exc.strerror or "unreadable"))
                continue
            if not stat.S_ISREG(st.st_mode):  # a pipe would block the decoder, a device never end
                bad.append((os.path.relpath(path, root), NOT_REGULAR))
                continue
            if st.st_size == 0:
                bad.append((os.path.relpath(path, root), "empty file (0 bytes)"))
                continue
            files.append(path)
            stats.append((st.st_size, st.st_mtime_ns))
    return files, stats, bad


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def detect_shape(paths: list[str], sample: int = 256) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) for a folder: the most common size; colour if any sampled image is."""
    step = max(1, len(paths) // sample)
    sizes: Counter[tuple[int, int]] = Counter()
    channels = 1
    for path in paths[::step][:sample]:
        try:
            h, w, c = probe(path)
        except DecodeError:
            continue
        sizes[(h, w)] += 1
        channels = max(channels, c)
    if not sizes:
        return 3, (32, 32)
    (h, w), count = sizes.most_common(1)[0]
    if count < sum(sizes.values()) * 0.9:  # mixed sizes: a square side near the median, capped
        side = int(np.median([min(s) for s in sizes.elements()]))
        side = int(min(max(side, 16), 128))
        return channels, (side, side)
    return channels, (h, w)


def decode_folder(scan: FolderScan, size: tuple[int, int], channels: int, *,
                  progress: Progress | None = None, cancel: threading.Event | None = None,
                  cache: Path | None = None, meanwhile: Callable[[], None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode every file to uint8 ``[N, C, H, W]``; returns (images, labels, skipped).

    ``meanwhile`` runs in this process while worker processes decode (or first, for small folders)."""
    key = _cache_key(scan, size, channels)
    cached = _read_cache(cache, key, (channels, size[0], size[1]), len(scan.paths), len(scan.classes))
    if cached is not None:
        if progress:
            progress(len(scan.paths), len(scan.paths))
        return cached
    n = len(scan.paths)
    out = np.empty((n, channels, size[0], size[1]), dtype=np.uint8)
    ok = np.ones(n, dtype=bool)
    skipped: list[tuple[str, str]] = []

    def take(start: int, images: np.ndarray, failed: list[tuple[int, str]]) -> None:
        out[start:start + len(images)] = images
        for i, reason in failed:
            ok[start + i] = False
            skipped.append((printable(os.path.relpath(scan.paths[start + i], scan.root)), reason))

    for start, images, failed in _decode_chunks(scan.paths, size, channels, progress, cancel, meanwhile):
        take(start, images, failed)
    if cancel is not None and cancel.is_set():
        raise Cancelled(messages.CANCELLED)
    skipped.sort()
    result = (out[ok], scan.labels[ok], skipped)
    _write_cache(cache, key, result)
    return result


def _decode_chunks(paths: list[str], size: tuple[int, int], channels: int, progress: Progress | None,
                   cancel: threading.Event | None, meanwhile: Callable[[], None] | None = None):
    """Yield (start, images, failures) chunk by chunk: in this thread for small folders, on every
    core in worker processes for large ones (decoding a small PNG is mostly Python: threads would
    only take turns holding the GIL)."""
    from ftstudio.core.datasets.decode import decode_many

    n = len(paths)
    cores = os.cpu_count() or 1
    # with work of its own to do meanwhile, this process keeps a core for it
    workers = max(1, min(cores - (meanwhile is not None), 8))
    chunk = max(64, min(1024, n // (workers * 8) or 64))
    starts = range(0, n, chunk)
    done = [0]

    def delivered(start: int, result) -> tuple:
        done[0] += min(chunk, n - start)
        if progress:
            progress(done[0], n)
        return (start, *result)

    def here(chunk_starts):  # decode in this process
        for start in chunk_starts:
            if cancel is not None and cancel.is_set():
                return
            yield delivered(start, decode_many(paths[start:start + chunk], size, channels))

    if n < PROCESS_DECODE_MIN or cores == 1:
        if meanwhile is not None:
            meanwhile()
        yield from here(starts)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pending = dict.fromkeys(starts)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(decode_many, paths[s:s + chunk], size, channels): s for s in starts}
            if meanwhile is not None:
                meanwhile()
            try:
                for future in as_completed(futures):
                    if cancel is not None and cancel.is_set():
                        return
                    start = futures[future]
                    yield delivered(start, future.result())
                    del pending[start]
            finally:
                for future in futures:
                    future.cancel()
    except (BrokenProcessPool, OSError):  # no worker processes here (a sandbox, an odd main module)
        yield from here(list(pending))


def printable(name: str) -> str:
    """A file name as text every file format and line takes: bytes that are not UTF-8 (Python keeps
    them as surrogates) become U+FFFD, control characters and bidi overrides an escape (a newline
    is ``\\x0a``), so a class name cannot split a line, a tab-separated column or a terminal's
    state. For labels and messages only; files are opened by their real name."""
    return messages.escape_controls(name.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _cache_key(scan: FolderScan, size: tuple[int, int], channels: int) -> str:
    """``FOLDER-STATE``: which folder at which size (the part a newer state of it replaces), then its files'
    names, sizes and times."""
    folder = hashlib.sha256(f"v{CACHE_VERSION}|{scan.root}|{size}|{channels}".encode("utf-8", "surrogateescape"))
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{channels}|{scan.classes}".encode("utf-8", "surrogateescape"))
    h.update("\n".join(f"{p}|{n}|{t}" for p, (n, t) in zip(scan.paths, scan.stats)).encode("utf-8", "surrogateescape"))
    return f"{folder.hexdigest()[:16]}-{h.hexdigest()[:32]}"


def _read_cache(cache: Path | None, key: str, shape: tuple[int, int, int] = (0, 0, 0), count: int = 0,
                classes: int = 0):
    """The cached decode, or None. A damaged cache (cut short, not a zip, wrong arrays, not a
    regular file) is deleted, so the folder is decoded again and the cache rebuilt — it once
    raised BadZipFile on every later run until the user found and deleted it."""
    if cache is None:
        return None
    path = cache / f"{key}.npz"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
        with os.fdopen(fd, "rb") as f:  # our handle: np.load leaks its own when the zip is bad
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError("not a regular file")
            with np.load(f, allow_pickle=False) as z:
                images, labels = z["images"], z["labels"]
                skipped = [tuple(s.split("\t", 1)) for s in z["skipped"].tolist()]
        fits = (images.dtype == np.uint8 and images.ndim == 4 and (not count or len(images) <= count)
                and (not any(shape) or tuple(images.shape[1:]) == shape)
                and labels.ndim == 1 and len(labels) == len(images) and np.issubdtype(labels.dtype, np.integer)
                and (not len(labels) or (labels.min() >= 0 and (not classes or labels.max() < classes)))
                and all(len(s) == 2 for s in skipped))
        if not fits:
            raise ValueError("arrays do not match the folder")
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go when the cache is pruned
        return images, labels, skipped
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 — BadZipFile, EOFError, ValueError, OSError…: any damage means rebuild
        with contextlib.suppress(OSError):
            if path.is_file() or path.is_symlink():
                path.unlink()
        return None


def _write_cache(cache: Path | None, key: str, result) -> None:
    if cache is None:
        return
    images, labels, skipped = result
    buf = io.BytesIO()
    np.savez(buf, images=images, labels=labels,
             skipped=np.array([f"{p}\t{r}" for p, r in skipped], dtype=str))
    try:
        atomic_write(cache / f"{key}.npz", lambda f: f.write(buf.getbuffer()))
    except OSError:
        return  # a cache is optional: a read-only or full disk only costs speed
    prune_cache(cache, keep=key)


def prune_cache(cache: Path, keep: str, budget: int | None = None) -> None:
    """Bound the decoded cache: drop the older states of ``keep``'s folder (each edit of a folder used to
    leave a full copy of it behind, up to 2 GB each, never removed), temp files of writers killed over an
    hour ago, then the least recently used entries until the rest fits ``budget`` (`CACHE_BUDGET`)."""
    budget = CACHE_BUDGET if budget is None else budget
    folder = keep.split("-", 1)[0]
    now = time.time()
    entries: list[tuple[float, int, Path]] = []
    try:
        listing = list(os.scandir(cache))
    except OSError:
        return
    for entry in listing:
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
            if entry.name.endswith(".tmp"):
                if now - st.st_mtime > 3600:
                    path.unlink()
                continue
            if not entry.name.endswith(".npz") or entry.name == f"{keep}.npz":
                continue
            if entry.name.startswith(f"{folder}-"):
                path.unlink()  # the same folder at the same size, before its last edit
                continue
            entries.append((st.st_mtime, st.st_size, path))
        except OSError:
            continue
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries, key=lambda e: e[0]):  # oldest use first
        if total <= budget:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size
