"""The one error type of the models layer."""

from __future__ import annotations


class ModelError(ValueError):
    """A model file, folder or name is unusable; the message says which and why."""
