"""Time of one guided UNet step on long latents: in blended windows (`AudioLDM.unet_window_seconds`,
the default) against the whole latent at once, side by side, alternating, for each length.

    nice -n 10 python benchmarks/long_unet.py                  # the embedded default model
    nice -n 10 python benchmarks/long_unet.py --seconds 30 120 --no-write

One step of `generate` (and of the edits) is one such call on the prompt and the empty prompt (batch 2).
Writes the `## Long latents` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the `vocoder` package, not benchmarks/vocoder.py
sys.path.insert(1, str(HERE))

from _common import cpu_name, publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the embedded default)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 60.0, 120.0, 240.0, 600.0])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per mode and length (best kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    import torch

    from audioldm_cli import AudioLDM

    torch.set_num_threads(args.threads)
    pipe = AudioLDM.from_pretrained(args.model)
    window = pipe.unet_window_seconds
    cond = pipe._condition(["", "rain on a tin roof"])
    rows = []
    for seconds in args.seconds:
        frames = pipe.frames_for(int(seconds * pipe.sample_rate), pipe.time_factor * pipe.unet_factor)
        shape = (
            2,
            pipe.latent_channels,
            frames // pipe.time_factor,
            pipe.mel_config.n_mels // pipe.freq_factor,
        )
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        t = torch.full((2,), 500)
        best = {}
        for _ in range(args.repeats):
            for mode, value in (("windowed", window), ("whole", None)):  # alternating, on the same input
                pipe.unet_window_seconds = value
                fn = pipe.denoiser(cond)
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    fn(x, t)
                    best[mode] = min(best.get(mode, float("inf")), time.perf_counter() - t0)
        pipe.unet_window_seconds = window
        rows.append((seconds, shape[2], best["windowed"], best["whole"]))
        print(f"{seconds:g} s: windowed {best['windowed']:.2f} s, whole {best['whole']:.2f} s", flush=True)
    text = (
        "## Long latents\n\n"
        f"`python benchmarks/long_unet.py --seconds {' '.join(f'{s:g}' for s in args.seconds)}` "
        f"({args.model or 'the embedded default model'}; {cpu_name()}, {args.threads} threads): one guided "
        "UNet step (prompt and empty prompt, batch 2) on a latent of each length, in blended windows of "
        f"{window:g} s with {pipe.unet_window_overlap_seconds:g} s of each neighbour (`unet_window_seconds`, "
        f"the default) against the whole latent at once; best of {args.repeats}, the two alternating on the "
        "same input. `generate` and the edits take one such step per denoising step (25 for the default "
        "model). Up to one window and its overlaps (30 s) both are the same single call.\n\n"
        "| latent of | frames | windowed | whole | ratio |\n|---|---:|---:|---:|---:|\n"
        + "".join(f"| {s:g} s | {n} | {w:.2f} s | {a:.2f} s | {a / w:.1f}x |\n" for s, n, w, a in rows)
    )
    publish("## Long latents", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
