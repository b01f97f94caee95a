"""Time of `inpaint` on a short range of a long input: the UNet on the range and its context (the
default, `context_seconds` 10) against the UNet on the whole input (`context_seconds=None`, as before).

    nice -n 10 python benchmarks/inpaint_long.py                       # the embedded default model
    nice -n 10 python benchmarks/inpaint_long.py --seconds 120 --range 60 62 --no-write

Both run in this process, side by side on the same input (`reconstruct_memory.py`'s test signal) and
seed, each timed from the waveform to the edited waveform (encoding, denoising, decoding). Writes the
`## Inpaint on long inputs` section of benchmarks/RESULTS.md.
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
from reconstruct_memory import test_signal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the embedded default)")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the input")
    parser.add_argument("--range", type=float, nargs=2, default=(60.0, 62.0), metavar=("START", "END"))
    parser.add_argument("--prompt", default="a door slams")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    import torch

    from audioldm_cli import AudioLDM
    from audioldm_cli.editing import EDIT_CONTEXT_SECONDS, inpaint

    torch.set_num_threads(args.threads)
    pipe = AudioLDM.from_pretrained(args.model)
    wav = torch.from_numpy(test_signal(args.seconds, pipe.sample_rate))
    start, end = args.range
    rows, results = [], {}
    for label, context in ((f"range + {EDIT_CONTEXT_SECONDS:g} s each side (default)", EDIT_CONTEXT_SECONDS),
                           ("whole input (context_seconds=None)", None)):  # fmt: skip
        t0 = time.perf_counter()
        results[label] = inpaint(pipe, wav, args.prompt, start, end, context_seconds=context, seed=0)
        seconds = time.perf_counter() - t0
        rows.append((label, seconds))
        print(f"{label}: {seconds:.1f} s", flush=True)
    (crop_label, crop_s), (whole_label, whole_s) = rows
    crop, whole = results[crop_label], results[whole_label]
    edited = crop.mask.expand_as(crop.latent) < 1
    diff = (crop.latent - whole.latent)[edited].abs().mean() / whole.latent[edited].abs().mean()
    text = (
        "## Inpaint on long inputs\n\n"
        f"`python benchmarks/inpaint_long.py --seconds {args.seconds:g} --range {start:g} {end:g}` "
        f"({args.model or 'the embedded default model'}, its recommended steps and guidance, seed 0; "
        f"{cpu_name()}, {args.threads} threads; both in one process, side by side). `inpaint` regenerates "
        f"{end - start:g} s of a {args.seconds:g} s input; the UNet runs on:\n\n"
        "| UNet input | wall time |\n|---|---:|\n"
        + "".join(f"| {label} | {seconds:.1f} s |\n" for label, seconds in rows)
        + f"\nRatio: **{whole_s / crop_s:.1f}x** faster with the range and its context (the rest of the time "
        "is encoding and decoding the whole input, the same in both). Outside that span the latent is the "
        "input's in both; inside the regenerated range the two latents differ by "
        f"{diff:.2f} of their mean magnitude there (same seed): context farther than "
        f"{EDIT_CONTEXT_SECONDS:g} s changes the regenerated sound little.\n"
    )
    publish("## Inpaint on long inputs", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
