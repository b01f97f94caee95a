"""Peak memory of a whole `audioldm reconstruct` (or `encode`) job: a 10-minute file against a 10-second one.

    nice -n 10 python benchmarks/reconstruct_memory.py                 # the embedded default model
    nice -n 10 python benchmarks/reconstruct_memory.py --model MODEL --durations 10 600 --no-write
    nice -n 10 python benchmarks/reconstruct_memory.py --command encode [--refine-steps N]

Each duration runs the real CLI command (`audioldm reconstruct IN -o OUT`) in a fresh Python process,
so its max RSS covers everything a user pays for: interpreter, torch, model weights, reading the input,
the chunked VAE + vocoder pass, and writing the output. The input is a deterministic test signal (a
slow chirp, a pulse train and noise) at the model's sample rate. Target (issue #9): the 10-minute job
peaks at <= 2x the 10-second one. Writes the `## Reconstruct memory` section of benchmarks/RESULTS.md
(`--command encode`: `audioldm encode IN -o FOLDER [--refine-steps N]`, the `## Encode memory` section).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the `vocoder` package, not benchmarks/vocoder.py


def child(model: str, src: str, dst: str, threads: int, command: str = "reconstruct", refine: int = 0) -> None:
    """Run the CLI command in this process and print its peak memory and wall time as JSON."""
    import torch

    from audioldm_cli.cli import app

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    extra = ["--refine-steps", str(refine)] if command == "encode" else []
    try:
        app([command, src, "-o", dst, "--model", model, "--device", "cpu", "-y", *extra], standalone_mode=False)
    except SystemExit as e:  # typer exits 0 on success in some paths
        if e.code:
            raise
    seconds = time.perf_counter() - t0
    from _common import max_rss_mib

    print(json.dumps({"rss_peak_mib": max_rss_mib(), "seconds": seconds}))


def test_signal(seconds: float, sample_rate: int):
    """A deterministic, broadband signal: log chirp 100 Hz..6 kHz repeating every 20 s, clicks, noise."""
    import numpy as np

    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    period = 20.0
    phase_t = np.mod(t, period)
    f0, f1 = 100.0, 6000.0
    k = math.log(f1 / f0) / period
    chirp = np.sin(2 * np.pi * f0 * (np.exp(k * phase_t) - 1) / k)
    clicks = (np.mod(np.arange(n), sample_rate // 4) < 32).astype(np.float64)
    noise = np.random.default_rng(0).standard_normal(n)
    return (0.3 * chirp + 0.2 * clicks + 0.05 * noise).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "default"))
    ap.add_argument("--durations", type=float, nargs="+", default=[10.0, 600.0], help="seconds of input")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--command", choices=["reconstruct", "encode"], default="reconstruct")
    ap.add_argument("--refine-steps", type=int, default=0, help="encode only")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "IN", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--make-signal", nargs=3, metavar=("SECONDS", "RATE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.make_signal:  # in a process of its own: see below
        import soundfile as sf

        seconds, rate, path = float(args.make_signal[0]), int(args.make_signal[1]), args.make_signal[2]
        sf.write(path, test_signal(seconds, rate), rate, subtype="FLOAT")
        return 0
    if args.child:
        child(*args.child, threads=args.threads, command=args.command, refine=args.refine_steps)
        return 0
    section = f"## {args.command.capitalize()} memory"

    import soundfile as sf

    from _common import cpu_name, write_section

    from audioldm_cli.checkpoint import read_pipeline_config

    sample_rate = int(read_pipeline_config(args.model).frontend["sample_rate"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            src = Path(tmp) / f"in_{seconds:g}.wav"
            dst = Path(tmp) / (f"out_{seconds:g}.wav" if args.command == "reconstruct" else f"latents_{seconds:g}")
            # Linux keeps a process's peak RSS across fork + exec, so a child forked from a parent that
            # had built a 10-minute signal would report the parent's peak: the signal is made elsewhere
            make = [sys.executable, __file__, "--make-signal", str(seconds), str(sample_rate), str(src)]
            subprocess.run(make, check=True)
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--command", args.command,
                   "--refine-steps", str(args.refine_steps), "--child", args.model, str(src), str(dst)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"{args.command} of {seconds:g} s failed (exit {proc.returncode})")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if args.command == "reconstruct":
                frames = sf.info(dst).frames
            else:
                from audioldm_cli.checkpoint import load_latent

                frames = load_latent(next(dst.glob("*.latent.safetensors")))[1]["n_samples"]
            if frames != int(round(seconds * sample_rate)):
                raise SystemExit(f"output of {seconds:g} s has {frames} samples, expected the input's")
            rows.append({"seconds_audio": seconds, **result})
            print(f"{seconds:8.0f} s of audio: peak RSS {result['rss_peak_mib']:7.0f} MiB, "
                  f"{result['seconds']:7.1f} s wall", flush=True)
    base = rows[0]["rss_peak_mib"]
    flags = "" if args.command == "reconstruct" else f" --command encode --refine-steps {args.refine_steps}"
    what = "reconstruct" if args.command == "reconstruct" else f"encode --refine-steps {args.refine_steps}"
    lines = [
        section,
        "",
        f"`python benchmarks/reconstruct_memory.py{flags}` ({time.strftime('%Y-%m-%d')}, {cpu_name()}, "
        f"{args.threads} thread(s), model `{Path(args.model).name}`): the whole `audioldm {what}` "
        "command in a fresh process per input, max RSS.",
        "",
        "| input | peak RSS (MiB) | ratio to the first |",
        "|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['seconds_audio']:g} s | {r['rss_peak_mib']:.0f} | {r['rss_peak_mib'] / base:.2f}x |")
    worst = max(r["rss_peak_mib"] for r in rows) / base
    lines += ["", f"Target: the longest input peaks at <= 2x the shortest: {'met' if worst <= 2 else 'NOT met'} "
              f"({worst:.2f}x). Chunks of the VAE (and the vocoder) overlap and are cross-faded "
              "(seamlessness is tested in tests/test_pipeline.py). Wall times are printed, not recorded: this is a "
              "memory benchmark, often run beside other work."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", section, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
