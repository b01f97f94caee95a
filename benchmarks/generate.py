"""A whole generation at the audioldm-s-full size with random weights: time per phase and peak memory.

    nice -n 10 python benchmarks/generate.py                   # 10.24 s, 25 DPM-Solver++ 2M steps, 2 threads
    nice -n 10 python benchmarks/generate.py --steps 10 --frames 256 --no-write

Phases: the sampler loop (classifier-free guidance as one batch of 2: conditional + unconditional, FiLM
conditioning as the official checkpoints), VAE decode of the latent, HiFi-GAN (16 kHz) on the mel.
The reference's default work for the same clip is 200 DDIM steps with guidance for 3 candidates; the
UNet work ratio (reference calls x batch / ours) is printed beside the measured times. Writes the
`## Generate` section of benchmarks/RESULTS.md (other sections are left alone).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import cpu_name, max_rss_mib, write_section

from audioldm_cli.samplers import classifier_free_guidance, sample_dpmpp_2m
from audioldm_cli.schedule import ScheduleConfig, alphas_cumprod, ddim_timesteps
from audioldm_cli.unet import UNetModel
from audioldm_cli.vae import AutoencoderKL
from vocoder.generator import HifiGanGenerator

SECTION = "## Generate"
REFERENCE_STEPS, REFERENCE_CANDIDATES = 200, 3  # the reference CLI's defaults




def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    unet = UNetModel.from_config("audioldm-s-full").eval()
    vae = AutoencoderKL.from_config("audioldm-s-full").eval()
    vocoder = HifiGanGenerator.from_config("audioldm-16k")
    vocoder.remove_weight_norm()
    vocoder.eval()
    rss_models = max_rss_mib()

    acp = alphas_cumprod(ScheduleConfig())
    timesteps = ddim_timesteps(args.steps)
    y = torch.randn(2, unet.config["extra_film_condition_dim"])  # [uncond, cond] global embeddings

    def model_2b(x2, t2):
        return unet(x2, t2, y=y)

    x = torch.randn(1, 8, args.frames // 4, 16)
    phases = {}
    with torch.inference_mode():
        t0 = time.perf_counter()
        z = sample_dpmpp_2m(classifier_free_guidance(model_2b, 2.5), x, timesteps, acp)
        phases["sampler"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        mel = vae.decode(z)  # [1, 1, T, 64]
        phases["vae decode"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        wav = vocoder(mel.squeeze(1).transpose(1, 2))
        phases["vocoder"] = time.perf_counter() - t0
    seconds = wav.shape[-1] / 16000
    total = sum(phases.values())
    return {
        "phases": phases,
        "total": total,
        "seconds": seconds,
        "rtf": total / seconds,
        "rss_models": rss_models,
        "rss_peak": max_rss_mib(),
        "work_ratio": REFERENCE_STEPS * REFERENCE_CANDIDATES / args.steps,
    }


def report(args: argparse.Namespace, r: dict) -> str:
    lines = [
        SECTION,
        "",
        f"`python benchmarks/generate.py --steps {args.steps} --frames {args.frames} --threads {args.threads}`"
        f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"audioldm-s-full UNet (FiLM), VAE and 16 kHz HiFi-GAN with random weights, {r['seconds']:.2f} s of audio,"
        f" DPM-Solver++ 2M, {args.steps} steps, guidance as one batch of 2; CPU {cpu_name()},"
        f" {args.threads} threads, torch {torch.__version__}.",
        "",
        "| phase | seconds |",
        "|---|---:|",
        *[f"| {name} | {sec:.2f} |" for name, sec in r["phases"].items()],
        f"| total | {r['total']:.2f} |",
        "",
        f"Real-time factor {r['rtf']:.2f} (seconds of compute per second of audio). Peak memory (max RSS)"
        f" {r['rss_peak']:.0f} MiB, of which {r['rss_models']:.0f} MiB after building the three models.",
        f"The reference's default work for one clip is {REFERENCE_STEPS} DDIM steps x {REFERENCE_CANDIDATES}"
        f" candidates with guidance: {r['work_ratio']:.0f}x the UNet work of this run (computed, not timed;"
        " per-call speed is compared in `## Compare`).",
        "",
    ]
    return "\n".join(lines)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1024, help="mel frames (multiple of 4); 1024 = 10.24 s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if args.frames % 4 or args.frames <= 0 or args.steps <= 0:
        parser.error("--frames must be a positive multiple of 4 and --steps positive")
    text = report(args, run(args))
    print(text)
    if not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, text)


if __name__ == "__main__":
    main()
