"""User-facing errors. The CLI prints their message on one line and exits 1 (2 for `UsageError`)."""

import contextlib
import os
import shlex
from collections.abc import Callable, Mapping

from vocoder.errors import CheckpointError  # not vocoder.checkpoint: `audioldm --help` needs no torch


class AudioLDMError(Exception):
    """Base class of every error caused by the user's input, files or environment.

    Raised as `UsageError("must be >= 1", num_samples=0)`, an error names the arguments it is about as
    their caller gave them: `str(e)` as Python keywords (`num_samples=0: must be >= 1`) and
    `e.cli_message()` as the command line's flags (`--num-samples 0: must be >= 1`; a True or missing
    (None) one alone: `--resume`, `--init-from`). Without arguments both are the message as it is.
    """

    def __init__(self, message: str = "", **arguments: object):
        self.message, self.arguments = message, arguments
        super().__init__(self._render(lambda name, value: f"{name}={_python_value(value)}", ", "))

    def cli_message(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with each argument as its command-line flag: `--` and the name in kebab-case,
        unless `flags` maps the name to another flag (`{"cutoff_hz": "--cutoff"}`)."""
        flags = flags or {}

        def flag(name: str, value: object) -> str:
            option = flags.get(name, "--" + name.replace("_", "-"))
            return option if value is True or value is None else f"{option} {shlex.quote(str(value))}"

        return self._render(flag, " ")

    def _render(self, name_value: Callable[[str, object], str], sep: str) -> str:
        if not self.arguments:
            return str(self.message)
        return sep.join(name_value(n, v) for n, v in self.arguments.items()) + ": " + str(self.message)


class UsageError(AudioLDMError):
    """An argument's value, or a combination of arguments, is invalid (exit code 2)."""


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


def _python_value(value: object) -> str:
    """Strings and paths quoted as Python writes them, anything else as `str()` (numpy numbers: `0.5`)."""
    if isinstance(value, (str, os.PathLike)):
        return repr(os.fspath(value))
    return str(value)


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
