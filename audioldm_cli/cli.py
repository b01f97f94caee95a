"""The `audioldm` command line: a thin Typer layer over the Python API.

Conventions every command follows:
- logs, warnings and progress go to stderr; the paths of written files go to stdout, one per line;
- exit 0 on success, 1 on a runtime failure (bad file, bad model, ...), 2 on a usage error;
- user errors print one line `error: ...`, never a traceback;
- outputs are written atomically and never overwrite an existing file without `-y/--overwrite`;
- batch commands go on past a bad item, report it, and exit 1 at the end.

Each command lives in its own section below; keep sections independent.
"""

from __future__ import annotations

import functools
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import USER_ERRORS, UsageError

logger = logging.getLogger("audioldm_cli")

app = typer.Typer(
    name="audioldm",
    help="Text-to-audio generation with AudioLDM-style latent diffusion, on CPU or GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
train_app = typer.Typer(
    help="Train one stage (vae, vocoder, ldm) on your own audio.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(train_app, name="train")


# ----------------------------------------------------------------------------------------------
# shared plumbing


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def cli_command(fn):
    """Turn user errors raised inside a command into a one-line message and exit code 1 (2 for usage)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UsageError as e:
            raise fail(str(e), 2) from None
        except USER_ERRORS as e:
            raise fail(str(e), 1) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def check_output_path(path: Path, overwrite: bool) -> Path:
    """Validate an output file path before any work is done: parent exists and is writable, no clobbering."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise UsageError(f"output {path} is a directory; use --out-dir for a folder")
    if path.exists() and not overwrite:
        raise UsageError(f"output {path} already exists; pass -y/--overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output folder {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK):
        raise UsageError(f"output folder {parent} is not writable")
    return path


def emit_path(path: Path) -> None:
    """Report a written file on stdout (one per line, for scripts)."""
    typer.echo(str(path))


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"audioldm-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print errors (no progress, no info).")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Print debug messages.")] = False,
) -> None:
    """Text-to-audio generation with AudioLDM-style latent diffusion, on CPU or GPU.

    Written files are printed on stdout; logs and progress go to stderr.
    """
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    logger.setLevel(level)
    logging.getLogger("vocoder").setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logging.getLogger("vocoder").addHandler(handler)
    logger.propagate = False


# ----------------------------------------------------------------------------------------------
# mel: dump log-mel spectrograms (time-major [T, F]) of audio files


class MelFormat(str, Enum):
    npy = "npy"
    safetensors = "safetensors"


def _plan_mel_outputs(
    inputs: list[Path], output: Path | None, out_dir: Path | None, fmt: MelFormat | None, overwrite: bool
) -> list[tuple[Path, Path]]:
    """Pair every input file with its output path; all usage checks happen here, before any work."""
    from .audio import find_audio_files

    if (output is None) == (out_dir is None):
        raise UsageError("give either -o OUT (one input) or --out-dir DIR (any number of inputs)")
    if output is not None:
        suffix = output.suffix.lower().lstrip(".")
        if suffix not in ("npy", "safetensors"):
            raise UsageError(f"output {output}: extension must be .npy or .safetensors")
        if fmt is not None and fmt.value != suffix:
            raise UsageError(f"output {output} does not match --format {fmt.value}")
        files = find_audio_files(inputs)
        if len(files) != 1:
            raise UsageError(f"-o takes exactly one input file, got {len(files)}; use --out-dir DIR")
        return [(files[0], check_output_path(output, overwrite))]
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} exists and is not a folder")
    ext = "." + (fmt or MelFormat.npy).value
    pairs, seen = [], {}
    for item in inputs:
        for src in find_audio_files([item]):
            rel = src.relative_to(item) if item.is_dir() else Path(src.name)
            dst = out_dir / rel.with_suffix(ext)
            if dst in seen:
                raise UsageError(f"{seen[dst]} and {src} would both write {dst}; rename one or run them separately")
            if dst.exists() and not overwrite:
                raise UsageError(f"output {dst} already exists; pass -y/--overwrite to replace it")
            seen[dst] = src
            pairs.append((src, dst))
    return pairs


@app.command()
@cli_command
def mel(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders (searched recursively).", metavar="IN...")],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Output .npy/.safetensors for one input.", rich_help_panel="Output")
    ] = None,
    out_dir: Annotated[
        Optional[Path],
        typer.Option("--out-dir", help="Output folder; folders given as input are mirrored.", rich_help_panel="Output"),
    ] = None,
    preset: Annotated[str, typer.Option("--preset", help="Mel preset: audioldm-16k or hifigan-22k.")] = "audioldm-16k",
    fmt: Annotated[
        Optional[MelFormat],
        typer.Option("--format", help="File format (default: -o's extension, else npy).", rich_help_panel="Output"),
    ] = None,
    overwrite: Annotated[bool, typer.Option("-y", "--overwrite", help="Replace existing outputs.", rich_help_panel="Output")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda[:N] or mps.")] = "auto",
) -> None:
    """Compute log-mel spectrograms (frames x mels, time-major) of audio files; long files are streamed."""
    from .audio import iter_audio_blocks
    from .errors import AudioReadError
    from .frontend import MelFrontend, save_mel
    from .runtime import progress_bar, resolve_device

    import torch

    frontend = MelFrontend.from_preset(preset).to(resolve_device(device))
    pairs = _plan_mel_outputs(inputs, output, out_dir, fmt, overwrite)
    failed = 0
    with progress_bar("mel", total=len(pairs)) as progress:
        for done, (src, dst) in enumerate(pairs, 1):
            try:
                blocks = iter_audio_blocks(src, frontend.sample_rate, 60 * frontend.sample_rate)
                try:
                    spec = torch.cat(list(frontend.stream(blocks)))
                except ValueError as e:  # too short for one STFT window
                    raise AudioReadError(f"{src}: {e}") from None
            except AudioReadError as e:
                typer.echo(f"error: {e}", err=True)
                failed += 1
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_mel(dst, spec, frontend.config, source=src.name)
            emit_path(dst)
            progress(done, len(pairs))
    if failed:
        raise fail(f"{failed} of {len(pairs)} inputs failed", 1)


# ----------------------------------------------------------------------------------------------
# PLACEHOLDERS: replace each with the real command in its own section (remove it here).


@app.command()
@cli_command
def generate() -> None:
    """Generate audio from text prompts (not implemented yet)."""
    raise UsageError("generate is not implemented yet")


@app.command()
@cli_command
def reconstruct() -> None:
    """Round-trip audio through the VAE and vocoder (not implemented yet)."""
    raise UsageError("reconstruct is not implemented yet")


@app.command()
@cli_command
def encode() -> None:
    """Encode audio into VAE latents (not implemented yet)."""
    raise UsageError("encode is not implemented yet")


@app.command()
@cli_command
def info() -> None:
    """Describe a model folder or checkpoint (not implemented yet)."""
    raise UsageError("info is not implemented yet")


@train_app.command("vae")
@cli_command
def train_vae() -> None:
    """Train the VAE (not implemented yet)."""
    raise UsageError("train vae is not implemented yet")


# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
