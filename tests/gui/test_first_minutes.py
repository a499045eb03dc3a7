"""A newcomer's first minutes in the window (issue #20): no crash at start, no stale state."""

from __future__ import annotations

import sys
import types


def test_status_bar_timer_ignores_torch_while_it_is_still_importing(make_window, monkeypatch):
    """First start: the memory timer fired while the background `import torch` was half done
    (``partially initialized module 'torch' has no attribute 'cuda'``), and a crash dialog opened."""
    window = make_window(settle=False)  # no events processed yet: the engine has not started loading
    assert not window.session.ready
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # what sys.modules holds mid-import
    window._update_status()
    window.memory_timer.timeout.emit()
    assert window.status_memory.text().startswith("RAM ")
    assert "GPU" not in window.status_memory.text()
