"""Device resolution, seeding, threads and progress reporting: the process-level plumbing."""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import sys
from collections.abc import Callable, Iterator

import torch

from .errors import UsageError

logger = logging.getLogger(__name__)

# A progress callback receives (done, total). Libraries take one as an argument; the CLI supplies it.
ProgressFn = Callable[[int, int], None]

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Map 'auto' | 'cpu' | 'cuda[:N]' | 'mps' to a usable torch.device, with a clear error if absent."""
    if isinstance(name, torch.device):
        name = str(name)  # checked like the string: torch.device("cuda") on a machine without a GPU
    if not isinstance(name, (str, type(None))):
        raise UsageError(f"give a string ({', '.join(DEVICES)}, cuda:N) or a torch.device", device=name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES[1:]:
        raise UsageError(f"unknown device; choose one of {', '.join(DEVICES)}", device=name)
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError("no CUDA GPU is available; use cpu or auto", device=name)
    if kind == "cuda" and ":" in name:
        index = name.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise UsageError(
                f"this machine has {torch.cuda.device_count()} CUDA GPU(s) (cuda:0 ...)", device=name
            )
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("MPS is not available; use cpu or auto", device=name)
    return torch.device(name)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with `seed` (or from OS entropy when None)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
        return gen
    gen.manual_seed(check_seed(seed))
    return gen


def is_integer(value) -> bool:
    """An int or numpy integer, not a bool (True is an int to Python, never a count or a seed here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_flags(**flags) -> None:
    """A UsageError naming the first of `flags` that is not a bool (or numpy bool): a string such as "no"
    would otherwise count as True."""
    import numpy as np

    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise UsageError("expected True or False", **{name: value})


def is_real(value) -> bool:
    """A real number (int, float, numpy float or integer), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# Seeds lie in [0, SEED_LIMIT): torch's CPU generator keeps only the low 32 bits of a seed, so a wider
# range would make different seeds give the same audio (the CLI's --seed and train.seed take the same).
SEED_LIMIT = 2**32


def check_seed(seed) -> int:
    """`seed` as an int, or a UsageError: an integer in [0, 2**32), the seeds torch's CPU generator
    tells apart."""
    if not is_integer(seed):
        raise UsageError("must be an integer", seed=seed)
    if not 0 <= int(seed) < SEED_LIMIT:
        raise UsageError("must lie in [0, 2**32) (torch's generator keeps 32 bits of a seed)", seed=seed)
    return int(seed)


def check_seeds(seed, count: int, what: str = "output") -> int:
    """`check_seed` for a run whose item i takes seed + i: the last of `count` items must have a seed too
    (checked before any work)."""
    seed = check_seed(seed)
    if seed + count - 1 >= SEED_LIMIT:
        raise UsageError(
            f"{what} {count - 1} would take seed {seed + count - 1}, beyond 2**32 - 1; give a smaller seed",
            seed=seed,
        )
    return seed


def check_progress(progress) -> None:
    """A UsageError unless `progress` is None or callable as progress(done, total), before any work."""
    if progress is not None and not callable(progress):
        raise UsageError(
            f"progress: expected a callable progress(done, total) or None, got {type(progress).__name__}"
        )
    if progress is not None:
        import inspect

        try:
            inspect.signature(progress).bind(0, 0)
        except TypeError:
            raise UsageError(
                f"progress: {getattr(progress, '__name__', type(progress).__name__)} cannot be called as "
                "progress(done, total)"
            ) from None
        except ValueError:  # no signature to read (some builtins): trust it
            pass


def interactive() -> bool:
    """True when progress bars make sense: stderr is a terminal and we are not under CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(
    description: str, total: int | None = None, enabled: bool | None = None
) -> Iterator[ProgressFn]:
    """Yield a `ProgressFn` that drives a Rich bar on stderr, or does nothing when not interactive."""
    if enabled is None:
        enabled = interactive() and logging.getLogger("audioldm_cli").getEffectiveLevel() <= logging.INFO
    if not enabled:
        yield lambda done, total_: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total_: int) -> None:
            bar.update(task, completed=done, total=total_)

        yield update
