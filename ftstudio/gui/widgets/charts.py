"""Two small painted charts: class counts as horizontal bars, and a confusion-matrix heat map.

Painted with QPainter in palette colours (readable in light and dark schemes, crisp at any DPI);
both keep their data so tests and tooltips can read it back.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ftstudio.gui import theme
from ftstudio.gui.widgets.images import to_qimage


def _blend_array(a: QColor, b: QColor, t: np.ndarray) -> np.ndarray:
    """``a`` to ``b`` by ``t`` (clipped to 0–1), for every element of ``t``: uint8 RGB in a last axis."""
    lo = np.array([a.red(), a.green(), a.blue()], np.float64)
    hi = np.array([b.red(), b.green(), b.blue()], np.float64)
    mix = lo + (hi - lo) * np.clip(t, 0.0, 1.0)[..., None]
    return np.round(mix).astype(np.uint8)


class BarChart(QWidget):
    """Counts per class as horizontal bars, the class name on the left and the count at the end."""

    def __init__(self, placeholder: str = "", parent=None) -> None:
        super().__init__(parent)
        self.labels: list[str] = []
        self.values: list[int] = []
        self.placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 90)

    def set_data(self, labels: list[str], values: list[int]) -> None:
        self.labels, self.values = list(labels), [int(v) for v in values]
        self.setToolTip("Training images per class:\n" + "\n".join(f"{n}: {v}" for n, v in zip(labels, values))
                        if labels else "")
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 — Qt override
        return QSize(280, 220)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        if not self.values:
            p.setPen(theme.muted())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        fm = p.fontMetrics()
        n = len(self.values)
        row = (self.height() - 8) / n
        show_text = row >= fm.height() * 0.8
        name_w = min(max(fm.horizontalAdvance(s) for s in self.labels) + 8, self.width() // 3) if show_text else 4
        count_w = fm.horizontalAdvance(f"{max(self.values):,}") + 8
        width = max(self.width() - name_w - count_w - 8, 10)
        top = max(self.values) or 1
        bar = theme.accent()
        for i, (label, value) in enumerate(zip(self.labels, self.values)):
            y = 4 + i * row
            h = max(row * 0.7, 1.0)
            yc = y + (row - h) / 2
            p.fillRect(QRectF(name_w, yc, width * value / top, h), bar)
            if show_text:
                p.setPen(theme.text())
                p.drawText(QRectF(0, y, name_w - 6, row), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                           fm.elidedText(label, Qt.TextElideMode.ElideRight, name_w - 6))
                p.drawText(QRectF(name_w + width * value / top + 4, y, count_w, row), Qt.AlignmentFlag.AlignVCenter,
                           f"{value:,}")


class ConfusionMatrix(QWidget):
    """Rows are true classes, columns predictions; colour is the row's share, numbers are counts."""

    def __init__(self, placeholder: str = "", parent=None) -> None:
        super().__init__(parent)
        self.matrix: np.ndarray | None = None
        self.classes: list[str] = []
        self.title = ""
        self.placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(140, 120)
        self.setMouseTracking(True)

    def set_matrix(self, matrix: np.ndarray | None, classes: list[str] | tuple[str, ...], title: str = "") -> None:
        self.matrix = None if matrix is None else np.asarray(matrix)
        self.classes, self.title = list(classes), title
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 — Qt override
        return QSize(300, 300)

    def _geometry(self, fm) -> tuple[float, float, float, bool]:
        left, top, cell, show_labels, _ = self._layout(fm)
        return left, top, cell, show_labels

    def _layout(self, fm) -> tuple[float, float, float, bool, float]:
        """left, top, cell size, whether classes are named, and the height of rotated column labels
        (0: they fit under their cells). Names wider than a cell are turned upright, not cut to "squ…"."""
        n = len(self.matrix)
        label_w = max((fm.horizontalAdvance(c) for c in self.classes), default=0) + 8
        show_labels = n <= 30
        left = (label_w if show_labels else 4) + fm.height()
        top = fm.height() * 2 + 4

        def size(bottom: float) -> float:
            return max(min((self.width() - left - 4) / n, (self.height() - top - bottom - 8) / n), 1.0)

        cell, rotated = size(fm.height()), 0.0
        if show_labels and label_w - 8 > cell:
            rotated = min(float(label_w), self.height() * 0.3)
            cell = size(rotated)
        return left, top, cell, show_labels, rotated

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.matrix is None or not len(self.matrix):
            return
        left, top, cell, _ = self._geometry(self.fontMetrics())
        c, r = int((event.position().x() - left) // cell), int((event.position().y() - top) // cell)
        n = len(self.matrix)
        if 0 <= r < n and 0 <= c < n:
            self.setToolTip(f"true {self.classes[r]}, predicted {self.classes[c]}: {int(self.matrix[r, c])}")
        else:
            self.setToolTip("Confusion matrix: rows are the true classes, columns the predictions")

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        if self.matrix is None or not len(self.matrix):
            p.setPen(theme.muted())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        fm = p.fontMetrics()
        m = self.matrix
        n = len(m)
        left, top, cell, show_labels, rotated = self._layout(fm)
        rows = m.sum(axis=1, keepdims=True).clip(min=1)
        share = m / rows
        base, hot, fg = theme.base(), theme.accent(), theme.text()
        p.setPen(fg)
        p.drawText(QRectF(0, 0, self.width(), fm.height() + 2), Qt.AlignmentFlag.AlignHCenter, self.title)
        p.drawText(QRectF(left, fm.height() + 2, cell * n, fm.height()), Qt.AlignmentFlag.AlignHCenter,
                   "predicted →")
        p.save()
        p.translate(fm.height() - 2, top + cell * n / 2)
        p.rotate(-90)
        centre = Qt.AlignmentFlag.AlignHCenter
        p.drawText(QRectF(-cell * n / 2, -fm.height(), cell * n, fm.height()), centre, "true →")
        p.restore()
        font = p.font()
        font.setPixelSize(max(7, min(int(cell * 0.45), fm.height() - 3)))
        numbers = cell >= 11 and cell >= QFontMetrics(font).horizontalAdvance(f"{int(m.max())}") + 2
        # every cell's colour at once, drawn as one n × n image scaled without smoothing: a cell per
        # fillRect took 0.56 s a paint at 300 classes and seconds at 1,000 (an ImageNet fine-tune)
        colours = _blend_array(base, hot, share ** 0.6)
        p.drawImage(QRectF(left, top, cell * n, cell * n), to_qimage(colours.transpose(2, 0, 1)))
        for r in range(n):
            if numbers:  # cells this large: a few dozen classes at most
                p.save()
                p.setFont(font)
                for c in np.flatnonzero(m[r]):
                    colour = QColor(*map(int, colours[r, c]))
                    p.setPen(QColor("white") if colour.lightness() < 140 else QColor("black"))
                    p.drawText(QRectF(left + c * cell, top + r * cell, cell, cell), Qt.AlignmentFlag.AlignCenter,
                               str(int(m[r, c])))
                p.restore()
            if show_labels and cell >= fm.height() * 0.7:
                p.setPen(fg)
                p.drawText(QRectF(fm.height(), top + r * cell, left - fm.height() - 4, cell),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                           fm.elidedText(self.classes[r], Qt.TextElideMode.ElideRight, int(left - fm.height() - 4)))
        if show_labels and cell >= fm.height() * 0.7:
            p.setPen(fg)
            for c in range(n):
                if rotated:  # upright, reading up to the matrix
                    text = fm.elidedText(self.classes[c], Qt.TextElideMode.ElideRight, int(rotated - 4))
                    p.save()
                    p.translate(left + (c + 0.5) * cell, top + n * cell + 2 + rotated)
                    p.rotate(-90)
                    p.drawText(QRectF(0, -fm.height() / 2, rotated - 2, fm.height()),
                               Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
                    p.restore()
                    continue
                text = fm.elidedText(self.classes[c], Qt.TextElideMode.ElideRight, int(cell))
                p.drawText(QRectF(left + c * cell, top + n * cell + 2, cell, fm.height()),
                           Qt.AlignmentFlag.AlignHCenter, text)
        p.setPen(theme.muted())
        p.drawRect(QRectF(left, top, cell * n, cell * n))
