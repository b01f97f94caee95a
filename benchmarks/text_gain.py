"""How much the caption helps the UNet denoise, per corpus category and noise level.

    nice -n 10 python benchmarks/text_gain.py [--model checkpoints/default] [--corpus examples/corpus/work]
                                              [--split val train] [--per-category 24] [--draws 2]
                                              [--timesteps 100 300 500 700 900 950] [--seconds 3]

For clips of the corpus (the held-out val split and the train split, `--per-category` per category, their first
`--seconds`), their latents are noised to each timestep (`--draws` noise draws each, shared by both sides)
and the UNet predicts the noise twice: with the clip's own caption and with the empty prompt (the
unconditional side of classifier-free guidance). The ratio of the two mean squared errors, conditional /
unconditional, says how much the words tell the UNet at that noise level: 1 means nothing, and guidance
then has only a vanishing difference to amplify. The ratio is the same for the clean-latent estimate
(x0 and eps errors differ by a factor that depends on t alone).
Writes the `## Text gain` section of benchmarks/RESULTS.md (--no-write: print only).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before benchmarks/, whose vocoder.py would shadow the `vocoder` package


def text_gain(
    pipe, latents: torch.Tensor, captions: list[str], timesteps: list[int], draws: int, seed: int = 0
):
    """Noise-prediction errors of `pipe`'s UNet on scaled `latents` [B, C, T', F'] noised to each of
    `timesteps`: (unconditional, conditional), each [len(timesteps), B], the mean over `draws` noise
    draws (draw d from seed + d, the same for both sides) of the per-clip mean squared error of the noise
    estimate (a v-predicting UNet's output is converted to it first)."""
    from audioldm_cli.schedule import add_noise, alphas_cumprod, pred_to_x0_eps

    if latents.shape[0] != len(captions):
        raise ValueError(f"{latents.shape[0]} latents but {len(captions)} captions")
    device = pipe.device
    acp = alphas_cumprod(pipe.schedule).to(device)
    kind = pipe.schedule.prediction_type
    latents = latents.float().to(device)
    uncond, cond = pipe._condition([""] * len(captions)), pipe._condition(captions)
    err_u = torch.zeros(len(timesteps), len(captions))
    err_c = torch.zeros(len(timesteps), len(captions))
    dims = tuple(range(1, latents.dim()))

    def error(x_t, t, noise, kwargs):
        eps = pred_to_x0_eps(pipe.unet(x_t, t, **kwargs), x_t, acp[t].view(-1, 1, 1, 1), kind)[1]
        return (eps - noise).pow(2).mean(dims).cpu() / draws

    for d in range(draws):
        gen = torch.Generator().manual_seed(seed + d)
        for i, t in enumerate(timesteps):
            noise = torch.randn(latents.shape, generator=gen).to(device)
            x_t = add_noise(latents, noise, t, acp)
            tt = torch.full((len(captions),), int(t), dtype=torch.int64, device=device)
            with torch.inference_mode():
                err_u[i] += error(x_t, tt, noise, uncond)
                err_c[i] += error(x_t, tt, noise, cond)
    return err_u, err_c


def split_table(pipe, corpus: Path, split: str, per_category: int, seconds: float, timesteps, draws, seed):
    """{category: (unconditional error [T], conditional error [T], clips)} over `per_category` clips of
    each category of the split, and the crop length in samples."""
    from audioldm_cli.audio import read_audio

    path = corpus / f"manifest_{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_cat = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
    rng = random.Random(seed)
    sr = pipe.sample_rate
    step = pipe.hop_length * pipe.time_factor * pipe.unet_factor  # whole UNet bottleneck frames: no padding
    n = max(step, int(seconds * sr) // step * step)
    table = {}
    for cat in sorted(by_cat):
        pick = rng.sample(by_cat[cat], min(per_category, len(by_cat[cat])))
        wavs = [read_audio(corpus / r["wav"], sr)[0][:n] for r in pick]
        latents, _ = pipe.encode(torch.stack([F.pad(w, (0, n - len(w))) for w in wavs]))
        err_u, err_c = text_gain(pipe, latents, [r["caption"] for r in pick], timesteps, draws, seed)
        table[cat] = (err_u.mean(1), err_c.mean(1), len(pick))
        ratios = " ".join(f"{float(c / u):.3f}" for u, c in zip(*table[cat][:2]))
        print(f"{split} {cat} {ratios}", file=sys.stderr, flush=True)
    return table, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "default")
    ap.add_argument("--corpus", type=Path, default=ROOT / "examples" / "corpus" / "work")
    ap.add_argument("--split", nargs="+", default=["val", "train"], choices=["train", "val"])
    ap.add_argument("--per-category", type=int, default=24)
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[100, 300, 500, 700, 900, 950])
    ap.add_argument(
        "--seconds", type=float, default=3.0, help="the first S seconds of each clip (training crops: 3)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    from _common import cpu_name, publish

    from audioldm_cli.pipeline import AudioLDM

    start = time.time()
    pipe = AudioLDM.from_pretrained(args.model)
    ts = args.timesteps
    tables = {}
    for split in args.split:
        tables[split], n = split_table(
            pipe, args.corpus, split, args.per_category, args.seconds, ts, args.draws, args.seed
        )
    model = args.model.resolve()
    model_name = model.relative_to(ROOT) if model.is_relative_to(ROOT) else args.model
    lines = [
        "## Text gain",
        "",
        (
            f"`python benchmarks/text_gain.py --model {model_name} --split {' '.join(args.split)} "
            f"--per-category {args.per_category} --draws {args.draws} --seconds {args.seconds:g}` "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_name()}, {time.time() - start:.0f} s): "
            f"the UNet's noise-prediction error with each clip's own caption divided by its error with the empty "
            f"prompt, on the first {n / pipe.sample_rate:.2f} s of the clips ({args.draws} noise draws each); "
            f"1.000: the caption tells the UNet nothing at that noise level, above 1: it misleads it."
        ),
    ]
    for split, table in tables.items():
        lines += [
            "",
            f"| {split} clips (per category) | " + " | ".join(f"t = {t}" for t in ts) + " |",
            "|---|" + "---:|" * len(ts),
        ]
        for cat, (u, c, k) in table.items():
            lines.append(f"| {cat} ({k}) | " + " | ".join(f"{float(b / a):.3f}" for a, b in zip(u, c)) + " |")
        clips = sum(k for *_, k in table.values())
        all_u = torch.stack([u * k for u, _, k in table.values()]).sum(0) / clips
        all_c = torch.stack([c * k for _, c, k in table.values()]).sum(0) / clips
        lines.append(
            "| **all** | " + " | ".join(f"**{float(b / a):.3f}**" for a, b in zip(all_u, all_c)) + " |"
        )
        lines.append("| unconditional error | " + " | ".join(f"{float(a):.4f}" for a in all_u) + " |")
    publish("## Text gain", "\n".join(lines) + "\n", write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
