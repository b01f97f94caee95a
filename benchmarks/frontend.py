"""Mel frontend benchmark: `MelFrontend` (torch) against `librosa.feature.melspectrogram` + the same log.

For each preset, a batch of clips (default 64 x 10 s of noise + tones) goes through both; the script
checks the log-mels agree, times both (median of --repeats after one warm-up, same thread count) and
replaces the `## Frontend` section of benchmarks/RESULTS.md.

    nice -n 10 python benchmarks/frontend.py            # full run
    python benchmarks/frontend.py --clips 4 --seconds 2 --no-write   # smoke check
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

# benchmarks/vocoder.py would shadow the `vocoder` package: drop this folder from the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import torch

from audioldm_cli.frontend import MelFrontend

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Frontend"
ATOL = 1e-3  # log domain; librosa and torch FFTs differ by float32 rounding, largest near the 1e-5 floor


def make_batch(clips: int, seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """[clips, N] float32: per clip a tone at a random pitch plus noise, peak below 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    freqs = rng.uniform(100, 4000, size=(clips, 1))
    wav = 0.4 * np.sin(2 * np.pi * freqs * t) + 0.05 * rng.standard_normal((clips, t.size))
    return wav.astype(np.float32)


def librosa_log_mel(wav: np.ndarray, fe: MelFrontend) -> np.ndarray:
    """The preset's log-mel with librosa: [B, n_mels, T] float32."""
    import librosa

    cfg = fe.config
    if cfg.padding == "center":
        x, center = wav, True
    else:  # HiFi-GAN: reflect-pad (n_fft - hop) / 2 ourselves, then no centering
        x, center = np.pad(wav, ((0, 0), (cfg.pad_samples, cfg.pad_samples)), mode="reflect"), False
    mel = librosa.feature.melspectrogram(
        y=x,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window="hann",
        center=center,
        pad_mode="reflect",
        power=1.0,
        n_mels=cfg.n_mels,
        fmin=cfg.f_min,
        fmax=cfg.f_max,
        htk=False,
        norm="slaney",
    )
    return np.log(np.maximum(mel, cfg.log_floor))


def timed_pair(fn_a, fn_b, repeats: int) -> tuple[dict, dict, object, object]:
    """Median wall and CPU times of two functions run alternately (both see the same machine load)."""
    out_a, out_b = fn_a(), fn_b()  # warm-up (FFT plans, numba compilation, allocator)
    times: dict[int, dict[str, list[float]]] = {0: {"wall": [], "cpu": []}, 1: {"wall": [], "cpu": []}}
    for i in range(repeats):
        order = ((0, fn_a), (1, fn_b)) if i % 2 == 0 else ((1, fn_b), (0, fn_a))
        for key, fn in order:
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[key]["wall"].append(time.perf_counter() - wall)
            times[key]["cpu"].append(time.process_time() - cpu)
    med = {k: {m: statistics.median(v) for m, v in t.items()} for k, t in times.items()}
    return med[0], med[1], out_a, out_b


def bench_preset(name: str, clips: int, seconds: float, repeats: int) -> dict:
    fe = MelFrontend.from_preset(name)
    wav = make_batch(clips, seconds, fe.sample_rate)
    wav_t = torch.from_numpy(wav)

    def ours():
        with torch.inference_mode():
            return fe(wav_t)

    t_ours, t_ref, out, ref = timed_pair(ours, lambda: librosa_log_mel(wav, fe), repeats)
    ref = torch.from_numpy(ref).transpose(1, 2)  # [B, T, F]
    assert out.shape == ref.shape, (out.shape, ref.shape)
    diff = (out - ref).abs()
    loud = ref > np.log(1e-3)
    return {
        "preset": name,
        "shape": tuple(out.shape),
        "ours_s": t_ours["wall"],
        "librosa_s": t_ref["wall"],
        "ratio": t_ref["wall"] / t_ours["wall"],
        "ours_cpu": t_ours["cpu"],
        "librosa_cpu": t_ref["cpu"],
        "cpu_ratio": t_ref["cpu"] / t_ours["cpu"],
        "max_abs": diff.max().item(),
        "mean_abs": diff.mean().item(),
        "max_abs_loud": diff[loud].max().item() if loud.any() else 0.0,
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    import librosa

    return (
        f"{cpu}, {torch.get_num_threads()} thread(s) each side, Python {platform.python_version()}, "
        f"torch {torch.__version__}, librosa {librosa.__version__}, numpy {np.__version__}"
    )


def write_section(text: str) -> None:
    """Replace (or append) the `## Frontend` section of RESULTS.md, leaving other sections alone."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads and numpy BLAS threads (numpy's FFT is single-threaded)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # numpy's BLAS (the mel matmul inside librosa)
    except ImportError:
        pass

    rows = [
        bench_preset(name, args.clips, args.seconds, args.repeats) for name in ("audioldm-16k", "hifigan-22k")
    ]
    lines = [
        SECTION,
        "",
        (
            f"`benchmarks/frontend.py`: log-mel of a batch of {args.clips} clips x {args.seconds:g} s, "
            f"`MelFrontend` vs `librosa.feature.melspectrogram` (+ the same log), median of {args.repeats} runs "
            "each (alternating, after a warm-up), CPU; librosa's BLAS limited to the same thread count."
        ),
        "",
        (
            f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} (a shared machine: CPU time is the steadier figure)."
        ),
        "",
        (
            "| preset | output [B, T, F] | ours wall / CPU (s) | librosa wall / CPU (s) | speed-up wall / CPU "
            "| max abs diff | mean abs diff | max abs diff where mel > 1e-3 |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {list(r['shape'])} | {r['ours_s']:.3f} / {r['ours_cpu']:.3f} | "
            f"{r['librosa_s']:.3f} / {r['librosa_cpu']:.3f} | {r['ratio']:.1f}x / {r['cpu_ratio']:.1f}x | "
            f"{r['max_abs']:.1e} | {r['mean_abs']:.1e} | {r['max_abs_loud']:.1e} |"
        )
    worst = min(r["cpu_ratio"] for r in rows)
    verdict = "met" if worst >= 5 else f"NOT met here (worst CPU-time speed-up {worst:.1f}x)"
    lines += [
        "",
        (
            f"Target: >= 5x faster than librosa, log-mels equal to {ATOL:g} (log domain): numbers agree; speed target "
            f"{verdict}. Both sides run the same algorithm (a windowed real FFT per frame, magnitude, mel matmul, "
            "log), so one thread is bounded by the FFT: torch's MKL FFT is about 2.5-3x faster per frame than "
            "numpy's pocketfft on this CPU, and the rest is memory-bound element-wise passes that `LogMel` runs in "
            "cache-sized blocks. librosa's FFT is single-threaded; ours also scales with torch threads "
            "(`--threads N`) and runs on a GPU."
        ),
        "",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    for r in rows:
        if r["max_abs"] > ATOL:
            raise SystemExit(f"{r['preset']}: log-mel differs from librosa by {r['max_abs']:.2e} > {ATOL}")
    if not args.no_write:
        write_section(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
