"""User-facing errors. The CLI prints their message on one line and exits 1 (2 for `UsageError`)."""

import contextlib

from vocoder.errors import CheckpointError  # not vocoder.checkpoint: `audioldm --help` needs no torch


class AudioLDMError(Exception):
    """Base class of every error caused by the user's input, files or environment."""


class UsageError(AudioLDMError):
    """An option value or combination of options is invalid (exit code 2)."""


class AudioReadError(AudioLDMError):
    """An input file is missing, unreadable, empty or holds non-finite samples."""


class ModelError(AudioLDMError):
    """A model folder or checkpoint is missing, corrupt, or does not fit the configuration."""


class ModelFileError(ModelError, CheckpointError):
    """A `vocoder` CheckpointError raised through the library's entry points (`AudioLDM.from_pretrained`,
    `train`): an AudioLDMError like every other user error, still caught by `except CheckpointError`."""


@contextlib.contextmanager
def as_model_errors():
    """Inside the block, a plain `vocoder` CheckpointError becomes a `ModelFileError` (the library's entry
    points use it, so that `except AudioLDMError` catches unreadable model files too)."""
    try:
        yield
    except CheckpointError as e:
        if isinstance(e, AudioLDMError):
            raise
        raise ModelFileError(str(e)) from e


# Every exception class the CLI reports as a one-line error rather than a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (AudioLDMError, CheckpointError)

__all__ = [
    "AudioLDMError",
    "UsageError",
    "AudioReadError",
    "ModelError",
    "ModelFileError",
    "as_model_errors",
    "CheckpointError",
    "USER_ERRORS",
]
