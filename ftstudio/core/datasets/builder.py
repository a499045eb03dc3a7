"""Datasets made in the app: named classes, images copied in, edits that can be undone.

A builder dataset is an ordinary class-folder dataset (``<data>/built/NAME/CLASS/*.png``) that
trains like any other folder. Images are always *copied* in — the user's files are never moved
or changed — from files, folders, zip archives or a CSV of ``path,label``. Every edit is a
Command with ``apply``/``revert`` (the GUI wraps them in QUndoCommands); deleting moves the
file into the dataset's hidden ``.trash`` so that undo can bring it back.

Imports are hostile-input safe: zip members with absolute paths or ``..`` are refused, sizes
and counts are capped before anything is extracted, every image is checked by Pillow.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ftstudio.core import paths
from ftstudio.core.datasets.decode import IMAGE_SUFFIXES, DecodeError, probe
from ftstudio.core.errors import InputError, os_error_reason

MAX_IMAGE_BYTES = 50_000_000  # one image file
MAX_ZIP_TOTAL = 2_000_000_000  # uncompressed bytes of the images in one archive
MAX_ZIP_RATIO = 200  # uncompressed / compressed beyond this is a zip bomb
MAX_IMPORT_FILES = 100_000
MAX_CSV_BYTES = 20_000_000
TRASH = ".trash"
_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069<>:\"|?*]{1,80}$")


class DatasetUnwritable(InputError):
    """The dataset's folder refused a write (a full disk, a read-only one): no later file would fare better."""


def builder_root() -> Path:
    """Where datasets made in the app live (one folder each)."""
    return paths.data_dir() / "built"


def check_name(name: str, what: str = "class") -> str:
    """A class or dataset name usable as a folder name on every system, or a clear error."""
    name = name.strip()
    if not _NAME.match(name) or name in (".", "..") or name.startswith(".") or name.endswith((" ", ".")):
        raise InputError(f"{what} name {name!r}: use 1–80 characters without / \\ : * ? \" < > | "
                         f"or control characters, and not starting with a dot")
    return name


@dataclass
class ImportReport:
    """What an import added (paths relative to the dataset) and what it refused, with reasons."""

    added: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False  # the dataset's folder refused a write: the rest was not tried


class BuilderDataset:
    """One dataset folder: classes are its subfolders, images their files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def create(cls, name: str, classes: tuple[str, ...] = (), base: Path | None = None) -> BuilderDataset:
        folder = (base or builder_root()) / check_name(name, "dataset")
        if folder.exists():
            raise InputError(f"a dataset named {name!r} already exists ({folder}); choose another name")
        folder.mkdir(parents=True)
        ds = cls(folder)
        for c in classes:
            ds.add_class(c)
        return ds

    @property
    def name(self) -> str:
        return self.root.name

    def classes(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def images(self, label: str) -> list[str]:
        """Relative paths (``CLASS/file``) of a class's images, sorted."""
        folder = self.root / label
        if not folder.is_dir():
            return []
        return sorted(f"{label}/{p.name}" for p in folder.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)

    def counts(self) -> dict[str, int]:
        return {c: len(self.images(c)) for c in self.classes()}

    def path(self, rel: str) -> Path:
        return self.root / rel

    def add_class(self, name: str) -> str:
        name = check_name(name)
        if (self.root / name).exists():
            raise InputError(f"class {name!r} already exists")
        (self.root / name).mkdir()
        return name

    def empty_trash(self, stashes: list[str] | None = None, older_than_s: float | None = None) -> None:
        """Free what deletes moved into ``.trash`` once no undo can bring it back: the named stashes (an
        undo history that is being forgotten), or those untouched for ``older_than_s`` seconds (left by an
        earlier session; another window may still hold a recent one). A Delete used to free nothing, ever."""
        trash = self.root / TRASH
        if not trash.is_dir():
            return
        now = time.time()
        for stash in trash.iterdir():
            try:
                old = older_than_s is not None and now - stash.stat().st_mtime > older_than_s
            except OSError:
                continue
            if (stashes is not None and stash.name in stashes) or old:
                shutil.rmtree(stash, ignore_errors=True)
        with contextlib.suppress(OSError):
            trash.rmdir()  # when empty

    # -------------------------------------------------------------------------------- imports
    def add_bytes(self, label: str, filename: str, data: bytes) -> str:
        """Store image bytes under ``label`` (a unique file name); refuses what Pillow cannot read."""
        if len(data) > MAX_IMAGE_BYTES:
            raise InputError(f"{filename}: {len(data) / 1e6:.0f} MB, over the {MAX_IMAGE_BYTES // 1_000_000} MB "
                             f"limit per image")
        suffix = Path(filename).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise InputError(f"{filename}: not an image file type ({', '.join(IMAGE_SUFFIXES)})")
        try:
            probe(io.BytesIO(data))  # type: ignore[arg-type]
        except DecodeError as exc:
            raise InputError(f"{filename}: {exc}") from None
        folder = self.root / check_name(label)
        target = tmp = None
        try:
            folder.mkdir(exist_ok=True)
            target = _unique(folder, _safe_stem(Path(filename).stem), suffix)
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:  # a full disk: no half-written image stays behind
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise DatasetUnwritable(f"{folder}: cannot copy the image there "
                                    f"({os_error_reason(exc)})") from None
        return f"{folder.name}/{target.name}"

    def add_files(self, label: str, files: list[str | Path]) -> ImportReport:
        """Copy image files into ``label``; unreadable ones are refused and named. Once the dataset's own
        folder refuses a write (a full disk), the rest are not tried: what was added is reported, and
        stays one undoable edit."""
        report = ImportReport()
        for i, f in enumerate(files[:MAX_IMPORT_FILES]):
            try:
                report.added.append(self.add_bytes(label, Path(f).name, _read_bounded(Path(f))))
            except DatasetUnwritable as exc:
                left = min(len(files), MAX_IMPORT_FILES) - i
                report.refused.append((f"{left} file(s), from {Path(f).name} on", str(exc)))
                report.stopped = True
                return report
            except InputError as exc:
                report.refused.append((str(f), _reason(exc, f)))
        if len(files) > MAX_IMPORT_FILES:
            report.refused.append((f"{len(files) - MAX_IMPORT_FILES} more files", f"over {MAX_IMPORT_FILES:,} at once"))
        return report

    def import_folder(self, folder: str | Path) -> ImportReport:
        """A class-folder dataset (or a folder of them): subfolder names become classes."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        report = ImportReport()
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith("."))
            part = self.add_files(sub.name, files)
            report.added += part.added
            report.refused += part.refused
            if part.stopped:
                report.stopped = True
                break
        if not report.added and not report.refused:
            raise InputError(f"{folder}: no class subfolders with images")
        return report

    def import_zip(self, archive: str | Path) -> ImportReport:
        """A zip of ``CLASS/image`` members (optionally under one top folder); bombs and
        path traversal are refused before anything is read."""
        archive = Path(archive)
        try:
            zf = zipfile.ZipFile(archive)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"{archive}: not a readable zip file ({exc})") from None
        report = ImportReport()
        with zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_IMPORT_FILES:
                raise InputError(f"{archive}: {len(members):,} files, over the {MAX_IMPORT_FILES:,} limit")
            total = sum(m.file_size for m in members)
            packed = sum(m.compress_size for m in members) or 1
            if total > MAX_ZIP_TOTAL or total / packed > MAX_ZIP_RATIO:
                raise InputError(f"{archive}: would unpack to {total / 1e6:,.0f} MB from {packed / 1e6:,.1f} MB — "
                                 f"refused as a possible zip bomb")
            parts = [_member_parts(m.filename) for m in members]
            tops = {p[0] for p in parts if p and len(p) >= 3}
            strip = len(tops) == 1 and all(p is None or len(p) >= 3 for p in parts)  # one wrapping folder
            for m, p in zip(members, parts):
                if p is None:
                    report.refused.append((m.filename, "unsafe path in the archive (absolute or '..')"))
                    continue
                p = p[1:] if strip else p
                if p[-1].startswith(".") or "__MACOSX" in p:
                    continue
                if len(p) < 2:
                    report.refused.append((m.filename, "not inside a class folder"))
                    continue
                if m.file_size > MAX_IMAGE_BYTES:
                    report.refused.append((m.filename, f"over the {MAX_IMAGE_BYTES // 1_000_000} MB limit per image"))
                    continue
                try:
                    with zf.open(m) as f:
                        data = f.read(MAX_IMAGE_BYTES + 1)
                    report.added.append(self.add_bytes(p[-2], p[-1], data))
                except DatasetUnwritable as exc:
                    report.refused.append((f"{m.filename} and what follows it", str(exc)))
                    report.stopped = True
                    break
                except InputError as exc:
                    report.refused.append((m.filename, _reason(exc, p[-1])))
                except (OSError, zipfile.BadZipFile, RuntimeError, ValueError) as exc:  # encrypted, corrupt
                    report.refused.append((m.filename, f"cannot extract ({exc})"))
        return report

    def import_csv(self, table: str | Path) -> ImportReport:
        """Rows of ``path,label`` (a header row is allowed; relative paths are from the CSV's folder)."""
        table = Path(table)
        data = _read_bounded(table, MAX_CSV_BYTES, "CSV file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{table}: not a UTF-8 text file; expected rows of path,label") from None
        report = ImportReport()
        rows = list(csv.reader(io.StringIO(text)))
        taken = 0
        for line, row in enumerate(rows, 1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                report.refused.append((f"{table.name} line {line}", "expected path,label"))
                continue
            path, label = row[0].strip(), row[1].strip()
            if line == 1 and path.lower() in ("path", "file", "filename", "image") and label.lower() in (
                    "label", "class", "category"):
                continue
            if taken == MAX_IMPORT_FILES:  # as many as a drop of files takes: a CSV cannot fill the disk
                left = sum(1 for r in rows[line - 1:] if r and any(c.strip() for c in r))
                report.refused.append((f"{table.name} lines {line}–{len(rows)}",
                                       f"{left:,} more rows: over {MAX_IMPORT_FILES:,} at once"))
                break
            taken += 1
            source = Path(path).expanduser()
            source = source if source.is_absolute() else table.parent / source
            try:
                check_name(label)
                report.added.append(self.add_bytes(label, source.name, _read_bounded(source)))
            except DatasetUnwritable as exc:
                report.refused.append((f"{table.name} lines {line}–{len(rows)}", str(exc)))
                report.stopped = True
                break
            except InputError as exc:
                report.refused.append((f"{table.name} line {line}: {path}", _reason(exc, path)))
        return report


def _reason(exc: InputError, name) -> str:
    text = str(exc)
    prefix = f"{Path(str(name)).name}: "
    return text.removeprefix(prefix)


def _read_bounded(path: Path, limit: int = MAX_IMAGE_BYTES, what: str = "image") -> bytes:
    try:
        if not path.is_file():
            raise InputError(f"{path.name}: not found or not a regular file")
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"{path.name}: {size / 1e6:.0f} MB, over the {limit // 1_000_000} MB limit per {what}")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path.name}: cannot read ({exc.strerror})") from None


def _member_parts(name: str) -> tuple[str, ...] | None:
    """A zip member's path parts, or None when it is absolute or climbs out with '..'."""
    name = name.replace("\\", "/")
    p = PurePosixPath(name)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in p.parts:
        return None
    return tuple(x for x in p.parts if x not in ("", "."))


def _safe_stem(stem: str) -> str:
    stem = re.sub(r"[^\w\-. ]", "_", stem).strip(" .") or "image"
    return stem[:60]


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    target = folder / f"{stem}{suffix}"
    n = 2
    while target.exists():
        target = folder / f"{stem}-{n}{suffix}"
        n += 1
    return target


# -------------------------------------------------------------------------------- edits
def move_image(dataset: str | Path, rel: str, to_class: str) -> str:
    """Move one image of a builder dataset to another class (created if new); returns its new
    relative path. The one call a mistakes gallery needs to fix a label."""
    ds = BuilderDataset(dataset)
    source = _inside(ds, rel)
    folder = ds.root / check_name(to_class)
    folder.mkdir(exist_ok=True)
    if source.parent == folder:
        return rel
    target = _unique(folder, source.stem, source.suffix)
    os.replace(source, target)
    return f"{folder.name}/{target.name}"


def dataset_of(image: str | Path, base: Path | None = None) -> tuple[BuilderDataset, str] | None:
    """(the builder dataset, the image's ``CLASS/file``) when ``image`` is in one, else None."""
    root = (base or builder_root()).resolve()
    path = Path(image).resolve()
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    if len(rel.parts) != 3 or any(p.startswith(".") for p in rel.parts):
        return None
    return BuilderDataset(root / rel.parts[0]), f"{rel.parts[1]}/{rel.parts[2]}"


def relabel_target(image: str | Path | None) -> tuple[BuilderDataset, str]:
    """(the builder dataset, ``CLASS/file``) of an image a gallery shows, or an InputError saying why
    it cannot be relabelled: only datasets made in the app are ever changed, never the user's folders."""
    if image is None:
        raise InputError("this image is not a file (a built-in dataset): nothing to relabel")
    found = dataset_of(image)
    if found is None:
        raise InputError(f"{image}: not an image of a dataset made in the app; ftstudio does not move files in "
                         f"your own folders (build a dataset on the Build data page to relabel there)")
    ds, rel = found
    if not ds.path(rel).is_file():
        raise InputError(f"{rel}: no longer in dataset {ds.name} (moved or deleted since)")
    return found


def relabel_file(image: str | Path, to_class: str) -> Path:
    """Move an image (e.g. ``Mistake.path`` from a mistakes gallery) to ``to_class`` of its builder
    dataset; returns its new path. Folders the user made themselves are never changed."""
    ds, rel = relabel_target(image)
    return ds.path(move_image(ds.root, rel, to_class))


def _inside(ds: BuilderDataset, rel: str) -> Path:
    path = (ds.root / rel).resolve()
    if ds.root.resolve() not in path.parents or not path.is_file():
        raise InputError(f"{rel}: not an image of dataset {ds.name}")
    return path


class Command:
    """An edit of a builder dataset: ``apply`` does it, ``revert`` undoes it exactly."""

    label = "edit"

    def apply(self) -> None:
        raise NotImplementedError

    def revert(self) -> None:
        raise NotImplementedError


@dataclass
class MoveImages(Command):
    """Relabel: images to another class."""

    dataset: BuilderDataset
    images: list[str]
    to_class: str
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old, new) once applied

    @property
    def label(self) -> str:
        return f"Move {len(self.images)} image(s) to {self.to_class}"

    def apply(self) -> None:
        self.moved = [(rel, move_image(self.dataset.root, rel, self.to_class)) for rel in self.images]

    def revert(self) -> None:
        for old, new in reversed(self.moved):
            back = move_image(self.dataset.root, new, old.split("/", 1)[0])
            if back != old:  # put it back under its own name
                os.replace(self.dataset.path(back), self.dataset.path(old))


@dataclass
class DeleteImages(Command):
    """Delete: into the dataset's hidden trash, from which undo restores."""

    dataset: BuilderDataset
    images: list[str]
    stash: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def label(self) -> str:
        return f"Delete {len(self.images)} image(s)"

    def apply(self) -> None:
        for rel in self.images:
            source = _inside(self.dataset, rel)
            target = self.dataset.root / TRASH / self.stash / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)

    def revert(self) -> None:
        for rel in self.images:
            os.replace(self.dataset.root / TRASH / self.stash / rel, self.dataset.path(rel))
        shutil.rmtree(self.dataset.root / TRASH / self.stash, ignore_errors=True)


@dataclass
class AddImages(Command):
    """Add files to a class (copies); undo removes the copies."""

    dataset: BuilderDataset
    to_class: str
    files: list[str]
    report: ImportReport | None = None

    @property
    def label(self) -> str:
        return f"Add {len(self.files)} image(s) to {self.to_class}"

    def apply(self) -> None:
        self.report = self.dataset.add_files(self.to_class, self.files)

    def revert(self) -> None:
        for rel in self.report.added if self.report else []:
            self.dataset.path(rel).unlink(missing_ok=True)


@dataclass
class RenameClass(Command):
    dataset: BuilderDataset
    old: str
    new: str

    @property
    def label(self) -> str:
        return f"Rename {self.old} to {self.new}"

    def apply(self) -> None:
        new = check_name(self.new)
        if (self.dataset.root / new).exists():
            raise InputError(f"class {new!r} already exists")
        os.replace(self.dataset.root / self.old, self.dataset.root / new)

    def revert(self) -> None:
        os.replace(self.dataset.root / self.new, self.dataset.root / self.old)


def list_datasets(base: Path | None = None) -> list[Path]:
    root = base or builder_root()
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
