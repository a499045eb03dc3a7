"""The pretrain → fine-tune wizard (see `wizard.py`); importing this package loads no torch, and
its pages load on first use (the first-launch offer must not slow the window's start)."""

__all__ = ["PageId", "PipelineWizard", "WizardModel"]


def __getattr__(name: str):
    if name in ("PageId", "WizardModel"):
        from ftstudio.gui.wizard import model

        return getattr(model, name)
    if name == "PipelineWizard":
        from ftstudio.gui.wizard.wizard import PipelineWizard

        return PipelineWizard
    raise AttributeError(name)
