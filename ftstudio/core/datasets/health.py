"""`ftstudio data check`: what is wrong with an image folder before it silently hurts training.

Reports exact duplicates (same bytes) and near-duplicates (the same picture resized or
recompressed, by perceptual hash) in groups; a group under two classes is a label conflict, a
group across train/val(/test) folders is leakage. Also corrupt files, class imbalance and tiny
classes, and images whose size or colour mode stands out. Each file is read once (bounded), on
every core; Qt-free and torch-free so it runs in worker processes and behind the Health panel.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ftstudio.core import messages
from ftstudio.core.datasets import TINY_CLASS
from ftstudio.core.datasets.decode import _reason
from ftstudio.core.datasets.folder import _class_files, printable
from ftstudio.core.datasets.hashing import THUMB, from_rgb32, near_groups
from ftstudio.core.errors import Cancelled, InputError
from ftstudio.core.fileio import open_regular

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
MAX_FILE_BYTES = 200_000_000  # larger files are reported, not read
IMBALANCE_RATIO = 3.0  # largest / smallest class, as training warns
RARE_MODE = 0.05  # a colour mode used by fewer than this share of the images is an outlier
SIZE_FACTOR = 4.0  # linear size this many times off the typical is an outlier
EXIF_FORMATS = {"JPEG", "MPO", "TIFF", "WEBP"}
PROCESS_MIN = 1500  # files; fewer are checked faster in this process than a pool starts
Progress = Callable[[int, int], None]


@dataclass
class Entry:
    """One image file of the folder: where it sits and what it is labelled."""

    path: str  # relative to the folder, with '/' separators
    label: str
    split: str  # "" when the folder is not split into train/val folders


@dataclass
class FileFacts:
    """What one read of a file tells: content hash, size, mode and hash thumbnails, or why not."""

    digest: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    thumb: np.ndarray | None = None  # [32, 32, 3] uint8, hashed per chunk
    phash: int = 0
    colour: np.ndarray | None = None  # [3, 8, 8] uint8
    error: str = ""


@dataclass
class Listing:
    folder: Path
    entries: list[Entry]
    skipped: list[dict] = field(default_factory=list)
    layout: str = "classes"  # or "splits": train/ val/ test/ each with class folders


def list_folder(root: str | Path) -> Listing:
    """Image files per class folder, or per split folder then class folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(messages.FOLDER_MISSING.format(path=root))
    if not root.is_dir():
        raise InputError(messages.FOLDER_NOT_DIR.format(path=root))
    top = _subdirs(root)
    if top and all(d.name.lower() in SPLIT_NAMES for d in top):
        listing = Listing(root, [], layout="splits")
        for split_dir in top:
            for class_dir in _subdirs(split_dir):
                _add_class(listing, class_dir, SPLIT_NAMES[split_dir.name.lower()])
    else:
        listing = Listing(root, [])
        for class_dir in top:
            _add_class(listing, class_dir, "")
    if not listing.entries:
        raise InputError(messages.FOLDER_EMPTY.format(path=root))
    return listing


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted((Path(e.path) for e in os.scandir(folder) if not e.name.startswith(".") and _is_dir(e)),
                      key=lambda p: p.name)
    except OSError as exc:
        raise InputError(f"{folder}: cannot read folder ({exc.strerror})") from None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _add_class(listing: Listing, class_dir: Path, split: str) -> None:
    """The class folder's images (walked as training walks it: hidden files, links, loops)."""
    files, _, bad = _class_files(class_dir, listing.folder)
    listing.skipped.extend({"path": Path(rel).as_posix(), "reason": reason} for rel, reason in bad)
    listing.entries.extend(Entry(Path(os.path.relpath(f, listing.folder)).as_posix(), printable(class_dir.name), split)
                           for f in files)


def read_facts(path: str) -> FileFacts:
    """Read one file once (at most MAX_FILE_BYTES): hash its bytes, decode a small version."""
    try:
        with open_regular(path, "image") as f:  # a pipe or device is refused before anything reads it
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return FileFacts(error="empty file (0 bytes)")
            if size > MAX_FILE_BYTES:
                limit = MAX_FILE_BYTES // 1_000_000
                return FileFacts(error=f"{size / 1e6:.0f} MB: over the {limit} MB limit per image")
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:  # ReadRefused included: its reason, without the path
        return FileFacts(error=_reason(exc))
    facts = FileFacts(digest=hashlib.blake2b(data, digest_size=16).hexdigest())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                facts.mode = img.mode
                facts.width, facts.height = img.size
                if img.format in EXIF_FORMATS:  # a camera's rotation flag (PNGs rarely carry one)
                    if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                        facts.width, facts.height = facts.height, facts.width
                    img.draft("RGB", (64, 64))  # JPEGs decode at a fraction of their size
                    img = ImageOps.exif_transpose(img)
                facts.thumb = np.asarray(_rgb(img).resize((THUMB, THUMB), Image.Resampling.BOX, reducing_gap=2.0))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return FileFacts(digest=facts.digest, error=_reason(exc))
    return facts


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max(initial=0) > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def read_many(paths: list[str]) -> list[FileFacts]:
    """A chunk of files (runs in worker processes), hashed together: numpy per file costs more
    than the hashing itself."""
    facts = [read_facts(p) for p in paths]
    good = [f for f in facts if f.thumb is not None]
    if good:
        hashes, colours = from_rgb32(np.stack([f.thumb for f in good]))
        for f, h, c in zip(good, hashes.tolist(), colours):
            f.phash, f.colour, f.thumb = h, c, None
    return facts


def _read_all(paths: list[str], progress: Progress | None, cancel: threading.Event | None,
              workers: int | None) -> list[FileFacts]:
    n = len(paths)
    cores = workers or os.cpu_count() or 1
    chunk = max(64, min(1024, n // (cores * 8) or 64))
    results: list[list[FileFacts] | None] = [None] * ((n + chunk - 1) // chunk)
    done = 0

    def take(index: int, facts: list[FileFacts]) -> None:
        nonlocal done
        results[index] = facts
        done += len(facts)
        if progress:
            progress(done, n)

    def here(indices) -> None:
        for i in indices:
            if cancel is not None and cancel.is_set():
                raise Cancelled(messages.CANCELLED)
            take(i, read_many(paths[i * chunk:(i + 1) * chunk]))

    if n < PROCESS_MIN or cores == 1:
        here(range(len(results)))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(read_many, paths[i * chunk:(i + 1) * chunk]): i for i in range(len(results))}
                try:
                    for future in as_completed(futures):
                        if cancel is not None and cancel.is_set():
                            raise Cancelled(messages.CANCELLED)
                        take(futures[future], future.result())
                finally:
                    for future in futures:
                        future.cancel()
        except (BrokenProcessPool, OSError):  # no worker processes here: finish in this process
            here([i for i, r in enumerate(results) if r is None])
    return [f for part in results for f in part]  # type: ignore[union-attr]


def check_folder(root: str | Path, *, progress: Progress | None = None, cancel: threading.Event | None = None,
                 workers: int | None = None) -> dict:
    """The health report of an image folder as one plain, JSON-ready document."""
    listing = list_folder(root)
    entries = listing.entries
    facts = _read_all([str(listing.folder / e.path) for e in entries], progress, cancel, workers)
    good = [i for i, f in enumerate(facts) if not f.error]
    corrupt = [{"path": entries[i].path, "reason": f.error} for i, f in enumerate(facts) if f.error]
    duplicates = _duplicates([entries[i] for i in good], [facts[i] for i in good])
    counts = Counter(entries[i].label for i in good)
    classes = sorted({e.label for e in entries})
    report = {
        "folder": str(listing.folder),
        "layout": listing.layout,
        "images": len(entries),
        "readable": len(good),
        "classes": {c: counts.get(c, 0) for c in classes},
        "splits": dict(sorted(Counter(entries[i].split for i in good if entries[i].split).items())),
        "duplicates": duplicates,
        "conflicts": sum(d["conflict"] for d in duplicates),
        "leakage": sum(d["leakage"] for d in duplicates),
        "corrupt": corrupt,
        "skipped": listing.skipped,
        "imbalance": _imbalance({c: counts.get(c, 0) for c in classes}),
        "outliers": _outliers([entries[i] for i in good], [facts[i] for i in good]),
    }
    report["problems"] = problem_lines(report)
    return report


def _duplicates(entries: list[Entry], facts: list[FileFacts]) -> list[dict]:
    if not entries:
        return []
    hashes = np.array([f.phash for f in facts], dtype=np.uint64)
    colours = np.stack([f.colour for f in facts])
    groups = near_groups(hashes, colours)
    # identical bytes always belong together, even if decoding made their thumbnails differ
    by_digest: dict[str, int] = {}
    for i, f in enumerate(facts):
        groups[i] = groups[by_digest.setdefault(f.digest, int(groups[i]))]
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    out = []
    for idx in members.values():
        if len(idx) < 2:
            continue
        labels = sorted({entries[i].label for i in idx})
        splits = sorted({entries[i].split for i in idx if entries[i].split})
        exact = len({facts[i].digest for i in idx}) == 1
        out.append({"kind": "exact" if exact else "near", "conflict": len(labels) > 1,
                    "leakage": len(splits) > 1, "classes": labels, "splits": splits,
                    "files": sorted(entries[i].path for i in idx)})
    out.sort(key=lambda d: (not d["conflict"], not d["leakage"], d["kind"] != "exact", d["files"]))
    return out


def _imbalance(counts: dict[str, int]) -> dict:
    present = {c: n for c, n in counts.items() if n > 0}
    if not present:
        return {"counts": counts, "ratio": None, "imbalanced": False, "largest": None, "smallest": None, "tiny": []}
    largest = max(present, key=present.get)
    smallest = min(present, key=present.get)
    ratio = present[largest] / present[smallest]
    return {"counts": counts, "largest": largest, "smallest": smallest, "ratio": round(ratio, 3),
            "imbalanced": ratio > IMBALANCE_RATIO,
            "tiny": sorted(c for c, n in counts.items() if n < TINY_CLASS)}


def _outliers(entries: list[Entry], facts: list[FileFacts]) -> dict:
    if not facts:
        return {"typical_size": None, "typical_mode": None, "size": [], "mode": []}
    sizes = Counter((f.width, f.height) for f in facts)
    modes = Counter(f.mode for f in facts)
    area = np.array([f.width * f.height for f in facts], dtype=np.float64)
    typical_area = float(np.median(area))
    aspect = np.array([f.width / max(f.height, 1) for f in facts])
    typical_aspect = float(np.median(aspect))
    size_out, mode_out = [], []
    for e, f, a, r in zip(entries, facts, area, aspect):
        scale = (a / typical_area) ** 0.5 if typical_area else 1.0
        why = ""
        if scale < 1 / SIZE_FACTOR:
            why = "much smaller than the others"
        elif scale > SIZE_FACTOR:
            why = "much larger than the others"
        elif max(r / typical_aspect, typical_aspect / r) > 3:
            why = "a very different shape (aspect ratio)"
        if why:
            size_out.append({"path": e.path, "size": [f.width, f.height], "why": why})
        if modes[f.mode] < RARE_MODE * len(facts):
            mode_out.append({"path": e.path, "mode": f.mode})
    (w, h), count = sizes.most_common(1)[0]
    if count < len(facts) / 2:  # mixed sizes: the median width and height say more than a rare exact one
        w, h = int(np.median([f.width for f in facts])), int(np.median([f.height for f in facts]))
    return {"typical_size": [w, h], "typical_mode": modes.most_common(1)[0][0], "size": size_out, "mode": mode_out}


def _examples(paths: list[str], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def problem_lines(report: dict) -> list[str]:
    """One line per problem, in the words training prints too (empty when the folder is healthy)."""
    lines = []
    dups = report["duplicates"]
    for d in dups:
        if d["conflict"]:
            lines.append(messages.CHECK_CONFLICT.format(kind=d["kind"], classes=", ".join(d["classes"]),
                                                        files=_examples(d["files"], 4)))
    leaks = [d for d in dups if d["leakage"]]
    if leaks:
        lines.append(messages.CHECK_LEAKAGE.format(count=len(leaks), files=_examples(leaks[0]["files"], 2)))
    plain = [d for d in dups if not d["conflict"] and not d["leakage"]]
    if plain:
        exact = sum(d["kind"] == "exact" for d in plain)
        files = sum(len(d["files"]) for d in plain)
        lines.append(messages.CHECK_DUPLICATES.format(groups=len(plain), exact=exact, near=len(plain) - exact,
                                                      files=files, example=_examples(plain[0]["files"], 2)))
    unused = report["corrupt"] + report["skipped"]  # what training will skip, named as training names it
    if unused:
        lines.append(messages.SKIPPED_FILES.format(
            count=len(unused), examples=_examples([f"{c['path']} ({c['reason']})" for c in unused])))
    imb = report["imbalance"]
    for name in imb["tiny"]:
        lines.append(messages.CHECK_TINY_CLASS.format(name=name, count=imb["counts"][name], least=TINY_CLASS))
    if imb["imbalanced"]:
        lines.append(messages.IMBALANCED.format(big=imb["largest"], most=imb["counts"][imb["largest"]],
                                                small=imb["smallest"], least=imb["counts"][imb["smallest"]]))
    out = report["outliers"]
    if out["size"]:
        lines.append(messages.CHECK_SIZE_OUTLIERS.format(
            count=len(out["size"]), typical="×".join(map(str, out["typical_size"])),
            examples=_examples([f"{o['path']} ({o['size'][0]}×{o['size'][1]})" for o in out["size"]])))
    if out["mode"]:
        lines.append(messages.CHECK_MODE_OUTLIERS.format(
            count=len(out["mode"]), typical=out["typical_mode"],
            examples=_examples([f"{o['path']} ({o['mode']})" for o in out["mode"]])))
    return lines

