"""Pretrained weights: where a backbone's file is (or would be) kept, and the one download path — with
consent only, checked, written atomically.

torchvision files go to torch's hub cache under their published name (``resnet18-f37072fd.pth``),
whose hash prefix is the check (torch.hub's own rule); ``FTSTUDIO_WEIGHTS_MIRROR=URL`` replaces
``https://download.pytorch.org``. timm files come from the Hugging Face Hub (``HF_ENDPOINT``, the Hub's own
variable, replaces ``https://huggingface.co``): its file metadata publishes the sha256 of every LFS file
(``X-Linked-Etag``) and the size; the file is streamed through the same checked downloader and put into
the Hugging Face cache in the Hub's own layout (blob named by its sha256, snapshot link, ``refs/main``), where
timm and huggingface_hub find it too. A file that fails its check is deleted and refused: nothing
half-written or corrupted stays where a later run would load it. No network is touched unless `download`
is called.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ftstudio.core.errors import InputError, os_error_reason

MIRROR_ENV = "FTSTUDIO_WEIGHTS_MIRROR"
TORCHVISION_HOST = "https://download.pytorch.org"
HF_ENDPOINT_ENV = "HF_ENDPOINT"
HF_HOST = "https://huggingface.co"
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}")
HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub: the file name carries a sha256 prefix
TIMEOUT_S = 15.0
CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (bytes done, bytes total or 0)


class WeightsCheckFailed(InputError):
    """A downloaded file did not match its published hash (deleted, not used)."""


@dataclass(frozen=True)
class WeightsSource:
    """One backbone's pretrained weights: the file here and where a download would come from."""

    name: str  # torchvision:resnet18 / timm:resnet18
    url: str  # the download address (after the mirror)
    path: Path | None  # where the file is kept (None: the Hugging Face cache decides)
    size: int | None  # bytes, when published (approximate for torchvision)
    sha256_prefix: str = ""  # torchvision's
    repo_id: str = ""  # timm: the Hugging Face repository and file
    filename: str = ""
    licence: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.local_file())

    def local_file(self) -> str:
        if self.repo_id:
            from ftstudio.core.architecture.timm_backbones import cached_timm_weights

            return cached_timm_weights(self.name)
        return str(self.path) if self.path is not None and self.path.is_file() else ""


def mirror_url(url: str) -> str:
    """``url`` with the torchvision host replaced by ``$FTSTUDIO_WEIGHTS_MIRROR`` when it is set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror or not url.startswith(TORCHVISION_HOST):
        return url
    return mirror.rstrip("/") + url[len(TORCHVISION_HOST):]


def hub_endpoint() -> str:
    """The Hugging Face Hub's address: ``$HF_ENDPOINT`` (a mirror) when set, read at call time."""
    return os.environ.get(HF_ENDPOINT_ENV, "").strip().rstrip("/") or HF_HOST


def hub_url(repo_id: str, filename: str, revision: str = "main") -> str:
    """The Hub's download address of a file (it redirects LFS files to its CDN)."""
    quoted = urllib.parse.quote(filename)
    return f"{hub_endpoint()}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{quoted}"


def locate(name: str) -> WeightsSource:
    """Where ``torchvision:NAME`` / ``timm:NAME`` weights are kept and come from (no network)."""
    kind, _, bare = name.partition(":")
    if kind == "torchvision":
        from torchvision.models import get_model_weights

        from ftstudio.core.paths import torch_hub_dir

        try:
            weights = get_model_weights(bare).DEFAULT
        except ValueError:
            raise InputError(f"{name}: not a torchvision model") from None
        url = weights.url
        prefix = HASH_PREFIX.search(Path(url).name)
        size = weights.meta.get("_file_size")
        return WeightsSource(name, mirror_url(url), torch_hub_dir() / "checkpoints" / Path(url).name,
                             int(size * 1024 * 1024) if size else None, prefix.group(1) if prefix else "",
                             licence="bsd-3-clause")
    if kind == "timm":
        from ftstudio.core.architecture.timm_backbones import pretrained_cfg

        cfg = pretrained_cfg(bare)
        repo = getattr(cfg, "hf_hub_id", None) or ""
        if not repo:
            raise InputError(f"{name}: timm publishes no Hugging Face weights for it; pass --weights FILE")
        filename = getattr(cfg, "hf_hub_filename", None) or "model.safetensors"
        return WeightsSource(name, hub_url(repo, filename), None, None, repo_id=repo, filename=filename,
                             licence=getattr(cfg, "license", None))
    raise InputError(f"{name}: expected torchvision:NAME or timm:NAME")


def download(source: WeightsSource, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> str:
    """Fetch ``source`` (the caller has asked the user), check it, and return the local file."""
    if source.repo_id:
        return _download_hub(source, progress, cancel)
    assert source.path is not None
    return str(_download_url(source.url, source.path, source.sha256_prefix, progress, cancel))


def _download_url(url: str, dest: Path, sha256_prefix: str, progress: Progress | None,
                  cancel: threading.Event | None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        digest, _ = _stream(url, tmp, progress, cancel, MIRROR_ENV)
        if sha256_prefix and not digest.startswith(sha256_prefix):
            raise WeightsCheckFailed(f"{url}: the check failed — sha256 {digest[:12]}… does not start "
                                     f"with the published {sha256_prefix}; the file was deleted, nothing was kept")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _stream(url: str, tmp: Path, progress: Progress | None, cancel: threading.Event | None, mirror_env: str,
            expected: int = 0) -> tuple[str, int]:
    """Write ``url`` to ``tmp`` (fsynced); (sha256, bytes). A short or over-long body fails the check:
    at most ``expected`` (published) or Content-Length bytes are read."""
    digest = hashlib.sha256()
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        with urllib.request.urlopen(_request(url), timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
            total = expected or int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(CHUNK if not total else min(CHUNK, total - done + 1)):
                if cancel is not None and cancel.is_set():
                    raise InputError(f"download of {url} cancelled")
                done += len(block)
                if total and done > total:
                    raise WeightsCheckFailed(f"{url}: the check failed — more than the published {total} bytes; "
                                             "the file was deleted, nothing was kept")
                out.write(block)
                digest.update(block)
                if progress is not None:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if total and done != total:
            raise WeightsCheckFailed(f"{url}: the check failed — received {done} of {total} bytes (truncated); "
                                     "the file was deleted, nothing was kept")
        return digest.hexdigest(), done
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except http.client.HTTPException as exc:  # IncompleteRead: the connection closed early
        raise WeightsCheckFailed(f"{url}: the check failed — the download was cut short ({type(exc).__name__}); "
                                 "the file was deleted, nothing was kept") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise _unreachable(host, url, exc, mirror_env) from None
    except OSError as exc:  # writing the file: a full disk, a read-only cache
        cache = "HF_HUB_CACHE or HF_HOME" if mirror_env == HF_ENDPOINT_ENV else "TORCH_HOME"
        raise InputError(f"{tmp.parent}: cannot save the download ({os_error_reason(exc)}); "
                         f"nothing was kept. The weights cache can be moved with {cache}") from None


def _request(url: str, method: str = "GET") -> urllib.request.Request:
    """Named as ftstudio: some CDNs refuse Python-urllib's default agent."""
    from ftstudio import __version__

    return urllib.request.Request(url, method=method, headers={"User-Agent": f"ftstudio/{__version__}"})


def _unreachable(host: str, url: str, exc: BaseException, mirror_env: str) -> InputError:
    reason = getattr(exc, "reason", exc)
    return InputError(f"could not reach {host} to download {url} ({reason}). Offline? Download the file on "
                      f"another machine and pass --weights FILE, or set {mirror_env} to a reachable mirror")


# ------------------------------------------------------------------------------------ Hugging Face Hub
@dataclass(frozen=True)
class HubFile:
    """What the Hub publishes about a file before it is fetched (its metadata answer)."""

    url: str
    sha256: str  # "" when not published (a file not kept in LFS)
    size: int  # 0 when not published
    commit: str  # the revision's commit ("" when not said)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the answer to a HEAD carries the metadata itself
        return None


def hub_metadata(url: str) -> HubFile:
    """The Hub's metadata of a file: a HEAD request, following only the Hub's own relative redirects
    (renamed repositories), never the CDN's; the LFS sha256 is ``X-Linked-Etag``."""
    opener = urllib.request.build_opener(_NoRedirect)
    host = urllib.parse.urlsplit(url).netloc or url
    for _ in range(5):
        try:
            with opener.open(_request(url, "HEAD"), timeout=TIMEOUT_S) as response:
                headers = response.headers
        except urllib.error.HTTPError as exc:
            if exc.code not in (301, 302, 303, 307, 308):
                hint = (" (a gated or private model: download it with your Hugging Face login and pass "
                        "--weights FILE|FOLDER)" if exc.code in (401, 403) else "")
                raise InputError(f"{url}: the server answered {exc.code} {exc.reason}{hint}") from None
            headers = exc.headers
            location = headers.get("Location") or ""
            if not headers.get("X-Linked-Etag") and not headers.get("X-Repo-Commit") and location \
                    and not urllib.parse.urlsplit(location).netloc:
                url = urllib.parse.urljoin(url, location)
                continue
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _unreachable(host, url, exc, HF_ENDPOINT_ENV) from None
        etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").removeprefix("W/").strip('"').lower()
        size = headers.get("X-Linked-Size") or headers.get("Content-Length") or "0"
        commit = (headers.get("X-Repo-Commit") or "").strip().lower()
        return HubFile(url, etag if SHA256.fullmatch(etag) else "", int(size) if size.isdigit() else 0,
                       commit if COMMIT.fullmatch(commit) else "")
    raise InputError(f"{url}: too many redirects")


def _download_hub(source: WeightsSource, progress: Progress | None, cancel: threading.Event | None) -> str:
    """Stream a Hub file through the checked downloader into the Hugging Face cache, in the Hub's layout."""
    filename = source.filename
    if not filename or filename.startswith("/") or ".." in Path(filename).parts:
        raise InputError(f"{source.name}: unusable file name {filename!r} in timm's configuration")
    try:
        meta = hub_metadata(source.url)
    except InputError as exc:
        if filename != "model.safetensors" or " 404 " not in str(exc):
            raise
        filename = "pytorch_model.bin"  # older timm repositories: what timm itself falls back to
        meta = hub_metadata(hub_url(source.repo_id, filename))
    from ftstudio.core.paths import hf_hub_cache_dir

    repo_dir = hf_hub_cache_dir() / f"models--{source.repo_id.replace('/', '--')}"
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    tmp = blobs / f".{os.getpid()}.{threading.get_ident()}.part"
    try:
        digest, _ = _stream(meta.url, tmp, progress, cancel, HF_ENDPOINT_ENV, meta.size)
        if meta.sha256 and digest != meta.sha256:
            raise WeightsCheckFailed(f"{source.repo_id}/{filename}: the check failed — sha256 {digest[:12]}… differs "
                                     f"from the {meta.sha256[:12]}… the Hub publishes; the file was deleted, "
                                     "nothing was kept")
        blob = blobs / digest
        os.replace(tmp, blob)
    finally:
        tmp.unlink(missing_ok=True)
    refs = repo_dir / "refs" / "main"
    commit = meta.commit or _read_ref(refs) or digest[:40]  # a mirror that names no commit: a stable stand-in
    snapshot = repo_dir / "snapshots" / commit / filename
    _place(blob, snapshot)
    _write_atomic(refs, commit)
    return str(snapshot)


def _read_ref(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii")[:64].strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if COMMIT.fullmatch(text) else ""


def _place(blob: Path, snapshot: Path) -> None:
    """The snapshot entry for ``blob``: a relative link like huggingface_hub's, swapped in atomically; where
    links are not allowed (Windows without developer mode), the file itself."""
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    tmp = snapshot.with_name(f".{snapshot.name}.{os.getpid()}.link")
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(blob, snapshot.parent))
        os.replace(tmp, snapshot)
    except OSError:
        tmp.unlink(missing_ok=True)
        os.replace(blob, snapshot)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)
