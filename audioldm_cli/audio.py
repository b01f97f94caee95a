"""Audio files in and out: the only module that opens audio files.

- `read_audio(path, sample_rate=None) -> (wav [N] float32 mono tensor, sample_rate)`: any format
  libsndfile reads (wav, flac, ogg/vorbis, mp3, aiff, ...), any rate (resampled with torchaudio to
  `sample_rate` when given), any channel count (averaged to mono).
- `iter_audio_blocks(path, sample_rate, block_samples)`: the same samples, streamed in blocks, so a
  one-hour file never sits in memory whole; identical to `read_audio` across resampling borders.
- `write_audio(path, wav, sample_rate)`: wav / flac / ogg / mp3 by extension, atomically, clipped to [-1, 1].
- A path of "-" (`batch.STDIO`) is standard input to `read_audio` and standard output to `write_audio`, as in
  sox and ffmpeg: `... | audioldm reconstruct - -o - | ...`.
- `find_audio_files(paths)`: files as given, folders expanded recursively (sorted).

Every problem with an input file raises `AudioReadError` with a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import numbers
import os
import stat
import struct
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T

from vocoder.checkpoint import atomic_path

from .batch import is_stdio
from .errors import AudioLDMError, AudioReadError, UsageError
from .runtime import is_integer

logger = logging.getLogger(__name__)

# Extensions picked up when a folder is given as input (matched case-insensitively).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
# Extensions `write_audio` can produce: soundfile format and sample encoding (MP3 where this libsndfile,
# 1.1 or later, has the encoder).
WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
if "MP3" in sf.available_formats():
    WRITE_FORMATS[".mp3"] = ("MP3", "MPEG_LAYER_III")
# The sample rates MPEG audio (layers 1-3, versions 1, 2 and 2.5) can store.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# The highest rates written as Ogg Vorbis (libsndfile 1.2's encoder segfaults above 200 kHz) and FLAC.
OGG_MAX_RATE = 192000
FLAC_MAX_RATE = 655350
# Frames handed to libsndfile per write call: one Vorbis write of more than ~2M frames (2 min 10 s at
# 16 kHz) segfaults libsndfile 1.2.2, so `write_audio` streams the samples in blocks of this size.
WRITE_BLOCK_FRAMES = 1 << 18

# The resampling filter: librosa's "kaiser_best" (as `torchaudio.transforms.Resample` takes it): a
# Kaiser-windowed sinc 64 zero crossings wide, cut off at 94.76 % of the lower Nyquist frequency. The
# defaults (Hann, 6 crossings, 0.99) let tones just above the new Nyquist alias back at -8 to -14 dB;
# this filter holds them below -60 dB. `iter_audio_blocks` needs the filter's reach.
_LOWPASS_WIDTH = 64
_ROLLOFF = 0.9475937167399596
_KAISER_BETA = 14.769656459379492
# libsndfile's frame count of a stream that states no length (2**63 - 1), such as FLAC written to a pipe.
_UNKNOWN_FRAMES = 1 << 62
# `write_audio` takes a [C, N] array with more channels than this (or than samples) for a transposed one.
_MAX_WRITE_CHANNELS = 64


def _positive_int(value, what: str = "sample rate", unit: str = "integer") -> int:
    """`value` as an int, or a UsageError: a positive int, numpy integer or integer-valued float (16000.0);
    never a bool, a string or a fraction (16000.7 would be truncated silently)."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    if not is_integer(value) or value <= 0:
        shown = value if isinstance(value, numbers.Number) and not isinstance(value, bool) else repr(value)
        raise UsageError(f"{what} {shown}: must be a positive {unit}")
    return int(value)


def _name(path: str | os.PathLike) -> str:
    """How errors name an input: its path, or "standard input" for "-"."""
    return "standard input" if is_stdio(path) else str(path)


def _binary_stream(name: str, stream, fix: str):
    """`stream`'s binary buffer, or a UsageError if it is closed, holds no bytes or is a terminal."""
    buffer = getattr(stream, "buffer", None)
    if stream is None or buffer is None or getattr(stream, "closed", False):
        raise UsageError(f"{name} is closed or takes no bytes here (a notebook?): use a file")
    if stream.isatty():
        raise UsageError(f"{name} is a terminal; {fix}")
    return buffer


def check_stdin_audio() -> None:
    """A UsageError unless audio can be read from standard input (a pipe or a file, not a terminal)."""
    _binary_stream("input -: standard input", sys.stdin, "pipe or redirect audio into it")


def check_stdout_audio() -> None:
    """A UsageError unless audio can be written to standard output (a pipe or a file, not a terminal)."""
    _binary_stream("output -: standard output", sys.stdout, "pipe or redirect the audio (| play -, > a.wav)")


def _open_stdin() -> sf.SoundFile:
    """Standard input, read whole, as a sound file (libsndfile needs to seek)."""
    check_stdin_audio()
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no descriptor (a test's stdin): read it
        mode = os.fstat(sys.stdin.fileno()).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # < /dev/zero would be read to the end of memory
            raise AudioReadError("standard input: a device, not audio (redirect a file or a pipe)")
    try:
        data = sys.stdin.buffer.read()
    except OSError as e:  # a closed descriptor (<&-)
        raise AudioReadError(f"standard input: cannot read it ({e.strerror or e})") from None
    return _open_bytes(data, "standard input")


def _open_bytes(data: bytes, name: str) -> sf.SoundFile:
    """Audio read whole from a stream (standard input, a named pipe, bash's <(...)) as a sound file."""
    if not data:
        raise AudioReadError(f"{name}: empty (0 bytes)")
    stream = io.BytesIO(data)
    _check_wav_length(name, stream, len(data))
    try:
        with _native_stderr_silenced():
            return _known_length(name, sf.SoundFile(stream))
    except sf.SoundFileError as e:
        reason = str(e).split(": ", 1)[-1].strip() or "unreadable"
        raise AudioReadError(f"{name}: not readable audio ({reason})") from None


def _known_length(name: str | Path, f: sf.SoundFile) -> sf.SoundFile:
    """`f`, unless its header states no length, which libsndfile cannot read to the end (it fails seeking)."""
    if f.frames >= _UNKNOWN_FRAMES:
        f.close()
        raise AudioReadError(
            f"{name}: the stream does not state its length (FLAC written to a pipe?), which libsndfile "
            "cannot read: convert it to WAV first (ffmpeg -i IN -f wav -)"
        )
    return f


def is_stream(path: str | os.PathLike) -> bool:
    """Standard input, a named pipe or bash's <(...): audio that can be read once only, whole."""
    if is_stdio(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _open(path: str | os.PathLike) -> sf.SoundFile:
    """Open `path` ("-": standard input) for reading, turning every failure into a one-line AudioReadError."""
    if is_stdio(path):
        return _open_stdin()
    path = Path(path)
    if not path.exists():
        raise AudioReadError(f"{path}: no such file")
    if path.is_dir():
        if find_audio_files([path]) != [path]:  # audio files in it (its hidden ones do not count)
            raise AudioReadError(f"{path}: is a folder, not an audio file")
        raise AudioReadError(f"{path}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    mode = path.stat().st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero would be read to the end of memory
        raise AudioReadError(f"{path}: a device, not an audio file")
    if not stat.S_ISREG(mode):  # a named pipe, bash's <(...): no size, no seeking
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AudioReadError(f"{path}: cannot read it ({e.strerror or e})") from None
        return _open_bytes(data, str(path))
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as f:
        _check_wav_length(path, f, path.stat().st_size)
    try:
        with _native_stderr_silenced():  # libmpg123 prints "warning: ..." lines while probing non-audio bytes
            return _known_length(path, sf.SoundFile(str(path)))
    except sf.SoundFileError as e:
        reason = str(e).split(": ", 1)[-1].strip() or "unreadable"
        raise AudioReadError(f"{path}: not a readable audio file ({reason})") from None
    except OSError as e:
        raise AudioReadError(f"{path}: cannot open ({e.strerror or e})") from None


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C libraries write there directly).

    Serialised by a lock: two threads interleaving save/restore could otherwise leave fd 2 on /dev/null.
    """
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all
            yield
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _check_wav_length(name: str | Path, f, size: int) -> None:
    """Refuse a RIFF/WAVE file (`f`: binary and seekable, `size` bytes, left at its start) whose data
    chunk is shorter than its header declares.

    libsndfile silently reads what is there, so a half-copied file would otherwise pass as a short one.
    """
    try:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mean "unknown" (streamed or RF64-style writers)
                if chunk_size not in (0, 0xFFFFFFFF) and pos + 8 + chunk_size > size:
                    raise AudioReadError(
                        f"{name}: truncated WAV file (header declares {chunk_size} data bytes, "
                        f"{size - pos - 8} present)"
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)
    finally:
        f.seek(0)


def _to_mono(block: np.ndarray) -> np.ndarray:
    """[frames, channels] -> [frames] by averaging the channels."""
    return block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


def _check_finite(path: str | Path, wav: np.ndarray, offset: int = 0) -> None:
    bad = ~np.isfinite(wav)
    if bad.any():
        first = offset + int(np.argmax(bad))
        raise AudioReadError(f"{path}: holds {int(bad.sum())} NaN/inf samples (first at sample {first})")


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(frames, sample_rate, channels) from the header, without reading the samples."""
    with _open(path) as f:
        return f.frames, f.samplerate, f.channels


@functools.lru_cache(maxsize=8)
def _resampler(orig_sr: int, new_sr: int) -> T.Resample:
    # the sinc kernel costs more than applying it: build it once per rate pair (streaming reuses it)
    return T.Resample(
        orig_sr,
        new_sr,
        lowpass_filter_width=_LOWPASS_WIDTH,
        rolloff=_ROLLOFF,
        resampling_method="sinc_interp_kaiser",
        beta=_KAISER_BETA,
    )


# torchaudio's polyphase kernel holds (new / g) x (orig / g + filter) taps: for rates with a small common
# divisor (44101 Hz -> 16 kHz) that is gigabytes. Above this many taps, the same filter is evaluated per
# output sample instead (`_resample_direct`), in bounded memory.
_MAX_KERNEL_TAPS = 1 << 22


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (a Kaiser-windowed sinc, librosa's "kaiser_best")."""
    orig_sr, new_sr = _positive_int(orig_sr), _positive_int(new_sr)
    if orig_sr == new_sr:
        return wav
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    width = math.ceil(_LOWPASS_WIDTH * orig / (min(orig, new) * _ROLLOFF))
    with torch.no_grad():
        if new * (2 * width + orig) > _MAX_KERNEL_TAPS:
            return _resample_direct(wav, orig, new)
        return _resampler(orig_sr, new_sr)(wav)


@functools.lru_cache(maxsize=2)
def _phase_taps(orig: int, new: int) -> torch.Tensor:
    """[new, taps] float32: the filter taps of output phase r = (j * orig) mod new, built once per rate pair
    (0.5 s and up to ~100 MB for the oddest pairs: short clips at such a rate reuse them)."""
    base = min(orig, new) * _ROLLOFF
    reach = math.ceil(_LOWPASS_WIDTH * orig / base)
    offsets = torch.arange(-reach, reach + 2, dtype=torch.int64)
    # output j reads m = j * orig // new + k: m * new - j * orig = k * new - r with r = (j * orig) mod new
    r = torch.arange(new, dtype=torch.int64)[:, None]
    t = (offsets[None, :] * new - r).to(torch.float64) * (base / (orig * new))
    t = t.clamp(-_LOWPASS_WIDTH, _LOWPASS_WIDTH)
    beta = torch.tensor(_KAISER_BETA, dtype=torch.float64)
    window = torch.i0(beta * torch.sqrt(1 - (t / _LOWPASS_WIDTH) ** 2)) / torch.i0(beta)
    t = t * math.pi
    return (torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig)).float()


def _resample_direct(wav: torch.Tensor, orig: int, new: int, chunk: int | None = None) -> torch.Tensor:
    """The windowed-sinc filter of `torchaudio.functional.resample` (Kaiser window), evaluated directly.

    Output sample j sits at input position j * orig / new; it sums the input samples m with
    |m / orig - j / new| * base < width of x[m] * sinc * kaiser, exactly as torchaudio's kernel row does.
    The taps depend only on the phase (j * orig) mod new, so they are computed once per phase (a table
    of new x taps); the outputs are then gathered `chunk` at a time (default: about 4M taps' worth).
    """
    base = min(orig, new) * _ROLLOFF
    reach = math.ceil(_LOWPASS_WIDTH * orig / base)
    lead = wav.shape[:-1]
    x = wav.reshape(-1, wav.shape[-1]).to(torch.float32)
    n_in = x.shape[-1]
    n_out = math.ceil(new * n_in / orig)
    x = torch.nn.functional.pad(x, (reach + 1, reach + 2))
    offsets = torch.arange(-reach, reach + 2, dtype=torch.int64)
    table = _phase_taps(orig, new)  # [new, taps]
    chunk = chunk or max(1, (1 << 22) // len(offsets))
    pieces = []
    for lo in range(0, n_out, chunk):
        j = torch.arange(lo, min(n_out, lo + chunk), dtype=torch.int64)
        m = (j * orig // new)[:, None] + offsets  # [J, taps] input indices
        pieces.append((x[:, m + reach + 1] * table[(j * orig) % new]).sum(-1))
    return torch.cat(pieces, -1).to(wav.dtype).reshape(*lead, n_out)


def read_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """Read a whole audio file as mono float32.

    Args:
        path: any file libsndfile reads; "-" reads standard input (all of it).
        sample_rate: resample to this rate; None keeps the file's rate.
    Returns:
        (wav [N] float32 tensor, its sample rate).
    """
    name = _name(path)
    if sample_rate is not None:
        sample_rate = _positive_int(sample_rate)
    with _open(path) as f:
        try:
            data = f.read(dtype="float32", always_2d=True)
        except sf.SoundFileError as e:
            raise AudioReadError(f"{name}: truncated or corrupt audio data ({e})") from None
        file_sr = f.samplerate
    if data.shape[0] == 0:
        raise AudioReadError(f"{name}: holds no audio samples (empty or truncated)")
    if data.shape[1] > 1:
        logger.debug("%s: %d channels mixed down to mono", name, data.shape[1])
    wav = _to_mono(data)
    _check_finite(name, wav)
    tensor = torch.from_numpy(np.ascontiguousarray(wav))
    if sample_rate is None or sample_rate == file_sr:
        return tensor, file_sr
    return resample(tensor, file_sr, sample_rate), sample_rate


def _resample_context(orig: int, new: int) -> int:
    """Input samples (a multiple of `orig`) that cover the resampling filter's reach on one side."""
    reach = math.ceil(_LOWPASS_WIDTH * orig / (min(orig, new) * _ROLLOFF))
    return orig * (reach // orig + 2)


def _iter_mono(path: str, f: sf.SoundFile, block: int) -> Iterator[torch.Tensor]:
    offset = 0
    while True:
        try:
            data = f.read(block, dtype="float32", always_2d=True)
        except sf.SoundFileError as e:
            raise AudioReadError(f"{path}: truncated or corrupt audio data ({e})") from None
        if data.shape[0] == 0:
            return
        wav = _to_mono(data)
        _check_finite(path, wav, offset)
        offset += wav.shape[0]
        yield torch.from_numpy(np.ascontiguousarray(wav))


def _iter_resampled(
    chunks: Iterator[torch.Tensor], orig_sr: int, new_sr: int, step: int
) -> Iterator[torch.Tensor]:
    """Resample a stream so that the concatenated output equals `resample(whole_signal)`.

    The signal is cut at input positions that are multiples of `orig` (rates reduced by their gcd), where
    input and output sample grids line up; each piece is resampled with `context` real input samples on
    both sides so the filter sees the same data it would see in one pass.
    """
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    context = _resample_context(orig, new)
    step = max(step, 16 * context) // orig * orig  # long pieces keep the overlap cost small
    pending = torch.zeros(0)  # input samples from global index `start`
    start = pos = 0  # pos: next input sample whose output has not been produced yet
    for chunk in chunks:
        pending = torch.cat([pending, chunk])
        while start + pending.shape[0] >= pos + step + context:
            seg = pending[: pos - start + step + context]
            out = resample(seg, orig_sr, new_sr)
            lo = (pos - start) // orig * new
            yield out[lo : lo + step // orig * new]
            pos += step
            cut = max(0, pos - context - start)
            pending, start = pending[cut:], start + cut
    if start + pending.shape[0] > pos:
        out = resample(pending, orig_sr, new_sr)
        yield out[(pos - start) // orig * new :]


def iter_audio_blocks(
    path: str | os.PathLike, sample_rate: int | None = None, block_samples: int = 16000 * 60
) -> Iterator[torch.Tensor]:
    """Stream a file as mono float32 blocks of `block_samples` samples at `sample_rate` (last one shorter).

    Concatenating the blocks gives `read_audio(path, sample_rate)[0]` (to float rounding); memory stays
    bounded by a few blocks whatever the file's length.
    """
    name = _name(path)
    block_samples = _positive_int(block_samples, "block size", "number of samples")
    if sample_rate is not None:
        sample_rate = _positive_int(sample_rate)
    with _open(path) as f:
        file_sr = f.samplerate
        target = file_sr if sample_rate is None else sample_rate
        read_block = max(1, block_samples * file_sr // target)
        stream = _iter_mono(name, f, read_block)
        if target != file_sr:
            stream = _iter_resampled(stream, file_sr, target, read_block)
        buffer, total, seen = [], 0, False
        for piece in stream:
            seen = True
            buffer.append(piece)
            total += piece.shape[0]
            if total >= block_samples:
                joined = torch.cat(buffer)
                n_full = total // block_samples * block_samples
                yield from joined[:n_full].split(block_samples)
                buffer, total = [joined[n_full:]], total - n_full
        if not seen:
            raise AudioReadError(f"{name}: holds no audio samples (empty or truncated)")
        if total:
            yield torch.cat(buffer)


def write_audio(
    path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int, *, format: str = "wav"
) -> Path:
    """Write `wav` ([N] mono or [C, N]) to `path`; the format follows the extension (.wav, .flac, .ogg,
    .mp3 at the rates MPEG audio stores, `MP3_RATES`). A path of "-" writes to standard output (a pipe
    or a file, never a terminal) in `format` (wav, flac, ogg or mp3), whole once encoded; `format` is
    for "-" only (a file's extension decides its format).

    A [C, N] array with C > N or C > 64 is refused (it is a soundfile-style [N, C] one), as are samples
    that are not floats (integer PCM, bool, complex), NaN/inf samples, a sample rate that is not a
    positive integer and a missing folder: a UsageError before anything is written. A write that fails
    (a full disk) is an OSError, and leaves no file.
    Samples beyond [-1, 1] are clipped with a warning. The file appears atomically (temp file + rename).
    The samples go to libsndfile `WRITE_BLOCK_FRAMES` at a time (long Vorbis writes crash it otherwise).
    """
    path = Path(path)
    to_stdout = is_stdio(path)
    suffix = "." + str(format).lower().lstrip(".") if to_stdout else path.suffix.lower()
    fmt = WRITE_FORMATS.get(suffix)
    if fmt is None and to_stdout:
        raise UsageError(f"format {format!r}: choose one of {', '.join(s[1:] for s in WRITE_FORMATS)}")
    if fmt is None:
        raise UsageError(
            f"output {path}: unknown audio extension {path.suffix!r}; use one of {', '.join(WRITE_FORMATS)}"
        )
    sample_rate = _positive_int(sample_rate)
    if fmt[0] == "MP3" and sample_rate not in MP3_RATES:
        raise UsageError(
            f"output {path}: MP3 cannot store {sample_rate} Hz (only {', '.join(map(str, MP3_RATES))}); "
            "write .wav, .flac or .ogg"
        )
    top = {"OGG": OGG_MAX_RATE, "FLAC": FLAC_MAX_RATE}.get(fmt[0])
    if top is not None and sample_rate > top:  # libsndfile's Vorbis encoder crashes the process above it
        raise UsageError(
            f"output {path}: {'Ogg Vorbis' if fmt[0] == 'OGG' else 'FLAC'} cannot store {sample_rate} Hz "
            f"(at most {top}); write .wav"
        )
    floating = wav.is_floating_point() if isinstance(wav, torch.Tensor) else np.asarray(wav).dtype.kind == "f"
    if not floating:
        dtype = wav.dtype if isinstance(wav, torch.Tensor) else np.asarray(wav).dtype
        raise UsageError(
            f"output {path}: expected float samples in [-1, 1], got {dtype} (integer PCM: divide by its full scale)"
        )
    data = (
        wav.detach().to("cpu", torch.float32).numpy()
        if isinstance(wav, torch.Tensor)
        else np.asarray(wav, np.float32)
    )
    if data.ndim not in (1, 2):
        raise UsageError(
            f"output {path}: audio of shape {data.shape}; give [N] mono or [C, N] (channels first)"
        )
    channels, frames = data.shape if data.ndim == 2 else (1, data.shape[0])
    if frames == 0 and fmt[0] != "WAV":  # libsndfile would write 0 bytes, which no reader opens
        raise UsageError(f"output {path}: the audio holds no samples, which {fmt[0]} cannot store (.wav can)")
    if not 0 < channels <= _MAX_WRITE_CHANNELS or (channels > 1 and channels > frames):  # [1, 0]: empty
        raise UsageError(
            f"output {path}: audio of shape {data.shape} would be {channels} channels of {frames} samples; "
            f"give [N] mono or [C, N] (channels first, C <= {_MAX_WRITE_CHANNELS}, C <= N): transpose a "
            "soundfile-style [N, C] array"
        )
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise UsageError(
            f"output {path}: the audio holds {bad} NaN/inf samples (of {data.size}); nothing written"
        )
    over = int((np.abs(data) > 1.0).sum())
    if over:
        logger.warning(
            "%s: clipped %d samples outside [-1, 1] (peak %.3f)", path, over, float(np.abs(data).max())
        )
        data = np.clip(data, -1.0, 1.0)
    data = data.T if data.ndim == 2 else data
    if to_stdout:
        check_stdout_audio()
        encoded = io.BytesIO()  # libsndfile seeks back to finish a header: encode, then write it whole
        try:
            with sf.SoundFile(encoded, "w", sample_rate, channels, format=fmt[0], subtype=fmt[1]) as f:
                for start in range(0, data.shape[0], WRITE_BLOCK_FRAMES):
                    f.write(data[start : start + WRITE_BLOCK_FRAMES])
        except sf.SoundFileError as e:
            raise AudioLDMError(f"standard output: cannot encode {fmt[0]} ({e})") from None
        sys.stdout.buffer.write(encoded.getvalue())
        sys.stdout.buffer.flush()
        return path
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise UsageError(f"output {path}: folder {path.parent} {what}")
    try:
        with (
            atomic_path(path) as tmp,
            sf.SoundFile(str(tmp), "w", sample_rate, channels, format=fmt[0], subtype=fmt[1]) as f,
        ):
            for start in range(0, data.shape[0], WRITE_BLOCK_FRAMES):
                f.write(data[start : start + WRITE_BLOCK_FRAMES])
    except sf.SoundFileError as e:  # libsndfile says "System error" for a full disk: say what it was
        raise write_error(path, e, data.nbytes) from None
    return path


def write_error(path: Path, error: Exception, size: int) -> OSError:
    """The OSError for a failed write of about `size` bytes to `path` by a library that hides the
    system's reason (libsndfile, safetensors): ENOSPC where the disk is (nearly) full."""
    import errno
    import shutil

    try:
        full = shutil.disk_usage(path.parent).free < size
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"{type(error).__name__}: {str(error).strip() or 'write failed'}", str(path))


def find_audio_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given (in order), each folder replaced by its audio files, recursively and sorted.

    Hidden files and folders inside a folder (".name": macOS' "._x.wav" resource forks, ".git") are left
    out. Paths that do not exist, and folders without audio files, are kept as they are, so that reading
    them reports the error for that item while the rest of a batch goes on.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(
                (
                    f
                    for f in p.rglob("*")
                    if f.suffix.lower() in AUDIO_SUFFIXES
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)
                    and f.is_file()
                ),
                key=lambda f: f.relative_to(p).as_posix(),
            )
            found.extend(files or [p])
        else:
            found.append(p)
    return found
