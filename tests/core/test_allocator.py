"""Freed memory is kept for the next training step while a fit runs, and handed back after it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftstudio.core import allocator
from ftstudio.core.engine import RunControls, train
from ftstudio.core.training.callbacks import Callback
from tests.core.test_trainer import recipe

ROOT = str(Path(__file__).resolve().parents[2])

# glibc's settings: elsewhere they do nothing (on Linux, a C library not found as glibc fails the first test)
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's settings")

# A child process (a clean heap, no other threads): page faults of a 64 MB block allocated, written and
# freed 5 times (after 10 to warm up) — in the main thread or a new one, with one_arena() first or not,
# inside keep_freed_memory or not.
CHILD = textwrap.dedent("""
    import json, resource, sys, threading
    import torch
    from ftstudio.core import allocator
    arena, where = sys.argv[1] == "arena", sys.argv[2]
    if arena:
        assert allocator.one_arena()
    out = {}
    def rss_mb(label):
        status = open("/proc/self/status").read()
        out[label] = int(status.split("VmRSS:")[1].split()[0]) / 1024
    def faults(label, times=5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(times):
            torch.empty(16 * 2**20).fill_(1.0)
        out[label] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / times
    def body():
        faults("default")
        rss_mb("rss before")
        with allocator.keep_freed_memory():
            faults("warm-up", 10)  # the heap grows a few blocks before freed ones merge into one that fits
            faults("kept")
            assert allocator.holding()
            rss_mb("rss held")
        assert not allocator.holding()
        rss_mb("rss after")
    if where == "thread":
        t = threading.Thread(target=body)
        t.start()
        t.join()
    else:
        body()
    print(json.dumps(out))
""")

PAGES = 16 * 2**20 * 4 // 4096  # pages of the 64 MB block


def _faults(arena: bool, where: str) -> dict[str, float]:
    import json

    out = subprocess.run([sys.executable, "-c", CHILD, "arena" if arena else "-", where], capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("arena, where", [(False, "main"), (True, "thread")])
def test_a_large_block_is_reused_while_held_and_returned_after(arena, where):
    assert allocator._glibc() is not None
    f = _faults(arena, where)
    assert f["default"] > 0.9 * PAGES  # glibc maps and unmaps it every time: every page faults again
    assert f["kept"] < 0.05 * PAGES  # kept in the heap: the same pages serve the next allocation
    assert f["rss held"] > f["rss before"] + 60  # the freed block stays resident while held
    assert f["rss after"] < f["rss before"] + 16  # and goes back to the system after


def test_a_thread_with_its_own_arena_still_faults():
    """Why one_arena() runs at process start: a thread's own arena maps a large block whatever mallopt says."""
    assert _faults(False, "thread")["kept"] > 0.9 * PAGES


def test_nested_holders_release_on_the_last():
    with allocator.keep_freed_memory():
        with allocator.keep_freed_memory():
            assert allocator.holding()
        assert allocator.holding()
    assert not allocator.holding()


class _EachBatch(Callback):
    """``probe()`` after every batch of a fit."""

    def __init__(self, probe) -> None:
        super().__init__()
        self.probe, self.values = probe, []

    def on_batch_finished(self, event) -> None:
        self.values.append(self.probe())


def test_a_fit_keeps_freed_memory_only_while_it_runs(tmp_path):
    seen = _EachBatch(allocator.holding)
    train(recipe(epochs=1), tmp_path / "run", RunControls(callbacks=[seen]))
    assert seen.values and all(seen.values)
    assert not allocator.holding()


def test_a_failed_fit_releases_too(tmp_path):
    class Boom(Callback):
        def on_batch_finished(self, event) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        train(recipe(epochs=1), tmp_path / "run", RunControls(callbacks=[Boom()]))
    assert not allocator.holding()


@pytest.fixture
def unfrozen():
    """No objects set aside when the test starts (the app's start-up freezes them in this process too)."""
    import gc

    was = gc.get_freeze_count()
    gc.unfreeze()
    yield
    if was:
        gc.freeze()


def test_a_fit_sets_the_existing_objects_aside_and_gives_them_back(tmp_path, unfrozen):
    import gc

    seen = _EachBatch(gc.get_freeze_count)
    train(recipe(epochs=1), tmp_path / "run", RunControls(callbacks=[seen]))
    assert seen.values and min(seen.values) > 10_000  # torch's modules, the model, the data…
    assert gc.get_freeze_count() == 0  # cyclic garbage among them can be collected again


def test_a_fit_leaves_a_freeze_it_did_not_make(tmp_path, unfrozen):
    import gc

    gc.freeze()  # what the app does once torch is in
    before = gc.get_freeze_count()
    train(recipe(epochs=1), tmp_path / "run", RunControls())
    assert gc.get_freeze_count() > before // 2 > 0  # not given back (a few were freed by their refcount)


def test_nested_collector_holders_give_back_on_the_last(unfrozen):
    import gc

    with allocator.frozen_collector():
        with allocator.frozen_collector():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_every_command_runs_with_freed_memory_kept():
    """Predicting a folder with a convnet faulted its activations in for every batch too: `ftstudio predict`
    of 800 64×64 images with the cnn preset, 5.03 → 3.53 s (#19)."""
    import argparse

    from ftstudio.cli import run_command

    assert run_command(argparse.Namespace(handler=lambda args: 7 if allocator.holding() else 0)) == 7
    assert not allocator.holding()


# A fresh process (torch._dynamo not imported yet) trains the digits MLP for one epoch: the collections that
# ran while the Trainer made its optimizer, which imports torch._dynamo.
FIRST_OPTIMIZER = textwrap.dedent("""
    import gc, json, sys, tempfile
    from pathlib import Path
    from ftstudio.core.engine import RunControls, train
    from ftstudio.core.training import trainer
    from tests.core.test_trainer import recipe
    inside, during = [False], []
    gc.callbacks.append(lambda phase, info: during.append(info["generation"]) if phase == "start" and inside[0]
                        else None)
    real = trainer.make_optimizer
    def make(*args, **kwargs):
        inside[0] = True
        try:
            return real(*args, **kwargs)
        finally:
            inside[0] = False
    trainer.make_optimizer = make
    before = "torch._dynamo" in sys.modules
    train(recipe(epochs=1), Path(tempfile.mkdtemp()) / "run", RunControls())
    print(json.dumps({"imported before": before, "imported after": "torch._dynamo" in sys.modules,
                      "collections": during, "enabled": gc.isenabled()}))
""")


def test_the_first_optimizer_imports_torch_dynamo_without_cycle_collections():
    """Its ~300,000 objects triggered full collections that walked them all: 0.91-1.20 s to make the first
    optimizer of `ftstudio train`, 0.79-0.80 s without them (#19)."""
    import json

    out = subprocess.run([sys.executable, "-c", FIRST_OPTIMIZER], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert not got["imported before"] and got["imported after"]  # this fit did import it
    assert got["collections"] == [] and got["enabled"]


def _mapping(address: int) -> dict[str, int] | None:
    """The kB fields of the mapping in /proc/self/smaps that holds ``address``, or None if none does."""
    fields: dict[str, int] | None = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            if fields is not None:
                return fields
            low, high = (int(v, 16) for v in head.split("-"))
            fields = {} if low <= address < high else None
        elif fields is not None and line.endswith(" kB"):
            fields[head.rstrip(":")] = int(line.split()[1])
    return fields


def test_a_tensor_on_huge_pages_gets_them_and_its_mapping_goes_with_its_last_view():
    import gc

    import torch

    x = allocator.empty_on_huge_pages((8 * 2**20,), torch.float32)  # 32 MB
    assert x.shape == (8 * 2**20,) and x.dtype == torch.float32 and x.is_contiguous()
    x.fill_(2.0)
    address = x.data_ptr()
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    mode = setting.read_text() if setting.exists() else "a kernel built without them"
    huge_kb = _mapping(address)["AnonHugePages"]
    if "[always]" in mode or "[madvise]" in mode:  # (madvise: Debian's and Ubuntu's) most of the 32 MB on 2 MB pages
        assert address % allocator.HUGE_PAGE == 0
        assert huge_kb >= 16 * 1024, huge_kb
    else:  # off, or not in this kernel: ordinary pages, still a working tensor
        assert huge_kb == 0
    view = x[-10:]
    del x
    gc.collect()
    assert _mapping(address) is not None and float(view.sum()) == 20.0  # a view keeps the memory
    del view
    gc.collect()
    assert _mapping(address) is None  # unmapped with the last view


def test_a_small_tensor_is_not_given_huge_pages():
    import torch

    x = allocator.empty_on_huge_pages((1000,), torch.float32)
    assert x.untyped_storage().nbytes() == 4000  # a plain torch.empty, not a mapping of 2 MB more
