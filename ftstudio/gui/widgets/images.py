"""A grid of small images with captions — dataset samples, augmentations, validation predictions.

Images arrive as uint8 ``[C, H, W]`` numpy arrays (what `Split.images` returns). The grid picks
the largest cell size that fits every item in the widget, so it never needs a scroll bar; tiny
images (8×8 digits) are enlarged without blurring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QLineEdit, QListView, QListWidget, QSizePolicy, QWidget

from ftstudio.gui import theme


def thumbnail_list(icon: int, cell: QSize) -> QListWidget:
    """A list of images shown as a wrapping grid of thumbnails (``icon`` px, one ``cell`` each) that
    reflows with the width and cannot be rearranged by dragging: the builder's class images, the Try
    page's results, the mistakes gallery."""
    thumbs = QListWidget()
    thumbs.setViewMode(QListView.ViewMode.IconMode)
    thumbs.setIconSize(QSize(icon, icon))
    thumbs.setGridSize(cell)
    thumbs.setResizeMode(QListView.ResizeMode.Adjust)
    thumbs.setMovement(QListView.Movement.Static)
    return thumbs


def search_field(placeholder: str, tooltip: str, on_text, on_enter) -> QLineEdit:
    """A live search box: ``on_text(text)`` as the user types, ``on_enter()`` on Enter (pick the first match)."""
    field = QLineEdit()
    field.setPlaceholderText(placeholder)
    field.setClearButtonEnabled(True)
    field.setToolTip(tooltip)
    field.textChanged.connect(on_text)
    field.returnPressed.connect(on_enter)
    return field


@dataclass(frozen=True)
class GridItem:
    image: np.ndarray  # uint8 [C, H, W]
    caption: str = ""
    mark: str = ""  # "", "ok" or "wrong"
    tooltip: str = ""


def to_qimage(image: np.ndarray) -> QImage:
    """A QImage that owns a copy of a uint8 ``[C, H, W]`` array (1 or 3 channels)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    c, h, w = arr.shape
    if c == 1:
        data = np.ascontiguousarray(arr[0])
        fmt, stride = QImage.Format.Format_Grayscale8, w
    else:
        data = np.ascontiguousarray(arr[:3].transpose(1, 2, 0))
        fmt, stride = QImage.Format.Format_RGB888, 3 * w
    return QImage(data.data, w, h, stride, fmt).copy()


class ImageGrid(QWidget):
    """Paints ``GridItem``s in a grid sized to fit; mistakes get a red frame, hits a green one."""

    CAPTION = 16

    def __init__(self, placeholder: str = "", parent=None, columns: int | None = None) -> None:
        super().__init__(parent)
        self.columns = columns  # fixed, or None: whatever fits best
        self.items: list[GridItem] = []
        self._images: list[QImage] = []
        self.placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 90)
        self.setMouseTracking(True)

    def set_items(self, items: list[GridItem]) -> None:
        self.items = list(items)
        self._images = [to_qimage(i.image) for i in self.items]
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.set_items([])

    def sizeHint(self) -> QSize:  # noqa: N802 — Qt override
        return QSize(360, 240)

    def _layout(self) -> tuple[int, int, float]:
        """(columns, rows, cell size) that show every item as large as possible."""
        n = len(self.items)
        w, h = max(self.width() - 4, 1), max(self.height() - 4, 1)
        caption = self.CAPTION if any(i.caption for i in self.items) else 0
        best = (1, n, 0.0)
        for cols in ([self.columns] if self.columns else range(1, n + 1)):
            rows = math.ceil(n / cols)
            size = min(w / cols, h / rows - caption)
            if size > best[2]:
                best = (cols, rows, size)
        return best

    def cell_at(self, x: float, y: float) -> int | None:
        if not self.items:
            return None
        cols, _, size = self._layout()
        caption = self.CAPTION if any(i.caption for i in self.items) else 0
        col, row = int((x - 2) // size), int((y - 2) // (size + caption))
        index = row * cols + col
        return index if 0 <= col < cols and 0 <= index < len(self.items) else None

    def event(self, event) -> bool:
        if event.type() == event.Type.ToolTip:
            index = self.cell_at(event.pos().x(), event.pos().y())
            self.setToolTip(self.items[index].tooltip or self.items[index].caption if index is not None else "")
        return super().event(event)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        if not self.items:
            p.setPen(theme.muted())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        cols, _, size = self._layout()
        caption = self.CAPTION if any(i.caption for i in self.items) else 0
        pad = max(1.0, size * 0.06)
        font = p.font()
        font.setPointSizeF(max(6.0, min(9.0, size / 6)))
        p.setFont(font)
        for k, (item, img) in enumerate(zip(self.items, self._images)):
            r, c = divmod(k, cols)
            x, y = 2 + c * size, 2 + r * (size + caption)
            box = QRectF(x + pad, y + pad, size - 2 * pad, size - 2 * pad)
            scale = min(box.width() / img.width(), box.height() / img.height())
            target = QRectF(0, 0, img.width() * scale, img.height() * scale)
            target.moveCenter(box.center())
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 2)
            p.drawImage(target, img)
            if item.mark:
                p.setPen(QPen(QColor(theme.WRONG if item.mark == "wrong" else theme.OK), max(1.5, pad * 0.8)))
                p.drawRect(target.adjusted(-pad / 2, -pad / 2, pad / 2, pad / 2))
            if caption:
                p.setPen(QColor(theme.WRONG) if item.mark == "wrong" else theme.text())
                text_rect = QRectF(x, y + size - 1, size, caption)
                p.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                           p.fontMetrics().elidedText(item.caption, Qt.TextElideMode.ElideRight, int(size)))
