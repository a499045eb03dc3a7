"""Process memory settings for training and inference: freed blocks kept for the next step, and
Python's cycle collector kept off the objects that were there before.

Why the C heap: PyTorch's CPU tensors come from ``malloc``. glibc serves a large block (above a
threshold that grows to at most 32 MB) with its own ``mmap``, returns it with ``munmap`` on free and
trims the top of its heap; the next step faults the same memory in again, a zeroed page at a time.
The "cnn" preset at 64×64, batch 64, took 165,000 page faults and 511 ms a step on this project's
2-core CPU, 1,000 faults and 276 ms with the settings below (the Trainer on that preset: 1.53× a
plain loop in a fresh process, bench/throughput.py --model cnn); inference is hit harder (256 images
at 64×64, 1,015 → 388 ms a forward; `ftstudio predict` of 800 such images 5.03 → 3.53 s). Small
networks (the seed's MLP) see no change: their blocks were already reused.

- ``keep_freed_memory()``, around a fit, every CLI command and every job of the app: glibc's
  ``mallopt`` turns off ``mmap`` for large blocks and trimming; when the last holder leaves,
  ``malloc_trim`` returns what is free, so a desktop app that trained once does not keep its peak.
  The settings themselves stay: glibc cannot go back to its dynamic thresholds (any ``mallopt`` fixes
  them), and its fixed defaults trim a 128 KB heap top — a plain loop run after them in the same
  process was 10 % slower than in a fresh one.
- ``one_arena()``, at process start: every thread allocates from the main heap. A thread's own arena
  is at most 64 MB and maps anything larger regardless (the app trains in a QThread: 23,000 faults a
  step remained there). It must run before other threads first allocate: a thread keeps its arena.
- ``frozen_collector()``, around a fit: what exists when it starts (torch's modules, the model, the
  data) is set aside (``gc.freeze``) from the cycle collector, whose full collections otherwise walk
  all of it — two ran in a process's first fit of the seed's MLP, 225–237 ms, 61–67 ms with this.
- ``collector_paused()``, around a big import (the first optimizer's torch._dynamo, the app's torch):
  no automatic collection at all while it runs.
- ``empty_on_huge_pages()``, for a split normalised once into a float32 copy on the CPU: memory the
  kernel backs with 2 MB pages (Linux's transparent huge pages, asked for with ``madvise``, which
  Debian and Ubuntu require). A shuffled batch gathers rows from all over the copy (the seed's
  60,000 × 784 floats are 188 MB, 46,000 pages of 4 KB); with 2 MB pages their addresses stay in
  the TLB. The seed's MLP at batch 256, the step in a bare loop: 0.895 → 0.925 of the GEMM-bound
  limit (medians of 6 alternating epochs; pre-gathered batches 0.96).

The first two are glibc's; elsewhere, or with another C library, they do nothing. Huge pages are
Linux's; elsewhere, or where the kernel has them off, the memory is ordinary.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import math
import mmap
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the app imports this module before its first paint
    import torch

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
HUGE_PAGE = 2 * 2**20  # bytes; x86-64's and arm64's (with 4 KB base pages) transparent huge page
HUGE_PAGES_MIN_BYTES = 16 * 2**20  # smaller tensors span few pages: their addresses stay in the TLB anyway
NEVER_TRIM = 2**31 - 1  # mallopt takes an int

_lock = threading.Lock()
_holders = 0
_freezers = 0


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (the settings are glibc's), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  # only glibc has it (musl has a no-op mallopt)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def one_arena() -> bool:
    """Make every thread that has not allocated yet use the main heap; True where it took effect."""
    libc = _glibc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, 1))


@contextmanager
def keep_freed_memory() -> Iterator[None]:
    """From here on large blocks stay in the heap; what is free goes back to the system when the last
    holder (fits may nest or run in several threads) leaves."""
    global _holders
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _holders += 1
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                libc.malloc_trim(0)


@contextmanager
def frozen_collector() -> Iterator[None]:
    """Full cycle collections skip the objects that exist now, until the last holder leaves.

    Not where something else froze them already (the app does, once torch is in: permanently); an
    object set aside cannot be collected as cyclic garbage, so the objects go back when the fit ends."""
    global _freezers
    with _lock:
        mine = _freezers > 0 or gc.get_freeze_count() == 0
        if mine:
            _freezers += 1
            if _freezers == 1:
                gc.freeze()
    try:
        yield
    finally:
        if mine:
            with _lock:
                _freezers -= 1
                if _freezers == 0:
                    gc.unfreeze()


@contextmanager
def collector_paused(freeze_after: bool = False) -> Iterator[None]:
    """No automatic cycle collection inside, for a big import: torch._dynamo's (a process's first
    optimizer imports it, with sympy and triton) makes ~300,000 objects, and the full collections
    they trigger walked them all, 50–130 ms each with the GIL held. ``freeze_after``: then set
    aside (``gc.freeze``) everything that exists, for good — the app, once its engine is in.

    The collector is turned back on only if it was on; of two threads inside at once, the first to
    have come in (the one that found it on) turns it back on."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
        if freeze_after:
            gc.freeze()


def holding() -> bool:
    """Whether a fit is keeping freed memory now (for tests and diagnostics)."""
    return _holders > 0


def empty_on_huge_pages(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous CPU tensor whose memory the kernel backs with 2 MB pages where it
    can, else (a small tensor, no ``madvise``, the kernel refuses) a plain ``torch.empty``.

    A fresh anonymous mapping, one huge page longer than asked, asked for huge pages before anything
    touches it; the tensor starts at the first 2 MB boundary inside it and keeps the mapping alive
    (unmapped when the last view of it goes)."""
    import torch

    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    advice = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only
    if nbytes < HUGE_PAGES_MIN_BYTES or advice is None:
        return torch.empty(shape, dtype=dtype)
    try:
        region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE)  # shared would be shmem: no THP
        region.madvise(advice)
    except (OSError, ValueError):  # no transparent huge pages in this kernel, or no memory to map
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(region, dtype=torch.uint8)
    start = -raw.data_ptr() % HUGE_PAGE
    return raw[start:start + nbytes].view(dtype).view(shape)
