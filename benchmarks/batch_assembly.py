"""Time to assemble one `train ldm` batch of precomputed latents, with and without the per-pass row order kept.

    nice -n 10 python benchmarks/batch_assembly.py                    # synthetic latents like the default's
    python benchmarks/batch_assembly.py --manifest runs/default/latents/manifest_balanced.jsonl

`SegmentDataset.row_index` used to draw its pass's permutation of all rows again for every sample; it now
keeps the last two passes' orders (`pass_order`). Both ways are timed alternately in one process on the
same rows (the file cache warmed first), the old one by dropping the kept order before each sample. The
batches must be identical. On an H200 the default UNet's step at batch 128 takes ~48 ms while the
engine ran 9.7 steps/s (103 ms per step): the background thread that reads the next batch was the limit.
Writes the `## Batch assembly` section of benchmarks/RESULTS.md (--no-write: print only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import cpu_name, publish

from audioldm_cli.checkpoint import save_latent
from audioldm_cli.data import SegmentDataset, read_manifest
from audioldm_cli.training.common import audio_reader


def synthetic_manifest(folder: Path, clips: int, rows: int) -> Path:
    """`clips` latent files [32, 54, 10] (a 5 s clip of the default VAE) listed `rows` times in all."""
    gen = torch.Generator().manual_seed(0)
    meta = {"format_version": 1, "sample_rate": 22050, "n_samples": 110250, "scale_factor": 1.0}
    meta |= {"vae_config_hash": "synthetic", "preset": "hifigan-22k"}
    for i in range(clips):
        save_latent(folder / f"c{i}.latent.safetensors", torch.randn(32, 54, 10, generator=gen), meta)
    lines = [
        json.dumps({"latent": f"c{i % clips}.latent.safetensors", "caption": f"clip {i % clips}"})
        for i in range(rows)
    ]
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", help="a latent manifest (default: synthetic, 6,829 clips in 11,310 rows)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed batches per way")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the engine reads batches in one background thread
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(args.manifest) if args.manifest else synthetic_manifest(Path(tmp), 6829, 11310)
        rows = read_manifest(manifest, require_captions=True)
        ds = SegmentDataset(rows, audio_reader(22050), 66150, latent_segment=32, seed=0, caption_dropout=0.1)
        for step in range(len(rows) // args.batch + 1):  # warm the OS file cache: a later pass rereads
            ds.batch(step, range(args.batch), args.batch)
        kept = ds.pass_order

        def fresh(epoch: int) -> list[int]:
            ds._orders.clear()
            return kept(epoch)

        times: dict[str, list[float]] = {"kept": [], "fresh": []}
        for i in range(args.steps):
            step = 1000 + i
            out = {}
            for way in ("fresh", "kept") if i % 2 else ("kept", "fresh"):
                ds.pass_order = fresh if way == "fresh" else kept
                t0 = time.perf_counter()
                out[way] = ds.batch(step, range(args.batch), args.batch)
                times[way].append(time.perf_counter() - t0)
            assert torch.equal(out["kept"]["latent"], out["fresh"]["latent"])
            assert out["kept"]["caption"] == out["fresh"]["caption"]
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    source = args.manifest or "synthetic latents [32, 54, 10]: 6,829 files in 11,310 rows (the default's)"
    text = (
        "## Batch assembly\n\n"
        f"`python benchmarks/batch_assembly.py` ({cpu_name()}, one thread; {source}; median of {args.steps} "
        f"batches each, alternating; identical batches):\n\n"
        f"| one `train ldm` batch of {args.batch} latent crops | ms |\n|---|---:|\n"
        f"| row order drawn for every sample (before) | {ms['fresh']:.1f} |\n"
        f"| row order kept per pass (`SegmentDataset.pass_order`, now) | {ms['kept']:.1f} |\n"
        f"| ratio | {ms['fresh'] / ms['kept']:.2f}x |\n"
    )
    publish("## Batch assembly", text, write=not args.no_write)


if __name__ == "__main__":
    main()
