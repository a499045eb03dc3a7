"""Pretrained weights: where a backbone's file is (or would be) kept, and the one download path — with
consent only, checked, written atomically.

torchvision files go to torch's hub cache under their published name (``resnet18-f37072fd.pth``),
whose hash prefix is the check (torch.hub's own rule); ``FTSTUDIO_WEIGHTS_MIRROR=URL`` replaces
``https://download.pytorch.org``. timm files come from the Hugging Face Hub into its cache through
``huggingface_hub`` and are checked against the sha256 the Hub publishes for them. A file that fails
its check is deleted and refused: nothing half-written or corrupted stays where a later run would
load it. No network is touched unless `download` is called.
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

from ftstudio.core.errors import InputError

MIRROR_ENV = "FTSTUDIO_WEIGHTS_MIRROR"
TORCHVISION_HOST = "https://download.pytorch.org"
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
        return WeightsSource(name, f"https://huggingface.co/{repo}/blob/main/{filename}", None, None,
                             repo_id=repo, filename=filename, licence=getattr(cfg, "license", None))
    raise InputError(f"{name}: expected torchvision:NAME or timm:NAME")


def download(source: WeightsSource, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> str:
    """Fetch ``source`` (the caller has asked the user), check it, and return the local file."""
    if source.repo_id:
        return _download_hf(source)
    assert source.path is not None
    return str(_download_url(source.url, source.path, source.sha256_prefix, progress, cancel))


def _download_url(url: str, dest: Path, sha256_prefix: str, progress: Progress | None,
                  cancel: threading.Event | None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(CHUNK):
                if cancel is not None and cancel.is_set():
                    raise InputError(f"download of {url} cancelled")
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if total and done != total:
            raise WeightsCheckFailed(f"{url}: the check failed — received {done} of {total} bytes (truncated); "
                                     "the file was deleted, nothing was kept")
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            raise WeightsCheckFailed(f"{url}: the check failed — sha256 {digest.hexdigest()[:12]}… does not start "
                                     f"with the published {sha256_prefix}; the file was deleted, nothing was kept")
        os.replace(tmp, dest)
        return dest
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except http.client.HTTPException as exc:  # IncompleteRead: the connection closed early
        raise WeightsCheckFailed(f"{url}: the check failed — the download was cut short ({type(exc).__name__}); "
                                 "the file was deleted, nothing was kept") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"could not reach {host} to download {url} ({reason}). Offline? Download the file on "
                         f"another machine and pass --weights FILE, or set {MIRROR_ENV} to a reachable "
                         "mirror") from None
    finally:
        tmp.unlink(missing_ok=True)


def _download_hf(source: WeightsSource) -> str:
    """Through huggingface_hub into its cache, then checked against the Hub's published sha256."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    except ModuleNotFoundError:
        from ftstudio.core.architecture.timm_backbones import NEEDS_TIMM

        raise InputError(NEEDS_TIMM) from None
    try:
        meta = get_hf_file_metadata(hf_hub_url(source.repo_id, source.filename), timeout=TIMEOUT_S)
        from ftstudio.core.paths import hf_hub_cache_dir

        path = hf_hub_download(source.repo_id, source.filename, etag_timeout=TIMEOUT_S, cache_dir=hf_hub_cache_dir())
    except Exception as exc:  # httpx, the Hub's own errors and OSError all mean: not fetched
        raise InputError(f"could not download {source.repo_id}/{source.filename} from the Hugging Face Hub "
                         f"({str(exc).splitlines()[0]}). Offline? Pass --weights FILE|FOLDER instead") from None
    published = (meta.etag or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{64}", published):
        from ftstudio.core.fileio import file_sha256

        if file_sha256(path) != published:
            real = Path(path).resolve()
            Path(path).unlink(missing_ok=True)
            real.unlink(missing_ok=True)
            raise WeightsCheckFailed(f"{source.repo_id}/{source.filename}: the check failed — its sha256 differs "
                                     "from the one the Hub publishes; the file was deleted, nothing was kept")
    return path

