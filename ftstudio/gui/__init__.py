"""The desktop app (PySide6 + pyqtgraph): a thin layer over `ftstudio.core`.

`ftstudio.gui.app.run_app` is the entry point; nothing here is imported by the engine.
"""
