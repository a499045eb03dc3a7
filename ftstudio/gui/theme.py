"""Colours that follow the system light/dark palette: plots, banners, highlights, the style sheet.

Widgets ask here instead of hard-coding colours, and re-ask when the palette changes, so the
app looks right in both schemes.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette

from ftstudio.core.paths import resources_dir

# colour-blind-friendly series colours (Okabe–Ito), readable on light and dark backgrounds
SERIES = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
OK = "#2e9d4f"
WRONG = "#d62728"


def palette() -> QPalette:
    return QGuiApplication.palette()


def is_dark() -> bool:
    return palette().color(QPalette.ColorRole.Window).lightness() < 128


def series_color(i: int) -> str:
    return SERIES[i % len(SERIES)]


def base() -> QColor:
    return palette().color(QPalette.ColorRole.Base)


def text() -> QColor:
    return palette().color(QPalette.ColorRole.Text)


def muted() -> QColor:
    return palette().color(QPalette.ColorRole.PlaceholderText)


def accent() -> QColor:
    return palette().color(QPalette.ColorRole.Highlight)


def banner_colors(kind: str) -> tuple[str, str]:
    """(background, border) for an ``error`` / ``warning`` / ``info`` / ``success`` banner."""
    light = {"error": ("#fde8e8", "#d62728"), "warning": ("#fff4d6", "#c98a00"),
             "info": ("#e6f0fb", "#0072B2"), "success": ("#e3f5e8", "#2e9d4f")}
    dark = {"error": ("#4a1f22", "#ff6b6b"), "warning": ("#4a3b12", "#f0b429"),
            "info": ("#1b3550", "#56B4E9"), "success": ("#1d3d27", "#5fd17e")}
    return (dark if is_dark() else light)[kind]


def style_plot(widget) -> None:
    """Give a pyqtgraph PlotWidget / GraphicsLayoutWidget the palette's colours."""
    widget.setBackground(base())
    fg = text()
    items = widget.ci.items if hasattr(widget, "ci") and hasattr(widget.ci, "items") else {}
    plots = [widget.getPlotItem()] if hasattr(widget, "getPlotItem") else list(items)
    for plot in plots:
        if not hasattr(plot, "getAxis"):
            continue
        for name in ("left", "bottom", "right", "top"):
            axis = plot.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        if plot.titleLabel is not None:
            plot.titleLabel.setText(plot.titleLabel.text, color=fg)
        if plot.legend is not None:
            back = base()
            back.setAlpha(200)
            plot.legend.setBrush(back)
            plot.legend.setLabelTextColor(fg)


def disabled_text() -> QColor:
    """Text of a disabled control: halfway to the background. Dark GTK themes give disabled tool
    buttons a colour so close to the normal one that Pause and Stop looked clickable."""
    fg, bg = palette().color(QPalette.ColorRole.WindowText), palette().color(QPalette.ColorRole.Window)
    return QColor((fg.red() + bg.red()) // 2, (fg.green() + bg.green()) // 2, (fg.blue() + bg.blue()) // 2)


def style_sheet() -> str:
    """The app's small style sheet (spacing only; colours come from the palette, and the one rule
    that needs a colour is computed from it: re-apply it when the palette changes)."""
    path = resources_dir() / "styles" / "app.qss"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    return text + f"\nQToolBar QToolButton:disabled {{ color: {disabled_text().name()}; }}\n"


def icon(name: str) -> QIcon:
    """An icon from resources/icons (empty when missing, never an error)."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()
