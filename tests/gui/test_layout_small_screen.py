"""At 1024×640 (a small laptop screen) nothing a newcomer needs is cut off, hidden or covered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWizard

from tests.gui.conftest import Outcomes

SMALL = (1024, 640)


def fully_visible(widget) -> bool:
    """Shown, and not clipped by a scroll area or the window's edge."""
    return widget.isVisible() and widget.visibleRegion().boundingRect().size() == widget.size()


@pytest.mark.slow
def test_after_a_run_every_page_fits_a_1024x640_window(qtbot, make_window):
    window = make_window(resize=False)
    window.resize(*SMALL)
    outcomes = Outcomes(window)
    window.session.set_train(dataclasses.replace(window.session.train, epochs=1))
    window.start_training()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=120_000)
    assert outcomes[0].status == "completed"
    from ftstudio.gui.main_window import PAGES

    for page in PAGES:
        window.show_page(page)
        qtbot.waitUntil(window.settled, timeout=60_000)
        window.resize(*SMALL)
        assert (window.width(), window.height()) == SMALL, (page, window.minimumSizeHint())

    window.show_page("train")
    train = window.train_page
    for key in ("start", "pause", "resume", "stop"):  # Resume and Stop were half hidden at the panel's foot
        assert fully_visible(train.buttons[key]), key
    for box in train.form.findChildren(QAbstractSpinBox) + train.form.findChildren(QComboBox):
        if box.isVisibleTo(train.form):  # under GTK the arrows were cut off by the scroll bar
            assert box.geometry().right() <= box.parentWidget().width(), box.objectName()
            assert train.form.width() + 1 >= train.form.minimumSizeHint().width()

    plots = train.plots  # legends sit above the curves, not on them
    for plot in (plots.loss_plot, plots.acc_plot):
        item = plot.getPlotItem()
        legend, view = item.legend.sceneBoundingRect(), item.getViewBox().sceneBoundingRect()
        assert legend.height() > 0 and not legend.intersects(view), plot


def test_the_model_toolbar_never_hides_check_undo_or_redo(qtbot, make_window):
    window = make_window(resize=False)
    window.resize(*SMALL)
    window.show_page("model")
    page = window.model_page
    bar = page.toolbar
    qtbot.waitUntil(lambda: bar.isVisible() and not bar.hidden_actions(), timeout=10_000)  # once laid out
    for key in ("undo", "redo", "check", "save", "open", "new"):
        assert fully_visible(bar.widgetForAction(page.actions_[key])), key
    assert bar.widgetForAction(page.actions_["check"]).toolButtonStyle() == bar.toolButtonStyle()  # labelled
    assert bar.compact == 1  # the file actions gave up their labels first


def test_confusion_labels_too_long_for_a_cell_are_turned_not_cut(qtbot):
    from ftstudio.gui.widgets.charts import ConfusionMatrix

    chart = ConfusionMatrix()
    qtbot.addWidget(chart)
    chart.resize(240, 240)
    classes = ["squirrel", "sunflower", "sparrow", "shark", "spider", "snail"]
    chart.set_matrix(np.eye(6, dtype=int) * 5, classes)
    chart.show()
    _, _, cell, shown, rotated = chart._layout(chart.fontMetrics())
    assert shown and rotated >= chart.fontMetrics().horizontalAdvance("sunflower")
    assert cell > 10
    chart.grab()  # paints without error
    chart.set_matrix(np.eye(3, dtype=int), ["a", "b", "c"])
    assert chart._layout(chart.fontMetrics())[4] == 0  # short names stay level


def test_a_thousand_class_confusion_matrix_paints_each_cell_in_its_colour(qtbot):
    """Painted a cell at a time it took seconds at 1,000 classes (a fine-tune on ImageNet's), at
    every expose of the window; the cells are one image now, and must still be the right colours."""
    from ftstudio.gui import theme
    from ftstudio.gui.widgets.charts import ConfusionMatrix

    chart = ConfusionMatrix()
    qtbot.addWidget(chart)
    chart.resize(1100, 1100)
    n = 1000
    chart.set_matrix(np.eye(n, dtype=int) * 4 + np.eye(n, k=1, dtype=int) * 4, [f"c{i}" for i in range(n)])
    chart.show()
    left, top, cell, _ = chart._geometry(chart.fontMetrics())
    shot = chart.grab().toImage()
    ratio = shot.devicePixelRatio()

    def colour(r: int, c: int):
        pixel = shot.pixelColor(int((left + (c + 0.5) * cell) * ratio), int((top + (r + 0.5) * cell) * ratio))
        return pixel.red(), pixel.green(), pixel.blue()

    base, hot = theme.base(), theme.accent()
    half = 0.5 ** 0.6  # a row split between two cells
    expected = tuple(round(a + (b - a) * half) for a, b in zip(base.getRgb()[:3], hot.getRgb()[:3]))
    assert colour(10, 10) == expected == colour(10, 11)
    assert colour(n - 1, n - 1) == hot.getRgb()[:3]  # the last row has one cell: all of it
    assert colour(10, 500) == base.getRgb()[:3]


def test_the_wizard_opens_within_the_screen(qtbot, window):
    wizard = window.open_wizard()
    qtbot.waitUntil(lambda: wizard.isVisible())
    screen = wizard.screen().availableGeometry()
    assert wizard.width() <= screen.width() and wizard.height() <= screen.height()
    for which in (QWizard.WizardButton.NextButton, QWizard.WizardButton.CancelButton):
        assert fully_visible(wizard.button(which))
    wizard.reject()


def test_disabled_tool_buttons_are_dimmed_in_a_dark_palette(qtbot, window):
    """Dark GTK themes drew disabled Pause/Resume/Stop nearly as bright as Start."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    old = app.palette()
    dark = QPalette(old)
    for role, colour in ((QPalette.ColorRole.Window, "#202020"), (QPalette.ColorRole.WindowText, "#f0f0f0")):
        dark.setColor(role, QColor(colour))
    try:
        app.setPalette(dark)
        qtbot.waitUntil(lambda: "#888888" in app.styleSheet(), timeout=5_000)  # halfway: the rule followed
        assert not window.actions_["pause"].isEnabled()
        assert "QToolBar QToolButton:disabled { color: #888888; }" in app.styleSheet()
    finally:
        app.setPalette(old)
        QApplication.processEvents()


def test_the_wizards_two_run_legends_sit_above_the_curves(qtbot):
    """The wizard's legend hid the from-scratch validation curve."""
    from ftstudio.gui.widgets.plots import OverlayPlots, TrainingPlots

    plots = TrainingPlots(runs=("Fine-tuning", "From scratch"))
    qtbot.addWidget(plots)
    plots.resize(600, 320)
    plots.build()
    plots.stack.setCurrentIndex(1)
    overlay = OverlayPlots()
    qtbot.addWidget(overlay)
    overlay.resize(600, 260)
    overlay.set_runs([("fine-tuned", [{"epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0, "train_loss": 1.2}]),
                      ("from scratch", [{"epoch": 1, "val_accuracy": 0.3, "val_loss": 1.5, "train_loss": 1.6}])])
    plots.show()
    overlay.show()
    qtbot.waitExposed(overlay)
    for plot in (plots.loss_plot, plots.acc_plot, overlay.acc_plot):
        item = plot.getPlotItem()
        legend, view = item.legend, item.getViewBox()
        qtbot.waitUntil(lambda legend=legend, view=view: legend.sceneBoundingRect().height() > 0  # once laid out
                        and not legend.sceneBoundingRect().intersects(view.sceneBoundingRect()), timeout=5_000)
    assert len(overlay.acc_plot.getPlotItem().legend.items) == 2
