"""The pretrain → fine-tune wizard (see `wizard.py`); importing this package loads no torch."""

from ftstudio.gui.wizard.model import PageId, WizardModel
from ftstudio.gui.wizard.wizard import PipelineWizard

__all__ = ["PageId", "PipelineWizard", "WizardModel"]
