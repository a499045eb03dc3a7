"""Render resources/icons/ftstudio.svg to the PNG sizes desktops and installers ask for.

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py
"""

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> None:
    app = QGuiApplication([])  # noqa: F841  (QImage painting needs an application)
    icons = Path(__file__).resolve().parents[1] / "resources" / "icons"
    renderer = QSvgRenderer(str(icons / "ftstudio.svg"))
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(icons / f"ftstudio-{size}.png"))
    print(f"wrote {len(SIZES)} PNGs to {icons}")


if __name__ == "__main__":
    main()
