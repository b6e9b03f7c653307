"""clasr: continual learning for speech recognition."""

__version__ = "0.1.0"
