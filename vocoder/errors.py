"""The exception of the `vocoder` package, in a module of its own: importing it does not import torch."""


class CheckpointError(ValueError):
    """A model file or folder is missing, unreadable, or does not fit the architecture."""
