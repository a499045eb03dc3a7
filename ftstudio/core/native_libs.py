"""Load triton's compiler library so that it binds to its own LLVM, never to one already in the process.

Why: ``triton/_C/libtriton.so`` (shipped with the CUDA torch wheel on Linux; ``import torch._dynamo``
loads it, and torch 2.14 imports torch._dynamo the first time many ops run on the meta device)
links LLVM statically and exports those symbols. The dynamic linker resolves a library's
symbols against the process's global scope first. On a GNOME desktop, Qt's GTK theme brings
GTK, which opens Mesa's GL driver with ``RTLD_GLOBAL``; the driver pulls in the system's
``libLLVM-NN.so``. libtriton's own references (12,006 of them, measured with
``LD_DEBUG=bindings``) then bind to that other LLVM version, and libtriton's static
initialisers crash in ``llvm::DebugCounter`` (a DenseMap of the other layout, freed as garbage):
the app exits with SIGSEGV. The reverse order is safe (Python loads extensions ``RTLD_LOCAL``).

The fix at that depth: load triton's extension modules with ``RTLD_DEEPBIND``, so a library looks
up its own symbols before the global scope — whatever else (GTK, a GL widget, another program's
plugin) put an LLVM there first. ``install()`` adds an import hook that does only that, only for
``triton._C.*``, and costs nothing until triton is imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading

DEEPBIND_PREFIXES = ("triton._C.",)
_lock = threading.Lock()


class _DeepBindLoader(importlib.machinery.ExtensionFileLoader):
    """An extension loader whose ``dlopen`` prefers the library's own symbols (``RTLD_DEEPBIND``)."""

    def create_module(self, spec):
        with _lock:
            flags = sys.getdlopenflags()
            sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
            try:
                return super().create_module(spec)
            finally:
                sys.setdlopenflags(flags)


class DeepBindFinder(importlib.abc.MetaPathFinder):
    """Finds ``triton._C.*`` like the normal path finder does, then loads it with `_DeepBindLoader`."""

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith(DEEPBIND_PREFIXES):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            spec.loader = _DeepBindLoader(spec.loader.name, spec.loader.path)
        return spec


def install() -> bool:
    """Make later imports of triton's native libraries immune to a foreign LLVM (idempotent).

    Returns whether the hook is active: not on platforms without ``RTLD_DEEPBIND`` (macOS,
    Windows, musl), where the clash cannot happen the same way."""
    if not hasattr(os, "RTLD_DEEPBIND") or not hasattr(sys, "setdlopenflags"):
        return False
    if not any(isinstance(finder, DeepBindFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, DeepBindFinder())
    return True
