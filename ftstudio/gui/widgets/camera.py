"""Camera capture for the Build data page, where Qt Multimedia is installed (``ftstudio[camera]``).

Qt Multimedia ships in PySide6-Addons, an optional extra: without it — or without its system
libraries (PulseAudio's libpulse), or without a camera — the page hides its Camera button, so
nothing here is imported unless a probe finds it. The preview is a QMediaCaptureSession that
feeds a QCamera into a QVideoSink; Capture takes the sink's latest frame as a QImage, which the
page adds to the selected class like a pasted image (copied in, undoable).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from PySide6.QtCore import QLoggingCategory, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

# Qt Multimedia warns, on first use, about every optional library it looks for and does not find
# (PipeWire, VA-API): notes about the machine, not about a fault of ours or the user's
_QUIET = ("qt.multimedia.symbolsresolver.warning=false\n"
          "qt.multimedia.ffmpeg.info=false")


def multimedia() -> ModuleType | None:
    """PySide6.QtMultimedia, or None when it cannot be imported (the extra is not installed, or a
    system library it links against is missing)."""
    QLoggingCategory.setFilterRules(_QUIET)
    try:
        return importlib.import_module("PySide6.QtMultimedia")  # (honours a blocked import in sys.modules)
    except ImportError:
        return None


def video_inputs() -> list:
    """The cameras Qt Multimedia sees (QCameraDevice), empty without the module or a camera."""
    mm = multimedia()
    return list(mm.QMediaDevices.videoInputs()) if mm is not None else []


def frame_image(frame) -> QImage:
    """A frame (QVideoFrame, or already a QImage) as an RGB QImage; null when the frame is empty."""
    if isinstance(frame, QImage):
        image = frame
    elif frame is None or not frame.isValid():
        return QImage()
    else:
        image = frame.toImage()
    return image.convertToFormat(QImage.Format.Format_RGB888) if not image.isNull() else image


class CameraDialog(QDialog):
    """A live preview with Capture: each press emits ``captured(QImage)`` with the latest frame."""

    captured = Signal(QImage)

    def __init__(self, device=None, target: str = "", parent: QWidget | None = None) -> None:
        """``device``: the QCameraDevice to open (None: no camera is started — frames then come only from
        ``sink``, as in tests). ``target`` names the class the captures go to."""
        super().__init__(parent)
        mm = multimedia()
        if mm is None:
            raise ImportError("Qt Multimedia is not available")
        self.setWindowTitle("Camera")
        self.frame = None  # the latest QVideoFrame
        self.sink = mm.QVideoSink(self)
        self.sink.videoFrameChanged.connect(self._frame)
        self.session = mm.QMediaCaptureSession(self)
        self.session.setVideoSink(self.sink)
        self.camera = None
        self.preview = QLabel("Starting the camera…")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 240)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.status = QLabel(f"Captures go to <b>{target}</b>." if target else "")
        self.status.setWordWrap(True)
        self.capture_button = QPushButton("Capture")
        self.capture_button.setDefault(True)
        self.capture_button.setEnabled(False)  # until a frame has come
        self.capture_button.clicked.connect(self.capture)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.capture_button)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addLayout(row)
        self.resize(560, 480)
        if device is not None:
            self.camera = mm.QCamera(device, self)
            self.camera.errorOccurred.connect(lambda _error, text: self._failed(text))
            self.session.setCamera(self.camera)
            self.camera.start()
            if self.camera.error() != mm.QCamera.Error.NoError:  # (a device gone already fails in the constructor)
                self._failed(self.camera.errorString())

    def _failed(self, text: str) -> None:
        self.preview.setText(f"The camera failed: {text or 'no picture'}. Check that it is plugged in and that "
                             f"no other program is using it.")
        self.preview.setWordWrap(True)

    def _frame(self, frame) -> None:
        self.frame = frame
        image = frame_image(frame)
        if image.isNull():
            return
        self.capture_button.setEnabled(True)
        self.preview.setPixmap(QPixmap.fromImage(image).scaled(
            self.preview.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def capture(self) -> None:
        image = frame_image(self.frame)
        if not image.isNull():
            self.captured.emit(image.copy())  # (a frame's image may share the sink's buffer)

    def closeEvent(self, event) -> None:  # noqa: N802 — Qt override
        if self.camera is not None:
            self.camera.stop()
        super().closeEvent(event)
