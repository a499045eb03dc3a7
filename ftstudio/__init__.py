"""ftstudio: a desktop studio for training and fine-tuning PyTorch models.

Only the version lives here so that `import ftstudio` stays instant.
"""

__version__ = "0.1.0"
