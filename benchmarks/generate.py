"""A whole generation at the audioldm-s-full size with random weights: time per phase and peak memory.

    nice -n 10 python benchmarks/generate.py                   # 10.24 s, 25 DPM-Solver++ 2M steps, 2 threads
    nice -n 10 python benchmarks/generate.py --steps 10 --frames 256 --no-write
    python benchmarks/generate.py --dtype fp32 bf16          # the UNet's --dtype, each measured in this run

Phases: the sampler loop (classifier-free guidance as one batch of 2: conditional + unconditional, FiLM
conditioning as the official checkpoints), VAE decode of the latent, HiFi-GAN (16 kHz) on the mel.
With several `--dtype` values the whole job runs once per value, in the order given, on the same models
and noise: the UNet under `torch.autocast` to that dtype (as `audioldm generate --dtype`), the VAE and
vocoder in fp32; the latent's difference from the first dtype's is reported.
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

from audioldm_cli.precision import autocast, autocast_dtype
from audioldm_cli.samplers import classifier_free_guidance, sample_dpmpp_2m
from audioldm_cli.schedule import ScheduleConfig, alphas_cumprod, ddim_timesteps
from audioldm_cli.unet import UNetModel
from audioldm_cli.vae import AutoencoderKL
from vocoder.generator import HifiGanGenerator

SECTION = "## Generate"
REFERENCE_STEPS, REFERENCE_CANDIDATES = 200, 3  # the reference CLI's defaults


def run(args: argparse.Namespace) -> list[dict]:
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

    x = torch.randn(1, 8, args.frames // 4, 16)
    results, first = [], None
    for name in args.dtype:
        low = autocast_dtype(name, "cpu")

        def model_2b(x2, t2, low=low):
            with autocast("cpu", low):
                return unet(x2, t2, y=y).float()

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
        first = z if first is None else first
        seconds = wav.shape[-1] / 16000
        total = sum(phases.values())
        results.append(
            {
                "dtype": name,
                "phases": phases,
                "total": total,
                "seconds": seconds,
                "rtf": total / seconds,
                "latent_rel_diff": float((z - first).abs().max() / first.abs().max()),
                "rss_models": rss_models,
                "rss_peak": max_rss_mib(),
                "work_ratio": REFERENCE_STEPS * REFERENCE_CANDIDATES / args.steps,
            }
        )
    return results


def cpu_bf16_flags() -> list[str]:
    """The CPU's native bfloat16 features (Linux /proc/cpuinfo): AMX tiles, AVX-512 BF16."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return [f for f in ("amx_bf16", "avx512_bf16") if f in flags]


def report(args: argparse.Namespace, rs: list[dict]) -> str:
    r = rs[0]
    names = [x["dtype"] for x in rs]
    lines = [
        SECTION,
        "",
        f"`python benchmarks/generate.py --steps {args.steps} --frames {args.frames} --threads {args.threads}"
        f" --dtype {' '.join(names)}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        "audioldm-s-full UNet (FiLM), VAE and 16 kHz HiFi-GAN with random weights,"
        f" {r['seconds']:.2f} s of audio, DPM-Solver++ 2M, {args.steps} steps, guidance as one batch of 2;"
        f" CPU {cpu_name()}, {args.threads} threads, torch {torch.__version__}.",
        "",
        "| phase | " + " | ".join(f"seconds, UNet {n}" for n in names) + " |",
        "|---|" + "---:|" * len(rs),
        *[
            f"| {phase} | " + " | ".join(f"{x['phases'][phase]:.2f}" for x in rs) + " |"
            for phase in r["phases"]
        ],
        "| total | " + " | ".join(f"{x['total']:.2f}" for x in rs) + " |",
        "| real-time factor | " + " | ".join(f"{x['rtf']:.2f}" for x in rs) + " |",
        "| sampler speed-up over the first | "
        + " | ".join(f"{r['phases']['sampler'] / x['phases']['sampler']:.2f}x" for x in rs)
        + " |",
        f"| max abs latent difference from {names[0]} (relative to its max) | "
        + " | ".join(f"{x['latent_rel_diff']:.1e}" for x in rs)
        + " |",
        "",
        "Real-time factor: seconds of compute per second of audio. Peak memory (max RSS)"
        f" {max(x['rss_peak'] for x in rs):.0f} MiB, of which {r['rss_models']:.0f} MiB after building the"
        " three models.",
        f"The reference's default work for one clip is {REFERENCE_STEPS} DDIM steps x {REFERENCE_CANDIDATES}"
        f" candidates with guidance: {r['work_ratio']:.0f}x the UNet work of this run (computed, not timed;"
        " per-call speed is compared in `## Compare`).",
        "",
    ]
    if "bf16" in names:
        flags = cpu_bf16_flags()
        cpu = f"with native bfloat16 units ({', '.join(flags)})" if flags else "with no native bfloat16 units"
        lines.insert(
            -1,
            f"The bf16 column ran on a CPU {cpu}; where they are missing torch emulates bf16 and the"
            " ratio does not carry over. `--dtype auto` stays fp32 on CPU, so that a seed gives the same"
            " audio on every CPU; pass `--dtype bf16` for the speed.",
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1024, help="mel frames (multiple of 4); 1024 = 10.24 s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--dtype", nargs="+", default=["fp32"], choices=["fp32", "fp16", "bf16"], help="UNet precision(s)"
    )
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
