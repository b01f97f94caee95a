"""Batch-script plumbing for the commands: prompt files, stable output names, exclusive file creation."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from .errors import AudioLDMError, UsageError

SLUG_MAX = 60
NAME_MAX = 100
# A path of "-" stands for standard input (an audio input) or standard output (an audio output).
STDIO = "-"


def is_stdio(path: str | os.PathLike | None) -> bool:
    """True for "-", which stands for standard input or output, as in sox and ffmpeg."""
    return path is not None and os.fspath(path) == STDIO


def slugify(text: str) -> str:
    """A file-name-safe stem: lowercase letters, digits and '-', at most 60 characters ('prompt' if empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:SLUG_MAX].rstrip("-")
    return slug or "prompt"


def safe_name(text: str) -> str:
    """A user-given output name (name<TAB>prompt), kept as written where a file name allows: letters,
    digits, '_', '.' and '-' (any other run becomes '-'), no leading or trailing '.' or '-', at most 100
    characters ('prompt' if nothing is left)."""
    name = re.sub(r"[^\w.-]+", "-", text).strip(".-")[:NAME_MAX].rstrip(".-")
    return name or "prompt"


def read_prompts_file(path: str | os.PathLike) -> list[tuple[str | None, str]]:
    """(name or None, prompt) per line of `path`: `prompt` or `name<TAB>prompt`; blank and '#' lines skipped.
    A path of "-" reads standard input."""
    path = Path(path)
    try:
        if is_stdio(path):
            if sys.stdin is None or sys.stdin.isatty():  # as for audio: a terminal would wait unseen
                raise UsageError("--prompts-file -: standard input is a terminal; pipe the prompts in")
            stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
            text = stream.read().decode("utf-8-sig") if stream is not None else sys.stdin.read()
            path = "- (standard input)"
        else:
            text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows Notepad) is not part of line 1
    except FileNotFoundError:
        raise UsageError(f"--prompts-file {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--prompts-file {path}: cannot read it as UTF-8 text ({e})") from None
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, prompt = line.partition("\t")
        if not sep:
            name, prompt = None, line
        elif not name.strip():
            raise UsageError(f"--prompts-file {path} line {number}: empty name before the tab")
        if not prompt.strip():
            raise UsageError(f"--prompts-file {path} line {number}: empty prompt")
        items.append((name.strip() if name is not None else None, prompt.strip()))
    if not items:
        raise UsageError(f"--prompts-file {path}: holds no prompts")
    return items


def unique_stems(stems: list[str]) -> list[str]:
    """Make repeated stems unique in order of appearance: a, a -> a, a-2 (stable across runs), skipping
    suffixed names that another stem already is (a, a, a-2 -> a, a-3, a-2). Stems that differ only in
    case count as repeats (Dog, dog -> Dog, dog-2): one file on macOS and Windows."""
    taken = {stem.casefold() for stem in stems}
    count: dict[str, int] = {}
    out = []
    for stem in stems:
        key = stem.casefold()
        if key not in count:
            count[key] = 1
            out.append(stem)
            continue
        n = count[key] + 1
        while f"{key}-{n}" in taken:
            n += 1
        count[key] = n
        taken.add(f"{key}-{n}")
        out.append(f"{stem}-{n}")
    return out


def already_exists(path: Path, more: int = 0) -> UsageError:
    """The error for an output that exists without -y; an empty file is most likely the name claimed by
    a run that was killed (SIGKILL, a crash) before it could write or remove it (`claim_output`)."""
    try:
        empty = path.is_file() and path.stat().st_size == 0
    except OSError:
        empty = False
    hint = " (an empty file: perhaps left by a run that was killed)" if empty else ""
    others = f" (and {more} more)" if more else ""
    return UsageError(f"output {path} already exists{hint}{others}; pass -y/--overwrite to replace it")


def check_new_outputs(paths: list[Path], overwrite: bool) -> None:
    """Before any work: refuse existing outputs without -y and duplicate targets ("-", standard output,
    is neither)."""
    paths = [p for p in paths if not is_stdio(p)]
    if len(set(paths)) != len(paths):
        dup = next(p for p in paths if paths.count(p) > 1)
        raise UsageError(f"two outputs would be written to {dup}; give distinct names")
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            raise already_exists(existing[0], len(existing) - 1)


@contextlib.contextmanager
def claim_output(path: Path, overwrite: bool) -> Iterator[Path]:
    """Claim `path` for an atomic writer (write_audio, save_latent) run inside the block.

    Without `overwrite` the name is first created empty with O_CREAT | O_EXCL, so two processes writing
    into one folder never replace each other's file; the claim is removed if the write fails.
    """
    claimed = False
    if not overwrite:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            claimed = True
        except FileExistsError:
            raise AudioLDMError(
                f"{path} appeared while running (another process?); not overwritten"
            ) from None
    try:
        yield path
    except BaseException:
        if claimed:
            path.unlink(missing_ok=True)
        raise
