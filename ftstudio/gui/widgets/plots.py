"""Training curves with pyqtgraph: the live plots of the Train page and the Runs page's overlay.

Live plots read `LiveRun` buffers when their page's ~15 Hz timer asks (``refresh``), with
clip-to-view and peak downsampling so a long run stays cheap; the finite check stays on because
losses can turn NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem, QGridLayout, QHBoxLayout, QLabel, QStackedLayout, QWidget

from ftstudio.gui import theme
from ftstudio.gui.live import LiveRun

if TYPE_CHECKING:
    import pyqtgraph as pg

SMOOTH_POINTS = 600  # the smoothed loss is drawn thinned to about this many points


def load_pyqtgraph():
    """pyqtgraph, imported on first use: the window paints before it is loaded (start-up time)."""
    import pyqtgraph

    if not getattr(load_pyqtgraph, "configured", False):
        pyqtgraph.setConfigOptions(antialias=True)
        load_pyqtgraph.configured = True
    return pyqtgraph


def _hint(text: str) -> QLabel:
    """The centred line that stands where plots will be, until there is something to draw."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setObjectName("hint")
    return label


def _plot(title: str, x: str, y: str) -> pg.PlotWidget:
    w = load_pyqtgraph().PlotWidget()
    item = w.getPlotItem()
    item.setTitle(title, size="10pt")
    item.setLabel("bottom", x)
    item.setLabel("left", y)
    item.showGrid(x=True, y=True, alpha=0.2)
    item.setMenuEnabled(False)
    for axis in ("left", "bottom"):
        # axes keep their rendering between frames (text is the costly part of a repaint); pyqtgraph
        # invalidates the cache itself when the range or the labels change
        item.getAxis(axis).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    w.setMinimumSize(180, 110)  # three of them and the confusion matrix fit a 1024×640 window
    return w


def _legend_on_top(plot: pg.PlotWidget, columns: int) -> pg.LegendItem:
    """The legend in the title's row, above the curves and never over them (at 1024×640 a legend in
    the plot area hid the curves it named — the wizard's from-scratch validation curve behind it).
    The title goes: the y axis's label names the plot, and the window keeps its height."""
    pg = load_pyqtgraph()
    item = plot.getPlotItem()
    item.setTitle(None)
    item.layout.removeItem(item.titleLabel)  # its cell is the legend's now
    legend = pg.LegendItem(colCount=columns, labelTextSize="8pt", verSpacing=-8, horSpacing=10)  # laid out
    item.layout.addItem(legend, 0, 1)
    item.legend = legend  # curves with a name add themselves, as with addLegend()
    return legend


def _fraction_ticks(plot: pg.PlotWidget) -> None:
    """0, 0.5 and 1 labelled, quarters as grid lines: automatic ticks every 0.2 ran into each other
    on the short accuracy plot of a 1024×640 window."""
    plot.getPlotItem().getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")],
                                                 [(0.25, ""), (0.75, "")]])


def _curve(plot: pg.PlotWidget, name: str, color: str, width: float = 2.0, style=Qt.PenStyle.SolidLine,
           symbol: str | None = None, alpha: int = 255, antialias: bool | None = None) -> pg.PlotDataItem:
    pg = load_pyqtgraph()
    c = pg.mkColor(color)
    c.setAlpha(alpha)
    pen = pg.mkPen(color=c, width=width, style=style)
    kwargs = {"symbol": symbol, "symbolSize": 6, "symbolBrush": color, "symbolPen": None} if symbol else {}
    if antialias is not None:
        kwargs["antialias"] = antialias
    item = plot.plot([], [], name=name or None, pen=pen, **kwargs)
    item.setClipToView(True)
    item.setDownsampling(auto=True, method="peak")
    return item


def _best_line(plot: pg.PlotWidget) -> pg.InfiniteLine:
    """A dashed vertical line at the best epoch, named in the legend (a label on it would hide curves)."""
    pg = load_pyqtgraph()
    pen = pg.mkPen(theme.OK, width=1.5, style=Qt.PenStyle.DashLine)
    line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
    line.hide()
    plot.addItem(line)
    plot.plot([], [], pen=pen, name="best epoch")  # the legend entry
    return line


SERIES = ("loss", "smooth", "val_loss", "train_acc", "val_acc", "lr")


class TrainingPlots(QWidget):
    """Loss per step (raw and smoothed) with per-epoch validation loss, accuracy, learning rate.

    ``runs`` names the runs drawn on the same axes (the wizard overlays a fine-tune run and its
    from-scratch baseline): one run keeps a colour per series; several get a colour per run."""

    def __init__(self, parent=None, runs: tuple[str, ...] = ("",)) -> None:
        super().__init__(parent)
        self.runs = runs
        self.placeholder = _hint("Live curves appear here once training starts: the loss of every step, "
                                 "accuracy after each epoch, and the learning rate.")
        self.stack = QStackedLayout(self)
        self.stack.addWidget(self.placeholder)
        self._built = False  # the pyqtgraph widgets are made on first need (see _build)
        self._seen: tuple = ()
        self._lengths: dict[tuple[int, str], tuple[int, int]] = {}  # (run, curve) → (series, length) last drawn

    def __getattr__(self, name: str):
        if name in ("loss_plot", "acc_plot", "lr_plot", "run_curves", "curves", "best_lines") and not self._built:
            self._build()
            return getattr(self, name)
        raise AttributeError(name)

    def build(self) -> None:
        """Make the pyqtgraph widgets now (they are otherwise made on first need)."""
        if not self._built:
            self._build()

    def _build(self) -> None:
        self._built = True
        runs = self.runs
        self.loss_plot = _plot("Loss", "step", "loss")
        self.acc_plot = _plot("Accuracy", "epoch", "accuracy")
        self.lr_plot = _plot("Learning rate", "step", "lr")
        self.lr_plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        _legend_on_top(self.loss_plot, 4 if len(runs) == 1 else 2)
        _legend_on_top(self.acc_plot, 3 if len(runs) == 1 else 2)
        self.run_curves = [self._curves(label, i, len(runs) > 1) for i, label in enumerate(runs)]
        self.curves = self.run_curves[0]
        self.acc_plot.setYRange(0, 1, padding=0.02)
        _fraction_ticks(self.acc_plot)
        self.best_lines = (_best_line(self.loss_plot), _best_line(self.acc_plot)) if len(runs) == 1 else ()
        charts = QWidget()
        grid = QGridLayout(charts)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(self.acc_plot, 1, 0)
        grid.addWidget(self.lr_plot, 1, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        grid.setColumnStretch(0, 3)  # accuracy (with its legend) wider than the learning rate
        grid.setColumnStretch(1, 2)
        self.stack.addWidget(charts)
        self.loss_plot.setToolTip("Training loss per step (faint), smoothed (bold), and validation loss per epoch "
                                  "(dots); the dashed line marks the best epoch")
        self.acc_plot.setToolTip("Accuracy on the training and validation images after each epoch")
        self.lr_plot.setToolTip("The learning rate the optimizer used at each step")
        self.restyle()

    def _curves(self, label: str, i: int, overlay: bool) -> dict[str, pg.PlotDataItem]:
        if not overlay:
            c0, c1, c2 = theme.series_color(0), theme.series_color(1), theme.series_color(2)
            # the per-step curve is the one with 10^6 points: no antialiasing keeps each frame cheap
            return {"loss": _curve(self.loss_plot, "train (per step)", c0, 1.0, alpha=90, antialias=False),
                    "smooth": _curve(self.loss_plot, "train (smoothed)", c0, 2.0),
                    "val_loss": _curve(self.loss_plot, "validation", c1, 2.0, symbol="o"),
                    "train_acc": _curve(self.acc_plot, "train", c0, 2.0, symbol="o"),
                    "val_acc": _curve(self.acc_plot, "validation", c1, 2.0, symbol="o"),
                    "lr": _curve(self.lr_plot, "lr", c2, 2.0)}
        c, dash = theme.series_color(i), Qt.PenStyle.DashLine
        return {"loss": _curve(self.loss_plot, "", c, 1.0, alpha=60, antialias=False),
                "smooth": _curve(self.loss_plot, f"{label}: train", c, 2.0),
                "val_loss": _curve(self.loss_plot, f"{label}: validation", c, 1.5, dash, symbol="o"),
                "train_acc": _curve(self.acc_plot, f"{label}: train", c, 1.2, dash),
                "val_acc": _curve(self.acc_plot, f"{label}: validation", c, 2.0, symbol="o"),
                "lr": _curve(self.lr_plot, "", c, 2.0)}

    def set_log_loss(self, on: bool) -> None:
        if not self._built:
            self._build()
        self.loss_plot.getPlotItem().setLogMode(y=on)
        self._seen = ()
        self._lengths.clear()

    def refresh(self, *lives: LiveRun) -> bool:
        """Redraw from the runs' buffers (one per name given at construction) if any changed; True when so."""
        key = tuple((id(live), live.version) for live in lives)
        if key == self._seen:
            return False
        self._seen = key
        if not any(len(live.loss) or len(live.val_acc) for live in lives):
            self.stack.setCurrentIndex(0)
            return True
        if not self._built:
            self._build()
        self.stack.setCurrentIndex(1)
        for run, (curves, live) in enumerate(zip(self.run_curves, lives)):
            for name in SERIES:
                series = getattr(live, name)
                if self._lengths.get((run, name)) == (id(series), len(series)):
                    continue  # unchanged: leave its plot alone, so it is not repainted
                self._lengths[(run, name)] = (id(series), len(series))
                x, y = series.view()
                if name == "smooth" and len(x) > SMOOTH_POINTS:
                    # a thick line over 10^6 points is slow to stroke, and a smoothed curve loses nothing
                    # visible when thinned (the thin per-step curve keeps every peak via downsampling)
                    step = len(x) // SMOOTH_POINTS + 1
                    x, y = np.append(x[::step], x[-1]), np.append(y[::step], y[-1])
                curves[name].setData(x, y)
        _fit_flat(self.lr_plot, np.concatenate([live.lr.view()[1] for live in lives] or [np.zeros(0)]))
        for plot, name in ((self.loss_plot, "loss"), (self.lr_plot, "lr"), (self.acc_plot, "val_acc")):
            steps = [getattr(live, name).view()[0] for live in lives]
            steps = [x for x in steps if len(x)]
            if steps:
                _grow_x(plot, min(float(x[0]) for x in steps), max(float(x[-1]) for x in steps))
        _grow_y(self.loss_plot, [getattr(live, name).view()[1] for live in lives for name in ("loss", "val_loss")])
        if self.best_lines:
            live = lives[0]
            for line, value in zip(self.best_lines, (live.best_step, live.best_epoch)):
                line.setVisible(bool(live.best_epoch))
                if live.best_epoch:
                    line.setValue(value)
        return True

    def point_counts(self, run: int = 0) -> dict[str, int]:
        """How many points each curve of a run holds (for tests and the status line)."""
        return {name: len(c.getData()[0] if c.getData()[0] is not None else [])
                for name, c in self.run_curves[run].items()}

    def restyle(self) -> None:
        if self._built:
            for w in (self.loss_plot, self.acc_plot, self.lr_plot):
                theme.style_plot(w)


NICE = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def _grow_x(plot: pg.PlotWidget, lo: float, hi: float) -> None:
    """Steps (and epochs) grow every frame: auto-ranged, the x axis was re-laid out and its text redrawn every
    frame (the costliest part of a repaint, profiled by bench/ui_responsiveness.py --profile). The
    range grows ahead of the data in steps of 1-1.5-2-3-4-5-6-8 × 10^k instead, so the axis keeps
    its cached rendering between steps; a new, shorter run starts over."""
    shown = getattr(plot, "_steps_shown", None)
    if shown is not None and shown[0] == lo and shown[2] <= hi <= shown[1]:
        return
    span = max(hi - lo, 1.0)
    scale = 10.0 ** np.floor(np.log10(span))
    top = lo + next(m * scale for m in NICE if m * scale >= span)
    plot.setXRange(lo, top, padding=0.02)  # (turns x auto-range off)
    plot._steps_shown = (lo, top, lo + (top - lo) / 3)  # fewer steps than a third: a new run, start over


def _grow_y(plot: pg.PlotWidget, ys: list) -> None:
    """The loss axis likewise: its range moves on a grid of half-decades of the data's span, and only
    when the data leaves it (or fills less than a third of it), not at every new lowest loss.
    A log-scale axis (the Log toggle) auto-ranges as before."""
    item = plot.getPlotItem()
    if item.getAxis("left").logMode:
        if getattr(plot, "_loss_shown", None) is not None:
            plot._loss_shown = None
            item.enableAutoRange(axis="y")
        return
    finite = [y[np.isfinite(y)] for y in ys]
    finite = [y for y in finite if len(y)]
    if not finite:
        return
    lo, hi = min(float(y.min()) for y in finite), max(float(y.max()) for y in finite)
    shown = getattr(plot, "_loss_shown", None)
    if shown is not None and shown[0] <= lo and hi <= shown[1] and hi - lo >= (shown[1] - shown[0]) / 3:
        return
    grid = 10.0 ** np.floor(np.log10(max(hi - lo, 1e-12))) / 2
    bottom, top = np.floor(lo / grid) * grid, np.ceil(hi / grid) * grid
    top = top if top > bottom else bottom + grid
    plot.setYRange(bottom, top, padding=0.02)
    plot._loss_shown = (bottom, top)


def _fit_flat(plot: pg.PlotWidget, y) -> None:
    """A constant curve (a fixed learning rate) sits at 80% height instead of in a ±400% void."""
    finite = y[np.isfinite(y)]
    if not len(finite):
        return
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo <= 1e-9 * max(abs(hi), 1e-30):
        plot.setYRange(0.0, hi * 1.25 if hi > 0 else 1.0, padding=0)
    else:
        plot.enableAutoRange(axis="y")


class OverlayPlots(QWidget):
    """Validation accuracy and loss per epoch of several runs on shared axes, one colour per run."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.layout_ = QHBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.names: list[str] = []
        self._runs: list[tuple[str, list[dict]]] = []
        self._built = False  # pyqtgraph widgets are made when there are curves to draw (start-up time)
        self._drawn = True
        # until a run is selected: a line saying what will be here, not empty axes — building those
        # imported pyqtgraph before the first paint and made the Runs page the slowest to be ready
        self.placeholder = _hint("Select runs above to compare their validation accuracy and loss per epoch.")
        self.layout_.addWidget(self.placeholder)

    def __getattr__(self, name: str):
        if name in ("acc_plot", "loss_plot") and not self._built:
            self._build()
            return getattr(self, name)
        raise AttributeError(name)

    def _build(self) -> None:
        self._built = True
        self.placeholder.hide()
        self.acc_plot = _plot("Validation accuracy", "epoch", "accuracy")
        self.loss_plot = _plot("Loss (solid: validation, dashed: train)", "epoch", "loss")
        self.acc_plot.setYRange(0, 1, padding=0.02)
        _fraction_ticks(self.acc_plot)
        _legend_on_top(self.acc_plot, 4)  # the loss plot's curves have the same colours: one legend is enough
        self.layout_.addWidget(self.acc_plot)
        self.layout_.addWidget(self.loss_plot)
        self.acc_plot.setToolTip("Validation accuracy per epoch of the selected runs")
        self.loss_plot.setToolTip("Validation (solid) and training (dashed) loss per epoch of the selected runs")
        self.restyle()

    def showEvent(self, event) -> None:  # noqa: N802 — Qt override
        if not self._drawn and (self._runs or self._built):
            self._draw()
        super().showEvent(event)

    def set_runs(self, runs: list[tuple[str, list[dict]]]) -> None:
        """``runs`` is [(label, epoch rows from metrics.jsonl)]; drawn now if visible, else when shown."""
        self._runs = list(runs)
        self.names = [label for label, _ in self._runs]
        self._drawn = False
        if self.isVisible() and (self._runs or self._built):
            self._draw()

    def _draw(self) -> None:
        self._drawn = True
        if not self._built:
            self._build()
        for w in (self.acc_plot, self.loss_plot):
            w.getPlotItem().clear()
            legend = w.getPlotItem().legend
            if legend is not None:
                legend.clear()
        for i, (label, rows) in enumerate(self._runs):
            color = theme.series_color(i)
            train = [(r["epoch"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
            val = [(r["epoch"], r["val_accuracy"]) for r in rows if r.get("val_accuracy") is not None]
            vloss = [(r["epoch"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
            if val:
                _curve(self.acc_plot, label, color, 2.0, symbol="o").setData(*zip(*val))
            if vloss:
                _curve(self.loss_plot, label, color, 2.0).setData(*zip(*vloss))
            if train:
                _curve(self.loss_plot, "", color, 1.2, Qt.PenStyle.DashLine).setData(*zip(*train))

    def restyle(self) -> None:
        if self._built:
            for w in (self.acc_plot, self.loss_plot):
                theme.style_plot(w)
