"""No import cycle between ftstudio modules, counting imports inside functions (TYPE_CHECKING excluded).

`lint-imports` (pyproject's contracts) guards the layers and sibling packages; this test guards
single modules too, and proves it can fail by putting back one of the cycles the regrouping untied.
"""

from __future__ import annotations

import grimp
import pytest


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("ftstudio", exclude_type_checking_imports=True, cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {m: sorted(d for d in graph.find_modules_directly_imported_by(m) if d in graph.modules)
             for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_no_import_cycles(graph):
    assert cycles(graph) == []


@pytest.mark.parametrize("importer, imported", [
    ("ftstudio.core.finetune.sources", "ftstudio.core.engine"),  # was pretrained → pipeline.resolve_checkpoint
    ("ftstudio.core.workflow.pipeline", "ftstudio.core.workflow.demo"),  # was pipeline_recipe → demo
])
def test_putting_back_an_untied_cycle_is_caught(graph, importer, imported):
    graph.add_import(importer=importer, imported=imported)
    try:
        assert any(importer in c and imported in c for c in cycles(graph))
    finally:
        graph.remove_import(importer=importer, imported=imported)
