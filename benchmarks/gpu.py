"""Real-time factors of a whole 10 s generation at the audioldm-s-full size on a CUDA GPU: fp32, fp16, bf16.

    python benchmarks/gpu.py                          # 10.24 s, 25 DPM-Solver++ 2M steps, fp32/fp16/bf16
    python benchmarks/gpu.py --compile --no-write     # the same with the UNet under torch.compile
    python benchmarks/gpu.py --device cpu --frames 64 --steps 2 --dtypes fp32,bf16   # smoke test only

It runs the library's own path, as `audioldm generate --dtype D` does: an `AudioLDM` pipeline holding
the s-full UNet (FiLM conditioning, as the official checkpoints), VAE and 16 kHz HiFi-GAN with random
weights (every parameter drawn, `compare.randomize_`, so no zero-initialised layer hides precision
errors); the UNet called through `AudioLDM.denoiser(dtype=D)` with classifier-free guidance as one
batch of 2; then `AudioLDM.decode_latent` (VAE decode and vocoder in fp32, waveform back on the CPU).
The text encoder is left out (one call per clip, the same for every dtype).

Per dtype: one warm-up generation (cuDNN autotuning, compilation with --compile), then the median of
`--repeats` timed ones, CUDA-synchronised around each phase. Real-time factor = compute seconds per
second of audio (below 1 is faster than real time). Each dtype's latent and waveform are compared with
fp32's (same noise, same weights) as relative L2 distances. Writes the `## GPU` section of
benchmarks/RESULTS.md (other sections are left alone) unless --no-write; never on CPU. Exits 1 with a
message when no CUDA GPU is present.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import write_section

from audioldm_cli.checkpoint import PipelineConfig
from audioldm_cli.errors import AudioLDMError
from audioldm_cli.pipeline import AudioLDM
from audioldm_cli.precision import DTYPES
from audioldm_cli.samplers import classifier_free_guidance, sample_dpmpp_2m
from audioldm_cli.schedule import alphas_cumprod, ddim_timesteps
from audioldm_cli.unet import UNetModel
from audioldm_cli.vae import AutoencoderKL
from vocoder.config import MEL_PRESETS
from vocoder.generator import HifiGanGenerator

SECTION = "## GPU"
GUIDANCE = 2.5


def build(device: str) -> AudioLDM:
    """The s-full pipeline with every weight drawn at random (seeded), on `device`."""
    from compare import randomize_  # benchmarks/compare.py; imported here, after the packages

    unet = randomize_(UNetModel.from_config("audioldm-s-full"), seed=2)
    vae = randomize_(AutoencoderKL.from_config("audioldm-s-full"), seed=1)
    vocoder = randomize_(HifiGanGenerator.from_config("audioldm-16k", use_weight_norm=False), seed=4)
    config = PipelineConfig(
        frontend=MEL_PRESETS["audioldm-16k"].to_dict(),
        components={"vae": "vae", "unet": "unet", "vocoder": "vocoder"},
        conditioning="film",
    )
    return AudioLDM(config, vae=vae, vocoder=vocoder, unet=unet, device=device)


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    pipe = build(args.device)
    gen = torch.Generator().manual_seed(0)
    if args.frames % (pipe.time_factor * pipe.unet_factor):
        raise SystemExit(
            f"error: --frames {args.frames}: must be a multiple of {pipe.time_factor * pipe.unet_factor}"
        )
    bins = pipe.mel_config.n_mels // pipe.freq_factor
    x = torch.randn(1, pipe.latent_channels, args.frames // pipe.time_factor, bins, generator=gen).to(device)
    y = torch.randn(1, pipe.unet.config["extra_film_condition_dim"], generator=gen)
    y = torch.cat([torch.zeros_like(y), y / y.norm()]).to(device)  # [uncond, cond] FiLM vectors
    acp = alphas_cumprod(pipe.schedule).to(device)
    timesteps = ddim_timesteps(args.steps, pipe.schedule.timesteps)
    n_samples = args.frames * pipe.hop_length

    def generate(dtype: str) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        model_fn = classifier_free_guidance(
            pipe.denoiser({"y": y}, dtype=dtype, compile=args.compile), GUIDANCE
        )
        sync()
        t0 = time.perf_counter()
        z = sample_dpmpp_2m(model_fn, x, timesteps, acp)
        sync()
        t1 = time.perf_counter()
        wav = pipe.decode_latent(z, n_samples)  # VAE + vocoder in fp32; returns a CPU tensor
        return z.cpu(), wav, t1 - t0, time.perf_counter() - t1

    rows = {}
    with torch.inference_mode():
        for dtype in args.dtypes:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            print(f"{dtype}: warm-up", file=sys.stderr)
            generate(dtype)
            runs = []
            for i in range(args.repeats):
                runs.append(generate(dtype))
                print(
                    f"{dtype}: run {i + 1}/{args.repeats}: {runs[-1][2] + runs[-1][3]:.3f} s", file=sys.stderr
                )
            sampler = statistics.median(r[2] for r in runs)
            decode = statistics.median(r[3] for r in runs)
            rows[dtype] = {
                "sampler": sampler,
                "decode": decode,
                "total": sampler + decode,
                "latent": runs[0][0],
                "wav": runs[0][1],
                "finite": bool(torch.isfinite(runs[0][1]).all()),
                "gpu_peak": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
            }
    seconds = n_samples / pipe.sample_rate
    base = rows.get("fp32")
    for r in rows.values():
        r["rtf"] = r["total"] / seconds
        r["speedup"] = base["total"] / r["total"] if base else None
        r["latent_err"] = _rel_l2(r["latent"], base["latent"]) if base else None
        r["wav_err"] = _rel_l2(r["wav"], base["wav"]) if base else None
    return {"rows": rows, "seconds": seconds}


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def describe_device(device: str) -> str:
    if device != "cuda":
        return f"CPU, torch {torch.__version__} (smoke test: not a GPU figure)"
    props = torch.cuda.get_device_properties(0)
    return (
        f"{props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}; "
        f"fp32 matmul TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, "
        f"cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'} (torch defaults)"
    )


def report(args: argparse.Namespace, r: dict) -> str:
    command = (
        f"python benchmarks/gpu.py --steps {args.steps} --frames {args.frames} --repeats {args.repeats}"
        f" --dtypes {','.join(args.dtypes)}"
        + (" --compile" if args.compile else "")
        + (" --device cpu" if args.device == "cpu" else "")
    )
    lines = [
        SECTION,
        "",
        f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        (
            f"audioldm-s-full UNet (FiLM), VAE and 16 kHz HiFi-GAN with random weights, {r['seconds']:.2f} s of audio,"
            f" DPM-Solver++ 2M, {args.steps} steps, guidance {GUIDANCE} as one batch of 2"
            f"{', UNet under torch.compile' if args.compile else ''}; {describe_device(args.device)}."
            " `--dtype` autocasts the UNet only: VAE decode and vocoder run in fp32 in every row."
            f" Median of {args.repeats} runs after a warm-up."
        ),
        "",
        (
            "| --dtype | sampler s | VAE + vocoder s | total s | real-time factor | speed-up vs fp32 "
            "| peak GPU MiB | latent rel. L2 vs fp32 | audio rel. L2 vs fp32 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in r["rows"].items():
        lines.append(
            f"| {name} | {row['sampler']:.3f} | {row['decode']:.3f} | {row['total']:.3f} | {row['rtf']:.4f} "
            f"| {_fmt(row['speedup'], '.2f')} | {_fmt(row['gpu_peak'], '.0f')} "
            f"| {_fmt(row['latent_err'], '.2e')} | {_fmt(row['wav_err'], '.2e')}"
            f"{'' if row['finite'] else ' (non-finite audio)'} |"
        )
    lines += [
        "",
        (
            "Real-time factor: compute seconds per second of audio (below 1: faster than real time); the text"
            " encoder (one call per clip) is not included."
        ),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument(
        "--frames", type=int, default=1024, help="mel frames (multiple of 32); 1024 = 10.24 s"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="fp32,fp16,bf16", help="comma-separated: fp32, fp16, bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet (first run compiles)")
    parser.add_argument(
        "--device", default="cuda", choices=("cuda", "cpu"), help="cpu: smoke test, never written"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not args.dtypes or any(d not in DTYPES or d == "auto" for d in args.dtypes):
        parser.error(f"--dtypes {','.join(args.dtypes)!r}: a comma-separated list of fp32, fp16, bf16")
    if args.frames <= 0 or args.steps <= 0 or args.repeats <= 0:
        parser.error("--frames, --steps and --repeats must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: no CUDA GPU is available (torch.cuda.is_available() is False); this benchmark measures"
            " --dtype on a GPU. Run it on a machine with one, or `--device cpu` for a smoke test.",
            file=sys.stderr,
        )
        return 1
    try:
        text = report(args, run(args))
    except AudioLDMError as e:  # e.g. a dtype this GPU cannot autocast to
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(text)
    if args.device == "cuda" and not args.no_write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
