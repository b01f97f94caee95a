"""How loud do generations get as guidance grows? Levels of the default model's clips per guidance scale.

    python benchmarks/guidance_levels.py                          # guidance 3 5 7 10, ~9 min on 2 cores
    python benchmarks/guidance_levels.py --guidance 3 10 --no-write

Generates the first held-out phrasing of each category (`HELD_OUT_PROMPTS` of default_model.py: 12
prompts, 5 s, DDIM 25 steps, seed 0) at each guidance scale and reports the mean RMS level, the mean
and largest peak, and the share of samples at or beyond |0.99| (the vocoder's tanh output saturating:
audible as distortion), beside the same figures for 3 real held-out clips per category of the corpus.
When the model's pipeline.json sets a `frame_level_limit` (a ceiling on each decoded mel frame's level,
applied before the vocoder), each guidance scale is measured without it and with it.
Writes the `## Guidance levels` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose vocoder.py would shadow the `vocoder` package

from _common import publish  # noqa: E402
from default_model import HELD_OUT_PROMPTS, per_category, read_rows  # noqa: E402

SECTION = "## Guidance levels"


def levels(wavs: list[torch.Tensor]) -> dict:
    peaks = [float(w.abs().max()) for w in wavs]
    return {
        "rms": sum(float(w.pow(2).mean().sqrt()) for w in wavs) / len(wavs),
        "peak_mean": sum(peaks) / len(peaks),
        "peak_max": max(peaks),
        "saturated_mean": sum(float((w.abs() >= 0.99).float().mean()) for w in wavs) / len(wavs),
        "saturated_max": max(float((w.abs() >= 0.99).float().mean()) for w in wavs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "default")
    ap.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus" / "work")
    ap.add_argument("--guidance", type=float, nargs="+", default=[3.0, 5.0, 7.0, 10.0])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args(argv)

    from audioldm_cli.audio import read_audio
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(args.model)
    prompts = [ps[0] for _, ps in sorted(HELD_OUT_PROMPTS.items())]
    rows = []
    manifest = args.corpus / "manifest_val.jsonl"
    if manifest.is_file():
        real = per_category(read_rows(manifest), 3, 0)
        wavs = [read_audio(args.corpus / r["wav"], pipe.sample_rate)[0].reshape(-1) for r in real]
        rows.append((f"real val clips ({len(wavs)}, 3 per category)", levels(wavs)))
    limit = pipe.default_frame_level_limit
    limits = [("", math.inf)] + ([(f", frame level limit {limit:g}", limit)] if limit < math.inf else [])
    for g in args.guidance:
        for label, value in limits:
            out = pipe.generate(
                prompts, duration=5, steps=args.steps, guidance_scale=g, seed=0, batch_size=12,
                frame_level_limit=value,
            )
            rows.append((f"generated, guidance {g:g}{label}", levels(list(out))))
            print(rows[-1], flush=True)

    lines = [
        SECTION,
        "",
        f"`python benchmarks/guidance_levels.py --guidance {' '.join(f'{g:g}' for g in args.guidance)}`"
        f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) on `{args.model.name}`: {len(prompts)}"
        f" held-out prompts (one per category), 5 s, DDIM {args.steps} steps, seed 0.",
        "",
        "| clips | mean RMS | mean / largest peak | samples at \\|x\\| >= 0.99: mean / worst clip |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {r['rms']:.3f} | {r['peak_mean']:.2f} / {r['peak_max']:.2f} |"
            f" {100 * r['saturated_mean']:.2f} % / {100 * r['saturated_max']:.2f} % |"
            for name, r in rows
        ],
        "",
    ]
    text = "\n".join(lines)
    publish(SECTION, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
