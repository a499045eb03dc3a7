"""Live plots whose axes are not re-laid out at every frame while a run trains (issue #17): the
costliest part of a repaint in bench/ui_responsiveness.py --profile."""

from __future__ import annotations

import numpy as np
import pytest

from ftstudio.gui.live import LiveRun


@pytest.fixture
def plots(qtbot):
    from ftstudio.gui.widgets.plots import TrainingPlots

    w = TrainingPlots()
    qtbot.addWidget(w)
    w.resize(800, 500)
    w.show()
    return w


def _ranges(plots):
    return [tuple(map(tuple, p.getPlotItem().getViewBox().viewRange())) for p in
            (plots.loss_plot, plots.lr_plot, plots.acc_plot)]


def _train(live, start: int, n: int, rng) -> None:
    steps = np.arange(start, start + n, dtype=float)
    live.loss.extend(steps, 2.3 * np.exp(-steps / 400) + 0.1 * rng.random(n))
    live.lr.extend(steps, np.full(n, 0.01))
    live.version += 1


def _inside(plots, live) -> bool:
    (x0, x1), (y0, y1) = plots.loss_plot.getPlotItem().getViewBox().viewRange()
    x, y = live.loss.view()
    return x0 <= x.min() and x.max() <= x1 and y0 <= y.min() and y.max() <= y1


def test_the_axes_keep_their_range_while_steps_stay_inside_it(plots):
    live, rng = LiveRun(), np.random.default_rng(0)
    _train(live, 1, 250, rng)
    plots.refresh(live)
    first = _ranges(plots)
    assert _inside(plots, live)
    for start in range(251, 300, 10):  # a few more steps per frame, as in training
        _train(live, start, 10, rng)
        plots.refresh(live)
        assert _inside(plots, live)
    assert _ranges(plots) == first  # no axis was re-laid out (auto-range did, at every frame)
    _train(live, 301, 5000, rng)  # far past the shown range: it grows, ahead of the data
    plots.refresh(live)
    assert _inside(plots, live) and _ranges(plots)[0] != first[0]
    (x0, x1), _ = plots.loss_plot.getPlotItem().getViewBox().viewRange()
    assert (5300 - 1) / (x1 - x0) > 0.6  # the curve fills most of the width


def test_a_new_shorter_run_and_the_log_scale_start_over(plots):
    live, rng = LiveRun(), np.random.default_rng(1)
    _train(live, 1, 5000, rng)
    plots.refresh(live)
    fresh = LiveRun()
    _train(fresh, 1, 50, rng)
    plots.refresh(fresh)
    (x0, x1), _ = plots.loss_plot.getPlotItem().getViewBox().viewRange()
    assert _inside(plots, fresh) and x1 - x0 < 100  # not squeezed into the old run's 5000 steps
    plots.set_log_loss(True)
    plots.refresh(fresh)
    assert plots.loss_plot.getPlotItem().getViewBox().autoRangeEnabled()[1]  # log scale: auto-ranged


def test_a_diverging_loss_stays_in_view(plots):
    live, rng = LiveRun(), np.random.default_rng(2)
    _train(live, 1, 100, rng)
    plots.refresh(live)
    live.loss.extend([101.0, 102.0], [50.0, float("nan")])  # a spike, then NaN (not drawn)
    live.version += 1
    plots.refresh(live)
    _, (y0, y1) = plots.loss_plot.getPlotItem().getViewBox().viewRange()
    assert y1 >= 50.0 and y0 <= 0.1
